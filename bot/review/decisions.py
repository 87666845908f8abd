"""Agents' decisions on drafts: approve, edit, pick an alternative, reject; and the queue.

Plain functions taking a SQLAlchemy ``Session`` (run them through ``Store.run``), shared by
the console and the JSON API. Each decision is one transaction: the draft is claimed with a
conditional ``UPDATE … WHERE status = 'pending'`` first, so two agents (or a stale form)
cannot both decide it — the second gets :class:`~bot.errors.Conflict` — and any later error
(a bad index, an empty text) rolls the claim back: bad input changes nothing.

``user`` is anything with ``id`` and ``display_name`` (a ``User`` or ``accounts.CurrentUser``).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from bot.pipeline import outbox
from bot.store.audit import record
from bot.customer_texts import customer_text
from bot.accounts import Actor
from bot.errors import InvalidInput, Conflict, NotFound
from bot.store.models import (
    ChannelIdentity,
    Conversation,
    Customer,
    Draft,
    DraftStatus,
    Message,
    Mode,
    OutboxItem,
    Purpose,
    User,
    Visibility,
    utcnow,
)
from bot.cases.escalation import CaseSettings, default_settings, open_case
from bot.pipeline.dispatcher import comment_target
from bot.privacy.personal_data import refuse_in_public

MAX_TEXT = 4096
MAX_REASON = 1000
MAX_INTENT = 120
SNIPPET = 140
HISTORY_LIMIT = 200
INTENT_PATTERN = re.compile(r"^[^\s/][^\s]{0,119}$")


# --------------------------------------------------------------------------- helpers


def _texts(messages: Sequence[Dict[str, Any]]) -> List[str]:
    return [m["text"] for m in messages if isinstance(m, dict) and isinstance(m.get("text"), str) and m["text"]]


def _joined(messages: Sequence[Dict[str, Any]]) -> str:
    return "\n\n".join(_texts(messages))


def _snippet(text: Optional[str], length: int = SNIPPET) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


def _draft_id(draft_id: Any) -> int:
    if isinstance(draft_id, bool):
        raise NotFound(f"no draft {draft_id!r}")
    try:
        value = int(draft_id)
    except (TypeError, ValueError):
        raise NotFound(f"no draft {draft_id!r}") from None
    if value <= 0 or value > 2**62:
        raise NotFound(f"no draft {draft_id!r}")
    return value


def _clean_text(text: Any, what: str = "the edited text") -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be a string")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput(f"{what} is empty")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{what} is {len(text)} characters; at most {MAX_TEXT} are allowed")
    return text


def clean_intent(intent: Any) -> Optional[str]:
    """An optional intent label: ``None``/empty → ``None``; else a name without spaces."""
    if intent is None:
        return None
    if not isinstance(intent, str):
        raise InvalidInput("the intent must be a string")
    intent = intent.strip()
    if not intent:
        return None
    if len(intent) > MAX_INTENT or not INTENT_PATTERN.match(intent):
        raise InvalidInput(f"{intent[:40]!r} is not an intent name (no spaces, at most {MAX_INTENT} characters)")
    return intent


def _claim(session: Session, draft_id: int, user: Actor, status: DraftStatus) -> None:
    """Mark a pending draft decided, atomically; Conflict/NotFound otherwise."""
    result = session.execute(
        update(Draft)
        .where(Draft.id == draft_id, Draft.status == DraftStatus.pending)
        .values(status=status, decided_by=user.id, decided_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        return
    row = session.execute(
        select(Draft.status, User.display_name)
        .outerjoin(User, User.id == Draft.decided_by)
        .where(Draft.id == draft_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no draft {draft_id}")
    status_value = DraftStatus(row[0]).value
    if status_value == DraftStatus.superseded.value:
        raise Conflict("already superseded by a newer customer message", status=status_value)
    by = f" by {row[1]}" if row[1] else ""
    raise Conflict(f"already {status_value}{by}", status=status_value, decided_by=row[1])


def _load(session: Session, draft_id: int) -> Tuple[Draft, Conversation, ChannelIdentity]:
    row = session.execute(
        select(Draft, Conversation, ChannelIdentity)
        .join(Conversation, Conversation.id == Draft.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(Draft.id == draft_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no draft {draft_id}")
    draft, conversation, identity = row
    session.refresh(draft)  # the claim's UPDATE bypassed the identity map
    return draft, conversation, identity


def _send(
    session: Session,
    draft: Draft,
    conversation: Conversation,
    identity: ChannelIdentity,
    messages: Sequence[Dict[str, Any]],
    sender: str = "bot",
    override_personal_data: bool = False,
) -> List[OutboxItem]:
    """Queue the decided messages; a public reply is refused when it holds personal data
    (:mod:`bot.privacy.personal_data`) unless the agent overrides it, which is audited."""
    if conversation.visibility == Visibility.public:
        findings = refuse_in_public(_joined(messages), override_personal_data)
        if findings:
            record(session, draft.decided_by, "public.personal_data_override", "draft", draft.id,
                   {"findings": [f.masked() for f in findings]})
    reply_to: Dict[str, Any] = {}
    if conversation.visibility == Visibility.public:  # under the comment this draft answers
        comment = session.get(Message, draft.inbound_message_id)
        if comment is not None:
            reply_to["reply_to"] = comment_target(comment.payload, comment.channel_message_id)
    items = []
    for i, message in enumerate(messages):
        items.append(outbox.enqueue(
            session, key=f"draft:{draft.id}:{i}", channel=conversation.channel,
            recipient=identity.external_id, payload={**message, **reply_to}, source="draft", sender=sender,
            conversation_id=conversation.id,
        ))
    return items


def _sendable(messages: Any) -> List[Dict[str, Any]]:
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict) and (m.get("text") or m.get("buttons")
                                                            or m.get("image") or m.get("custom"))]


def _result(draft: Draft, user: Actor, items: Sequence[OutboxItem]) -> Dict[str, Any]:
    return {
        "draft": {
            "id": draft.id,
            "status": DraftStatus(draft.status).value,
            "decided_by": {"id": user.id, "display_name": user.display_name},
            "decided_at": _iso(draft.decided_at),
            "final_text": draft.final_text,
            "corrected_intent": draft.corrected_intent,
        },
        "outbox": [{"id": item.id, "idempotency_key": item.idempotency_key, "payload": item.payload}
                   for item in items],
    }


# --------------------------------------------------------------------------- decisions


def approve(session: Session, draft_id: int, user: Actor, override_personal_data: bool = False) -> Dict[str, Any]:
    """Send the drafted bot messages as they are."""
    draft_id = _draft_id(draft_id)
    _claim(session, draft_id, user, DraftStatus.approved)
    draft, conversation, identity = _load(session, draft_id)
    messages = _sendable(draft.messages)
    if not messages:
        raise InvalidInput("this draft has no message to send; edit or reject it")
    items = _send(session, draft, conversation, identity, messages, override_personal_data=override_personal_data)
    draft.final_text = _joined(messages) or None
    record(session, user.id, "draft.approve", "draft", draft.id,
           {"intent": draft.intent, "confidence": draft.confidence, "final_text": draft.final_text})
    return _result(draft, user, items)


def edit(session: Session, draft_id: int, user: Actor, text: Optional[str],
         intent: Optional[str] = None, override_personal_data: bool = False) -> Dict[str, Any]:
    """Send one message with the agent's text instead (and label the intent, if given)."""
    draft_id = _draft_id(draft_id)
    text = _clean_text(text)
    corrected = clean_intent(intent)
    _claim(session, draft_id, user, DraftStatus.edited)
    draft, conversation, identity = _load(session, draft_id)
    before = _joined(draft.messages or [])
    items = _send(session, draft, conversation, identity, [{"text": text}], sender=f"agent:{user.id}",
                  override_personal_data=override_personal_data)
    draft.final_text = text
    draft.corrected_intent = corrected
    record(session, user.id, "draft.edit", "draft", draft.id,
           {"before": before, "after": text, "intent_before": draft.intent, "intent_after": corrected})
    return _result(draft, user, items)


