"""`python -m pibuddy` is the same as the `pibuddy` command."""

import sys

from pibuddy.cli import main

sys.exit(main())
