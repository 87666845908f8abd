"""The opt-in register for proactive messages: none without opt-in; "stop" opts out.

A proactive message is one the customer did not just ask for: a fix announcement to someone
who contacted us about the problem, a reminder. Subscribing to a known issue ("tell me when
it's fixed") is consent for that one announcement. "stop" / "stoppen" opts out of everything
proactive (subscriptions included) and is confirmed.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.customer_texts import customer_text
from bot.pipeline.outbox import enqueue
from bot.pipeline.service_buttons import button_payload
from bot.store.models import Conversation, KnownIssueSubscription, OptIn, Purpose, utcnow
from bot.outreach.broadcasts import skip_customer

logger = logging.getLogger(__name__)


def may_contact(session: Session, customer_id: int) -> bool:
    """Whether the customer opted in to proactive messages (no row: no)."""
    return bool(session.execute(
        select(OptIn.proactive).where(OptIn.customer_id == customer_id)).scalar_one_or_none())


def opted_out(session: Session, customer_id: int) -> bool:
    """Whether the customer said "stop" (and did not opt in again since)."""
    row = session.execute(select(OptIn).where(OptIn.customer_id == customer_id)).scalar_one_or_none()
    return row is not None and not row.proactive and row.source == "stop"


def set_opt_in(session: Session, customer_id: int, proactive: bool, source: str) -> OptIn:
    """Record the customer's choice (one row per customer)."""
    row = session.execute(select(OptIn).where(OptIn.customer_id == customer_id)).scalar_one_or_none()
    if row is None:
        row = OptIn(customer_id=customer_id, proactive=proactive, source=source, changed_at=utcnow())
        session.add(row)
    else:
        row.proactive, row.source, row.changed_at = proactive, source, utcnow()
    return row


def stop(session: Session, job: Any, args: Dict[str, Any]) -> bool:
    """Opt out of all proactive messages (and subscriptions), and confirm."""
    conversation = session.get(Conversation, job.conversation_id)

    set_opt_in(session, conversation.customer_id, False, "stop")
    session.execute(delete(KnownIssueSubscription)
                    .where(KnownIssueSubscription.customer_id == conversation.customer_id)
                    .execution_options(synchronize_session=False))
    skip_customer(session, conversation.customer_id)  # announcements not yet queued: not sent
    enqueue(session, key=f"stop:{job.message_id}", channel=job.channel, recipient=job.recipient,
            payload={"text": customer_text("opted_out", conversation.language or job.language_hint)},
            source="bot", conversation_id=conversation.id, purpose=Purpose.notice)
    logger.info("customer %s opted out of proactive messages", conversation.customer_id)
    return True


def opt_in_offer(language: Optional[str]) -> Dict[str, Any]:
    """The question "may we message you about outages and fixes from now on?" with yes/no buttons."""
    return {"text": customer_text("opt_in_offer", language),
            "buttons": [{"title": customer_text("opt_in_yes", language), "payload": button_payload("opt_in", answer="yes")},
                        {"title": customer_text("opt_in_no", language), "payload": button_payload("opt_in", answer="no")}]}


def opt_in(session: Session, job: Any, args: Dict[str, Any]) -> bool:
    """The customer's answer to :func:`opt_in_offer`: "yes" opts in, "no" records no; both confirmed."""
    answer = args.get("answer")
    if answer not in ("yes", "no"):
        logger.warning("opt_in: malformed answer %r", args)
        return False
    conversation = session.get(Conversation, job.conversation_id)
    yes = answer == "yes"
    set_opt_in(session, conversation.customer_id, yes, "button")
    enqueue(session, key=f"opt_in:{job.message_id}", channel=job.channel, recipient=job.recipient,
            payload={"text": customer_text("opted_in" if yes else "opt_in_declined",
                                           conversation.language or job.language_hint)},
            source="bot", conversation_id=conversation.id, purpose=Purpose.notice)
    logger.info("customer %s %s proactive messages", conversation.customer_id, "opted in to" if yes else "declined")
    return True
