"""Cases: escalations to a human, with the whole context on one screen.

A case opens when an action asks for a handover (``request_human``, ``complaint``, two
low-confidence turns, a repeated question, strong negative sentiment or profanity), when an
agent rejects a draft, or when Rasa refuses a message. Opening one, in the caller's
transaction:

* puts the conversation in ``human`` mode and queues a Rasa ``pause`` event for its tracker
  (:class:`bot.store.models.TrackerEvent`, delivered in order by :mod:`bot.pipeline.tracker_sync`),
  so the bot stops and no bot reply reaches the customer while a human holds it;
* takes a **context snapshot**: this conversation's transcript and the same customer's earlier
  conversations on every channel, per customer turn the intent and confidence, the entities,
  the customer's open and recent cases, a suggested root cause, the language;
* tells the customer the expected waiting time, from the live queue (median first response
  over the last hour) and the opening hours (out of hours: when we open, and that the message
  is kept).

The CRM profile and Rasa's slots need the network, so they are added right after the case is
committed (:func:`bot.cases.enrichment.enrich`); a CRM that is down never stops a case from
opening, the case is marked "CRM unavailable".

Agents reply (through the outbox, and into the Rasa tracker so the transcript stays whole),
add internal notes, assign or transfer the case, and close it with a root cause (required)
and a resolution, which hands the conversation back to the bot (``resume``).
"""
from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import Text, cast, select, update
from sqlalchemy.orm import Session

from bot.pipeline import outbox
from bot.store.audit import record
from bot.config import DEFAULTS, Config
from bot.customer_texts import customer_text
from bot.accounts import Actor
from bot.errors import InvalidInput, Conflict, NotFound
from bot.events import CaseOpened, TrackerEventsQueued, emit
from bot.opening_hours import OpeningHours, day_label
from bot.cases.root_causes import Taxonomy, load_taxonomy
from bot.privacy.personal_data import refuse_in_public
from bot.store.models import (
    Case,
    CaseNote,
    CaseStatus,
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    Draft,
    DraftStatus,
    Message,
    Mode,
    OutboxItem,
    Purpose,
    TrackerEvent,
    User,
    Visibility,
    utcnow,
)
from bot.customers.identity_linking import customer_history
from bot.customers.contacts import record_contact
from bot.customers.identity_linking import link_identity

logger = logging.getLogger(__name__)

MAX_REPLY = 4000
MAX_NOTE = 4000
MAX_RESOLUTION = 2000
RECENT_CASE_DAYS = 90
HISTORY_CONVERSATIONS = 20  # earlier conversations kept in a snapshot
HISTORY_MESSAGES = 200  # messages per conversation kept in a snapshot
EARLIER_MESSAGES = 50  # messages per earlier conversation kept in a snapshot

# Triggers for which the customer is told a colleague takes over (with the waiting time).
# ``draft_rejected``: the rejecting agent already holds the conversation and answers;
# ``moved_to_private``: the agent's private reply to the comment is the first word.
SILENT_TRIGGERS = frozenset({"draft_rejected", "moved_to_private"})
PROJECT = Path(__file__).resolve().parents[2]  # where the shipped data/ and domain.yml live


@dataclass(frozen=True)
class CaseSettings:
    """What opening and closing cases needs from the configuration."""

    taxonomy: Taxonomy
    opening_hours: OpeningHours
    wait_window_minutes: int = 60
    default_wait_minutes: int = 15
    ask_csat: bool = True  # ask the customer for a rating when a case closes
    csat_comment_minutes: float = DEFAULTS["contacts"]["csat_comment_minutes"]
    repeat_window_days: float = DEFAULTS["reports"]["repeat_window_days"]


    @classmethod
    def from_config(cls, config: Config) -> "CaseSettings":
        """From a :class:`bot.config.Config`; file paths relative to the config file (or cwd).

        Raises :class:`bot.cases.root_causes.RootCauseError` when the taxonomy is invalid.
        """
        section = config.cases
        bases = [config.source.parent] if config.source is not None else []
        bases += [Path.cwd(), PROJECT]
        taxonomy = load_taxonomy(_first_existing(section.root_causes_file, bases),
                                 _first_existing(section.domain_file, bases))
        return cls(taxonomy, config.opening_hours, section.wait_window_minutes, section.default_wait_minutes,
                   config.contacts.csat, config.contacts.csat_comment_minutes, config.reports.repeat_window_days)