def pick(session: Session, draft_id: int, user: Actor, index: int,
         override_personal_data: bool = False) -> Dict[str, Any]:
    """Send alternative ``index`` (0-based) of the intent ranking instead."""
    draft_id = _draft_id(draft_id)
    _claim(session, draft_id, user, DraftStatus.picked)
    draft, conversation, identity = _load(session, draft_id)
    alternatives = draft.alternatives or []
    if not 0 <= index < len(alternatives):
        raise InvalidInput(f"no alternative {index}; this draft has {len(alternatives)} (0-based index)")
    alternative = alternatives[index] if isinstance(alternatives[index], dict) else {}
    messages = _sendable(alternative.get("messages"))
    if not messages:
        raise InvalidInput(f"alternative {index} has no message to send")
    items = _send(session, draft, conversation, identity, messages, override_personal_data=override_personal_data)
    draft.final_text = _joined(messages) or None
    draft.corrected_intent = clean_intent(alternative.get("intent"))
    record(session, user.id, "draft.pick", "draft", draft.id,
           {"index": index, "intent_before": draft.intent, "intent_after": draft.corrected_intent,
            "final_text": draft.final_text})
    return _result(draft, user, items)


def reject(session: Session, draft_id: int, user: Actor, reason: Optional[str] = None,
           settings: Optional[CaseSettings] = None) -> Dict[str, Any]:
    """Send nothing from the bot: open a case held by ``user`` (human mode)."""
    draft_id = _draft_id(draft_id)
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("the reason must be a string")
    reason = (reason or "").strip() or None
    if reason and len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is {len(reason)} characters; at most {MAX_REASON} are allowed")
    _claim(session, draft_id, user, DraftStatus.rejected)
    draft, conversation, identity = _load(session, draft_id)
    previous_mode = Mode(conversation.mode).value
    case, _ = open_case(session, conversation.id, "draft_rejected", settings or default_settings(),
                        {"draft_id": draft.id, "reason": reason, "intent": draft.intent},
                        assign_to=user.id)
    item = outbox.enqueue(
        session, key=f"draft:{draft.id}:handover", channel=conversation.channel,
        recipient=identity.external_id,
        payload={"text": customer_text("handed_to_agent", conversation.language)},
        source="draft", sender="bot", conversation_id=conversation.id, purpose=Purpose.handover,
    )
    record(session, user.id, "draft.reject", "draft", draft.id,
           {"reason": reason, "intent": draft.intent, "mode_before": previous_mode,
            "conversation_id": conversation.id, "case_id": case.id})
    result = _result(draft, user, [item])
    result["case_id"] = case.id
    return result


