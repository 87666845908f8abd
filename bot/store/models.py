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
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text as sql_text,
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


class Purpose(str, enum.Enum):
    """What an outbound message is for: only an ``answer`` is a response to the customer.

    Contacts (``bot/customers/contacts.py``) take the first response and the bot / human split
    from answers only, and ask for a rating only after one; the service's own texts never count.
    """

    answer = "answer"  # a bot reply sent to the customer, an approved draft, an agent's reply
    ack = "ack"  # "we received your photo": an agent will answer
    handover = "handover"  # a colleague takes over (with the expected wait)
    notice = "notice"  # other service texts: message too long, identification, opt-in, subscriptions
    csat = "csat"  # the rating question and its thanks
    broadcast = "broadcast"  # a fix announcement or other proactive message


class Visibility(str, enum.Enum):
    """Who can read a conversation (ARCHITECTURE.md, public and private conversations)."""

    private = "private"  # a DM, a chat: the customer and us
    public = "public"  # a comment thread under a post: everyone


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
    # Held: outside the channel's messaging window, and no template is configured for the
    # message's purpose. Final and shown in the console; an agent answers another way.
    needs_template = "needs_template"


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
    # The customer's number in the CRM, once an agent linked them (see bot/customers/identity_linking.py).
    crm_ref: Mapped[Optional[str]] = Column(String(64), index=True)
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
    __table_args__ = (
        Index("ix_conversations_identity_open", "identity_id", "closed_at"),
        Index("ix_conversations_last_message", "last_message_at"),
    )

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
    # Contacts: the id of the last message already counted in a closed contact (episode).
    contact_watermark: Mapped[int] = Column(Integer, nullable=False, default=0, server_default="0")
    # After a CSAT rating: the contact whose optional comment the next message may be.
    csat_contact_id: Mapped[Optional[int]] = Column(Integer)
    csat_comment_until: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    # The CRM customer number the customer gave the bot (identification form); an agent
    # confirms it before the channel is linked (an address or number alone proves little).
    claimed_crm_ref: Mapped[Optional[str]] = Column(String(64))
    # Public conversations: a comment thread under ``thread_id`` (the post); ``linked_id``
    # joins a public conversation and the private one it was moved to, both ways.
    visibility: Mapped[Visibility] = Column(_enum(Visibility), nullable=False, default=Visibility.private,
                                            server_default=Visibility.private.value)
    thread_id: Mapped[Optional[str]] = Column(String(200))
    linked_id: Mapped[Optional[int]] = Column(Integer)

    identity = relationship(ChannelIdentity, lazy="raise")


class Message(Base):
    """Every message in and out, in order per conversation."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "direction", "channel_message_id", name="uq_message_channel_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_pending", "status", "conversation_id"),
        Index("ix_messages_status_order", "status", "id"),  # waiting messages, oldest first
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
    # Outbound only (NULL for inbound): what the message is for; NULL outbound rows (logged by a
    # channel itself, see connectors/webchat.py) count as answers.
    purpose: Mapped[Optional[Purpose]] = Column(_enum(Purpose))


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
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_channel_message", "channel", "channel_message_id"),  # delivery receipts
        Index("ix_outbox_recipient_sent", "channel", "recipient", "sent_at"),  # read watermarks
    )

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
    lease_owner: Mapped[Optional[str]] = Column(String(120))  # the dispatcher holding the lease
    channel_message_id: Mapped[Optional[str]] = Column(String(200))
    last_error: Mapped[Optional[str]] = Column(Text)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    # What the message is for (the messaging window picks a template by it); NULL: an answer.
    purpose: Mapped[Optional[Purpose]] = Column(_enum(Purpose))
    # The platform's delivery receipts after we sent it: sent | delivered | read | failed.
    delivery_status: Mapped[Optional[str]] = Column(String(24))
    delivery_error: Mapped[Optional[str]] = Column(Text)
    delivery_updated_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)


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


class CaseStatus(str, enum.Enum):
    open = "open"  # waiting for an agent
    assigned = "assigned"  # an agent holds it
    closed = "closed"  # closed with a root cause; the conversation went back to the bot


class Case(Base):
    """An escalation to a human, with the context snapshot taken when it opened."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_opened", "status", "opened_at"),
        Index("ix_cases_customer", "customer_id", "opened_at"),
        # at most one case per conversation that is not closed
        Index("uq_cases_one_open_per_conversation", "conversation_id", unique=True,
              sqlite_where=sql_text("status <> 'closed'"), postgresql_where=sql_text("status <> 'closed'")),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    conversation_id: Mapped[int] = Column(ForeignKey("conversations.id"), nullable=False, index=True)
    customer_id: Mapped[int] = Column(ForeignKey("customers.id"), nullable=False)
    # what opened it: request_human, complaint, low_confidence, repeated_question,
    # negative_sentiment, profanity, draft_rejected, rasa_refused, ...
    trigger: Mapped[str] = Column(String(40), nullable=False)
    trigger_details: Mapped[Dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    status: Mapped[CaseStatus] = Column(_enum(CaseStatus), nullable=False, default=CaseStatus.open)
    assigned_agent_id: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    language: Mapped[Optional[str]] = Column(String(8))
    suggested_root_cause: Mapped[Optional[str]] = Column(String(80))
    root_cause: Mapped[Optional[str]] = Column(String(80))
    resolution: Mapped[Optional[str]] = Column(Text)
    # The context when the case opened (transcripts, intents, entities, cases, language).
    snapshot: Mapped[Dict[str, Any]] = Column(JSON, nullable=False, default=dict)
    # CRM profile and Rasa slots are fetched after the case opened (they need the network):
    # pending -> ok | unavailable | not_found | not_linked
    crm_status: Mapped[str] = Column(String(24), nullable=False, default="pending")
    crm_profile: Mapped[Optional[Dict[str, Any]]] = Column(JSON)
    slots: Mapped[Optional[Dict[str, Any]]] = Column(JSON)
    opened_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    first_response_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    closed_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    closed_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))


