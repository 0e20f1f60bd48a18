"""The local brain as a supervised service: wake -> utterance -> speech recognition -> intent -> tools -> voice.

A turn runs only for wakes the router gave to the local brain (`ActiveBrain`). A button press
(`listen_start`) is a wake without a wake word, unless the microphone is muted; `abort` (a long press) ends the
turn. The release (`listen_stop`) is ignored: the VAD ends the utterance, so a short tap is enough. Wakes and
presses during a turn are dropped. The device state on the bus follows the turn (listening, thinking,
speaking, idle) like a conversation with the server would. The first local turn after the server went away
starts with the offline notice. In `auto` mode a wake the server did not answer in time (`WakeHandedOver`) is
answered here too, from the audio held since the wake, and always starts with the offline notice. With
`hand_off`, text that is not a household command is published as a `Transcript` for OpenClaw's operator brain,
which speaks its own reply. Recognition runs in a worker thread; the grammar is rebuilt there first when the
devices changed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Final

from pibuddy.audio.errors import AudioError
from pibuddy.brain.actions import readable, understood
from pibuddy.brain.asr.base import AsrEngine
from pibuddy.brain.audio import BrainAudio
from pibuddy.brain.brain import LocalBrain, Outcome, Reply
from pibuddy.brain.doubt import Twin, number_twin, other_numbers, twin
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.brain.voice import Voice
from pibuddy.events import (
    BRAIN_LOCAL,
    BUTTON,
    ActiveBrain,
    Command,
    CommandName,
    DeviceState,
    EventBus,
    Muted,
    Subscription,
    Transcript,
    TurnProgress,
    TurnStage,
    UpstreamLink,
    WakeDetected,
    WakeHandedOver,
    answers_wakes,
)
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
_TURN_TIMEOUT_SECONDS: Final = 30.0  # the VAD ends an utterance by itself long before this


@dataclass(frozen=True, slots=True)
class TurnTimings:
    """Monotonic seconds of one turn's milestones, for the benchmark and the log."""

    speech_ended: float
    recognised: float
    acted: float
    reply_ready: float
    """When the reply's audio was handed to the speaker."""
    cpu_seconds: float
    """Process CPU (all threads) from the end of speech to the reply being ready."""


