"""Carries out an action's "identify" request: find the customer in the CRM, for an agent to link.

The identification form (``actions/identification.py``) asks the customer for their customer
number, or postcode + house number, and sends ``{"webcare": {"identify": {...}}}``. The
service looks the customer up in the CRM (within its timeout) and records the number found
on the conversation as *claimed*; the customer is told the outcome, never what the CRM holds.
The channel is not linked on the customer's word alone: a postcode and house number are
public and customer numbers can be guessed, and a wrong link would show one customer's
history to another and send their announcements to the wrong chat. An agent confirms the
claim in the case view (:func:`agent_link`), which links the identity
(:func:`bot.customers.identity_linking.link_identity`: one customer, many channels, one history).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Optional

from sqlalchemy.orm import Session

from bot.customers.crm.base import CrmAdapter, CrmError, CrmUnavailable
from bot.customer_texts import customer_text
from bot.pipeline.outbox import enqueue
from bot.store.database import Store
from bot.store.models import Conversation, Purpose
from bot.cases.escalation import link_customer
from bot.accounts import Actor
from bot.errors import InvalidInput, Unavailable

logger = logging.getLogger(__name__)


def record_identification(session: Session, conversation_id: int, message_id: int,
                          channel: str, recipient: str, outcome: str,
                          crm_ref: Optional[str]) -> bool:
    """Record the claimed number (when found) and tell the customer, in one transaction."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return False
    if outcome == "found" and crm_ref:
        conversation.claimed_crm_ref = crm_ref[:64]
    enqueue(session, key=f"identify:{message_id}", channel=channel, recipient=recipient,
            payload={"text": customer_text(f"identify_{outcome}", conversation.language)},
            source="bot", conversation_id=conversation_id, purpose=Purpose.notice)
    return True


async def identify(store: Store, crm: Optional[CrmAdapter], job: Any, request: Dict[str, Any],
                   timeout_seconds: float) -> str:
    """Look up and link the customer named in ``request``; returns found/not_found/unavailable."""
    arguments = {k: str(request[k]) for k in ("customer_number", "postcode", "house_number")
                 if request.get(k) not in (None, "")}
    outcome, crm_ref = "unavailable", None
    if crm is None:
        logger.warning("identify: no CRM configured")
    elif not arguments:
        outcome = "not_found"
    else:
        try:
            found = await asyncio.wait_for(crm.find_customer(**arguments), timeout=timeout_seconds)
            outcome = "found" if found is not None else "not_found"
            crm_ref = found.customer_number if found is not None else None
        except (asyncio.TimeoutError, CrmUnavailable) as exc:
            logger.warning("identify: CRM unavailable: %s", type(exc).__name__)
        except (CrmError, ValueError) as exc:
            logger.warning("identify: lookup refused: %s", exc)
            outcome = "not_found"
    try:
        await store.run(record_identification, job.conversation_id, job.message_id, job.channel,
                        job.recipient, outcome, crm_ref)
    except Exception:  # the customer was told "one moment": never leave them without an answer
        logger.exception("identify: recording the outcome failed")
        outcome = "unavailable"
        await store.run(record_identification, job.conversation_id, job.message_id, job.channel,
                        job.recipient, outcome, None)
    return outcome


async def agent_link(store: Store, crm: Optional[CrmAdapter], case_id: int, user: Actor,
                     identity_id: int, customer_number: Optional[str], timeout_seconds: float) -> Dict[str, Any]:
    """An agent links a case's channel identity to CRM customer ``customer_number``.

    The number must exist in the CRM (400 otherwise); when the CRM cannot be asked, 503 and
    nothing changes.
    """
    if not isinstance(customer_number, str) or not customer_number.strip():
        raise InvalidInput("enter the customer number to link")
    number = customer_number.strip()
    if crm is None:
        raise Unavailable("no CRM is configured")
    try:
        found = await asyncio.wait_for(crm.find_customer(customer_number=number), timeout=timeout_seconds)
    except (asyncio.TimeoutError, CrmUnavailable):
        raise Unavailable("the CRM is unavailable; nothing was linked, try again later") from None
    except (CrmError, ValueError) as exc:
        raise InvalidInput(f"the CRM refused the number: {exc}") from None
    if found is None:
        raise InvalidInput(f"the CRM has no customer with number {number!r}")
    return await store.run(link_customer, case_id, user, identity_id, found.customer_number)
