"""Replies: home-assistant-intents' response templates (Jinja2, rendered in a sandbox) and PiBuddy's own phrases.

The templates expect Home Assistant's context (`slots`, `state`, `query`, `state_attr`); PiBuddy gives the
slots as the user said them, a `state` with the device's domain and name, and an empty query. A template
that needs more than that, fails to render, or would say a value PiBuddy does not have ("Turned off None" when
no device type was named) yields None and the caller speaks the tool's own text.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any, Final

from jinja2 import ChainableUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

_LOGGER = logging.getLogger(__name__)

# PiBuddy's own sentences, for what the package has no template for.
_PHRASES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "offline": "I'm offline, but I can still control the house.",
        "cannot_offline": "Sorry, I can't do that offline.",
        "not_heard": "Sorry, I didn't catch that.",
        "which": "Sorry, which {what}?",
        "which_in_area": "Sorry, which {what} in the {area}?",
        "one_or_all": "Sorry, one {one} or all the {every}?",
        "which_number": "Sorry, what number?",
        "unknown_device": "Sorry, I don't know a device called {name}.",
        "failed": "Sorry, that did not work. {reason}",
        "did_you_mean": "Did you mean {name}?",
        "unreachable": "Sorry, I can't reach {what} right now.",
        "refused": "Sorry, {what} refused my access token.",
        "no_response": "Sorry, {what} did not respond.",
        "not_set_up": "Sorry, {what} is not set up.",
        "no_driver": "Sorry, I have no devices set up to do that.",
        "homeassistant": "Home Assistant",
        "mi_cloud": "the Mi cloud",
        "bluetooth": "Bluetooth",
        "that_device": "that device",
    },
    "zh": {
        "offline": "我现在离线了，不过还能控制家里的设备。",
        "cannot_offline": "抱歉，离线时我做不到这个。",
        "not_heard": "抱歉，我没听清。",
        "which": "抱歉，哪个{what}？",
        "which_in_area": "抱歉，{area}的哪个{what}？",
        "one_or_all": "抱歉，是一个{one}还是所有{every}？",
        "which_number": "抱歉，是多少？",
        "unknown_device": "抱歉，我不知道叫{name}的设备。",
        "failed": "抱歉，没有成功。{reason}",
        "did_you_mean": "你是说{name}吗？",
        "unreachable": "抱歉，现在连不上{what}。",
        "refused": "抱歉，{what}拒绝了我的访问令牌。",
        "no_response": "抱歉，{what}没有回应。",
        "not_set_up": "抱歉，{what}还没有设置好。",
        "no_driver": "抱歉，还没有设置可以做这件事的设备。",
        "homeassistant": "Home Assistant",
        "mi_cloud": "米家云",
        "bluetooth": "蓝牙",
        "that_device": "那个设备",
    },
}


class _Unfilled(TemplateError):
    """A template printed a value the context does not hold."""


def _filled(value: Any) -> Any:
    """Every value a template prints (Jinja's `finalize`): a missing one is not spoken as "None" or left out."""
    if value is None or isinstance(value, Undefined):
        raise _Unfilled("a printed value is missing")
    return value


def phrase(language: str, key: str, **values: str) -> str:
    """One of PiBuddy's own sentences in `language` (English when there is no translation)."""
    table = _PHRASES.get(language.split("-", maxsplit=1)[0].casefold(), _PHRASES["en"])
    return table[key].format(**values).strip()


class Responses:
    """Renders one language's templates.

    Args:
        responses: The `responses` block of the package's language file (`intents` and `errors`).
    """

    def __init__(self, responses: Mapping[str, Any]) -> None:
        self._intents: Mapping[str, Mapping[str, str]] = responses.get("intents", {})
        self._errors: Mapping[str, str] = responses.get("errors", {})
        self._env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, finalize=_filled)

    def intent(self, intent: str, key: str, slots: Mapping[str, Any], *, domain: str | None = None,
               name: str | None = None, now: datetime.datetime | None = None) -> str | None:
        """The reply for a handled intent, or None when the package has none (or it does not render)."""
        templates = self._intents.get(intent, {})
        template = templates.get(key) or templates.get("default")
        if template is None:
            return None
        now = now or datetime.datetime.now()
        context = {
            "slots": {"time": now.time(), "date": now.date(), **slots},
            "state": {"domain": domain, "name": name, "entity_id": None, "state": None, "state_with_unit": None},
            "query": {"matched": [], "unmatched": []},
            "state_attr": lambda *_: None,
        }
        return self._render(template, context)

    def error(self, key: str, **values: Any) -> str | None:
        template = self._errors.get(key)
        return self._render(template, values) if template is not None else None

    def _render(self, template: str, context: Mapping[str, Any]) -> str | None:
        try:
            text = self._env.from_string(template).render(**context)
        except (TemplateError, TypeError, ValueError, LookupError, AttributeError, ArithmeticError) as exc:
            # The templates are written for Home Assistant's context; any slip means: use the tool's text.
            _LOGGER.debug("response template did not render (%s): %r", exc, template[:80])
            return None
        return " ".join(text.split())
