"""PiBuddy: a Raspberry Pi voice buddy and local hub for the xiaozhi ecosystem."""

__version__ = "0.1.0"