DECISIONS = {"approve": approve, "edit": edit, "pick": pick, "reject": reject}


# --------------------------------------------------------------------------- reading


def _customer_name(customer: Optional[Customer], identity: ChannelIdentity) -> str:
    if customer is not None and customer.display_name:
        return customer.display_name
    if identity.display_name:
        return identity.display_name
    return f"{identity.channel} customer {short_external_id(identity.external_id)}"


def short_external_id(external_id: str, keep: int = 8) -> str:
    """A channel's id for a customer without a name, short enough for a list: web chat
    visitors have a 32-character random id, of which the first 8 tell them apart."""
    return external_id if len(external_id) <= keep + 4 else external_id[:keep] + "…"


def pending_queue(session: Session, limit: int = 500, now: Optional[dt.datetime] = None) -> List[Dict[str, Any]]:
    """Pending drafts, oldest first, with what an agent needs to pick one."""
    now = now or utcnow()
    inbound = aliased(Message)
    rows = session.execute(
        select(Draft, Conversation, ChannelIdentity, Customer, inbound.text)
        .join(Conversation, Conversation.id == Draft.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .outerjoin(inbound, inbound.id == Draft.inbound_message_id)
        .where(Draft.status == DraftStatus.pending)
        .order_by(Draft.created_at, Draft.id)
        .limit(limit)
    ).all()
    queue = []
    for draft, conversation, identity, customer, customer_message in rows:
        texts = _texts(draft.messages or [])
        queue.append({
            "id": draft.id,
            "conversation_id": conversation.id,
            "created_at": _iso(draft.created_at),
            "waiting_seconds": max(0.0, (now - draft.created_at).total_seconds()),
            "channel": conversation.channel,
            "visibility": conversation.visibility.value,
            "customer": _customer_name(customer, identity),
            "language": conversation.language,
            "intent": draft.intent,
            "confidence": draft.confidence,
            "reason": draft.reason,
            "customer_text": _snippet(customer_message),
            "snippet": _snippet(texts[0] if texts else ""),
        })
    return queue


def pending_ids(session: Session) -> List[int]:
    """Ids of the pending drafts, oldest first."""
    return list(session.execute(
        select(Draft.id).where(Draft.status == DraftStatus.pending).order_by(Draft.created_at, Draft.id)
    ).scalars())


def _alternatives(raw: Any) -> List[Dict[str, Any]]:
    alternatives = []
    for i, alternative in enumerate(raw if isinstance(raw, list) else []):
        alternative = alternative if isinstance(alternative, dict) else {}
        messages = alternative.get("messages") if isinstance(alternative.get("messages"), list) else []
        alternatives.append({
            "index": i,
            "intent": alternative.get("intent"),
            "confidence": alternative.get("confidence"),
            "messages": messages,
            "text": _joined(messages),
        })
    return alternatives


def draft_detail(session: Session, draft_id: int, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """One draft with its conversation so far (both directions, in order) and alternatives."""
    now = now or utcnow()
    draft_id = _draft_id(draft_id)
    decider = aliased(User)
    row = session.execute(
        select(Draft, Conversation, ChannelIdentity, Customer, decider.display_name)
        .join(Conversation, Conversation.id == Draft.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .outerjoin(decider, decider.id == Draft.decided_by)
        .where(Draft.id == draft_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no draft {draft_id}")
    draft, conversation, identity, customer, decided_by_name = row
    history = list(session.execute(
        select(Message).where(Message.conversation_id == conversation.id)
        .order_by(Message.id.desc()).limit(HISTORY_LIMIT)
    ).scalars())
    history.reverse()
    messages = []
    for message in history:
        payload = message.payload if isinstance(message.payload, dict) else {}
        buttons = payload.get("buttons") if isinstance(payload.get("buttons"), list) else []
        messages.append({
            "id": message.id,
            "direction": "in" if message.direction.value == "in" else "out",
            "sender": message.sender,
            "text": message.text,
            "buttons": [b.get("title") for b in buttons if isinstance(b, dict) and b.get("title")],
            "at": _iso(message.created_at),
            "status": message.status,
            "answers_this_draft": message.id == draft.inbound_message_id,
        })
    drafted = draft.messages if isinstance(draft.messages, list) else []
    return {
        "id": draft.id,
        "status": DraftStatus(draft.status).value,
        "created_at": _iso(draft.created_at),
        "waiting_seconds": max(0.0, (now - draft.created_at).total_seconds()),
        "intent": draft.intent,
        "confidence": draft.confidence,
        "reason": draft.reason,
        "messages": drafted,
        "text": _joined(drafted),
        "buttons": [b.get("title") for m in drafted if isinstance(m, dict)
                    for b in (m.get("buttons") or []) if isinstance(b, dict) and b.get("title")],
        "alternatives": _alternatives(draft.alternatives),
        "inbound_message_id": draft.inbound_message_id,
        "decided_by": ({"id": draft.decided_by, "display_name": decided_by_name}
                       if draft.decided_by is not None else None),
        "decided_at": _iso(draft.decided_at),
        "final_text": draft.final_text,
        "corrected_intent": draft.corrected_intent,
        "conversation": {
            "id": conversation.id,
            "channel": conversation.channel,
            "visibility": conversation.visibility.value,
            "thread_id": conversation.thread_id,
            "linked_id": conversation.linked_id,
            "mode": Mode(conversation.mode).value,
            "language": conversation.language,
            "assigned_agent_id": conversation.assigned_agent_id,
            "customer": _customer_name(customer, identity),
            "customer_id": customer.id,
            "flags": list(customer.flags or []),
            "messages": messages,
        },
    }
