"""Public conversations: comment threads under the company's posts, and moving them to private.

A comment under a Facebook or Instagram post is read by everyone. The agent's moves:

- **reply in public** (:func:`reply_public`): one reply under the customer's latest comment,
  refused when it holds personal data unless the agent overrides it knowingly (audited);
- **hide** the comment (:func:`hide_comment`): it stays visible to its author and friends only;
- **move to private** (:func:`move_to_private`): Meta's private reply to the comment (one per
  comment, within 7 days of it) opens a DM, plus a short public answer ("we sturen je een DM").
  The DM is a new private conversation of the same customer, linked both ways to the public
  one and held by the agent (a case); when the platform answers the private reply with the
  customer's DM address, their identity takes it (:func:`bot.pipeline.dispatcher.adopt_recipient`),
  so their answer lands in that conversation.

Everything goes through the outbox (committed first, idempotent keys, retried); the connector
turns ``private_reply_to`` and ``{"action": "hide"}`` payloads into the platform's calls.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.accounts import Actor
from bot.cases.escalation import CaseSettings, open_case
from bot.customer_texts import customer_text
from bot.errors import Conflict, InvalidInput, NotFound
from bot.pipeline import outbox
from bot.pipeline.dispatcher import comment_target
from bot.privacy.personal_data import refuse_in_public
from bot.store.audit import record
from bot.store.models import (
    ChannelIdentity,
    Conversation,
    Direction,
    Draft,
    DraftStatus,
    Message,
    OutboxItem,
    Visibility,
    utcnow,
)

PRIVATE_REPLY_DAYS = 7  # Meta: a private reply within 7 days of the comment
MAX_PUBLIC_REPLY = 2000
PLACEHOLDER_PREFIX = "comment:"  # the DM address until the platform tells us the customer's own


def _public(session: Session, conversation_id: int) -> Tuple[Conversation, ChannelIdentity]:
    row = session.execute(
        select(Conversation, ChannelIdentity)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(Conversation.id == conversation_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    conversation, identity = row
    if conversation.visibility != Visibility.public:
        raise InvalidInput(f"conversation {conversation_id} is private: only a public comment thread has this action")
    return conversation, identity


def latest_comment(session: Session, conversation_id: int) -> Message:
    """The customer's latest comment in the thread (not an edit or a removal)."""
    comment = session.execute(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == Direction.inbound)
        .order_by(Message.id.desc()).limit(20)
    ).scalars().all()
    for message in comment:
        kind = (message.payload or {}).get("kind")
        if kind not in ("edit", "deleted"):
            return message
    raise InvalidInput("this thread has no comment of the customer to act on")


def comment_id(message: Message) -> str:
    metadata = (message.payload or {}).get("metadata") or {}
    return str(metadata.get("comment_id") or message.channel_message_id)


def reply_target(message: Message) -> str:
    """The comment a public reply to ``message`` goes under (fixed when the reply is queued, so
    a comment arriving meanwhile does not take it)."""
    return str(comment_target(message.payload, message.channel_message_id))


