"""The one spelling of a MAC address PiBuddy takes anywhere: device ids, MQTT client ids, the gateway's OTA,
`pibuddy gateway credentials`, `device.device_id` in the config.

It is the reference gateway's rule: six hex pairs in either case, joined by ':' or '_' ('-' too, as
manager-api's Device-Id check allows), normalised to the firmware's Device-Id form `aa:bb:cc:dd:ee:ff`. Any
first byte is fine: a device id is a name (the reference docs' own test MAC 11:22:33:44:55:66 is multicast).
"""

from __future__ import annotations

import re
from typing import Final

_MAC_FORM: Final = re.compile(r"[0-9a-fA-F]{2}(?P<sep>[:_-])[0-9a-fA-F]{2}((?P=sep)[0-9a-fA-F]{2}){4}")


def parse_mac(text: str) -> str | None:
    """`AA_BB_…`, `aa:bb:…` or `Aa-Bb-…` → `aa:bb:cc:dd:ee:ff`; None if it is not a MAC."""
    text = text.strip()
    if not _MAC_FORM.fullmatch(text):
        return None
    return text.lower().replace("_", ":").replace("-", ":")