class LocalBrainService(Service):
    """Args:
    brain: Text -> tools -> reply.
    asr: The speech recogniser.
    voice: The reply voice.
    audio: Wake events, microphone and speaker (opened in start, closed in stop).
    bus: Device state out, `ActiveBrain` in.
    offline_notice: Start the first local turn after the server went away (or when there is none) with the
        offline notice; off when the local brain was chosen in config.
    """

    name = "brain"

    def __init__(self, brain: LocalBrain, asr: AsrEngine, voice: Voice, audio: BrainAudio, bus: EventBus, *,
                 offline_notice: bool = True, hand_off: bool = False) -> None:
        self._brain = brain
        self._asr = asr
        self._voice = voice
        self._audio = audio
        self._bus = bus
        self._offline_notice = offline_notice
        self._hand_off = hand_off
        self._notice_due = offline_notice
        self._turns = 0
        self.last_reply: Reply | None = None
        self.last_timings: TurnTimings | None = None
        self._turn: asyncio.Task[Reply] | None = None
        self._triggers: asyncio.Queue[tuple[str, bool]] = asyncio.Queue(1)
        """(woken by, handed over by the device client)."""
        self._preparing: asyncio.Task[None] | None = None
        """The recogniser's model loading, started when the local brain first becomes the one that answers."""

    async def start(self) -> None:
        """Nothing to open here: the audio service owns the devices (serve() waits for the microphone)."""

    async def serve(self) -> None:
        await self._audio.open()
        self._triggers = asyncio.Queue(1)  # nothing left over from before a restart
        with self._bus.subscribe() as events:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._follow_bus(events), name="brain-bus")
                    group.create_task(self._run_turns(), name="brain-turns")
            except ExceptionGroup as errors:
                raise errors.exceptions[0] from errors  # the supervisor logs this failure, not "1 sub-exception"

    async def stop(self) -> None:
        await self._audio.close()

    def health(self) -> Health:
        loading = "; speech recogniser loading" if self._preparing is not None and not self.recogniser_ready else ""
        return Health(True, f"{self._turns} local turns{loading}")

    @property
    def recogniser_ready(self) -> bool:
        """Whether the recogniser is loaded with its grammar (built once the local brain may answer wakes)."""
        return self._preparing is not None and self._preparing.done()

    async def turn(self, wake_word: str = "", *, handed_over: bool = False) -> Reply:
        """One local conversation turn: listen, understand, act, answer.

        handed_over: the server was tried first: the utterance starts at the wake, and the offline notice says
        why the local brain answers.
        """
        _LOGGER.info("local brain listening (woken by %r%s)", wake_word, ", handed over" if handed_over else "")
        if handed_over:
            self._notice_due = self._offline_notice
        self._progress(TurnStage.WAKE)
        self._bus.set_state(DeviceState.LISTENING, "local brain")
        self._progress(TurnStage.LISTEN_START)
        try:
            async with asyncio.timeout(_TURN_TIMEOUT_SECONDS):
                pcm = await self._audio.utterance(since_wake=handed_over)
                speech_ended, cpu_start = time.monotonic(), time.process_time()
                self._bus.set_state(DeviceState.THINKING, "local brain")
                reply, recognised, acted = await self._understand(pcm)
                self._bus.set_state(DeviceState.SPEAKING, "local brain")
                await self._say(reply)
                self.last_timings = TurnTimings(speech_ended, recognised, acted, time.monotonic(),
                                                time.process_time() - cpu_start)
                await self._audio.wait_drained()
        finally:
            self._bus.set_state(DeviceState.IDLE, "local brain")
            self._progress(TurnStage.END)
        self._turns += 1
        self.last_reply = reply
        return reply

    async def _understand(self, pcm: bytes) -> tuple[Reply, float, float]:
        if not pcm:  # the VAD heard no speech: noise must never reach a recogniser that forces it onto a command
            return Reply(self._brain.phrase("not_heard"), Outcome.NOT_HEARD), time.monotonic(), time.monotonic()
        if self._preparing is not None:  # one grammar build at a time: the turn's would repeat the warm-up's
            await asyncio.wait([self._preparing])
        vocabulary = await self._brain.vocabulary()
        text = await asyncio.to_thread(self._transcribe, vocabulary, pcm)
        recognised = time.monotonic()
        _LOGGER.info("local brain heard %r", text)
        self._progress(TurnStage.HEARD, text)
        text, question = await self._doubt(pcm, text, vocabulary)
        if question is not None:
            return Reply(question, Outcome.ASKED), recognised, time.monotonic()
        reply = await self._brain.handle(text, vocabulary)
        if reply.outcome in (Outcome.CANNOT, Outcome.NOT_HEARD) and self._asr.constrained:
            # A grammar-bound recogniser writes a partial sentence (or none) when nothing in its grammar fitted.
            # Its grammar holds no device names from a driver that could not list them: say that, not "didn't
            # catch that", which would send the user repeating a command that cannot work.
            excuse = self._brain.excuse(vocabulary)
            reply = (Reply(excuse, Outcome.CANNOT, reply.intent) if excuse
                     else Reply(self._brain.phrase("not_heard"), Outcome.NOT_HEARD, reply.intent))
        elif reply.outcome is Outcome.CANNOT and self._hand_off:
            _LOGGER.info("not a household command: passing it on to OpenClaw")
            self._bus.publish(Transcript(text))
            reply = Reply("", Outcome.HANDED_OFF, reply.intent)
        return reply, recognised, time.monotonic()

    async def _doubt(self, pcm: bytes, text: str, vocabulary: Vocabulary) -> tuple[str, str | None]:
        """What to act on, and the question to ask instead when the audio does not clearly say what a grammar-bound
        recogniser wrote: a kind word one sound away ("living room light on" forced onto "lights" switched every
        light in the room), or a number ("sixty five" heard as "sixty nine" set the brightness to 69)."""
        if not self._asr.constrained:
            return text, None
        if (other := twin(text)) is not None:
            text, question = await self._kind_word(pcm, text, other, vocabulary)
            if question is not None:
                return text, question
        numbers = other_numbers(text)
        if numbers and self._brain.calls(text, vocabulary):
            closest = await asyncio.to_thread(self._asr.closest, pcm, numbers)
            for rival in dict.fromkeys(r for r in (closest, number_twin(text)) if r is not None):
                if await self._doubtful(pcm, text, rival, vocabulary, number=True):
                    return text, self._brain.phrase("which_number")
        return text, None

    async def _kind_word(self, pcm: bytes, text: str, other: Twin, vocabulary: Vocabulary) -> tuple[str, str | None]:
        """`text` or its `other` reading, whichever the audio says, when they would act differently: the acoustic
        scores when they clearly prefer `text`, else the plural's s (see asr/hiss.py); the question when neither
        tells. A kind word said in the other number than the brain understands is a question too ("the living room
        light" for "dim the living room lights to 10 percent" would have dimmed one light)."""
        # A rival naming a group the household does not have ("the kitchen fans" where the kitchen's one fan is a
        # switch) is not something that could have been meant.
        mine, theirs = self._brain.calls(text, vocabulary), self._brain.calls(other.text, vocabulary, known_only=True)
        if mine == theirs:
            return text, None
        both = bool(mine) and bool(theirs)
        if both and await asyncio.to_thread(self._asr.sure_of, pcm, text, other.text):
            return text, None
        question = self._brain.phrase("one_or_all", one=other.one, every=other.every)
        plural, singular = (text, other.text) if other.every in text.split() else (other.text, text)
        many = await asyncio.to_thread(self._asr.plural_said, pcm, plural, other.every)
        if many is None:
            return text, question if both else None
        said = plural if many else singular
        if said == text:
            return text, None
        if not theirs:
            return text, question
        _LOGGER.info("local brain takes %r: the %s was said %s its s", said, other.every, "with" if many else "without")
        return said, None

    async def _doubtful(self, pcm: bytes, text: str, other: str, vocabulary: Vocabulary, *,
                        number: bool = False) -> bool:
        """Whether `text` and `other` (a reading one sound away) would act differently and the audio does not
        clearly say which."""
        mine, theirs = self._brain.calls(text, vocabulary), self._brain.calls(other, vocabulary, known_only=True)
        if not mine or not theirs or mine == theirs:
            return False
        return not await asyncio.to_thread(functools.partial(self._asr.sure_of, pcm, text, other, number=number))

    def _transcribe(self, vocabulary: Vocabulary, pcm: bytes) -> str:
        self._asr.set_vocabulary(vocabulary)
        matcher = self._brain.matcher
        return self._asr.transcribe(pcm, functools.partial(understood, matcher, vocabulary=vocabulary),
                                    readable=functools.partial(readable, matcher, vocabulary=vocabulary))

    async def _say(self, reply: Reply) -> None:
        text = reply.text
        if self._notice_due:
            self._notice_due = False
            text = f"{self._brain.phrase('offline')} {text}".strip()
        if not text:
            return
        _LOGGER.info("buddy (local brain): %s", text)
        self._progress(TurnStage.REPLY, text)
        try:
            samples, rate = await self._voice.synthesize(text)
        except AudioError as exc:
            _LOGGER.warning("cannot speak the reply %r: %s", text, exc)
            return
        self._audio.play(samples, rate)
        self._progress(TurnStage.FIRST_AUDIO)

    async def _run_turns(self) -> None:
        """One turn at a time; an aborted turn is logged, a failed one fails the service."""
        while True:
            woken_by, handed_over = await self._triggers.get()
            turn = self._turn = asyncio.create_task(self.turn(woken_by, handed_over=handed_over), name="brain-turn")
            try:
                await asyncio.wait([turn])
            finally:
                self._turn = None
                turn.cancel()  # a no-op once it is done; ends it when serve() is cancelled
            if turn.cancelled():
                _LOGGER.info("local brain turn aborted")
            else:
                turn.result()

    async def _follow_bus(self, events: Subscription) -> None:
        async for event in events:
            match event:
                case ActiveBrain(brain=brain) if brain != BRAIN_LOCAL:
                    self._notice_due = self._offline_notice  # re-armed whenever the server takes over again
                case ActiveBrain():  # ours now: the recogniser loads before the first wake needs it
                    self._prepare()
                case UpstreamLink(connected=False):  # the server's wakes may be handed over from now on
                    self._prepare()
                case WakeDetected(wake_word=word):  # every accepted wake: the router says who answers
                    self._trigger(word)
                case WakeHandedOver(woken_by=word):  # the server's wake, which it did not answer in time
                    self._prepare()
                    self._trigger(word, handed_over=True)
                case Command(name=CommandName.LISTEN_START):
                    self._button_pressed()
                case Command(name=CommandName.ABORT) if self._turn is not None:
                    self._turn.cancel()

    def _prepare(self) -> None:
        """Load the VAD's model and the recogniser and build its grammar for the devices in worker threads,
        once, ahead of the first local turn (loading and building took 1-8 s on a loaded machine: more than a
        turn may take)."""
        if self._preparing is None:
            self._preparing = asyncio.create_task(self._warm_up(), name="brain-asr-load")

    async def _warm_up(self) -> None:
        await self._audio.prepare()  # the Silero VAD, built lazily: a default appliance may never need it
        await asyncio.to_thread(self._asr.prepare)
        vocabulary = await self._brain.vocabulary()
        await asyncio.to_thread(self._asr.set_vocabulary, vocabulary)

    def _progress(self, stage: TurnStage, text: str = "") -> None:
        self._bus.publish(TurnProgress(stage, BRAIN_LOCAL, text))

    def _button_pressed(self) -> None:
        muted = self._bus.latest(Muted)
        if isinstance(muted, Muted) and muted.muted and answers_wakes(self._bus, BRAIN_LOCAL):
            _LOGGER.info("button pressed while the microphone is muted: no turn")
            return
        self._trigger(BUTTON)

    def _trigger(self, woken_by: str, *, handed_over: bool = False) -> None:
        """Start a turn for a wake word or the button, if the local brain answers (or was handed the wake) and
        is not busy."""
        if not handed_over and not answers_wakes(self._bus, BRAIN_LOCAL):
            return
        if self._turn is not None or self._triggers.full():
            _LOGGER.log(logging.INFO if handed_over else logging.DEBUG, "local brain busy: ignoring %s", woken_by)
            return
        self._triggers.put_nowait((woken_by, handed_over))
