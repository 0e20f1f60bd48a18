"""PiBuddy: a Raspberry Pi voice buddy and local hub for the xiaozhi ecosystem.

Start reading at `pibuddy.wiring` (what a config turns on); README "Architecture" draws the layers. A bare
"§N.M" in a docstring or comment is a section of docs/protocol.md; the drivers cite docs/drivers.md.
"""

__version__ = "0.1.0"
