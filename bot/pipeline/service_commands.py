"""Messages the service answers itself, before Rasa: its own buttons and "stop".

The service puts buttons of its own in some messages (a CSAT rating, "tell me when it is
fixed"); their payloads look like Rasa intents but start with ``/webcare_``
(``/webcare_csat{"contact": 12, "score": 4}``) and never reach Rasa. A customer's text
"stop" / "stoppen" (and a few synonyms) opts out of proactive messages and is confirmed.

:func:`parse_command` decides from the message alone (no database), so ordinary messages cost
nothing extra; :func:`carry_out` runs the command's handler in the worker's transaction.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

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


# name -> handler(session, job, args) -> bool (whether anything was queued for the customer)
Handler = Callable[[Session, Any, Dict[str, Any]], bool]
HANDLERS: Dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of service command ``name``."""
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return register


def carry_out(session: Session, job: Any, command: ServiceCommand) -> bool:
    """Run the command's handler and mark the message processed (in one transaction).

    Unknown or malformed commands (a forged or outdated button) are logged and ignored: the
    message is processed, nothing is sent.
    """
    from bot.store.models import InboundStatus, Message, utcnow

    _load_handlers()
    message = session.get(Message, job.message_id)
    if message is None or message.status != InboundStatus.received.value:
        return False
    message.status = InboundStatus.processed.value
    message.processed_at = utcnow()
    message.nlu = {"intent": {"name": f"webcare_{command.name}", "confidence": 1.0}, "service_command": True}
    fn = HANDLERS.get(command.name)
    if fn is None:
        logger.warning("message %s: unknown service command %r ignored", job.message_id, command.name)
        return False
    return fn(session, job, command.args)


def _load_handlers() -> None:
    """Import the modules that register handlers (once)."""
    import bot.customers.contacts  # noqa: F401  csat
    import bot.outreach.known_issues  # noqa: F401  subscribe
    import bot.customers.opt_ins  # noqa: F401  stop, opt_in
