"""Virtual ALSA microphones and speakers over the file plugin.

No daemon and no sound card: a microphone PCM reads a raw file, a speaker PCM writes one. The devices are
defined in a private config file that ALSA_CONFIG_PATH adds to the system one. They are NOT paced: a
stream runs as fast as the reader, so use them for exact content checks, never for timing. After EOF the
plugin repeats stale buffer contents, so only the file's own length is meaningful.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_SYSTEM_CONFIG = "/usr/share/alsa/alsa.conf"


class AlsaFileDevices:
    """Build with `microphone()` / `speaker()`, then `write()` and export `env` (ALSA_CONFIG_PATH)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config_path = directory / "asound.conf"
        self._pcms: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        return {"ALSA_CONFIG_PATH": f"{_SYSTEM_CONFIG}:{self.config_path}"}

    def microphone(self, name: str, samples: np.ndarray, *, rate: int = 16000) -> Path:
        """A capture PCM `name` whose device rate is `rate`, playing `samples` (int16 mono) once."""
        path = self.directory / f"{name}.raw"
        samples.astype("<i2").tofile(path)
        self._pcms.append(_pcm(name, rate, f'file "/dev/null"; infile "{path}"'))
        return path

    def speaker(self, name: str, *, rate: int = 16000) -> Path:
        """A playback PCM `name` at `rate` that appends what is played to the returned file."""
        path = self.directory / f"{name}.raw"
        self._pcms.append(_pcm(name, rate, f'file "{path}"'))
        return path

    def default_to(self, name: str | None) -> None:
        """Make ALSA's default device `name`, or (None) one that does not exist: a Pi whose only sound card is
        unplugged, for which PortAudio reports no default device at all. Later calls override earlier ones."""
        target = f'{{ type plug; slave.pcm "{name}" }}' if name else "{ type hw; card 99 }"
        self._pcms.append(f"pcm.!default {target}\nctl.!default {{ type hw; card 99 }}\n")

    def write(self) -> None:
        """(Re)write the config; alsa-lib re-reads it at the next device scan."""
        self.config_path.write_text("\n".join(self._pcms) + "\n")


def _pcm(name: str, rate: int, files: str) -> str:
    return (f'pcm.{name}_file {{ type file; slave.pcm "null"; {files}; format "raw" }}\n'
            f'pcm.{name} {{ type plug; slave {{ pcm "{name}_file"; format S16_LE; rate {rate}; channels 1 }}\n'
            f'  hint {{ show on; description "{name}" }} }}\n')
