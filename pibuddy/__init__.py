"""PiBuddy: a Raspberry Pi voice buddy and local hub for the xiaozhi ecosystem.

Start reading at `pibuddy.wiring` (what a config turns on); README "Architecture" draws the layers. A bare
"§N.M" in a docstring or comment is a section of docs/protocol.md; a line naming docs/drivers.md or
docs/openclaw.md cites that one (tests/test_doc_references.py checks every citation).
"""

__version__ = "0.1.0"