def _text(value: Optional[str], what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{what} is empty")
    if len(text) > MAX_PUBLIC_REPLY:
        raise InvalidInput(f"{what} is {len(text)} characters; at most {MAX_PUBLIC_REPLY} are allowed")
    return text


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _supersede_drafts(session: Session, conversation_id: int) -> None:
    session.execute(
        update(Draft).where(Draft.conversation_id == conversation_id, Draft.status == DraftStatus.pending)
        .values(status=DraftStatus.superseded).execution_options(synchronize_session=False))


def reply_public(session: Session, conversation_id: int, user: Actor, text: Optional[str],
                 override_personal_data: bool = False, token: Optional[str] = None) -> Dict[str, Any]:
    """The agent's public reply under the customer's latest comment."""
    conversation, identity = _public(session, conversation_id)
    text = _text(text, "the public reply")
    findings = refuse_in_public(text, override_personal_data)
    latest = latest_comment(session, conversation.id)
    # without a token a resubmitted form (the same text under the same comment) stays one reply
    key = f"public:{conversation.id}:reply:{token or _digest(text, comment_id(latest))}:{user.id}"
    item = outbox.enqueue(session, key=key, channel=conversation.channel, recipient=identity.external_id,
                          payload={"text": text, "reply_to": reply_target(latest)}, source="agent",
                          sender=f"agent:{user.id}", conversation_id=conversation.id)
    _supersede_drafts(session, conversation.id)
    record(session, user.id, "public.reply", "conversation", conversation.id,
           {"outbox_id": item.id, "comment_id": comment_id(latest), "length": len(text),
            **({"personal_data_override": [f.masked() for f in findings]} if findings else {})})
    return {"conversation_id": conversation.id, "outbox_id": item.id}


def hide_comment(session: Session, conversation_id: int, user: Actor, message_id: Optional[int] = None) -> Dict[str, Any]:
    """Hide the customer's comment (``message_id``, default their latest) from the public."""
    conversation, identity = _public(session, conversation_id)
    if message_id is None:
        message = latest_comment(session, conversation.id)
    else:
        message = session.get(Message, message_id)
        if message is None or message.conversation_id != conversation.id or message.direction != Direction.inbound:
            raise NotFound(f"no comment {message_id} in conversation {conversation_id}")
    target = comment_id(message)
    item = outbox.enqueue(session, key=f"hide:{conversation.channel}:{target}", channel=conversation.channel,
                          recipient=identity.external_id, payload={"action": "hide", "comment_id": target},
                          source="agent", sender=f"agent:{user.id}")
    message.payload = {**(message.payload or {}), "hidden_by": user.id}
    record(session, user.id, "public.hide", "conversation", conversation.id, {"comment_id": target, "outbox_id": item.id})
    return {"conversation_id": conversation.id, "outbox_id": item.id, "comment_id": target}


def move_to_private(session: Session, conversation_id: int, user: Actor, settings: CaseSettings,
                    private_text: Optional[str] = None, public_text: Optional[str] = None,
                    override_personal_data: bool = False, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """A private reply to the customer's latest comment and a short public answer; the DM is a
    new private conversation, linked to this one, held by ``user``."""
    now = now or utcnow()
    conversation, identity = _public(session, conversation_id)
    latest = latest_comment(session, conversation.id)
    target = comment_id(latest)
    if now - latest.created_at > dt.timedelta(days=PRIVATE_REPLY_DAYS):
        raise InvalidInput(f"the comment is more than {PRIVATE_REPLY_DAYS} days old: Meta allows a private reply "
                           "only within 7 days; answer in public instead")
    key = f"private_reply:{conversation.channel}:{target}"
    if session.execute(select(OutboxItem.id).where(OutboxItem.idempotency_key == key)).first() is not None:
        raise Conflict("this comment was already answered privately (Meta allows one private reply per comment)")
    language = conversation.language
    private_text = _text(private_text or customer_text("moved_to_private_private", language), "the private message")
    public_text = _text(public_text or customer_text("moved_to_private_public", language), "the public answer")
    findings = refuse_in_public(public_text, override_personal_data)

    address = f"{PLACEHOLDER_PREFIX}{target}"
    dm_identity = session.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == conversation.channel,
                                      ChannelIdentity.external_id == address)
    ).scalar_one_or_none()
    if dm_identity is None:
        dm_identity = ChannelIdentity(customer_id=conversation.customer_id, channel=conversation.channel,
                                      external_id=address, display_name=identity.display_name)
        session.add(dm_identity)
        session.flush()
    private = Conversation(customer_id=conversation.customer_id, identity_id=dm_identity.id,
                           channel=conversation.channel, rasa_sender_id=f"{conversation.channel}:{address}",
                           language=language, visibility=Visibility.private, linked_id=conversation.id,
                           created_at=now, last_message_at=now)
    session.add(private)
    session.flush()
    conversation.linked_id = private.id
    try:
        with session.begin_nested():  # another agent moving the same comment right now
            dm = outbox.enqueue(session, key=key, channel=conversation.channel, recipient=address,
                                payload={"text": private_text, "private_reply_to": target}, source="agent",
                                sender=f"agent:{user.id}", conversation_id=private.id)
    except IntegrityError:
        raise Conflict("this comment was already answered privately (Meta allows one private reply per comment)") \
            from None
    answer = outbox.enqueue(session, key=f"public:{conversation.id}:moved:{target}", channel=conversation.channel,
                            recipient=identity.external_id,
                            payload={"text": public_text, "reply_to": reply_target(latest)}, source="agent",
                            sender=f"agent:{user.id}", conversation_id=conversation.id)
    _supersede_drafts(session, conversation.id)
    case, _ = open_case(session, private.id, "moved_to_private", settings,
                        {"public_conversation_id": conversation.id, "comment_id": target}, assign_to=user.id, now=now)
    record(session, user.id, "public.move_to_private", "conversation", conversation.id,
           {"private_conversation_id": private.id, "comment_id": target, "outbox": [dm.id, answer.id],
            **({"personal_data_override": [f.masked() for f in findings]} if findings else {})})
    return {"conversation_id": conversation.id, "private_conversation_id": private.id, "case_id": case.id,
            "outbox": [dm.id, answer.id], "comment_id": target}


def thread(session: Session, conversation_id: int) -> Dict[str, Any]:
    """The post and the comment thread of a public conversation, for the console."""
    conversation, identity = _public(session, conversation_id)
    messages = session.execute(
        select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
    ).scalars().all()
    post: Dict[str, Any] = {"id": conversation.thread_id}
    comments: List[Dict[str, Any]] = []
    for message in messages:
        metadata = (message.payload or {}).get("metadata") or {}
        if isinstance(metadata.get("post"), dict):
            post.update({k: v for k, v in metadata["post"].items() if v is not None})
        comments.append({
            "message_id": message.id,
            "direction": message.direction.value,
            "sender": message.sender,
            "text": message.text,
            "kind": (message.payload or {}).get("kind"),
            "comment_id": metadata.get("comment_id") or message.channel_message_id,
            "parent_id": metadata.get("parent_id"),
            "hidden": bool((message.payload or {}).get("hidden_by")),
            "status": message.status,
            "created_at": message.created_at.isoformat(),
        })
    return {"conversation_id": conversation.id, "channel": conversation.channel, "post": post,
            "author": identity.display_name, "linked_id": conversation.linked_id, "comments": comments}
