"""Coverage-guided fuzzing of the gateway's MQTT codec with atheris (pip install atheris).

    .venv/bin/python scripts/fuzz_mqtt_codec.py -max_total_time=60

Each input is cut into chunks (its first byte picks the chunk size) and fed to one parser, so the
incremental path is fuzzed too. Anything but decoded packets or `MqttProtocolError` is a finding.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from pibuddy.gateway.mqtt_codec import MqttParser, MqttProtocolError

_CAP = 8192


def test_one_input(data: bytes) -> None:
    if not data:
        return
    chunk = data[0] % 64 + 1
    parser = MqttParser(max_packet_size=_CAP)
    try:
        for start in range(1, len(data), chunk):
            parser.feed(data[start : start + chunk])
    except MqttProtocolError:
        return


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
