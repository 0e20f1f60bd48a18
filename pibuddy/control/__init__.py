"""The control layer: read and steer the running buddy.

`Control` (center.py) owns the operations and is the API for every surface: the control socket
(server.py, for `pibuddy status/volume/mute/announce/history`), the web page, Home Assistant's MQTT entities.
`model` holds its typed snapshots, `history` and `recorder` the turns and actions with their latencies.
"""

from pibuddy.control.center import ALL_DEVICES, Control, GatewayView, TimerView, VolumeControl
from pibuddy.control.history import ActionRecord, History, HistoryEntry, TurnRecord
from pibuddy.control.model import AssistantState, ControlError, GatewayDevice, Snapshot, TimerStatus, UpstreamStatus

__all__ = [
    "ALL_DEVICES",
    "ActionRecord",
    "AssistantState",
    "Control",
    "ControlError",
    "GatewayDevice",
    "GatewayView",
    "History",
    "HistoryEntry",
    "Snapshot",
    "TimerStatus",
    "TimerView",
    "TurnRecord",
    "UpstreamStatus",
    "VolumeControl",
]