class CaseNote(Base):
    """An internal note on a case (never shown to the customer)."""

    __tablename__ = "case_notes"

    id: Mapped[int] = Column(Integer, primary_key=True)
    case_id: Mapped[int] = Column(ForeignKey("cases.id"), nullable=False, index=True)
    author_id: Mapped[int] = Column(ForeignKey("users.id"), nullable=False)
    text: Mapped[str] = Column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class TrackerEvent(Base):
    """Events the service writes into a Rasa tracker (pause, resume, an agent's reply).

    Committed in the same transaction as the change they mirror and delivered in order per
    conversation by the tracker sync, so a Rasa outage delays them but never loses them.
    """

    __tablename__ = "tracker_events"
    __table_args__ = (Index("ix_tracker_events_pending", "delivered_at", "id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    rasa_sender_id: Mapped[str] = Column(String(250), nullable=False)
    events: Mapped[List[Dict[str, Any]]] = Column(JSON, nullable=False)
    attempts: Mapped[int] = Column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    last_error: Mapped[Optional[str]] = Column(Text)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    delivered_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)


class CrmCustomerRecord(Base):
    """A customer of the built-in SQL CRM (``webcare crm import``; see bot/customers/crm/sql.py)."""

    __tablename__ = "crm_customers"
    __table_args__ = (Index("ix_crm_customers_address", "postcode", "house_number"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    customer_number: Mapped[str] = Column(String(64), nullable=False, unique=True)
    name: Mapped[Optional[str]] = Column(String(200))
    email: Mapped[Optional[str]] = Column(String(254))
    phone: Mapped[Optional[str]] = Column(String(40))
    postcode: Mapped[Optional[str]] = Column(String(8))  # normalised: "1234AB"
    house_number: Mapped[Optional[str]] = Column(String(16))  # normalised: "12", "12A"
    segment: Mapped[Optional[str]] = Column(String(40))
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class CrmContract(Base):
    """A contract of a SQL CRM customer."""

    __tablename__ = "crm_contracts"

    id: Mapped[int] = Column(Integer, primary_key=True)
    contract_id: Mapped[str] = Column(String(64), nullable=False, unique=True)
    customer_number: Mapped[str] = Column(
        ForeignKey("crm_customers.customer_number", ondelete="CASCADE"), nullable=False, index=True)
    product: Mapped[Optional[str]] = Column(String(120))
    status: Mapped[Optional[str]] = Column(String(24))  # e.g. active, ended, pending
    start_date: Mapped[Optional[dt.date]] = Column(Date)
    end_date: Mapped[Optional[dt.date]] = Column(Date)
    monthly_amount_cents: Mapped[Optional[int]] = Column(Integer)  # exact money, no floats
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class Contact(Base):
    """One contact: a conversation episode, tagged with a root cause (reports count these).

    An episode ends when its case is closed, or after the conversation was idle for
    ``contacts.idle_minutes``. Report figures are stored with it (no joins at report time).
    """

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_started", "started_at"),
        Index("ix_contacts_root_cause_started", "root_cause", "started_at"),
        Index("ix_contacts_customer_root_cause", "customer_id", "root_cause", "started_at"),
        Index("ix_contacts_conversation", "conversation_id", "id"),
        # one contact per episode, even when two replicas close it at once
        UniqueConstraint("conversation_id", "first_message_id", name="uq_contacts_episode"),
        # one sweep per (root cause, channel, handler) over a period, in index order, read from the
        # index alone (bot/reporting/recurring_issues.py)
        Index("ix_contacts_report", "root_cause", "channel", "handled_by", "started_at", "customer_id",
              "repeated", "csat_asked_at", "csat_score", "first_response_seconds", "handling_seconds"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    conversation_id: Mapped[int] = Column(ForeignKey("conversations.id"), nullable=False)
    customer_id: Mapped[int] = Column(ForeignKey("customers.id"), nullable=False)
    channel: Mapped[str] = Column(String(40), nullable=False)
    language: Mapped[Optional[str]] = Column(String(8))
    started_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False)  # first customer message
    ended_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False)  # last message
    first_message_id: Mapped[Optional[int]] = Column(Integer)
    last_message_id: Mapped[Optional[int]] = Column(Integer)
    customer_messages: Mapped[int] = Column(Integer, nullable=False, default=0)
    root_cause: Mapped[Optional[str]] = Column(String(80))
    # agent (set on closing a case) | suggested (from intents, a human handled it) | bot (bot-only, automatic)
    root_cause_source: Mapped[str] = Column(String(16), nullable=False, default="bot")
    handled_by: Mapped[str] = Column(String(8), nullable=False, default="bot")  # bot | human
    case_id: Mapped[Optional[int]] = Column(ForeignKey("cases.id"))
    first_response_seconds: Mapped[Optional[float]] = Column(Float)
    handling_seconds: Mapped[Optional[float]] = Column(Float)
    # the earlier contact of the same customer with the same root cause within 7 days, if any
    repeat_of_id: Mapped[Optional[int]] = Column(Integer)
    # a later contact repeated this one within 7 days: it was not resolved the first time
    repeated: Mapped[bool] = Column(Boolean, nullable=False, default=False)
    csat_asked_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    csat_score: Mapped[Optional[int]] = Column(Integer)  # 1-5
    csat_comment: Mapped[Optional[str]] = Column(Text)
    csat_answered_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)


class KnownIssueStatus(str, enum.Enum):
    open = "open"
    resolved = "resolved"


class KnownIssue(Base):
    """A problem we know about: the bot tells affected customers and offers to notify them."""

    __tablename__ = "known_issues"
    __table_args__ = (
        Index("ix_known_issues_status_root_cause", "status", "root_cause"),
        # At most one open known issue per root cause: a database rule, not only a check.
        Index("uq_known_issues_open_root_cause", "root_cause", unique=True,
              sqlite_where=sql_text("status = 'open'"), postgresql_where=sql_text("status = 'open'")),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    root_cause: Mapped[str] = Column(String(80), nullable=False)
    title: Mapped[str] = Column(String(200), nullable=False)
    text_nl: Mapped[str] = Column(Text, nullable=False)  # what the bot says while it is open
    text_en: Mapped[str] = Column(Text, nullable=False)
    fix_text_nl: Mapped[Optional[str]] = Column(Text)  # the announcement when it is fixed
    fix_text_en: Mapped[Optional[str]] = Column(Text)
    status: Mapped[KnownIssueStatus] = Column(_enum(KnownIssueStatus), nullable=False,
                                              default=KnownIssueStatus.open)
    opened_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    opened_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    resolved_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    resolved_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)


class KnownIssueSubscription(Base):
    """A customer who asked to be told when a known issue is fixed."""

    __tablename__ = "known_issue_subscriptions"
    __table_args__ = (UniqueConstraint("known_issue_id", "customer_id", name="uq_subscription_customer"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    known_issue_id: Mapped[int] = Column(ForeignKey("known_issues.id"), nullable=False)
    customer_id: Mapped[int] = Column(ForeignKey("customers.id"), nullable=False)
    identity_id: Mapped[int] = Column(ForeignKey("channel_identities.id"), nullable=False)
    subscribed_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class OptIn(Base):
    """Whether a customer accepts proactive messages (none without opt-in; "stop" opts out)."""

    __tablename__ = "opt_ins"

    id: Mapped[int] = Column(Integer, primary_key=True)
    customer_id: Mapped[int] = Column(ForeignKey("customers.id"), nullable=False, unique=True)
    proactive: Mapped[bool] = Column(Boolean, nullable=False, default=False)
    source: Mapped[str] = Column(String(40), nullable=False)  # how it changed: button, stop, agent, import
    changed_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class BroadcastStatus(str, enum.Enum):
    preparing = "preparing"  # choosing recipients
    sending = "sending"
    done = "done"


class Broadcast(Base):
    """One announcement to many customers (e.g. a fix), resumable, never twice to anyone."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = Column(Integer, primary_key=True)
    known_issue_id: Mapped[Optional[int]] = Column(ForeignKey("known_issues.id"), index=True)
    text_nl: Mapped[str] = Column(Text, nullable=False)
    text_en: Mapped[str] = Column(Text, nullable=False)
    window_days: Mapped[Optional[int]] = Column(Integer)  # also customers who contacted in this window
    include_contacted: Mapped[bool] = Column(Boolean, nullable=False, default=False, server_default=false())
    status: Mapped[BroadcastStatus] = Column(_enum(BroadcastStatus), nullable=False,
                                             default=BroadcastStatus.preparing)
    created_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)


class BroadcastRecipient(Base):
    """One customer of a broadcast; the unique key makes "never twice" a database rule."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "customer_id", name="uq_broadcast_customer"),
        Index("ix_broadcast_recipients_status", "broadcast_id", "status", "id"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    broadcast_id: Mapped[int] = Column(ForeignKey("broadcasts.id"), nullable=False)
    customer_id: Mapped[int] = Column(ForeignKey("customers.id"), nullable=False)
    identity_id: Mapped[int] = Column(ForeignKey("channel_identities.id"), nullable=False)
    reason: Mapped[str] = Column(String(24), nullable=False)  # subscriber | contacted (with opt-in)
    # pending -> queued (in the outbox) -> sent | failed; skipped (opted out meanwhile, unreachable)
    status: Mapped[str] = Column(String(16), nullable=False, default="pending")
    outbox_id: Mapped[Optional[int]] = Column(Integer)
    language: Mapped[Optional[str]] = Column(String(8))  # the language the announcement went out in
    error: Mapped[Optional[str]] = Column(Text)  # why it failed or was skipped
    updated_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class ReportDigest(Base):
    """One weekly recurring-issue digest: claimed by one replica, sent once (``bot/reporting/digest.py``)."""

    __tablename__ = "report_digests"

    id: Mapped[int] = Column(Integer, primary_key=True)
    week: Mapped[dt.date] = Column(Date, nullable=False, unique=True)  # the first day after the period
    claimed_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    details: Mapped[Dict[str, Any]] = Column(JSON, nullable=False, default=dict)


class ExampleStatus(str, enum.Enum):
    """Where an agent's verdict stands on its way into the training data (``bot/learning``)."""

    pending = "pending"  # waiting for a reviewer
    accepted = "accepted"  # trained on, with the agent's intent
    relabelled = "relabelled"  # trained on, with the reviewer's intent
    dropped = "dropped"  # never trained on (the agent was wrong, or the text teaches nothing)


class TrainingExample(Base):
    """A labelled example an agent's decision on a draft produced, and its review.

    ``source``: ``confirmed`` (approved as drafted: the bot's intent was right), ``picked`` (an
    alternative of the ranking), ``corrected`` (edited with another intent), ``rejected`` (the
    agent answered themselves; the intent they chose, if any). Only accepted and relabelled
    examples reach the training data, with ``intent``.
    """

    __tablename__ = "training_examples"
    __table_args__ = (Index("ix_training_examples_status", "status", "id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    draft_id: Mapped[int] = Column(ForeignKey("drafts.id"), nullable=False, unique=True)
    message_id: Mapped[int] = Column(ForeignKey("messages.id"), nullable=False)
    text: Mapped[str] = Column(Text, nullable=False)
    language: Mapped[Optional[str]] = Column(String(8))
    source: Mapped[str] = Column(String(16), nullable=False)
    bot_intent: Mapped[Optional[str]] = Column(String(120))
    bot_confidence: Mapped[Optional[float]] = Column(Float)
    agent_intent: Mapped[Optional[str]] = Column(String(120))  # the agent's verdict
    decided_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    decided_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    status: Mapped[ExampleStatus] = Column(_enum(ExampleStatus), nullable=False, default=ExampleStatus.pending)
    intent: Mapped[Optional[str]] = Column(String(120))  # the label trained on (accepted / relabelled)
    reviewed_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    reviewed_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class IntentThreshold(Base):
    """An auto-send threshold for one intent, suggested from agents' verdicts and approved by an
    admin; it replaces the configured one for that intent (``bot/learning/thresholds.py``)."""

    __tablename__ = "intent_thresholds"

    intent: Mapped[str] = Column(String(120), primary_key=True)
    threshold: Mapped[float] = Column(Float, nullable=False)
    evidence: Mapped[Dict[str, Any]] = Column(JSON, nullable=False, default=dict)  # n, precision, interval, target
    approved_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    approved_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)


class JobStatus(str, enum.Enum):
    """A background retraining job (``bot/retraining/job.py``)."""

    running = "running"
    succeeded = "succeeded"  # a candidate was trained and evaluated (promoted or not)
    failed = "failed"  # training or evaluation failed, or the job stopped answering


class LearningJob(Base):
    """One retraining: the reviewed corrections → a candidate model, evaluated against the one
    in use. Its row is the progress bar every service replica shows (``heartbeat_at`` says it
    is alive; a job whose heartbeat stopped is failed by the next one to look)."""

    __tablename__ = "learning_jobs"
    __table_args__ = (
        Index("ix_learning_jobs_status", "status"),
        # one retraining at a time, across replicas
        Index("uq_learning_jobs_one_running", "status", unique=True,
              sqlite_where=sql_text("status = 'running'"), postgresql_where=sql_text("status = 'running'")),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    status: Mapped[JobStatus] = Column(_enum(JobStatus), nullable=False, default=JobStatus.running)
    phase: Mapped[str] = Column(String(40), nullable=False, default="queued")
    progress: Mapped[float] = Column(Float, nullable=False, default=0.0)
    estimate_seconds: Mapped[Optional[float]] = Column(Float)  # of the whole job, from earlier ones
    started_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    started_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
    training_seconds: Mapped[Optional[float]] = Column(Float)
    candidate_id: Mapped[Optional[int]] = Column(ForeignKey("trained_models.id"))
    auto_promote: Mapped[bool] = Column(Boolean, nullable=False, default=False)
    error: Mapped[Optional[str]] = Column(Text)


class ModelStatus(str, enum.Enum):
    """Where a trained model stands (``bot/learning/registry.py``)."""

    candidate = "candidate"  # evaluated; its gate passed; waiting to be promoted
    rejected = "rejected"  # evaluated worse than the model in use: never served
    in_use = "in_use"  # loaded by every Rasa replica
    retired = "retired"  # served before (the latest retired one is the rollback target)


class TrainedModel(Base):
    """A Rasa model file in ``rasa.model_dir`` (shared by the service and every Rasa replica),
    its evaluation against the model in use when it was trained, and when it served."""

    __tablename__ = "trained_models"
    __table_args__ = (
        Index("ix_trained_models_status", "status"),
        # one model in use
        Index("uq_trained_models_one_in_use", "status", unique=True,
              sqlite_where=sql_text("status = 'in_use'"), postgresql_where=sql_text("status = 'in_use'")),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    file_name: Mapped[str] = Column(String(255), nullable=False, unique=True)
    status: Mapped[ModelStatus] = Column(_enum(ModelStatus), nullable=False)
    examples: Mapped[int] = Column(Integer, nullable=False, default=0)  # reviewed corrections trained on
    training_seconds: Mapped[Optional[float]] = Column(Float)
    evaluation: Mapped[Optional[Dict[str, Any]]] = Column(JSON)  # candidate vs in use, the gate's verdict
    gate_passed: Mapped[Optional[bool]] = Column(Boolean)
    created_at: Mapped[dt.datetime] = Column(AwareDateTime, nullable=False, default=utcnow)
    served_from: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)  # the latest promotion
    promoted_by: Mapped[Optional[int]] = Column(ForeignKey("users.id"))
    previous_id: Mapped[Optional[int]] = Column(ForeignKey("trained_models.id"))  # what it replaced: a rollback's target
    rolled_back_at: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)  # never a rollback's target again


class SwapClaim(Base):
    """One row: who is swapping a model into the Rasa replicas, until when (a promotion or a
    rollback at a time, across processes; an expired claim is free)."""

    __tablename__ = "swap_claims"

    id: Mapped[int] = Column(Integer, primary_key=True)  # always 1
    holder: Mapped[Optional[str]] = Column(String(120))
    until: Mapped[Optional[dt.datetime]] = Column(AwareDateTime)
