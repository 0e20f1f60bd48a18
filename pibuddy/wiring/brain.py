"""Which brain services `pibuddy run` starts for a config, and the local brain for `pibuddy say`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pibuddy.brain.router import BrainRouter
from pibuddy.config import BrainMode, Config
from pibuddy.events import EventBus
from pibuddy.supervisor import Service
from pibuddy.wiring.tools import Toolbox

if TYPE_CHECKING:
    from pibuddy.audio.pipeline import AudioPipeline
    from pibuddy.brain.brain import LocalBrain

_LOGGER = logging.getLogger(__name__)


def local_brain(config: Config, toolbox: Toolbox) -> LocalBrain:
    """The text part of the local brain over the toolbox's registry and drivers. Raises BrainUnavailable."""
    from pibuddy.brain.brain import LocalBrain  # noqa: PLC0415 (hassil: not for a gateway-only run)
    from pibuddy.brain.vocabulary import vocabulary_sources  # noqa: PLC0415

    return LocalBrain(toolbox.registry, vocabulary_sources(toolbox.services), language=config.brain.language)


def brain_services(config: Config, bus: EventBus, toolbox: Toolbox, pipeline: AudioPipeline | None
                   ) -> list[Service]:
    """The router (always: it tells who answers wakes), then the local brain when it may ever answer and
    there is a microphone (`pipeline`, shared with the device client and opened by the audio service)."""
    services: list[Service] = [BrainRouter(config, bus)]
    brain = config.brain
    if brain.mode is BrainMode.UPSTREAM and config.upstream.enabled:
        return services
    if pipeline is None:
        _LOGGER.info("audio is off: the local brain only answers `pibuddy say`")
        return services
    from pibuddy.audio.errors import AudioError  # noqa: PLC0415
    from pibuddy.brain.asr import get_asr_engine  # noqa: PLC0415
    from pibuddy.brain.audio import PipelineAudio  # noqa: PLC0415
    from pibuddy.brain.errors import BrainUnavailable  # noqa: PLC0415
    from pibuddy.brain.service import LocalBrainService  # noqa: PLC0415
    from pibuddy.brain.voice import get_voice  # noqa: PLC0415

    try:
        text_brain = local_brain(config, toolbox)
        asr = get_asr_engine(brain, text_brain.language)
        voice = get_voice(brain, text_brain.language)
        audio = PipelineAudio(pipeline)
    except (BrainUnavailable, AudioError) as exc:
        _LOGGER.error("the local brain cannot listen: %s", exc)
        return services
    notice = brain.offline_notice and brain.mode is not BrainMode.LOCAL
    hand_off = config.openclaw.enabled and config.openclaw.operator_enabled
    services.append(LocalBrainService(text_brain, asr, voice, audio, bus, offline_notice=notice, hand_off=hand_off))
    return services
