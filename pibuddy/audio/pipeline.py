"""The one microphone-and-speaker pipeline: wake words, uplink Opus, downlink playback.

Its consumers never share a device: the device client reaches it through `PipelineAudioPort`
(pibuddy/audio/port.py), and the local brain takes its utterances through the same port (`PipelineAudio`,
pibuddy/brain/audio.py); each accepted wake word is published on the bus as `WakeDetected`, where the brain
router decides who answers.

    async with AudioPipeline(config.audio, bus) as audio:
        uplink = audio.uplink_opus(preroll=True)              # the wake word audio first, then live
        async for packet in uplink: send(packet)              # until stop_uplink() or the end of utterance
        audio.set_downlink_format(24000, 60)                  # from the server hello
        audio.play_opus(packet); audio.set_speaking(text)     # tts audio / sentence_start
        await audio.wait_drained(); audio.set_speaking(None)  # tts stop: back to listening when quiet
        audio.stop_playback()                                 # barge-in (abort)

One task on the loop reads microphone frames and runs, per 30 ms frame: the pre-roll ring, the wake word
engine behind its `WakeGate`, and, while an uplink is open, VAD + end of utterance + Opus encoding.
Half duplex: without an echo-cancel source the VAD ignores the microphone while PiBuddy speaks.

The pipeline owns the mute switch (`set_muted`, or a `toggle_mute` command on the bus from the button): while
muted, microphone frames are read and thrown away, so nothing reaches the wake word, the pre-roll or an uplink.
It is published as the sticky `Muted` event and, with a state dir, remembered across restarts (a privacy mute
must not quietly undo itself after a power cut or a watchdog restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

from pibuddy.audio.capture import Microphone
from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.frames import FRAME_SECONDS, PreRoll, loudness_dbfs
from pibuddy.audio.opus import FRAME_MS, UPLINK_RATE, OpusEncoder
from pibuddy.audio.playback import Speaker
from pibuddy.audio.prompts import Prompts
from pibuddy.audio.uplink import UplinkStream
from pibuddy.audio.vad import EndOfUtterance, VoiceDetector, get_vad_engine
from pibuddy.audio.vad.base import VadEngine
from pibuddy.audio.vad.webrtc import WebRtcVad
from pibuddy.audio.wakeword import WakeGate, WakeWordEngine, get_wakeword_engine
from pibuddy.config import AudioConfig, VadBackend, WakeWordBackend
from pibuddy.drops import DropCounter
from pibuddy.events import Command, CommandName, EventBus, Muted, WakeDetected
from pibuddy.statedir import StateDir

_LOGGER = logging.getLogger(__name__)
_CONNECT_MARGIN_SECONDS: Final = 3.0  # pre-roll also keeps what was said while the channel opened
_LOUDNESS_FRAMES: Final = round(1.0 / FRAME_SECONDS)
_WAKE_QUEUE: Final = 8
_MUTE_FILE: Final = "audio.json"

MUTED: Final = "muted"
"""The `end_reason` of an uplink ended (or refused) because the microphone is muted."""

UPLINK_FORMAT: Final = {"format": "opus", "sample_rate": UPLINK_RATE, "channels": 1, "frame_duration": FRAME_MS}
"""The `audio_params` of the device hello."""


def _vad_engine(config: AudioConfig, backend: VadBackend | None) -> VadEngine:
    """The configured VAD; a missing Silero model (setup.sh's --no-deps step skipped) falls back to pymicro-vad."""
    try:
        return get_vad_engine(config.vad, backend)
    except EngineUnavailable as exc:
        if (backend or config.vad.backend) is not VadBackend.SILERO or backend is not None:
            raise
        _LOGGER.warning("%s; using pymicro-vad instead", exc)
        return get_vad_engine(config.vad, VadBackend.MICRO)


class AudioPipeline:
    """Microphone -> wake word / VAD / Opus up, Opus -> jitter buffer -> speaker down.

    Args:
        config: The `audio` config section.
        bus: Gets `WakeDetected`; its `Say` events are spoken. None: no bus.
        microphone, speaker: Injected devices (tests, benchmarks); default: built from config.
        wakeword_backend, vad_backend: Override the configured engines (bleak's `backend=`).
        wake_engine, vad_engine: Injected engines, overriding the backends.
        state_dir: Where the mute switch is remembered across restarts; None: every start is unmuted.
    """

    def __init__(self, config: AudioConfig, bus: EventBus | None = None, *, microphone: Microphone | None = None,
                 speaker: Speaker | None = None, wakeword_backend: WakeWordBackend | None = None,
                 vad_backend: VadBackend | None = None, wake_engine: WakeWordEngine | None = None,
                 vad_engine: VadEngine | None = None, state_dir: StateDir | None = None) -> None:
        self._config = config
        self._bus = bus
        self.microphone = microphone or Microphone(config.input_device, echo_cancel=config.echo_cancel)
        self.speaker = speaker or Speaker(config.output_device, config=config.playback, echo_cancel=config.echo_cancel)
        self._wake_engine = wake_engine or get_wakeword_engine(config.wakeword, wakeword_backend)
        wake = config.wakeword
        self._gate = WakeGate(wake.refractory_seconds, wake.speaking_raise, wake.echo_raise)
        vad = config.vad
        pregate = WebRtcVad(vad.webrtc_mode) if vad.pregate and (vad_backend or vad.backend) != VadBackend.WEBRTC \
            else None
        self._voice = VoiceDetector(vad_engine or _vad_engine(config, vad_backend), threshold=vad.threshold,
                                    pregate=pregate)
        self._vad_loading: asyncio.Task[None] | None = None
        self._eou = EndOfUtterance(vad.speech_seconds, vad.silence_seconds, vad.timeout_seconds)
        self._preroll = PreRoll(config.preroll_seconds + _CONNECT_MARGIN_SECONDS)
        self._preroll_frames = round(config.preroll_seconds / FRAME_SECONDS)
        self.prompts = Prompts(self.speaker, voice=config.prompts.espeak_voice, chime=config.prompts.chime)
        self._uplink: UplinkStream | None = None
        self._sentence: str | None = None
        self._last_index = 0
        self._wake_index: int | None = None
        self._wakes: asyncio.Queue[WakeDetected] | None = None  # made by the first wake_events() reader
        self._wake_drops = DropCounter("wake events (wake_events() reader too slow)", _LOGGER)
        self._tasks: list[asyncio.Task[None]] = []
        self._state_dir = state_dir
        self._muted = self._load_muted()
        if bus is not None:
            bus.publish(Muted(self._muted))  # sticky: the lights show a remembered mute from the first moment

    async def __aenter__(self) -> AudioPipeline:
        await self.speaker.start()
        await self.microphone.start()
        self._tasks.append(asyncio.create_task(self._process(), name="audio-pipeline"))
        if self._bus is not None:
            self._tasks.append(asyncio.create_task(self.prompts.serve(self._bus), name="audio-prompts"))
            self._tasks.append(asyncio.create_task(self._follow_commands(self._bus), name="audio-commands"))
        return self

    async def watch(self) -> None:
        """Return only by raising: when one of the pipeline's own tasks (microphone, speaker, processing,
        prompts, commands) ends, which they never do by design, so the supervisor restarts the audio service
        and logs the cause with its traceback."""
        tasks = [t for t in (*self._tasks, self.microphone.task, self.speaker.task) if t is not None]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        ended = done.pop()
        cause = None if ended.cancelled() else ended.exception()
        raise RuntimeError(f"the audio task {ended.get_name()!r} ended: {cause!r}") from cause

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        if self._vad_loading is not None:
            await asyncio.gather(self._vad_loading, return_exceptions=True)  # a worker thread: not cancellable
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._uplink is not None:
            self._uplink.stop()
        await self.microphone.stop()
        await self.speaker.stop()

    # ---- up ----------------------------------------------------------------------------------------
    async def wake_events(self) -> AsyncIterator[WakeDetected]:
        """Every accepted wake word from now on, for one direct reader (tests and benches time them here);
        PiBuddy's own consumers take them from the bus, which gets every one."""
        if self._wakes is None:
            self._wakes = asyncio.Queue(_WAKE_QUEUE)
        while True:
            yield await self._wakes.get()

    def uplink_opus(self, *, preroll: bool = True, end_on_silence: bool = False,
                    since_wake: bool = False) -> UplinkStream:
        """Start streaming microphone Opus; replaces (stops) any previous uplink.

        Args:
            preroll: Start with up to `preroll_seconds` of audio from before the last wake word (or from
                before now, with no recent wake), as the firmware sends its wake word audio.
            end_on_silence: End the stream at the end of the user's utterance (manual mode, or to stop
                streaming once the user is quiet).
            since_wake: Start with what was said after the last wake word or button press (held in the
                pre-roll ring while the server was tried), through the VAD like live audio: a command said
                before the uplink opened is kept whole, and may even have ended already.
        """
        self.stop_uplink()
        if end_on_silence:
            self.load_vad_soon()
        uplink = UplinkStream(self._encoder(), max_packets=self._config.opus.uplink_queue_frames,
                              end_on_silence=end_on_silence)
        if self._muted:
            _LOGGER.info("the microphone is muted: no audio goes up")
            uplink.finish(MUTED)
            return uplink
        if preroll:
            for pcm in self._take_preroll():
                uplink.feed(pcm)
        self._voice.reset()
        self._eou.reset()
        if since_wake and self._wake_index is not None:
            start, self._wake_index = self._wake_index, None
            for pcm in self._preroll.take(since=start + 1):
                self._feed_uplink(uplink, pcm, speaking=False)  # held frames: PiBuddy was quiet while trying
        if not uplink.finished:
            self._uplink = uplink
        return uplink

    @property
    def vad_loaded(self) -> bool:
        """Whether the VAD's model is loaded (Silero loads at the first uplink that ends on silence)."""
        return self._voice.loaded

    async def load_vad(self) -> None:
        """Load the VAD's model (Silero is built lazily: a default turn, segmented by the server, never runs it)
        in a worker thread, so that the first turn that ends on silence does not stall the frame loop."""
        if not self._voice.loaded:
            await asyncio.to_thread(self._voice.load)

    def load_vad_soon(self) -> None:
        """Start `load_vad()` in the background (an uplink is about to end on silence)."""
        if not self._voice.loaded and (self._vad_loading is None or self._vad_loading.done()):
            self._vad_loading = asyncio.create_task(self.load_vad(), name="audio-vad-load")

    def wake_audio_opus(self) -> list[bytes]:
        """The pre-roll (up to `preroll_seconds` before the last wake word, and what followed) as Opus frames."""
        encoder = self._encoder()
        pcm = b"".join(self._take_preroll())
        frame_bytes = encoder.frame_samples * 2
        return [encoder.encode(pcm[i:i + frame_bytes]) for i in range(0, len(pcm) - frame_bytes + 1, frame_bytes)]

    def _take_preroll(self) -> list[bytes]:
        start = self._wake_index if self._wake_index is not None else self._last_index
        self._wake_index = None
        return self._preroll.take(since=start - self._preroll_frames)

    def _encoder(self) -> OpusEncoder:
        return OpusEncoder(complexity=self._config.opus.complexity, dtx=self._config.opus.dtx)

    def stop_uplink(self) -> None:
        if self._uplink is not None:
            self._uplink.stop()
            self._uplink = None

    # ---- mute --------------------------------------------------------------------------------------
    @property
    def muted(self) -> bool:
        return self._muted

    def set_muted(self, muted: bool, why: str) -> None:
        """Mute or unmute the microphone; muting ends the open uplink and forgets the pre-roll."""
        if muted == self._muted:
            return
        self._muted = muted
        if muted:
            if self._uplink is not None:
                self._uplink.finish(MUTED)
                self._uplink = None
            self._preroll.take(since=self._last_index + 1)  # empties the ring: pre-mute audio never goes up
            self._wake_index = None
        self._wake_engine.reset()  # no half-heard wake word across the gap
        _LOGGER.info("microphone %s (%s)", "muted" if muted else "unmuted", why)
        self._save_muted()
        if self._bus is not None:
            self._bus.publish(Muted(muted))

    async def _follow_commands(self, bus: EventBus) -> None:
        with bus.subscribe() as events:
            async for event in events:
                match event:
                    case Command(name=CommandName.TOGGLE_MUTE):
                        self.set_muted(not self._muted, "button")
                    case Command(name=CommandName.LISTEN_START):  # a wake without a wake word
                        self._wake_index = self._last_index
                    case Command(name=CommandName.MUTE | CommandName.UNMUTE as name):
                        self.set_muted(name == CommandName.MUTE, "control command")

    def _load_muted(self) -> bool:
        if self._state_dir is None:
            return False
        try:
            saved = self._state_dir.read_json(_MUTE_FILE) or {}
        except OSError as exc:
            _LOGGER.warning("cannot read the saved mute switch (%s); starting unmuted", exc)
            return False
        muted = saved.get("muted", False)
        if not isinstance(muted, bool):
            _LOGGER.warning("ignoring %s: 'muted' is %r, not true or false", _MUTE_FILE, muted)
            return False
        if muted:
            _LOGGER.info("the microphone stays muted, as it was before the restart (long-press the button to unmute)")
        return muted

    def _save_muted(self) -> None:
        if self._state_dir is None:
            return
        try:
            self._state_dir.write_json(_MUTE_FILE, {"muted": self._muted})
        except OSError as exc:
            _LOGGER.warning("cannot remember the mute switch (%s): a restart will unmute", exc)

    # ---- down --------------------------------------------------------------------------------------
    def set_downlink_format(self, sample_rate: int, frame_ms: int = FRAME_MS) -> None:
        self.speaker.set_format(sample_rate, frame_ms)

    def play_opus(self, packet: bytes) -> None:
        self.speaker.play_opus(packet)

    def stop_playback(self) -> None:
        """Barge-in: silence within one callback block plus the device latency."""
        self.speaker.interrupt()

    async def wait_drained(self) -> None:
        await self.speaker.wait_drained()

    def set_speaking(self, sentence: str | None) -> None:
        """The sentence now being spoken (tts sentence_start), "" if unknown; None once PiBuddy is quiet."""
        self._sentence = sentence

    def set_volume(self, percent: int) -> None:
        self.speaker.set_volume(percent)

    @property
    def volume(self) -> int:
        return self.speaker.volume

    # ---- the frame loop ----------------------------------------------------------------------------
    async def _process(self) -> None:
        while True:
            frame = await self.microphone.read()
            # read() returns at once while frames are queued: behind real time (a loaded CPU) this loop would
            # never give the event loop back, and nothing else (the server link, the control socket) would run.
            await asyncio.sleep(0)
            self._last_index = frame.index
            if self._muted:
                continue  # read and dropped: the microphone keeps running, nothing hears it
            self._preroll.append(frame)
            speaking = self._sentence is not None or self.speaker.playing
            self._gate.set_speaking(self._sentence if self._sentence is not None else ("" if speaking else None))
            detection = self._wake_engine.process(frame.pcm)
            if detection is not None and self._gate.accept(detection, time.monotonic()):
                self._wake_index = frame.index
                self._publish_wake(WakeDetected(detection.phrase, round(detection.score, 3),
                                                round(loudness_dbfs(self._preroll.recent(_LOUDNESS_FRAMES)), 1)))
            uplink = self._uplink
            if uplink is not None and not uplink.finished:
                self._feed_uplink(uplink, frame.pcm, speaking=speaking)

    def _feed_uplink(self, uplink: UplinkStream, pcm: bytes, *, speaking: bool) -> None:
        """One microphone frame into the open uplink, ending it at the end of the utterance if it segments."""
        uplink.feed(pcm)
        if uplink.end_on_silence:
            half_duplex = speaking and not self.microphone.echo_cancelled
            reason = self._eou.process(FRAME_SECONDS, not half_duplex and self._voice.is_speech(pcm))
            if reason is not None:
                _LOGGER.debug("utterance ended: %s after %.1f s", reason, self._eou.elapsed)
                uplink.finish(reason)

    def _publish_wake(self, event: WakeDetected) -> None:
        _LOGGER.info("wake word %r (score %.2f, %.0f dBFS)", event.wake_word, event.score, event.loudness_dbfs)
        if self._wakes is not None:
            if self._wakes.full():
                self._wakes.get_nowait()  # drop the oldest: a stale wake is worth nothing
                self._wake_drops.count()
            self._wakes.put_nowait(event)
        if self._bus is not None:
            with contextlib.suppress(RuntimeError):
                self._bus.publish(event)
