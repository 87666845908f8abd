"""The webcare schema (SQLAlchemy typed models; migrations in ``bot/store/migrations``).

SQLAlchemy 1.4 with 2.0-style usage: ``select()``, ``Session.execute``, no implicit lazy
loads in request paths (relationships are declared ``lazy="raise"``).
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Dict, List, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, declarative_base, relationship
from sqlalchemy.types import TypeDecorator

Base = declarative_base()


def utcnow() -> dt.datetime:
    """Timezone-aware now, stored as UTC."""
    return dt.datetime.now(dt.timezone.utc)


class AwareDateTime(TypeDecorator):
    """Stores UTC, returns aware datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to an AwareDateTime column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


class Role(str, enum.Enum):
    agent = "agent"
    process_owner = "process_owner"
    admin = "admin"


class Mode(str, enum.Enum):
    """Who answers a conversation (see ARCHITECTURE.md, conversation modes)."""

    bot = "bot"
    assist = "assist"
    human = "human"


class Direction(str, enum.Enum):
    inbound = "in"
    outbound = "out"


class InboundStatus(str, enum.Enum):
    received = "received"  # committed, waiting for the worker
    processed = "processed"  # answered, drafted or routed to an agent
    failed = "failed"  # gave up after repeated errors; an agent must look


class DraftStatus(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    edited = "edited"
    picked = "picked"  # an alternative was sent
    rejected = "rejected"
    superseded = "superseded"  # a newer customer message made it moot


class OutboxStatus(str, enum.Enum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # permanent: gave up (see last_error)


def _enum(kind: type) -> Enum:
    return Enum(kind, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = Column(Integer, primary_key=True)
    username: Mapped[str] = Column(String(80), nullable=False, unique=True)
    display_name: Mapped[str] = Column(String(120), nullable=False)
    password_hash: Mapped[str] = Column(String(255), nullable=False)
    role: Mapped[Role] = Column(_enum(Role), nullable=False)
    active: Mapped[bool] = Column(Boolean, nullable=False, default=True)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class LoginSession(Base):
    """A console login; the cookie holds the token, the store only its hash."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = Column(Integer, primary_key=True)
    token_hash: Mapped[str] = Column(String(64), nullable=False, unique=True)
    csrf_token: Mapped[str] = Column(String(64), nullable=False)
    user_id: Mapped[int] = Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = Column(Integer, primary_key=True)
    display_name: Mapped[Optional[str]] = Column(String(200))
    language: Mapped[Optional[str]] = Column(String(8))
    flags: Mapped[List[str]] = Column(JSON, nullable=False, default=list)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class ChannelIdentity(Base):
    """One customer's address on one channel (many per customer)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_identity_channel_external"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    customer_id: Mapped[int] = Column(ForeignKey("customers.id"), nullable=False, index=True)
    channel: Mapped[str] = Column(String(40), nullable=False)
    external_id: Mapped[str] = Column(String(200), nullable=False)
    display_name: Mapped[Optional[str]] = Column(String(200))
    reachable: Mapped[bool] = Column(Boolean, nullable=False, default=True)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class Conversation(Base):
    """The ongoing exchange with one channel identity."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_identity_open", "identity_id", "closed_at"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    customer_id: Mapped[int] = Column(ForeignKey("customers.id"), nullable=False, index=True)
    identity_id: Mapped[int] = Column(ForeignKey("channel_identities.id"), nullable=False)
    channel: Mapped[str] = Column(String(40), nullable=False)
    rasa_sender_id: Mapped[str] = Column(String(250), nullable=False, index=True)
    mode: Mapped[Mode] = Column(_enum(Mode), nullable=False, default=Mode.bot)
    language: Mapped[Optional[str]] = Column(String(8))
    assigned_agent_id: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    last_message_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    closed_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    # Worker lease: the worker holding it processes this conversation's messages in order.
    lease_owner: Mapped[Optional[str]] = Column(String(80))
    lease_until: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)

    identity = relationship(ChannelIdentity, lazy="raise")


class Message(Base):
    """Every message in and out, in order per conversation."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "direction", "channel_message_id", name="uq_message_channel_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_pending", "status", "conversation_id"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    conversation_id: Mapped[int] = Column(ForeignKey("conversations.id"), nullable=False)
    direction: Mapped[Direction] = Column(_enum(Direction), nullable=False)
    channel: Mapped[str] = Column(String(40), nullable=False)
    channel_message_id: Mapped[Optional[str]] = Column(String(200))
    sender: Mapped[str] = Column(String(40), nullable=False)  # customer | bot | agent:<id>
    text: Mapped[Optional[str]] = Column(Text)
    payload: Mapped[Dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    language_hint: Mapped[Optional[str]] = Column(String(8))
    status: Mapped[Optional[str]] = Column(String(24))
    attempts: Mapped[int] = Column(Integer, nullable=False, default=0)
    last_error: Mapped[Optional[str]] = Column(Text)
    # NLU result of an inbound message (intent, confidence, ranking, entities, language).
    nlu: Mapped[Optional[Dict[str, Any]]] = Column(JSON)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    processed_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)


class Draft(Base):
    """A bot reply waiting for an agent: approve, edit, pick an alternative or reject."""

    __tablename__ = "drafts"
    __table_args__ = (Index("ix_drafts_status_created", "status", "created_at"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    conversation_id: Mapped[int] = Column(ForeignKey("conversations.id"), nullable=False, index=True)
    inbound_message_id: Mapped[int] = Column(ForeignKey("messages.id"), nullable=False, unique=True)
    messages: Mapped[List[Dict[str, Any]]] = Column(JSON, nullable=False)  # bot messages as drafted
    intent: Mapped[Optional[str]] = Column(String(120))
    confidence: Mapped[Optional[float]] = Column(Float)
    alternatives: Mapped[List[Dict[str, Any]]] = Column(JSON, nullable=False, default=list)
    reason: Mapped[str] = Column(String(200), nullable=False)  # why it was not auto-sent
    status: Mapped[DraftStatus] = Column(_enum(DraftStatus), nullable=False, default=DraftStatus.pending)
    decided_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    decided_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    final_text: Mapped[Optional[str]] = Column(Text)
    corrected_intent: Mapped[Optional[str]] = Column(String(120))  # the agent's label, if any
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class OutboxItem(Base):
    """An outbound message, committed before any delivery attempt."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = Column(String(200), nullable=False, unique=True)
    conversation_id: Mapped[Optional[int]] = Column(ForeignKey("conversations.id"), index=True)
    message_id: Mapped[Optional[int]] = Column(ForeignKey("messages.id"))
    channel: Mapped[str] = Column(String(40), nullable=False)
    recipient: Mapped[str] = Column(String(200), nullable=False)  # the channel's address
    payload: Mapped[Dict[str, Any]] = Column(JSON, nullable=False)  # text, buttons, ...
    source: Mapped[str] = Column(String(40), nullable=False)  # bot | draft | agent | broadcast
    status: Mapped[OutboxStatus] = Column(_enum(OutboxStatus), nullable=False, default=OutboxStatus.pending)
    attempts: Mapped[int] = Column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    lease_until: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    channel_message_id: Mapped[Optional[str]] = Column(String(200))
    last_error: Mapped[Optional[str]] = Column(Text)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)


class AuditEntry(Base):
    """Who did what, when (agent and admin actions)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    actor_id: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    action: Mapped[str] = Column(String(80), nullable=False)
    target_type: Mapped[str] = Column(String(40), nullable=False)
    target_id: Mapped[Optional[int]] = Column(Integer)
    details: Mapped[Dict[str, Any]] = Column(JSON, nullable=False, default=dict)
