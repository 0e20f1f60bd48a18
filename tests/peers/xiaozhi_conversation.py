"""One xiaozhi session as xiaozhi-server runs it, independent of the transport (docs/protocol.md §5.1, §7).

The WebSocket and MQTT+UDP sides parse their framing, then feed JSON messages and Opus frames
in here; replies leave through a ``Channel`` that each side implements.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol

import opuslib_next

from .opus_audio import OpusFrameDecoder, encode_tone
from .xiaozhi_mcp import DeviceMcpClient, McpCallError
from .xiaozhi_record import ServerRecord, UplinkFrame

_LOG = logging.getLogger("tests.peers.xiaozhi")
_PREBUFFER_FRAMES: Final = 5  # xiaozhi-server sends the first 5 frames at once
_TAIL_FRAMES: Final = _PREBUFFER_FRAMES + 2  # ... and waits this many frame times before "tts stop"
_DEFAULT_AUDIO_PARAMS: Final = {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}


def hello_fields(hello: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(audio_params, features)`` of a device hello; the server echoes the audio params back."""
    audio_params = hello.get("audio_params")
    features = hello.get("features")
    return (
        audio_params if isinstance(audio_params, dict) else dict(_DEFAULT_AUDIO_PARAMS),
        features if isinstance(features, dict) else {},
    )


@dataclass(eq=False)
class ConversationSettings:
    """Behaviour knobs; mutable so a test may change them between turns."""

    stt_text: str = "今天天气怎么样"
    reply_text: str = "今天是晴天。"
    #: The answer to a wake word's `listen detect`; None: say nothing (then only the device opens the mic).
    greeting_text: str | None = "你好呀，我在。"
    wake_words: tuple[str, ...] = ("你好小智",)
    emotion: str = "happy"
    tts_frames: int = 8
    #: Seconds between paced TTS frames (60 ms on the real server).
    tts_frame_interval: float = 0.060
    #: In auto/realtime mode, reply after this many uplink frames; None waits for ``listen stop``.
    utterance_frames: int | None = 10
    #: Close the session after this many idle seconds (None: never).
    idle_goodbye_seconds: float | None = None
    mcp: bool = True
    #: False: the hello is heard (``hello_received``) but never answered, as by a server that is up but stuck.
    answer_hello: bool = True
    #: Pause between the initialize result and tools/list (1 s on the real server).
    mcp_list_delay: float = 0.05
    mcp_timeout: float = 5.0
    #: Close the connection after this many TTS frames of a sentence (None: finish normally).
    close_after_tts_frames: int | None = None
    # --- dialects of other servers (README "Tested with") ---
    #: The server hello carries `version` (xiaozhi-server: 1 on WebSocket, the gateway 3 on MQTT); platforms
    #: such as Qiniu's Xrobot leave it out.
    hello_version: bool = True
    #: The server hello carries `session_id`; without it no server message carries one either.
    hello_session_id: bool = True
    #: Sentences per reply, each a `tts sentence_start` followed by its audio, never a `sentence_end`
    #: (xiaozhi-server sends none either; with 2+ a client must not wait for one between sentences).
    sentences: int = 1


def server_hello(settings: ConversationSettings, session_id: str, *, version: int, **fields: Any) -> dict[str, Any]:
    """The server's hello in the configured dialect: ``version`` and ``session_id`` only when it sends them."""
    hello: dict[str, Any] = {"type": "hello"}
    if settings.hello_version:
        hello["version"] = version
    if settings.hello_session_id:
        hello["session_id"] = session_id
    return hello | fields


class Channel(Protocol):
    """The transport-specific way out of a session."""

    async def send_json(self, message: dict[str, Any]) -> None: ...
    async def send_text(self, text: str) -> None: ...
    async def send_audio(self, opus: bytes, sentence_seq: int) -> None: ...
    async def send_raw_binary(self, data: bytes) -> None: ...
    async def close(self) -> None: ...


class Phase(Enum):
    IDLE = "idle"
    LISTENING = "listening"
    SPEAKING = "speaking"
    CLOSED = "closed"


@functools.lru_cache(maxsize=4)
def _tone(frames: int) -> tuple[bytes, ...]:
    return tuple(encode_tone(frames))


