"""Identity linking: one customer, many channels, one history.

An agent links a channel identity (a Telegram chat, a web chat session, ...) to a CRM
customer number. All identities linked to the same number end up under one webcare
:class:`Customer`, together with their conversations and cases, so the case view shows one
history across channels. Rows are moved, never deleted: a customer left without identities
is kept and flagged ``merged_into:<id>``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.store import audit
from bot.errors import InvalidInput, NotFound
from bot.store.models import Case, ChannelIdentity, Conversation, Customer, Message

logger = logging.getLogger(__name__)

MERGED_FLAG = "merged_into:"


@dataclass(frozen=True)
class LinkResult:
    """What :func:`link_identity` did.

    action: ``unchanged`` (already linked), ``linked`` (the identity's customer got the
    number), ``moved`` (the identity joined the customer that already had the number) or
    ``split`` (the identity left a customer linked to another number for a new one).
    """

    action: str
    identity_id: int
    customer_id: int  # the customer the identity belongs to now
    previous_customer_id: int
    crm_ref: str
    merged_customer_id: Optional[int] = None  # the emptied customer, flagged merged_into
    moved_conversations: int = 0
    moved_cases: int = 0

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"


def is_merged(customer: Customer) -> bool:
    """Was this customer merged into another one (kept only for history)?"""
    return any(str(flag).startswith(MERGED_FLAG) for flag in customer.flags or [])


def _move(session: Session, identity: ChannelIdentity, target_id: int) -> tuple:
    """Move the identity, its conversations and their cases to ``target_id``."""
    conversation_ids = session.execute(
        select(Conversation.id).where(Conversation.identity_id == identity.id)).scalars().all()
    identity.customer_id = target_id
    moved_cases = 0
    if conversation_ids:
        session.execute(update(Conversation).where(Conversation.id.in_(conversation_ids))
                        .values(customer_id=target_id).execution_options(synchronize_session="fetch"))
        moved_cases = session.execute(
            update(Case).where(Case.conversation_id.in_(conversation_ids), Case.customer_id != target_id)
            .values(customer_id=target_id).execution_options(synchronize_session="fetch")).rowcount
    session.flush()
    return len(conversation_ids), moved_cases


def link_identity(session: Session, identity_id: int, crm_ref: str,
                  actor_id: Optional[int] = None) -> LinkResult:
    """Link channel identity ``identity_id`` to CRM customer number ``crm_ref`` (idempotent).

    Runs in the caller's transaction. Raises :class:`NotFound` for an unknown identity and
    :class:`InvalidInput` for an empty or too long number.
    """
    ref = (crm_ref or "").strip()
    if not ref or len(ref) > 64:
        raise InvalidInput("a CRM customer number must have 1 to 64 characters")
    identity = session.get(ChannelIdentity, identity_id)
    if identity is None:
        raise NotFound(f"no channel identity {identity_id}")
    current = session.execute(
        select(Customer).where(Customer.id == identity.customer_id).with_for_update()).scalar_one()
    previous_ref = current.crm_ref
    if current.crm_ref == ref:
        return LinkResult("unchanged", identity.id, current.id, current.id, ref)

    target = session.execute(
        select(Customer).where(Customer.crm_ref == ref, Customer.id != current.id)
        .order_by(Customer.id).with_for_update()).scalars().first()
    merged_id: Optional[int] = None
    moved = (0, 0)
    if target is not None:
        action = "moved"
        moved = _move(session, identity, target.id)
        target.display_name = target.display_name or current.display_name
        target.language = target.language or current.language
        remaining = session.execute(select(func.count()).select_from(ChannelIdentity)
                                    .where(ChannelIdentity.customer_id == current.id)).scalar_one()
        if remaining == 0:
            current.flags = [*(current.flags or []), f"{MERGED_FLAG}{target.id}"]
            current.crm_ref = None  # the number now lives on the target only
            merged_id = current.id
        new_customer_id = target.id
    else:
        others = session.execute(
            select(func.count()).select_from(ChannelIdentity)
            .where(ChannelIdentity.customer_id == current.id, ChannelIdentity.id != identity.id)).scalar_one()
        if current.crm_ref is not None and others > 0:
            action = "split"  # the other identities stay with the other number
            customer = Customer(display_name=identity.display_name or current.display_name,
                                language=current.language, flags=[], crm_ref=ref)
            session.add(customer)
            session.flush()
            moved = _move(session, identity, customer.id)
            new_customer_id = customer.id
        else:
            action = "linked"
            current.crm_ref = ref
            new_customer_id = current.id
    session.flush()
    result = LinkResult(action, identity.id, new_customer_id, current.id, ref, merged_id, *moved)
    audit.record(session, actor_id, "identity.link", "channel_identity", identity.id, {
        "crm_ref": ref,
        "action": action,
        "channel": identity.channel,
        "from_customer_id": current.id,
        "to_customer_id": new_customer_id,
        "previous_crm_ref": previous_ref,
        "merged_customer_id": merged_id,
        "moved_conversations": result.moved_conversations,
        "moved_cases": result.moved_cases,
    })
    logger.info("identity %d linked to a CRM customer: %s (customer %d -> %d)",
                identity.id, action, current.id, new_customer_id)
    return result


def _intent(nlu: Optional[Dict[str, Any]]) -> tuple:
    if not nlu:
        return None, None
    intent = nlu.get("intent")
    if isinstance(intent, dict):
        confidence = intent.get("confidence")
        return intent.get("name"), None if confidence is None else float(confidence)
    return (intent if isinstance(intent, str) else None), None


def customer_history(session: Session, customer_id: int,
                     limit_conversations: Optional[int] = None) -> List[Dict[str, Any]]:
    """The customer's conversations on every channel, oldest first, each with its messages
    in time order (plain dicts, ISO timestamps); ``limit_conversations`` keeps the newest."""
    query = select(Conversation).where(Conversation.customer_id == customer_id)
    if limit_conversations is not None:
        newest = query.order_by(Conversation.created_at.desc(), Conversation.id.desc()).limit(limit_conversations)
        conversations = list(reversed(session.execute(newest).scalars().all()))
    else:
        conversations = session.execute(
            query.order_by(Conversation.created_at, Conversation.id)).scalars().all()
    if not conversations:
        return []
    by_id: Dict[int, List[Dict[str, Any]]] = {c.id: [] for c in conversations}
    messages = session.execute(
        select(Message).where(Message.conversation_id.in_(list(by_id)))
        .order_by(Message.conversation_id, Message.created_at, Message.id)).scalars()
    for message in messages:
        intent, confidence = _intent(message.nlu)
        by_id[message.conversation_id].append({
            "id": message.id,
            "direction": message.direction.value,
            "sender": message.sender,
            "text": message.text,
            "created_at": message.created_at.isoformat(),
            "intent": intent,
            "confidence": confidence,
            "status": message.status,
            "kind": (message.payload or {}).get("kind"),
        })
    return [
        {
            "id": conversation.id,
            "channel": conversation.channel,
            "identity_id": conversation.identity_id,
            "mode": conversation.mode.value,
            "visibility": conversation.visibility.value,
            "thread_id": conversation.thread_id,
            "linked_id": conversation.linked_id,
            "created_at": conversation.created_at.isoformat(),
            "closed_at": conversation.closed_at.isoformat() if conversation.closed_at else None,
            "messages": by_id[conversation.id],
        }
        for conversation in conversations
    ]
