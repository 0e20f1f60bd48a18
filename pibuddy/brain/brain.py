"""The local brain: text -> intent -> calls of the existing tools -> a reply to speak. No server involved.

    brain = LocalBrain(registry, sources, language="en")
    reply = await brain.handle("turn on the living room light")
    reply.text, reply.outcome, reply.calls      # "Turned on the light", DONE, (ha_control_device ...)

Every outcome has a sentence: an unknown device gets a helpful answer, a sentence outside the household
commands gets "I can't do that offline", a failing tool why in one short sentence (`excuses`). `handle` never
raises for bad input.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pibuddy.brain.actions import Plan, ToolCall, plan
from pibuddy.brain.doubt import Doubt, doubt
from pibuddy.brain.excuses import closest_name, why_failed, why_not
from pibuddy.brain.intents import IntentMatch, IntentMatcher, UnknownName
from pibuddy.brain.responses import Responses, phrase
from pibuddy.brain.vocabulary import Vocabulary, VocabularySource, gather_vocabulary
from pibuddy.tools.registry import ToolRegistry, ToolResult

_LOGGER = logging.getLogger(__name__)
_SAID_SLOTS: Final = frozenset({"name", "area", "floor", "hours", "minutes", "seconds"})  # as the user said them


class Outcome(StrEnum):
    DONE = "done"
    """A command was carried out."""
    ANSWERED = "answered"
    """A question was answered."""
    UNKNOWN_DEVICE = "unknown_device"
    FAILED = "failed"
    """A tool reported an error; the reply says why."""
    CANNOT = "cannot"
    """Not a household command the local brain can handle (weather, jokes ...)."""
    HANDED_OFF = "handed_off"
    """Not a household command, passed on as a `Transcript` to OpenClaw (openclaw.operator_enabled), which
    answers by itself."""
    NOT_HEARD = "not_heard"
    ASKED = "asked"
    """The target was in doubt (a device in another room, one of several): a question instead of an action."""
    NOTHING = "nothing"
    """"Never mind": nothing to do or say."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    call: ToolCall
    result: ToolResult


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    outcome: Outcome
    intent: str | None = None
    calls: tuple[CallRecord, ...] = ()


class LocalBrain:
    """Understands household commands in one language and acts through the tool registry.

    Args:
        registry: The tools (the same registry the LLM's MCP surfaces use).
        sources: Where device names come from (`vocabulary_sources(toolbox.services)`).
        language: The brain's language (en, zh-CN ...).
        clock: Local time now; tests pass their own.
    """

    def __init__(self, registry: ToolRegistry, sources: Sequence[VocabularySource], *, language: str = "en",
                 clock: Callable[[], datetime.datetime] = datetime.datetime.now) -> None:
        self._registry = registry
        self._sources = list(sources)
        self.matcher = IntentMatcher(language)
        self._responses = Responses(self.matcher.responses)
        self._clock = clock

    @property
    def language(self) -> str:
        return self.matcher.language

    async def vocabulary(self) -> Vocabulary:
        return await gather_vocabulary(self._sources)

    def phrase(self, key: str, **values: str) -> str:
        return phrase(self.language, key, **values)

    def calls(self, text: str, vocabulary: Vocabulary, *, known_only: bool = False) -> tuple[ToolCall, ...]:
        """The tool calls `text` would make, without making them (none for questions back and the rest);
        `known_only`: none either when a target is a room-and-kind phrase no known device fits (`Plan.guessed`)."""
        match = self.matcher.match(" ".join(text.split()), vocabulary)
        if not isinstance(match, IntentMatch) or doubt(match, text, vocabulary) is not None:
            return ()
        planned = plan(match, vocabulary)
        if planned is None or (known_only and planned.guessed):
            return ()
        return planned.calls

    async def handle(self, text: str, vocabulary: Vocabulary | None = None) -> Reply:
        """Understand `text`, call the tools it needs, and say what happened."""
        text = " ".join(text.split())
        if not text:
            return Reply(self.phrase("not_heard"), Outcome.NOT_HEARD)
        if vocabulary is None:
            vocabulary = await self.vocabulary()
        match = self.matcher.match(text, vocabulary)
        if isinstance(match, UnknownName):
            _LOGGER.info("local brain: %r names no known device (%r)", text, match.name)
            said = self.excuse(vocabulary) or self._unknown(match.name, vocabulary)
            return Reply(said, Outcome.UNKNOWN_DEVICE, match.intent)
        if match is not None and (question := doubt(match, text, vocabulary)) is not None:
            _LOGGER.info("local brain: %r leaves the target in doubt (%s)", text, question.key)
            return Reply(self._ask(question), Outcome.ASKED, match.intent)
        planned = plan(match, vocabulary) if match is not None else None
        if match is None or planned is None:
            _LOGGER.info("local brain: %r is beyond what it can do offline", text)
            said = self.excuse(vocabulary) or self.phrase("cannot_offline")
            return Reply(said, Outcome.CANNOT, match.intent if match else None)
        return await self._carry_out(match, planned)

    def excuse(self, vocabulary: Vocabulary) -> str | None:
        """Why nothing could be acted on when that is not simply "not understood": a driver that could not list
        its devices (unreachable, token refused) or no driver at all. None when every source answered."""
        return why_not(vocabulary, drivers=len(self._sources), language=self.language)

    def _unknown(self, name: str, vocabulary: Vocabulary) -> str:
        said = self._responses.error("no_entity", entity=name) or self.phrase("unknown_device", name=name)
        closest = closest_name(name, vocabulary)
        if closest is None:
            return said
        ended = said if said.endswith((".", "!", "?", "。", "！", "？")) else f"{said}."  # HA's template has no stop
        return f"{ended} {self.phrase('did_you_mean', name=closest)}"

    def _ask(self, question: Doubt) -> str:
        if question.package_error:
            return self._responses.error(question.key, **question.values) or self.phrase("not_heard")
        return self.phrase(question.key, **question.values)

    async def _carry_out(self, match: IntentMatch, planned: Plan) -> Reply:
        records = []
        for call in planned.calls:
            result = await self._registry.call(call.tool, call.arguments, source="local-brain")
            records.append(CallRecord(call, result))
            if result.is_error:  # the detail is in the registry's log line
                why = why_failed(result, named=match.said("name"), thing=planned.thing, language=self.language)
                return Reply(why, Outcome.FAILED, match.intent, tuple(records))
        tool_text = " ".join(r.result.text for r in records)
        if planned.tool_text:
            return Reply(tool_text, Outcome.ANSWERED, match.intent, tuple(records))
        thing = planned.thing
        thing_name = thing.name if thing else None
        said = self._responses.intent(match.intent, match.response, _template_slots(match, thing_name),
                                      domain=thing.domain if thing else match.value("domain"),
                                      name=thing_name, now=self._clock())
        text = tool_text if said is None else said
        outcome = Outcome.DONE if records else (Outcome.ANSWERED if text else Outcome.NOTHING)
        return Reply(text, outcome, match.intent, tuple(records))


def _template_slots(match: IntentMatch, name: str | None) -> Mapping[str, Any]:
    slots = {key: match.said(key) if key in _SAID_SLOTS else slot.value for key, slot in match.slots.items()}
    if name is not None and "name" in slots:
        slots["name"] = slots["name"] or name
    return slots