def _first_existing(name: str, bases: Sequence[Path]) -> Path:
    """``name`` if absolute, else the first of ``bases``/``name`` that exists (else the first)."""
    path = Path(name)
    if path.is_absolute():
        return path
    candidates = [base / path for base in bases]
    return next((c for c in candidates if c.exists()), candidates[0])


@lru_cache(maxsize=1)
def default_settings() -> CaseSettings:
    """The shipped taxonomy and default opening hours (for code paths without a config)."""
    return CaseSettings(load_taxonomy(PROJECT / "data" / "root_causes.yml", PROJECT / "domain.yml"),
                        OpeningHours.from_config(DEFAULTS["opening_hours"]))


@dataclass(frozen=True)
class WaitEstimate:
    """What the customer is told about waiting on a handover."""

    open_now: bool
    minutes: Optional[int]  # when open: expected minutes until a first response
    opens_at: Optional[dt.datetime]  # when closed: the next opening
    basis: str  # "median of N first responses in the last 60 min" | "default"

    def to_dict(self) -> Dict[str, Any]:
        return {"open_now": self.open_now, "minutes": self.minutes,
                "opens_at": self.opens_at.isoformat() if self.opens_at else None,
                "basis": self.basis}


# ------------------------------------------------------------------ waiting time


def expected_wait(session: Session, settings: CaseSettings, now: Optional[dt.datetime] = None) -> WaitEstimate:
    """The expected wait for a first response, from the live queue and the opening hours.

    Open: the median time to first response of cases that got one in the last
    ``wait_window_minutes``, at least the age of the oldest case still waiting when more
    cases wait than were answered (a backlog), rounded up to 5 minutes; the configured
    default when nothing was answered in the window. Closed: the next opening.
    """
    now = now or utcnow()
    hours = settings.opening_hours
    if not hours.is_open(now):
        return WaitEstimate(False, None, hours.next_opening(now), "opening hours")
    since = now - dt.timedelta(minutes=settings.wait_window_minutes)
    rows = session.execute(
        select(Case.opened_at, Case.first_response_at)
        .where(Case.first_response_at.is_not(None), Case.first_response_at >= since)
    ).all()
    waits = [max(0.0, (first - opened).total_seconds()) for opened, first in rows]
    if waits:
        minutes = statistics.median(waits) / 60
        basis = f"median of {len(waits)} first response(s) in the last {settings.wait_window_minutes} min"
    else:
        minutes = float(settings.default_wait_minutes)
        basis = "default (no first responses in the window)"
    waiting = session.execute(
        select(Case.opened_at).where(Case.status != CaseStatus.closed, Case.first_response_at.is_(None))
        .order_by(Case.opened_at)
    ).scalars().all()
    if len(waiting) > len(waits) and waiting:
        minutes = max(minutes, (now - waiting[0]).total_seconds() / 60)
        basis += "; backlog: more cases waiting than answered"
    rounded = max(5, int(-(-minutes // 5) * 5))
    return WaitEstimate(True, rounded, None, basis)


def handover_notice(estimate: WaitEstimate, language: Optional[str], now: Optional[dt.datetime] = None) -> str:
    """The customer-facing handover text with the expected wait."""
    now = now or utcnow()
    lang = language if language in ("nl", "en") else "nl"
    if estimate.open_now:
        return customer_text("handover_wait", lang, minutes=str(estimate.minutes))
    if estimate.opens_at is None:
        return customer_text("handover_closed_unknown", lang)
    return customer_text("handover_closed", lang, day=day_label(estimate.opens_at, now, lang),
                         time=f"{estimate.opens_at:%H:%M}")


# ------------------------------------------------------------------------ opening


def open_case(
    session: Session,
    conversation_id: int,
    trigger: str,
    settings: CaseSettings,
    details: Optional[Dict[str, Any]] = None,
    assign_to: Optional[int] = None,
    bot_suggestion: Sequence[Dict[str, Any]] = (),
    now: Optional[dt.datetime] = None,
) -> Tuple[Case, bool]:
    """Open a case for the conversation (or return the one already open) → (case, created).

    Runs in the caller's transaction; see the module docstring for everything it does.
    """
    now = now or utcnow()
    # Lock the conversation (PostgreSQL) so two openers serialise; a partial unique index
    # (one open case per conversation) backs this up on every database.
    conversation = session.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    existing = session.execute(
        select(Case).where(Case.conversation_id == conversation_id, Case.status != CaseStatus.closed)
        .order_by(Case.id.desc()).limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        _set_mode_human(session, conversation, assign_to)
        if assign_to is not None and existing.assigned_agent_id is None:
            existing.assigned_agent_id = assign_to
            existing.status = CaseStatus.assigned
        return existing, False

    identity = session.get(ChannelIdentity, conversation.identity_id)
    transcript = conversation_transcript(session, conversation.id)
    episode = _since_last_case(session, conversation.id, transcript)
    case = Case(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        trigger=trigger[:40],
        trigger_details=details or {},
        status=CaseStatus.assigned if assign_to else CaseStatus.open,
        assigned_agent_id=assign_to,
        language=conversation.language,
        suggested_root_cause=settings.taxonomy.suggest(
            (m.get("intent"), m.get("confidence") or 0.0) for m in episode if m["direction"] == "in"),
        snapshot={},
        crm_status="pending",
        opened_at=now,
    )
    estimate = expected_wait(session, settings, now)  # before this case joins the queue
    session.add(case)
    session.flush()
    case.snapshot = {
        "taken_at": now.isoformat(),
        "trigger": trigger,
        "language": conversation.language,
        "channel": conversation.channel,
        "customer": _customer_summary(session, conversation.customer_id, identity),
        "transcript": transcript,
        "earlier_conversations": earlier_conversations(session, conversation.customer_id, conversation.id),
        "entities": _entities(transcript),
        "cases": _customer_cases(session, conversation.customer_id, exclude=case.id, now=now),
        "bot_suggestion": [dict(m) for m in bot_suggestion],
        "wait_estimate": estimate.to_dict(),
    }
    _set_mode_human(session, conversation, assign_to)
    # In a public thread the agent answers in person: no automatic notice everyone can read.
    if trigger not in SILENT_TRIGGERS and conversation.visibility != Visibility.public:
        outbox.enqueue(
            session, key=f"case:{case.id}:handover", channel=conversation.channel,
            recipient=identity.external_id,
            payload={"text": handover_notice(estimate, conversation.language, now)},
            source="bot", conversation_id=conversation.id, purpose=Purpose.handover,
        )
    record(session, assign_to, "case.open", "case", case.id,
           {"trigger": trigger, "conversation_id": conversation.id, "details": details or {}})
    emit(session, CaseOpened(case.id))
    return case, True


def has_open_case(session: Session, conversation_id: int) -> bool:
    """Whether the conversation has a case that is not closed."""
    return session.execute(
        select(Case.id).where(Case.conversation_id == conversation_id, Case.status != CaseStatus.closed).limit(1)
    ).first() is not None


def _set_mode_human(session: Session, conversation: Conversation, assign_to: Optional[int]) -> None:
    if conversation.mode != Mode.human:
        conversation.mode = Mode.human
        tracker_events(session, conversation.rasa_sender_id, [{"event": "pause"}])
        # the bot's pending drafts are moot: the agent answers now
        session.execute(
            update(Draft)
            .where(Draft.conversation_id == conversation.id, Draft.status == DraftStatus.pending,
                   cast(Draft.messages, Text) != "[]")  # JSON has no != on PostgreSQL
            .values(status=DraftStatus.superseded)
            .execution_options(synchronize_session=False)
        )
    if assign_to is not None:
        conversation.assigned_agent_id = assign_to


def tracker_events(session: Session, rasa_sender_id: str, events: List[Dict[str, Any]]) -> TrackerEvent:
    """Queue events for the conversation's Rasa tracker (delivered in order, retried)."""
    row = TrackerEvent(rasa_sender_id=rasa_sender_id, events=events, next_attempt_at=utcnow())
    session.add(row)
    emit(session, TrackerEventsQueued(rasa_sender_id))
    return row


# ------------------------------------------------------------------- the context


def _turn(message: Message) -> Dict[str, Any]:
    nlu = message.nlu or {}
    intent = nlu.get("intent") or {}
    entry: Dict[str, Any] = {
        "id": message.id,
        "direction": Direction(message.direction).value,
        "sender": message.sender,
        "text": message.text,
        "kind": (message.payload or {}).get("kind", "text"),
        "status": message.status,
        "at": message.created_at.isoformat(),
    }
    sent_as = (message.payload or {}).get("sent_as")
    if isinstance(sent_as, dict):
        entry["sent_as"] = sent_as.get("template") or sent_as.get("action")
    if message.last_error and message.direction == Direction.outbound:
        entry["error"] = message.last_error
    if message.direction == Direction.inbound:
        entry["intent"] = intent.get("name")
        entry["confidence"] = intent.get("confidence")
        entry["entities"] = [
            {"entity": e.get("entity"), "value": e.get("value")} for e in (nlu.get("entities") or [])
            if isinstance(e, dict)]
        entry["language"] = (nlu.get("language") or {}).get("name")
    return entry


def last_customer_message_at(session: Session, conversation_id: int) -> Optional[dt.datetime]:
    """When the customer last wrote in the conversation (None: never)."""
    return session.execute(
        select(Message.created_at).where(Message.conversation_id == conversation_id,
                                         Message.direction == Direction.inbound)
        .order_by(Message.id.desc()).limit(1)).scalar()


def conversation_transcript(session: Session, conversation_id: int, limit: int = HISTORY_MESSAGES) -> List[Dict[str, Any]]:
    """The conversation's messages (in and out), oldest first, the newest ``limit``."""
    messages = session.execute(
        select(Message).where(Message.conversation_id == conversation_id)
        .order_by(Message.id.desc()).limit(limit)
    ).scalars().all()
    return [_turn(m) for m in reversed(messages)]


def earlier_conversations(session: Session, customer_id: int, exclude: Optional[int] = None) -> List[Dict[str, Any]]:
    """The customer's other conversations, on every channel, newest first, with their messages."""
    history = customer_history(session, customer_id, HISTORY_CONVERSATIONS + 1)
    earlier = [c for c in reversed(history) if c["id"] != exclude][:HISTORY_CONVERSATIONS]
    for conversation in earlier:  # a long-lived channel conversation: its newest messages
        conversation["messages"] = conversation["messages"][-EARLIER_MESSAGES:]
    return earlier


def _since_last_case(session: Session, conversation_id: int, transcript: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The turns since the conversation's last closed case (the current contact)."""
    closed = session.execute(
        select(Case.closed_at).where(Case.conversation_id == conversation_id, Case.closed_at.is_not(None))
        .order_by(Case.closed_at.desc()).limit(1)
    ).scalar_one_or_none()
    if closed is None:
        return transcript
    return [m for m in transcript if m["at"] > closed.isoformat()]


def _entities(transcript: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    seen = []
    for turn in transcript:
        for entity in turn.get("entities") or []:
            if entity not in seen:
                seen.append(entity)
    return seen


def _customer_summary(session: Session, customer_id: int, identity: ChannelIdentity) -> Dict[str, Any]:
    customer = session.get(Customer, customer_id)
    identities = session.execute(
        select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id).order_by(ChannelIdentity.id)
    ).scalars().all()
    return {
        "id": customer_id,
        "name": (customer.display_name if customer else None) or identity.display_name,
        "crm_ref": getattr(customer, "crm_ref", None),
        "flags": list(customer.flags or []) if customer else [],
        "identities": [{"id": i.id, "channel": i.channel, "external_id": i.external_id,
                        "display_name": i.display_name, "reachable": i.reachable} for i in identities],
    }


def _customer_cases(session: Session, customer_id: int, exclude: Optional[int], now: dt.datetime) -> List[Dict[str, Any]]:
    since = now - dt.timedelta(days=RECENT_CASE_DAYS)
    rows = session.execute(
        select(Case).where(Case.customer_id == customer_id, Case.id != (exclude or 0))
        .where((Case.status != CaseStatus.closed) | (Case.opened_at >= since))
        .order_by(Case.opened_at.desc()).limit(20)
    ).scalars().all()
    return [{"id": c.id, "status": CaseStatus(c.status).value, "trigger": c.trigger,
             "root_cause": c.root_cause, "opened_at": c.opened_at.isoformat(),
             "closed_at": c.closed_at.isoformat() if c.closed_at else None} for c in rows]


# ------------------------------------------------------------------ agent actions


def _load(session: Session, case_id: int) -> Tuple[Case, Conversation, ChannelIdentity]:
    if isinstance(case_id, str) and case_id.isdigit():
        case_id = int(case_id)
    if not isinstance(case_id, int) or isinstance(case_id, bool):
        raise NotFound(f"no case {case_id!r}")
    row = session.execute(
        select(Case, Conversation, ChannelIdentity)
        .join(Conversation, Conversation.id == Case.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(Case.id == case_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return row[0], row[1], row[2]


def _open(case: Case) -> None:
    if CaseStatus(case.status) == CaseStatus.closed:
        raise Conflict(f"case {case.id} is closed", status="closed")


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value)} characters; at most {limit} are allowed")
    return value


def reply(session: Session, case_id: int, user: Actor, text: Optional[str],
          token: Optional[str] = None, override_personal_data: bool = False) -> Dict[str, Any]:
    """An agent's reply: outbox (to the customer), Rasa tracker (transcript), first response.

    ``token`` (optional, from the form or API client) makes a resubmitted reply a no-op. In a
    public conversation the reply is refused when it holds personal data, unless
    ``override_personal_data`` (audited).
    """
    case, conversation, identity = _load(session, case_id)
    _open(case)
    text = _text(text, "the reply", MAX_REPLY)
    findings = (refuse_in_public(text, override_personal_data)
                if conversation.visibility == Visibility.public else [])
    if token is not None and (not isinstance(token, str) or not 8 <= len(token) <= 64):
        raise InvalidInput("the reply token must be a string of 8 to 64 characters")
    now = utcnow()
    key = f"case:{case.id}:reply:{token}" if token else f"case:{case.id}:reply:{now.timestamp()}:{user.id}"
    existing = session.execute(select(OutboxItem.id).where(OutboxItem.idempotency_key == key)).scalar_one_or_none()
    item = outbox.enqueue(session, key=key, channel=conversation.channel, recipient=identity.external_id,
                          payload={"text": text}, source="agent", sender=f"agent:{user.id}",
                          conversation_id=conversation.id)
    if existing is not None:
        return {"case_id": case.id, "outbox_id": item.id, "duplicate": True}
    if case.first_response_at is None:
        case.first_response_at = now
    if case.assigned_agent_id is None:
        case.assigned_agent_id = user.id
        case.status = CaseStatus.assigned
        conversation.assigned_agent_id = user.id
    tracker_events(session, conversation.rasa_sender_id, [
        {"event": "bot", "text": text, "timestamp": now.timestamp(),
         "metadata": {"webcare_agent": user.username, "webcare_case": case.id}}])
    record(session, user.id, "case.reply", "case", case.id,
           {"outbox_id": item.id, "length": len(text),
            **({"personal_data_override": [f.masked() for f in findings]} if findings else {})})
    return {"case_id": case.id, "outbox_id": item.id, "duplicate": False}


def add_note(session: Session, case_id: int, user: Actor, text: Optional[str]) -> Dict[str, Any]:
    """An internal note (agents only; never sent)."""
    case, _, _ = _load(session, case_id)
    text = _text(text, "the note", MAX_NOTE)
    note = CaseNote(case_id=case.id, author_id=user.id, text=text)
    session.add(note)
    session.flush()
    record(session, user.id, "case.note", "case", case.id, {"note_id": note.id})
    return {"case_id": case.id, "note_id": note.id}


def assign(session: Session, case_id: int, user: Actor, assignee: int) -> Dict[str, Any]:
    """Assign the case to ``assignee`` (a user id; the acting agent for "take"); transfer if held."""
    case, conversation, _ = _load(session, case_id)
    _open(case)
    target = session.get(User, assignee)
    if target is None or not target.active:
        raise InvalidInput(f"no active user {assignee}")
    before = case.assigned_agent_id
    case.assigned_agent_id = target.id
    case.status = CaseStatus.assigned
    conversation.assigned_agent_id = target.id
    action = "case.assign" if before is None else ("case.transfer" if before != target.id else "case.assign")
    record(session, user.id, action, "case", case.id, {"from": before, "to": target.id})
    return {"case_id": case.id, "assigned_to": target.id, "previous": before}


def close(session: Session, case_id: int, user: Actor, root_cause: Optional[str], resolution: Optional[str],
          settings: CaseSettings) -> Dict[str, Any]:
    """Close with a root cause (required) and a resolution; the bot takes over again."""
    case, conversation, _ = _load(session, case_id)
    _open(case)
    if not isinstance(root_cause, str) or not root_cause.strip():
        raise InvalidInput("a root cause is required to close a case")
    root_cause = root_cause.strip()
    if root_cause not in settings.taxonomy:
        raise InvalidInput(f"unknown root cause {root_cause!r}; known: {', '.join(settings.taxonomy.codes)}")
    resolution = _text(resolution, "the resolution", MAX_RESOLUTION)
    result = session.execute(
        update(Case).where(Case.id == case.id, Case.status != CaseStatus.closed)
        .values(status=CaseStatus.closed, root_cause=root_cause, resolution=resolution,
                closed_at=utcnow(), closed_by=user.id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"case {case.id} is closed", status="closed")
    conversation.mode = Mode.bot
    conversation.assigned_agent_id = None
    tracker_events(session, conversation.rasa_sender_id, [{"event": "resume"}])
    # the episode ends here: one contact with the agent's root cause (and a CSAT question)

    session.refresh(case)
    record_contact(session, conversation, settings.taxonomy, case=case, ask_csat=settings.ask_csat,
                   repeat_window_days=settings.repeat_window_days)
    record(session, user.id, "case.close", "case", case.id,
           {"root_cause": root_cause, "suggested": case.suggested_root_cause, "resolution": resolution})
    return {"case_id": case.id, "status": "closed", "root_cause": root_cause}


# ------------------------------------------------------------------------ reading


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return value.isoformat() if value else None


def case_queue(session: Session, now: Optional[dt.datetime] = None, include_closed: bool = False,
               limit: int = 500) -> List[Dict[str, Any]]:
    """Cases not closed (oldest first) with their waiting time; closed ones too on request."""
    now = now or utcnow()
    query = (
        select(Case, Conversation, ChannelIdentity, Customer, User)
        .join(Conversation, Conversation.id == Case.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .join(Customer, Customer.id == Case.customer_id)
        .outerjoin(User, User.id == Case.assigned_agent_id)
    )
    if not include_closed:
        query = query.where(Case.status != CaseStatus.closed)
    rows = session.execute(query.order_by(Case.opened_at).limit(limit)).all()
    result = []
    for case, conversation, identity, customer, agent in rows:
        waiting_until = case.first_response_at or case.closed_at or now
        result.append({
            "id": case.id,
            "status": CaseStatus(case.status).value,
            "trigger": case.trigger,
            "channel": conversation.channel,
            "visibility": conversation.visibility.value,
            "customer": customer.display_name or identity.display_name or identity.external_id,
            "language": case.language,
            "assigned_to": agent.display_name if agent else None,
            "assigned_agent_id": case.assigned_agent_id,
            "opened_at": _iso(case.opened_at),
            "first_response_at": _iso(case.first_response_at),
            "waiting_seconds": int((waiting_until - case.opened_at).total_seconds()),
            "answered": case.first_response_at is not None,
            "crm_status": case.crm_status,
            "suggested_root_cause": case.suggested_root_cause,
        })
    return result


def case_detail(session: Session, case_id: int, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """Everything the case view shows: the snapshot plus what happened since (live)."""
    now = now or utcnow()
    case, conversation, identity = _load(session, case_id)
    notes = session.execute(
        select(CaseNote, User).join(User, User.id == CaseNote.author_id)
        .where(CaseNote.case_id == case.id).order_by(CaseNote.id)
    ).all()
    agent = session.get(User, case.assigned_agent_id) if case.assigned_agent_id else None
    agents = session.execute(
        select(User).where(User.active.is_(True)).order_by(User.display_name)
    ).scalars().all()
    transcript = conversation_transcript(session, conversation.id)
    waiting_until = case.first_response_at or case.closed_at or now
    snapshot = dict(case.snapshot or {})
    return {
        "id": case.id,
        "status": CaseStatus(case.status).value,
        "trigger": case.trigger,
        "trigger_details": case.trigger_details,
        "conversation_id": conversation.id,
        "conversation_mode": Mode(conversation.mode).value,
        "channel": conversation.channel,
        "visibility": conversation.visibility.value,
        "thread_id": conversation.thread_id,
        "linked_id": conversation.linked_id,
        # the customer's last message here: the console shows when a channel's window closes
        "last_customer_message_at": _iso(last_customer_message_at(session, conversation.id)),
        "language": conversation.language or case.language,
        "opened_at": _iso(case.opened_at),
        "first_response_at": _iso(case.first_response_at),
        "closed_at": _iso(case.closed_at),
        "waiting_seconds": int((waiting_until - case.opened_at).total_seconds()),
        "assigned_agent_id": case.assigned_agent_id,
        "assigned_to": agent.display_name if agent else None,
        "agents": [{"id": a.id, "name": a.display_name, "role": a.role.value} for a in agents],
        "suggested_root_cause": case.suggested_root_cause,
        "root_cause": case.root_cause,
        "resolution": case.resolution,
        "crm_status": case.crm_status,
        "crm_profile": case.crm_profile,
        "slots": case.slots,
        "customer": snapshot.get("customer") or {},
        "transcript": transcript,  # live: includes what happened after the snapshot
        "earlier_conversations": snapshot.get("earlier_conversations") or [],
        "entities": _entities(transcript),
        "cases": snapshot.get("cases") or [],
        "bot_suggestion": snapshot.get("bot_suggestion") or [],
        "wait_estimate": snapshot.get("wait_estimate"),
        "snapshot_taken_at": snapshot.get("taken_at"),
        "notes": [{"id": n.id, "author": u.display_name, "text": n.text, "at": _iso(n.created_at)}
                  for n, u in notes],
        "recipient": identity.external_id,
        # the CRM number the customer gave the bot; the agent confirms it by linking
        "claimed_crm_ref": conversation.claimed_crm_ref,
        "identity_id": identity.id,
    }


def link_customer(session: Session, case_id: int, user: Actor, identity_id: int, crm_ref: str) -> Dict[str, Any]:
    """An agent links one of the customer's channel identities to a CRM customer.

    The CRM lookup happens before (the caller checks the number exists); here the identity is
    linked (customers merged: one customer, many channels, one history), the case follows the
    customer, and the CRM profile is fetched again.
    """
    case, conversation, _ = _load(session, case_id)
    identity = session.get(ChannelIdentity, identity_id)
    if identity is None or identity.customer_id != case.customer_id:
        raise InvalidInput(f"identity {identity_id} does not belong to this case's customer")
    result = link_identity(session, identity_id, crm_ref, actor_id=user.id)
    if conversation.claimed_crm_ref == crm_ref:
        conversation.claimed_crm_ref = None  # confirmed
    session.flush()
    session.refresh(case)
    session.refresh(conversation)
    case.crm_status = "pending"
    snapshot = dict(case.snapshot or {})
    snapshot["customer"] = _customer_summary(session, case.customer_id, identity)
    snapshot["earlier_conversations"] = earlier_conversations(session, case.customer_id, conversation.id)
    case.snapshot = snapshot
    record(session, user.id, "case.link_customer", "case", case.id,
           {"identity_id": identity_id, "crm_ref": crm_ref, "action": result.action})
    emit(session, CaseOpened(case.id))  # the customer changed: fetch the CRM profile again
    return {"case_id": case.id, "customer_id": case.customer_id, "action": result.action}