class Conversation:
    """The server half of one session: listen/abort/mcp handling, STT+TTS replies, idle goodbye."""

    def __init__(
        self,
        *,
        session_id: str,
        channel: Channel,
        record: ServerRecord,
        settings: ConversationSettings,
        features: dict[str, Any],
        vision_url: str,
    ) -> None:
        self.session_id = session_id
        self.channel = channel
        self._record = record
        self._settings = settings
        self._features = features
        self._decoder = OpusFrameDecoder()
        self._phase = Phase.IDLE
        self._mode = "auto"
        self._utterance = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._reply: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self.mcp = DeviceMcpClient(
            self._send_mcp,
            record,
            vision_url=vision_url,
            vision_token="test-vision-token",
            list_delay=settings.mcp_list_delay,
            timeout=settings.mcp_timeout,
        )
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "listen": self._on_listen,
            "abort": self._on_abort,
            "mcp": self._on_mcp,
        }

    def start(self) -> None:
        """Begin MCP discovery (when the device offered it) and the idle timer."""
        if self._settings.mcp and self._features.get("mcp") is True:
            self._spawn(self._discover())
        self._touch()

    async def stop(self) -> None:
        """Cancel everything this session runs; the transport closes its own link."""
        self._phase = Phase.CLOSED
        if self._idle is not None:
            self._idle.cancel()
        self.mcp.cancel()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """End the session from the server side (WS close, or goodbye on MQTT)."""
        await self.stop()
        await self.channel.close()

    async def send_json(self, message: dict[str, Any]) -> None:
        self._record.sent_messages.append(message)
        await self.channel.send_json(message)

    async def on_message(self, message: dict[str, Any]) -> None:
        """Handle one non-hello JSON message from the device."""
        self._touch()
        handler = self._handlers.get(message["type"])
        if handler is None:
            _LOG.info("xiaozhi test server ignores %r message", message["type"])
            return
        await handler(message)

    def on_audio(self, opus: bytes, timestamp: int) -> None:
        """Decode and record one uplink frame; enough of them in auto mode end the utterance."""
        self._touch()
        if not opus:
            self._record.note_bad_input("empty uplink audio frame")
            return
        try:
            pcm = self._decoder.decode(opus)
        except opuslib_next.OpusError as err:
            self._record.note_bad_input(f"uplink frame of {len(opus)} bytes does not decode: {err}")
            return
        self._record.uplink_frames.append(UplinkFrame(opus, timestamp, pcm))
        self._record.uplink_audio.set()
        if self._phase is not Phase.LISTENING:
            return
        self._utterance += 1
        wanted = self._settings.utterance_frames
        if self._mode != "manual" and wanted is not None and self._utterance >= wanted:
            self._start_reply(self._settings.stt_text, self._settings.reply_text)

    def end_utterance(self) -> None:
        """What the server's VAD does when the user stops talking: recognise and reply now."""
        self._start_reply(self._settings.stt_text, self._settings.reply_text)

    # --- message handlers -------------------------------------------------------------------

    async def _on_listen(self, message: dict[str, Any]) -> None:
        state = message.get("state")
        if state == "start":
            self._mode = message.get("mode", "auto")
            self._phase = Phase.LISTENING
            self._utterance = 0
            self._record.listen_start.set()
        elif state == "stop":
            self._record.listen_stop.set()
            # Like a real ASR, nothing heard means nothing to answer.
            if self._utterance > 0:
                self._start_reply(self._settings.stt_text, self._settings.reply_text)
        elif state == "detect":
            self._record.listen_detect.set()
            text = message.get("text")
            if not isinstance(text, str):
                self._record.note_bad_input(f"listen detect without text: {message!r:.200}")
            elif text in self._settings.wake_words:
                if self._settings.greeting_text is not None:
                    self._start_reply(text, self._settings.greeting_text)
            else:
                self._start_reply(text, self._settings.reply_text)
        else:
            self._record.note_bad_input(f"listen with unknown state {state!r}")

    async def _on_abort(self, message: dict[str, Any]) -> None:
        self._record.abort_received.set()
        if self._reply is not None:
            self._reply.cancel()
            await asyncio.gather(self._reply, return_exceptions=True)
        await self._finish_tts()

    async def _on_mcp(self, message: dict[str, Any]) -> None:
        self.mcp.on_payload(message.get("payload"))

    # --- replies ------------------------------------------------------------------------------

    def _start_reply(self, stt_text: str, answer: str) -> None:
        if self._reply is not None and not self._reply.done():
            return
        self._phase = Phase.SPEAKING
        self._reply = self._spawn(self._speak(stt_text, answer))

    def stamped(self, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` with this session's id, in the dialects that gave the device one."""
        return message | {"session_id": self.session_id} if self._settings.hello_session_id else message

    async def _speak(self, stt_text: str, answer: str) -> None:
        await self.send_json(self.stamped({"type": "stt", "text": stt_text}))
        await self.send_json(self.stamped({"type": "tts", "state": "start"}))
        self._record.tts_started.set()
        await self.send_json(self.stamped({"type": "llm", "text": "😊", "emotion": self._settings.emotion}))
        for sentence in range(self._settings.sentences):
            text = answer if sentence == 0 else f"{answer} ({sentence + 1})"
            await self.send_json(self.stamped({"type": "tts", "state": "sentence_start", "text": text}))
            if not await self._stream_tone():
                return
        # xiaozhi-server does not send "sentence_end"; it waits for the device's buffer to play out.
        await asyncio.sleep(_TAIL_FRAMES * self._settings.tts_frame_interval)
        await self._finish_tts()

    async def _stream_tone(self) -> bool:
        """Pace the tone frames; False when told to close mid-sentence."""
        loop = asyncio.get_running_loop()
        interval = self._settings.tts_frame_interval
        close_after = self._settings.close_after_tts_frames
        start = loop.time()
        for index, frame in enumerate(_tone(self._settings.tts_frames)):
            delay = start + max(0, index - _PREBUFFER_FRAMES + 1) * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.channel.send_audio(frame, index + 1)
            if close_after is not None and index + 1 >= close_after:
                _LOG.info("xiaozhi test server closes mid-sentence after %d frames", index + 1)
                await self.close()
                return False
        return True

    async def _finish_tts(self) -> None:
        await self.send_json(self.stamped({"type": "tts", "state": "stop"}))
        self._phase = Phase.IDLE if self._mode == "manual" else Phase.LISTENING
        self._utterance = 0
        self._record.tts_done.set()
        self._touch()

    # --- background work ------------------------------------------------------------------------

    async def _discover(self) -> None:
        try:
            await self.mcp.discover()
        except (McpCallError, TimeoutError, ConnectionError) as err:
            self._record.note_bad_input(f"mcp discovery failed: {type(err).__name__}: {err}")

    async def _send_mcp(self, payload: dict[str, Any]) -> None:
        await self.send_json({"type": "mcp", "payload": payload})

    def _touch(self) -> None:
        """Restart the idle timer after any activity."""
        if self._idle is not None:
            self._idle.cancel()
        seconds = self._settings.idle_goodbye_seconds
        if seconds is not None and self._phase is not Phase.CLOSED:
            self._idle = asyncio.get_running_loop().call_later(seconds, self._on_idle)

    def _on_idle(self) -> None:
        if self._phase is Phase.SPEAKING:
            self._touch()
            return
        _LOG.info("xiaozhi test server closes idle session %s", self.session_id)
        self._spawn(self.close())

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Forget the task; a failure (e.g. the device vanished mid-send) becomes one log line."""
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            _LOG.warning("xiaozhi test server session %s: %s: %s", self.session_id, type(err).__name__, err)


class SessionHub:
    """Creates sessions and remembers the latest one, which the test-facing methods act on."""

    def __init__(self, record: ServerRecord, settings: ConversationSettings, vision_url: str) -> None:
        self._record = record
        self.settings = settings
        self._vision_url = vision_url
        self.active: Conversation | None = None

    def open(self, *, session_id: str, channel: Channel, features: dict[str, Any]) -> Conversation:
        conversation = Conversation(
            session_id=session_id,
            channel=channel,
            record=self._record,
            settings=self.settings,
            features=features,
            vision_url=self._vision_url,
        )
        self.active = conversation
        return conversation

    async def end(self, conversation: Conversation | None) -> None:
        if conversation is None:
            return
        await conversation.stop()
        if self.active is conversation:
            self.active = None

    def require_active(self) -> Conversation:
        if self.active is None:
            raise RuntimeError("no xiaozhi session is open on the test server")
        return self.active
