"""What the OTA request says about this Pi and the PiBuddy build it runs (docs/protocol.md §2.1).

Every value is a real one for a Pi, never an ESP32 imitation: the SoC and board model from the
device tree, the primary interface's IPv4 address, and a SHA-256 of the running PiBuddy sources in
place of the firmware's ELF hash.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path
from typing import Final

import pibuddy
from pibuddy import netinfo
from pibuddy.config import Config
from pibuddy.device_client.identity import Identity
from pibuddy.xiaozhi.ota import OtaDevice

# "pibuddy", not the firmware's "xiaozhi": the name must not make a server take us for ESP32 firmware
# and offer binaries; servers look firmware up by board.type and application.version anyway (§2.1).
APP_NAME: Final = "pibuddy"
DEVICE_TREE: Final = Path("/proc/device-tree")
_PACKAGE_DIR: Final = Path(pibuddy.__file__).parent


def build_ota_device(config: Config, identity: Identity, *, device_tree: Path = DEVICE_TREE) -> OtaDevice:
    """The OTA view of this device. Activation-Version 2 only when `upstream.activation_version` is 2."""
    interface = netinfo.primary_interface()
    version2 = config.upstream.activation_version == 2
    return OtaDevice(
        device_id=identity.device_id,
        client_id=identity.client_id,
        board_type=config.upstream.board_type,
        board_name=board_model(device_tree) or config.upstream.board_type,
        app_name=APP_NAME,
        app_version=pibuddy.__version__,
        elf_sha256=application_sha256(),
        chip_model_name=soc_name(device_tree),
        language=config.device.language,
        ip=netinfo.ipv4_address(interface.name) if interface is not None else None,
        serial_number=identity.serial_number if version2 else None,
        hmac_key=identity.hmac_key if version2 else None,
    )


def board_model(device_tree: Path = DEVICE_TREE) -> str | None:
    """The board, e.g. `Raspberry Pi 5 Model B Rev 1.0`; None off a Pi."""
    model = _device_tree_strings(device_tree / "model")
    return model[0] if model else None


def soc_name(device_tree: Path = DEVICE_TREE) -> str:
    """The SoC, e.g. `bcm2712` from the device tree's `brcm,bcm2712`; the CPU architecture elsewhere."""
    compatible = _device_tree_strings(device_tree / "compatible")
    return compatible[-1].rpartition(",")[2] if compatible else platform.machine() or "unknown"


@functools.cache
def application_sha256() -> str:
    """SHA-256 over the package's Python sources (relative path and content, in path order).

    It changes exactly when the running code changes, as the firmware's elf_sha256 does. Not the HMAC
    key, as py-xiaozhi sends: that key stands for an eFuse secret and stays on the device.
    """
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _device_tree_strings(path: Path) -> list[str]:
    """A device-tree string-list property (NUL separated), or [] off a Pi."""
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    return [item.decode(errors="replace") for item in raw.split(b"\0") if item]
