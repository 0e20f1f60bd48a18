"""The optional C fast path of the UDP audio packet; all other metadata lives in pyproject.toml.

pibuddy/xiaozhi/_udp_packet.c links OpenSSL's libcrypto. Where it cannot be built (no C compiler, no
Python or OpenSSL headers) the install still succeeds, prints one warning, and PiBuddy runs the
pure-Python twin (pibuddy/xiaozhi/udp_packet.py) instead.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

_BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)


class OptionalBuildExt(build_ext):
    """Build the extensions, or leave them all out with one warning if that fails."""

    def run(self) -> None:
        try:
            super().run()
        except _BUILD_ERRORS as exc:
            self._give_up(exc)

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except _BUILD_ERRORS as exc:
            self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        # Nothing left to copy in place or put in the wheel: the twin takes over at import time.
        self.extensions = []
        print(
            f"WARNING: PiBuddy's C packet fast path was not built ({type(exc).__name__}: {exc}); "
            "the pure-Python twin will be used. Install a C compiler and the OpenSSL headers "
            "(Debian: build-essential libssl-dev) and reinstall to get it.",
            file=sys.stderr,
        )


UDP_PACKET_EXTENSION = Extension(
    "pibuddy.xiaozhi._udp_packet", ["pibuddy/xiaozhi/_udp_packet.c"], libraries=["crypto"]
)

if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it for the class above
    setup(ext_modules=[UDP_PACKET_EXTENSION], cmdclass={"build_ext": OptionalBuildExt})
