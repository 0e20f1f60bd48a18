"""The audio section: devices, wake word, VAD, Opus, playback and prompts."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field

from pibuddy.config.base import (
    Fraction,
    Seconds,
    Section,
)


class WakeWordBackend(StrEnum):
    MICRO = "micro"
    POCKETSPHINX = "pocketsphinx"
    VOSK = "vosk"


class MicroWakeWordConfig(Section):
    words: dict[str, Fraction] = Field(default_factory=lambda: {"okay_nabu": 0.85})
    """Model name -> probability cutoff (0-1). Bundled: okay_nabu 0.85, hey_jarvis 0.97, alexa 0.9, hey_mycroft 0.95."""
    models_dir: Path | None = None
    """Extra directory of microWakeWord models (<name>.json + .tflite); empty: only the bundled four."""


class PocketsphinxWakeConfig(Section):
    phrases: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=lambda: {"hello there": 1e-30})
    """English keyphrase -> kws_threshold (1e-50 … 1e-5; smaller fires more easily); words from the en-us dictionary."""


class VoskWakeConfig(Section):
    model_path: Path | None = None
    """Directory of an unpacked vosk model (e.g. vosk-model-small-cn); required with backend vosk."""
    phrases: dict[str, Fraction] = Field(default_factory=lambda: {"你好小智": 0.6})
    """Phrase -> minimum mean word confidence (0-1)."""


class WakeWordConfig(Section):
    backend: WakeWordBackend = WakeWordBackend.MICRO
    """micro (pymicro-wakeword, bundled models), pocketsphinx (custom English phrase) or vosk (any language)."""
    refractory_seconds: Seconds = 2.0
    """Seconds after a detection during which the same engine cannot fire again."""
    speaking_raise: Fraction = 0.5
    """While PiBuddy speaks, raise each threshold by this fraction of its headroom (1 - threshold)."""
    echo_raise: Fraction = 0.9
    """Raise by this fraction instead while the sentence being spoken contains the wake word."""
    micro: MicroWakeWordConfig = MicroWakeWordConfig()
    """Options of the micro backend."""
    pocketsphinx: PocketsphinxWakeConfig = PocketsphinxWakeConfig()
    """Options of the pocketsphinx backend."""
    vosk: VoskWakeConfig = VoskWakeConfig()
    """Options of the vosk backend."""


class VadBackend(StrEnum):
    SILERO = "silero"
    MICRO = "micro"
    WEBRTC = "webrtc"


class SileroVadConfig(Section):
    model_path: Path | None = None
    """silero_vad.onnx to use; empty: the one inside the silero-vad package (installed with --no-deps)."""


class VadConfig(Section):
    backend: VadBackend = VadBackend.SILERO
    """silero (onnxruntime), micro (pymicro-vad, no onnxruntime) or webrtc (cheap, fooled by steady noise)."""
    threshold: Fraction = 0.5
    """Speech probability above which a frame counts as speech."""
    pregate: bool = True
    """Run webrtcvad first and skip the model on frames it calls silence (saves CPU in quiet rooms)."""
    webrtc_mode: Annotated[int, Field(ge=0, le=3)] = 2
    """webrtcvad aggressiveness, 0 (lenient) to 3 (strict), for the pre-gate and the webrtc backend."""
    speech_seconds: Seconds = 0.3
    """Seconds of speech before an utterance counts as started."""
    silence_seconds: Seconds = 0.7
    """Seconds of silence after speech that end the utterance."""
    timeout_seconds: Seconds = 15.0
    """Longest utterance in seconds; streaming stops after this even if the user keeps talking."""
    silero: SileroVadConfig = SileroVadConfig()
    """Options of the silero backend."""


class OpusConfig(Section):
    complexity: Annotated[int, Field(ge=0, le=10)] = 0
    """Uplink encoder complexity 0-10 (the firmware uses 0; 5 costs about twice as much CPU)."""
    dtx: bool = True
    """Discontinuous transmission: tiny packets during silence, as the firmware does."""
    uplink_queue_frames: Annotated[int, Field(ge=1)] = 40
    """Most encoded 60 ms frames waiting to be sent; the oldest are dropped beyond this (2.4 s)."""


class PlaybackConfig(Section):
    jitter_target_ms: Annotated[int, Field(ge=20, le=1000)] = 120
    """Milliseconds of downlink audio buffered before playback starts; grows after underruns."""
    jitter_max_ms: Annotated[int, Field(ge=20, le=2000)] = 400
    """Ceiling in milliseconds for the adaptive jitter target."""
    queue_packets: Annotated[int, Field(ge=1)] = 40
    """Most downlink packets waiting to be played; newly arriving ones are dropped beyond this."""
    volume: Annotated[int, Field(ge=0, le=100)] = 70
    """Speaker volume 0-100 at start (software gain); the set_volume tool changes it."""
    samplerate: Annotated[int, Field(ge=8000, le=192000)] | None = None
    """Force the speaker's sample rate in Hz; empty: the stream's own rate if the device takes it, else its default."""
    idle_close_seconds: Annotated[float, Field(ge=0)] = 2.0
    """Seconds of silence after which the speaker stream is closed (reopened on the next sound)."""


class PromptsConfig(Section):
    chime: bool = True
    """Play a short chime on wake and a low tone on errors."""
    espeak_voice: str = "en"
    """espeak-ng voice for spoken prompts such as the activation code (e.g. en, zh)."""


class AudioConfig(Section):
    enabled: bool = True
    """Use the microphone and speaker. Off for a headless hub (gateway and tools only)."""
    input_device: str | None = None
    """Microphone: a (partial) device name from `pibuddy audio-devices`; empty means the default."""
    output_device: str | None = None
    """Speaker: a (partial) device name; empty means the default."""
    echo_cancel: bool = True
    """Capture from the PulseAudio/PipeWire echo-cancel source when one exists (and no input_device is set),
    and play to its sink (and no output_device is set), so the canceller hears what it must remove."""
    preroll_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0
    """Seconds of audio kept from before the wake word and sent with it, as the firmware does."""
    wakeword: WakeWordConfig = WakeWordConfig()
    """Wake word detection."""
    vad: VadConfig = VadConfig()
    """Voice activity detection and end of utterance."""
    opus: OpusConfig = OpusConfig()
    """Uplink Opus encoding (16 kHz mono 60 ms, fixed by the protocol)."""
    playback: PlaybackConfig = PlaybackConfig()
    """Speaker and jitter buffer."""
    prompts: PromptsConfig = PromptsConfig()
    """Local sounds and spoken prompts."""
