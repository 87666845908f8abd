"""The service's own buttons and "stop": recognised from the message alone, before Rasa.

The service puts buttons of its own in some messages (a CSAT rating, "tell me when it is
fixed"); their payloads look like Rasa intents but start with ``/webcare_``
(``/webcare_csat{"contact": 12, "score": 4}``) and never reach Rasa. A customer's text
"stop" / "stoppen" (and a few synonyms) opts out of proactive messages and is confirmed.

:func:`parse_command` decides from the message alone (no database), so ordinary messages cost
nothing extra; :mod:`bot.pipeline.service_commands` carries the command out.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

PREFIX = "/webcare_"
_PAYLOAD = re.compile(r"^/webcare_(?P<name>[a-z_]{1,40})(?P<args>\{.*\})?$", re.DOTALL)
# Whole-message opt-out words (case, spacing and trailing punctuation ignored).
STOP_WORDS = frozenset({"stop", "stoppen", "stop alles", "afmelden", "uitschrijven", "unsubscribe",
                        "stop all", "opt out", "opt-out"})


@dataclass(frozen=True)
class ServiceCommand:
    """A message for the service itself: ``name`` and its arguments."""

    name: str
    args: Dict[str, Any] = field(default_factory=dict)


def button_payload(name: str, **args: Any) -> str:
    """The payload of a service button, e.g. ``/webcare_csat{"contact":12,"score":4}``."""
    return f"{PREFIX}{name}{json.dumps(args, separators=(',', ':'))}" if args else f"{PREFIX}{name}"


def parse_command(kind: str, text: str) -> Optional[ServiceCommand]:
    """The service command in a customer message, or ``None`` (then Rasa gets it)."""
    stripped = (text or "").strip()
    if stripped.startswith(PREFIX):
        match = _PAYLOAD.match(stripped)
        if match is None:
            return ServiceCommand("invalid", {"payload": stripped[:200]})
        args: Dict[str, Any] = {}
        if match.group("args"):
            try:
                parsed = json.loads(match.group("args"))
            except json.JSONDecodeError:
                return ServiceCommand("invalid", {"payload": stripped[:200]})
            if not isinstance(parsed, dict):
                return ServiceCommand("invalid", {"payload": stripped[:200]})
            args = parsed
        return ServiceCommand(match.group("name"), args)
    if kind == "text" and " ".join(stripped.lower().rstrip(".!").split()) in STOP_WORDS:
        return ServiceCommand("stop")
    return None
