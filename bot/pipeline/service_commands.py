"""Carries out the service commands (:mod:`bot.pipeline.service_buttons`) in the worker's
transaction: a CSAT rating, "tell me when it is fixed", "stop" and opting in again."""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Mapping, Optional

from sqlalchemy.orm import Session

from bot.cases.escalation import CaseSettings, default_settings
from bot.customers.contacts import record_rating
from bot.customers.opt_ins import opt_in, stop
from bot.outreach.known_issues import subscribe
from bot.pipeline.service_buttons import ServiceCommand
from bot.store.models import InboundStatus, Message, utcnow

logger = logging.getLogger(__name__)

# handler(session, job, args, settings) -> bool (whether anything was queued for the customer)
Handler = Callable[[Session, Any, Dict[str, Any], CaseSettings], bool]
HANDLERS: Mapping[str, Handler] = {
    "csat": lambda session, job, args, settings: record_rating(session, job, args, settings.csat_comment_minutes),
    "subscribe": lambda session, job, args, settings: subscribe(session, job, args),
    "stop": lambda session, job, args, settings: stop(session, job, args),
    "opt_in": lambda session, job, args, settings: opt_in(session, job, args),
}


def carry_out(session: Session, job: Any, command: ServiceCommand,
              settings: Optional[CaseSettings] = None) -> bool:
    """Run the command's handler and mark the message processed (in one transaction).

    Unknown or malformed commands (a forged or outdated button) are logged and ignored: the
    message is processed, nothing is sent.
    """
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
    return fn(session, job, command.args, settings or default_settings())
