"""GDPR: export everything webcare holds about one customer, or erase it.

``webcare gdpr export CUSTOMER`` and ``webcare gdpr erase CUSTOMER`` (see ``bot/cli.py``).
CUSTOMER is a webcare customer id, a CRM customer number (``customers.crm_ref``) or a channel
identity ``channel:external_id``. A customer that identity linking merged into this one
(flag ``merged_into:<id>``) belongs to it and is exported/erased with it.

What is personal data, per table (``bot/store/models.py``):

============================  =================================================================
customers                     display_name, crm_ref, flags -> cleared, flag ``erased``
channel_identities            external_id, display_name -> random token / cleared, unreachable
conversations                 rasa_sender_id (``channel:external_id``) -> token once Rasa's
                              tracker is erased (until then it lists what is still to erase)
messages                      text, payload, channel_message_id, last_error, nlu entities/text
                              -> blanked; direction, timestamps, intent name/confidence kept
drafts                        messages, alternatives' texts, final_text -> blanked
cases                         trigger_details, snapshot, resolution, crm_profile, slots
                              -> blanked; trigger, root causes, timings kept
case_notes                    text -> blanked
contacts                      csat_comment -> removed; root cause, timings, CSAT score kept
weekly digests                quotes of those comments -> blanked in what report sinks keep
                              (``ReportSink.erase_comments``: the file sink's JSON and Markdown);
                              digests that went elsewhere (webhook) cannot be recalled; a digest
                              built before the erase blanks them right before it is sent
known_issue_subscriptions     deleted
opt_ins                       deleted
broadcast_recipients          kept (no personal data); pending ones skipped
outbox                        recipient, payload -> blanked; pending items cancelled (their ids
                              in the ``gdpr.erase`` audit entry); the dispatcher checks again right
                              before each send, so an item claimed before the erase, or queued
                              after it by work already under way, is dropped, not sent
tracker_events                deleted (agents' texts for the Rasa tracker)
audit_log                     details of entries about the customer -> non-personal keys only
crm_customers/crm_contracts   the CRM's own records: exported; erased only with ``include_crm``
Rasa tracker                  events replaced by none (``PUT /conversations/<id>/tracker/events``);
                              Rasa's SQL tracker store table ``events`` in the same database is
                              also cleared directly (its ``save`` only appends, so the PUT alone
                              leaves the rows there)
============================  =================================================================
"""
from __future__ import annotations

import asyncio
import datetime as dt
import enum
import getpass
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

import aiohttp
from sqlalchemy import bindparam, delete, inspect as sa_inspect, select, text as sql_text, update
from sqlalchemy.orm import Session

from bot.store import audit
from bot.errors import InvalidInput, NotFound
from bot.reporting.sinks.base import ReportSink, ReportSinkError
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    BroadcastRecipient,
    Case,
    CaseNote,
    CaseStatus,
    ChannelIdentity,
    Contact,
    Conversation,
    CrmContract,
    CrmCustomerRecord,
    Customer,
    Direction,
    Draft,
    DraftStatus,
    InboundStatus,
    KnownIssue,
    KnownIssueSubscription,
    Message,
    Mode,
    OptIn,
    OutboxItem,
    OutboxStatus,
    ReportDigest,
    TrackerEvent,
    utcnow,
)
from bot.reporting.sinks import build_sinks
from bot.reporting.sinks.file import FileSink

logger = logging.getLogger(__name__)

ERASED_FLAG = "erased"
ERASED_PREFIX = "erased:"
MERGED_FLAG = "merged_into:"
BY_CHOICES = ("id", "crm", "identity")
CANCELLED = "cancelled: customer data erased"
SENT_WHILE_ERASED = "sent before the erase could stop it"  # the send was on its way (bot/pipeline/dispatcher.py)
OUTBOX_AUDIT = "gdpr.erase.outbox"  # outbox items cancelled after the erase itself
RASA_EVENTS_TABLE = "events"  # Rasa's SQLTrackerStore table (same database, endpoints.yml)

# audit details that never carry personal data (ids, intents, codes); everything else goes
SAFE_AUDIT_KEYS = frozenset({
    "action", "case_id", "channel", "confidence", "conversation_id", "draft_id", "from",
    "from_customer_id", "identity_id", "index", "intent", "intent_after", "intent_before",
    "length", "merged_customer_id", "mode_before", "moved_cases", "moved_conversations",
    "note_id", "outbox_id", "root_cause", "suggested", "to", "to_customer_id", "trigger",
})


def _token() -> str:
    return ERASED_PREFIX + secrets.token_hex(16)


# ---------------------------------------------------------------------------- finding


def resolve_customer(session: Session, ref: str, by: Optional[str] = None) -> int:
    """The webcare customer id ``ref`` names; raises NotFound or InvalidInput (ambiguous)."""
    ref = (ref or "").strip()
    if not ref:
        raise InvalidInput("name a customer: a customer id, a CRM customer number or channel:external_id")
    if by is not None and by not in BY_CHOICES:
        raise InvalidInput(f"--by must be one of {', '.join(BY_CHOICES)}")
    found: Dict[str, int] = {}
    if by in (None, "identity") and ":" in ref:
        channel, external = ref.split(":", 1)
        identity_customer = session.execute(
            select(ChannelIdentity.customer_id).where(
                ChannelIdentity.channel == channel, ChannelIdentity.external_id == external)
        ).scalar_one_or_none()
        if identity_customer is not None:
            found["identity"] = identity_customer
    if by in (None, "id") and ref.isdigit():
        if session.get(Customer, int(ref)) is not None:
            found["id"] = int(ref)
    if by in (None, "crm"):
        crm_customer = session.execute(
            select(Customer.id).where(Customer.crm_ref == ref).order_by(Customer.id).limit(1)
        ).scalar_one_or_none()
        if crm_customer is not None:
            found["crm"] = crm_customer
    if not found:
        raise NotFound(f"no customer matches {ref!r} (as {by or 'customer id, CRM number or channel:external_id'})")
    if len(set(found.values())) > 1:
        kinds = ", ".join(f"{kind} -> customer {cid}" for kind, cid in sorted(found.items()))
        raise InvalidInput(f"{ref!r} is ambiguous ({kinds}); say which with --by id|crm|identity")
    return next(iter(found.values()))


def customer_group(session: Session, customer_id: int) -> List[int]:
    """The customer and every customer merged into it (transitively), root first."""
    group = [customer_id]
    seen = {customer_id}
    merged = session.execute(select(Customer.id, Customer.flags)).all()
    changed = True
    while changed:
        changed = False
        for cid, flags in merged:
            if cid in seen:
                continue
            targets = {str(f)[len(MERGED_FLAG):] for f in flags or [] if str(f).startswith(MERGED_FLAG)}
            if any(t.isdigit() and int(t) in seen for t in targets):
                group.append(cid)
                seen.add(cid)
                changed = True
    return group


@dataclass
class _Scope:
    customer_ids: List[int]
    identity_ids: List[int]
    conversation_ids: List[int]
    case_ids: List[int]
    draft_ids: List[int]
    message_ids: List[int]
    outbox_ids: List[int]
    contact_ids: List[int]
    senders: List[str]  # Rasa sender ids still to erase (not yet tokenised)
    all_senders: List[str]


def _ids(session: Session, query: Any) -> List[int]:
    return list(session.execute(query).scalars())


def _scope(session: Session, customer_ids: Sequence[int]) -> _Scope:
    customer_ids = list(customer_ids)
    identity_ids = _ids(session, select(ChannelIdentity.id).where(ChannelIdentity.customer_id.in_(customer_ids))
                        .order_by(ChannelIdentity.id))
    conversation_ids = _ids(session, select(Conversation.id).where(
        (Conversation.customer_id.in_(customer_ids)) | (Conversation.identity_id.in_(identity_ids or [-1])))
        .order_by(Conversation.id))
    conv = conversation_ids or [-1]
    case_ids = _ids(session, select(Case.id).where(
        Case.customer_id.in_(customer_ids) | Case.conversation_id.in_(conv)).order_by(Case.id))
    draft_ids = _ids(session, select(Draft.id).where(Draft.conversation_id.in_(conv)).order_by(Draft.id))
    message_ids = _ids(session, select(Message.id).where(Message.conversation_id.in_(conv)).order_by(Message.id))
    broadcast_outbox = _ids(session, select(BroadcastRecipient.outbox_id).where(
        BroadcastRecipient.customer_id.in_(customer_ids), BroadcastRecipient.outbox_id.isnot(None)))
    outbox_ids = _ids(session, select(OutboxItem.id).where(
        OutboxItem.conversation_id.in_(conv) | OutboxItem.message_id.in_(message_ids or [-1])
        | OutboxItem.id.in_(broadcast_outbox or [-1])).order_by(OutboxItem.id))
    contact_ids = _ids(session, select(Contact.id).where(
        Contact.customer_id.in_(customer_ids) | Contact.conversation_id.in_(conv)).order_by(Contact.id))
    all_senders = sorted(set(session.execute(
        select(Conversation.rasa_sender_id).where(Conversation.id.in_(conv))).scalars()))
    senders = [s for s in all_senders if not s.startswith(ERASED_PREFIX)]
    return _Scope(customer_ids, identity_ids, conversation_ids, case_ids, draft_ids, message_ids,
                  outbox_ids, contact_ids, senders, all_senders)


# ---------------------------------------------------------------------------- export


def _value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _row(obj: Any, skip: Iterable[str] = ()) -> Dict[str, Any]:
    skip = set(skip)
    return {c.key: _value(getattr(obj, c.key)) for c in sa_inspect(obj).mapper.column_attrs if c.key not in skip}


def _rows(session: Session, model: Any, condition: Any, skip: Iterable[str] = ()) -> List[Dict[str, Any]]:
    return [_row(o, skip) for o in session.execute(select(model).where(condition).order_by(model.id)).scalars()]


def _audit_condition(scope: _Scope) -> Any:
    return (
        ((AuditEntry.target_type == "customer") & AuditEntry.target_id.in_(scope.customer_ids))
        | ((AuditEntry.target_type == "channel_identity") & AuditEntry.target_id.in_(scope.identity_ids or [-1]))
        | ((AuditEntry.target_type == "conversation") & AuditEntry.target_id.in_(scope.conversation_ids or [-1]))
        | ((AuditEntry.target_type == "case") & AuditEntry.target_id.in_(scope.case_ids or [-1]))
        | ((AuditEntry.target_type == "draft") & AuditEntry.target_id.in_(scope.draft_ids or [-1]))
        | ((AuditEntry.target_type == "contact") & AuditEntry.target_id.in_(scope.contact_ids or [-1]))
    )


def collect_store(session: Session, customer_id: int) -> Dict[str, Any]:
    """Everything the store holds about the customer (and the customers merged into it)."""
    scope = _scope(session, customer_group(session, customer_id))
    conv = scope.conversation_ids or [-1]
    customers = _rows(session, Customer, Customer.id.in_(scope.customer_ids))
    conversations = _rows(session, Conversation, Conversation.id.in_(conv), skip=("lease_owner", "lease_until"))
    messages = _rows(session, Message, Message.id.in_(scope.message_ids or [-1]))
    by_conversation: Dict[int, List[Dict[str, Any]]] = {c["id"]: [] for c in conversations}
    for message in messages:
        by_conversation[message["conversation_id"]].append(message)
    for conversation in conversations:
        conversation["messages"] = by_conversation[conversation["id"]]
    cases = _rows(session, Case, Case.id.in_(scope.case_ids or [-1]))
    notes = _rows(session, CaseNote, CaseNote.case_id.in_(scope.case_ids or [-1]))
    for case in cases:
        case["notes"] = [n for n in notes if n["case_id"] == case["id"]]
    subscriptions = []
    for sub, issue in session.execute(
            select(KnownIssueSubscription, KnownIssue)
            .join(KnownIssue, KnownIssue.id == KnownIssueSubscription.known_issue_id)
            .where(KnownIssueSubscription.customer_id.in_(scope.customer_ids))
            .order_by(KnownIssueSubscription.id)).all():
        row = _row(sub)
        row["known_issue"] = {"id": issue.id, "title": issue.title, "root_cause": issue.root_cause,
                              "status": _value(issue.status)}
        subscriptions.append(row)
    crm_refs = [c["crm_ref"] for c in customers if c.get("crm_ref")]
    crm = []
    if crm_refs:
        for record in session.execute(select(CrmCustomerRecord).where(
                CrmCustomerRecord.customer_number.in_(crm_refs))).scalars():
            row = _row(record)
            row["contracts"] = _rows(session, CrmContract, CrmContract.customer_number == record.customer_number)
            crm.append(row)
    return {
        "customer_id": customer_id,
        "customer_ids": scope.customer_ids,
        "customers": customers,
        "channel_identities": _rows(session, ChannelIdentity, ChannelIdentity.id.in_(scope.identity_ids or [-1])),
        "conversations": conversations,
        "drafts": _rows(session, Draft, Draft.id.in_(scope.draft_ids or [-1])),
        "cases": cases,
        "contacts": _rows(session, Contact, Contact.id.in_(scope.contact_ids or [-1])),
        "known_issue_subscriptions": subscriptions,
        "opt_ins": _rows(session, OptIn, OptIn.customer_id.in_(scope.customer_ids)),
        "broadcast_deliveries": _rows(session, BroadcastRecipient,
                                      BroadcastRecipient.customer_id.in_(scope.customer_ids)),
        "outbox": _rows(session, OutboxItem, OutboxItem.id.in_(scope.outbox_ids or [-1]),
                        skip=("lease_owner", "lease_until")),
        "tracker_events_queued": _rows(session, TrackerEvent,
                                       TrackerEvent.rasa_sender_id.in_(scope.all_senders or ["\x00"])),
        "audit_entries": _rows(session, AuditEntry, _audit_condition(scope)),
        "crm_records": crm,
        "rasa_sender_ids": scope.all_senders,
    }


async def fetch_trackers(rasa_url: str, senders: Sequence[str],
                         timeout_seconds: float = 10.0) -> Tuple[Dict[str, Any], Optional[str]]:
    """Each sender's full Rasa tracker; the error (and no trackers) when Rasa cannot be asked."""
    trackers: Dict[str, Any] = {}
    base = rasa_url.rstrip("/")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as http:
            for sender in senders:
                url = f"{base}/conversations/{quote(sender, safe='')}/tracker?include_events=ALL"
                async with http.get(url) as response:
                    if response.status != 200:
                        return {}, f"Rasa answered {response.status} for the tracker of {sender}"
                    trackers[sender] = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return {}, f"Rasa unreachable at {base}: {type(exc).__name__}: {exc}"
    return trackers, None


async def export_customer(store: Store, ref: str, rasa_url: str, by: Optional[str] = None,
                          timeout_seconds: float = 10.0) -> Dict[str, Any]:
    """The export document; ``document["rasa"]["reachable"]`` says whether the trackers are in."""
    def read(session: Session) -> Dict[str, Any]:
        return collect_store(session, resolve_customer(session, ref, by))

    document = await store.run(read)
    senders = [s for s in document["rasa_sender_ids"] if not s.startswith(ERASED_PREFIX)]
    trackers, error = await fetch_trackers(rasa_url, senders, timeout_seconds)
    document = {
        "format": "webcare-gdpr-export/1",
        "exported_at": utcnow().isoformat(),
        "query": ref,
        **document,
        "rasa": {"url": rasa_url, "reachable": error is None, "error": error,
                 "trackers": trackers if error is None else {}},
    }
    return document


# ---------------------------------------------------------------------------- erase


def _nlu_aggregate(nlu: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Only what statistics need: intent name/confidence, ranking, language."""
    if not isinstance(nlu, dict):
        return None
    kept: Dict[str, Any] = {}
    intent = nlu.get("intent")
    if isinstance(intent, dict):
        kept["intent"] = {"name": intent.get("name"), "confidence": intent.get("confidence")}
    ranking = nlu.get("intent_ranking")
    if isinstance(ranking, list):
        kept["intent_ranking"] = [{"name": r.get("name"), "confidence": r.get("confidence")}
                                  for r in ranking if isinstance(r, dict)]
    language = nlu.get("language")
    if isinstance(language, dict):
        kept["language"] = {"name": language.get("name"), "confidence": language.get("confidence")}
    if nlu.get("service_command") is True:
        kept["service_command"] = True
    kept["erased"] = True
    return kept


def _alternatives_aggregate(alternatives: Any) -> List[Dict[str, Any]]:
    kept = []
    for alternative in alternatives or []:
        if isinstance(alternative, dict):
            kept.append({"intent": alternative.get("intent"), "confidence": alternative.get("confidence")})
    return kept


def _has_table(session: Session, name: str) -> bool:
    return sa_inspect(session.connection()).has_table(name)


def _erase_message(message: Message, now: dt.datetime) -> None:
    """The row, direction, timestamps and intent stay; what was said goes."""
    kind = (message.payload or {}).get("kind") if isinstance(message.payload, dict) else None
    message.text = None
    message.payload = {"erased": True, **({"kind": kind} if isinstance(kind, str) else {})}
    message.channel_message_id = None
    message.last_error = None
    message.nlu = _nlu_aggregate(message.nlu)
    if message.direction == Direction.inbound and message.status == InboundStatus.received.value:
        message.status, message.processed_at = InboundStatus.processed.value, now


def erase_outbox_item(session: Session, item: OutboxItem, now: Optional[dt.datetime] = None) -> bool:
    """Blank an outbox item of an erased customer; a pending one is cancelled (never sent, its
    logged message erased and failed). True when it was cancelled now. Caller's transaction."""
    item.recipient = "erased"
    item.payload = {"erased": True}
    item.channel_message_id = None
    if item.status != OutboxStatus.pending:
        if item.last_error and item.last_error not in (CANCELLED, SENT_WHILE_ERASED):
            item.last_error = "erased"
        return False
    item.status, item.last_error = OutboxStatus.failed, CANCELLED
    item.lease_owner = item.lease_until = None
    if item.message_id is not None:
        message = session.get(Message, item.message_id)
        if message is not None:
            _erase_message(message, now or utcnow())
            message.status = "failed"
    return True


def is_erased(flags: Any) -> bool:
    """Whether a customer's ``flags`` mark it erased."""
    return isinstance(flags, list) and ERASED_FLAG in flags


@dataclass
class EraseResult:
    customer_id: int
    customer_ids: List[int]
    already_erased: bool
    senders: List[str]  # Rasa sender ids whose tracker must be erased through the API
    counts: Dict[str, int] = field(default_factory=dict)
    contact_ids: List[int] = field(default_factory=list)  # whose CSAT comments digests may quote
    comment_texts: List[str] = field(default_factory=list)  # those comments (only in memory)


def erase_store(session: Session, customer_id: int, actor_id: Optional[int] = None,
                operator: Optional[str] = None, include_crm: bool = False) -> EraseResult:
    """Erase the customer's personal data from the store, in the caller's (one) transaction.

    Idempotent: a second run changes nothing more (and records no second ``gdpr.erase``).
    Conversations keep their Rasa sender id until :func:`mark_trackers_erased` — that is the
    list of trackers still to erase.
    """
    root = session.execute(select(Customer).where(Customer.id == customer_id).with_for_update()).scalar_one_or_none()
    if root is None:
        raise NotFound(f"no customer {customer_id}")
    already = ERASED_FLAG in (root.flags or [])
    scope = _scope(session, customer_group(session, customer_id))
    now = utcnow()
    counts: Dict[str, int] = {}
    conv = scope.conversation_ids or [-1]

    crm_refs = [r for r in session.execute(select(Customer.crm_ref).where(
        Customer.id.in_(scope.customer_ids), Customer.crm_ref.isnot(None))).scalars()]

    # customers and their channel identities: nobody can be looked up, a returning customer starts fresh
    for customer in session.execute(select(Customer).where(Customer.id.in_(scope.customer_ids))).scalars():
        customer.display_name = None
        customer.crm_ref = None
        customer.flags = [ERASED_FLAG]
    for identity in session.execute(
            select(ChannelIdentity).where(ChannelIdentity.id.in_(scope.identity_ids or [-1]))).scalars():
        if not identity.external_id.startswith(ERASED_PREFIX):
            identity.external_id = _token()
        identity.display_name = None
        identity.reachable = False
    counts["identities"] = len(scope.identity_ids)

    # conversations: closed, back to the bot, nothing pending
    session.execute(update(Conversation).where(Conversation.id.in_(conv)).values(
        mode=Mode.bot, assigned_agent_id=None, lease_owner=None, lease_until=None,
        csat_contact_id=None, csat_comment_until=None,
    ).execution_options(synchronize_session=False))
    session.execute(update(Conversation).where(Conversation.id.in_(conv), Conversation.closed_at.is_(None))
                    .values(closed_at=now).execution_options(synchronize_session=False))

    # messages: rows, direction, timestamps and intents stay; what was said goes
    for message in session.execute(select(Message).where(Message.id.in_(scope.message_ids or [-1]))).scalars():
        _erase_message(message, now)
    counts["messages"] = len(scope.message_ids)

    for draft in session.execute(select(Draft).where(Draft.id.in_(scope.draft_ids or [-1]))).scalars():
        draft.messages = []
        draft.alternatives = _alternatives_aggregate(draft.alternatives)
        draft.final_text = None
        if draft.status == DraftStatus.pending:
            draft.status = DraftStatus.superseded
    counts["drafts"] = len(scope.draft_ids)

    for case in session.execute(select(Case).where(Case.id.in_(scope.case_ids or [-1]))).scalars():
        case.trigger_details = {}
        case.snapshot = {}
        case.resolution = None
        case.crm_profile = None
        case.slots = None
        if case.crm_status == "pending":
            case.crm_status = "erased"
        if case.status != CaseStatus.closed:
            case.status, case.closed_at = CaseStatus.closed, now
    session.execute(update(CaseNote).where(CaseNote.case_id.in_(scope.case_ids or [-1]))
                    .values(text="").execution_options(synchronize_session=False))
    counts["cases"] = len(scope.case_ids)

    # the comments' texts, for digests written before their quotes carried the contact id
    comment_texts = sorted(set(session.execute(select(Contact.csat_comment).where(
        Contact.id.in_(scope.contact_ids or [-1]), Contact.csat_comment.isnot(None))).scalars()))
    session.execute(update(Contact).where(Contact.id.in_(scope.contact_ids or [-1]))
                    .values(csat_comment=None).execution_options(synchronize_session=False))
    counts["contacts"] = len(scope.contact_ids)

    counts["subscriptions"] = session.execute(delete(KnownIssueSubscription).where(
        KnownIssueSubscription.customer_id.in_(scope.customer_ids))).rowcount or 0
    counts["opt_ins"] = session.execute(delete(OptIn).where(OptIn.customer_id.in_(scope.customer_ids))).rowcount or 0
    session.execute(update(BroadcastRecipient).where(
        BroadcastRecipient.customer_id.in_(scope.customer_ids), BroadcastRecipient.status == "pending")
        .values(status="skipped", error="customer data erased", updated_at=now)
        .execution_options(synchronize_session=False))
    session.execute(update(BroadcastRecipient).where(
        BroadcastRecipient.outbox_id.in_(scope.outbox_ids or [-1]), BroadcastRecipient.status == "queued")
        .values(status="failed", error="customer data erased", updated_at=now)
        .execution_options(synchronize_session=False))

    # outbox: pending items are cancelled here, in this transaction; a dispatcher that claimed one
    # already finds it cancelled when it checks right before sending (bot/pipeline/dispatcher.py)
    cancelled = [item.id for item in session.execute(
        select(OutboxItem).where(OutboxItem.id.in_(scope.outbox_ids or [-1])).order_by(OutboxItem.id)).scalars()
        if erase_outbox_item(session, item, now)]
    counts["outbox"] = len(scope.outbox_ids)
    counts["outbox_cancelled"] = len(cancelled)

    counts["tracker_events"] = session.execute(delete(TrackerEvent).where(
        TrackerEvent.rasa_sender_id.in_(scope.all_senders or ["\x00"]))).rowcount or 0

    for entry in session.execute(select(AuditEntry).where(_audit_condition(scope))).scalars():
        if entry.action.startswith("gdpr."):
            continue
        details = entry.details if isinstance(entry.details, dict) else {}
        kept = {k: v for k, v in details.items() if k in SAFE_AUDIT_KEYS
                and (v is None or isinstance(v, (int, float, bool)) or k in (
                    "action", "channel", "intent", "intent_after", "intent_before", "mode_before",
                    "root_cause", "suggested", "trigger"))}
        if kept != details:
            entry.details = {**kept, "erased": True}

    if include_crm and crm_refs:
        session.execute(delete(CrmContract).where(CrmContract.customer_number.in_(crm_refs)))
        counts["crm_customers"] = session.execute(delete(CrmCustomerRecord).where(
            CrmCustomerRecord.customer_number.in_(crm_refs))).rowcount or 0

    # Rasa's SQL tracker store in the same database: its save() only appends, so the API's
    # "replace events" cannot empty it; delete the rows here, in the same transaction.
    if scope.senders and _has_table(session, RASA_EVENTS_TABLE):
        counts["rasa_events"] = session.execute(
            sql_text(f"DELETE FROM {RASA_EVENTS_TABLE} WHERE sender_id IN :senders")
            .bindparams(bindparam("senders", expanding=True)), {"senders": list(scope.senders)}).rowcount or 0

    if not already:
        audit.record(session, actor_id, "gdpr.erase", "customer", customer_id, {
            "customer_ids": scope.customer_ids,
            "operator": operator,
            "rasa_trackers": len(scope.senders),
            "outbox_cancelled": cancelled,
        })
    elif cancelled:  # queued after the first erase by work that was already under way
        audit.record(session, actor_id, OUTBOX_AUDIT, "customer", customer_id, {"outbox_cancelled": cancelled})
    session.flush()
    return EraseResult(customer_id, scope.customer_ids, already, list(scope.senders), counts,
                       list(scope.contact_ids), comment_texts)


def mark_trackers_erased(session: Session, customer_id: int, senders: Sequence[str]) -> int:
    """Rasa erased these trackers: the conversations' sender ids become tokens too."""
    if not senders:
        return 0
    scope = _scope(session, customer_group(session, customer_id))
    changed = 0
    for conversation in session.execute(select(Conversation).where(
            Conversation.id.in_(scope.conversation_ids or [-1]),
            Conversation.rasa_sender_id.in_(list(senders)))).scalars():
        conversation.rasa_sender_id = _token()
        changed += 1
    if changed:
        audit.record(session, None, "gdpr.erase.tracker", "customer", customer_id, {"trackers": len(set(senders))})
    return changed


def pending_senders(session: Session, customer_id: int) -> List[str]:
    return _scope(session, customer_group(session, customer_id)).senders


async def erase_trackers(rasa_url: str, senders: Sequence[str],
                         timeout_seconds: float = 10.0) -> Tuple[List[str], Dict[str, str]]:
    """Replace each tracker's events by none; (erased senders, {sender: why not})."""
    base = rasa_url.rstrip("/")
    done: List[str] = []
    failed: Dict[str, str] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as http:
            for sender in senders:
                url = f"{base}/conversations/{quote(sender, safe='')}/tracker/events?include_events=NONE"
                try:
                    async with http.put(url, json=[]) as response:
                        if response.status >= 300:
                            failed[sender] = f"Rasa answered {response.status}: {(await response.text())[:200]}"
                            continue
                    # check: a tracker store that only appends would still hold what was said
                    check = f"{base}/conversations/{quote(sender, safe='')}/tracker?include_events=ALL"
                    async with http.get(check) as response:
                        tracker = await response.json(content_type=None) if response.status == 200 else None
                    left = [e for e in (tracker or {}).get("events") or []
                            if isinstance(e, dict) and e.get("event") in ("user", "bot")]
                    if tracker is None:
                        failed[sender] = "could not read the tracker back after erasing it"
                    elif left:
                        failed[sender] = (f"the tracker still holds {len(left)} user/bot event(s) after the "
                                          "PUT (a tracker store that only appends); erase them there")
                    else:
                        done.append(sender)
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                    failed[sender] = f"Rasa unreachable at {base}: {type(exc).__name__}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # pragma: no cover - session setup
        for sender in senders:
            failed.setdefault(sender, f"Rasa unreachable at {base}: {type(exc).__name__}")
    return done, failed


def digest_sinks(configured: Sequence[Mapping[str, Any]]) -> Tuple[List[ReportSink], List[str]]:
    """``reports.sinks`` for an erase, each entry built on its own (a webhook sink whose secret is
    not in this shell's environment must not stop the erase); (sinks, entries that could not be built)."""
    sinks: List[ReportSink] = []
    unbuilt: List[str] = []
    for index, options in enumerate(configured or [], start=1):
        try:
            sinks.extend(build_sinks([options]))
        except ReportSinkError as exc:
            kind = options.get("type") if isinstance(options, Mapping) else None
            unbuilt.append(f"reports.sinks entry {index} ({kind}): not built: {exc}")
    return sinks, unbuilt


def _recorded_file_sinks(session: Session) -> List[str]:
    """Directories of file sinks the scheduler delivered to (``report_digests``), configured or not."""
    directories = set()
    for details in session.execute(select(ReportDigest.details)).scalars():
        for delivery in (details or {}).get("deliveries") or []:
            sink = str(delivery.get("sink") or "") if isinstance(delivery, dict) else ""
            if sink.startswith("file:"):
                directories.add(sink[len("file:"):])
    return sorted(directories)


async def erase_digests(sinks: Sequence[ReportSink], contact_ids: Sequence[int], texts: Sequence[str]
                        ) -> Tuple[int, List[str], Dict[str, str]]:
    """Blank the contacts' comments in the digests each sink keeps; (digests rewritten, sinks whose
    digests cannot be recalled, {sink: why it failed})."""
    rewritten, unreachable, failed = 0, [], {}
    for sink in sinks:
        name = sink.describe()
        try:
            changed = await sink.erase_comments(set(contact_ids), set(texts))
        except Exception as exc:  # a sink (or a plugin) that fails must not hide the others
            logger.exception("gdpr erase: report sink %s failed", name)
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        if changed is None:
            unreachable.append(name)
        else:
            rewritten += changed
    return rewritten, sorted(set(unreachable)), failed


@dataclass
class EraseReport:
    customer_id: int
    customer_ids: List[int]
    already_erased: bool
    counts: Dict[str, int]
    trackers_erased: List[str]
    trackers_pending: Dict[str, str]  # sender id -> why it is still to erase
    digests_redacted: int = 0  # stored digests rewritten without the customer's comments
    digests_pending: Dict[str, str] = field(default_factory=dict)  # report sink -> why it failed
    digest_sinks_not_recalled: List[str] = field(default_factory=list)  # delivered elsewhere: out of reach

    @property
    def complete(self) -> bool:
        return not self.trackers_pending and not self.digests_pending

    def as_dict(self) -> Dict[str, Any]:
        return {"customer_id": self.customer_id, "customer_ids": self.customer_ids,
                "already_erased": self.already_erased, "counts": self.counts,
                "rasa_trackers_erased": len(self.trackers_erased),
                "rasa_trackers_pending": self.trackers_pending,
                "digests_redacted": self.digests_redacted, "digests_pending": self.digests_pending,
                "digest_sinks_not_recalled": self.digest_sinks_not_recalled, "complete": self.complete}


async def erase_customer(store: Store, ref: str, rasa_url: str, by: Optional[str] = None,
                         actor_id: Optional[int] = None, operator: Optional[str] = None,
                         include_crm: bool = False, timeout_seconds: float = 10.0,
                         sinks: Sequence[ReportSink] = ()) -> EraseReport:
    """Erase the store (one transaction), then the Rasa trackers and the digests the report
    ``sinks`` (and file sinks recorded in ``report_digests``) keep; re-run to finish what failed."""
    if operator is None:
        try:
            operator = getpass.getuser()
        except Exception:  # pragma: no cover - no user name in this environment
            operator = None

    def run(session: Session) -> EraseResult:
        return erase_store(session, resolve_customer(session, ref, by), actor_id, operator, include_crm)

    result = await store.run(run)
    done, failed = await erase_trackers(rasa_url, result.senders, timeout_seconds) if result.senders else ([], {})
    if done:
        await store.run(mark_trackers_erased, result.customer_id, done)

    every_sink = list(sinks)
    known = {sink.describe() for sink in every_sink}
    for directory in await store.run(_recorded_file_sinks):
        sink = FileSink(Path(directory))
        if sink.describe() not in known:
            every_sink.append(sink)
            known.add(sink.describe())
    rewritten, not_recalled, digests_failed = await erase_digests(
        every_sink, result.contact_ids, result.comment_texts)
    return EraseReport(result.customer_id, result.customer_ids, result.already_erased, result.counts, done, failed,
                       rewritten, digests_failed, not_recalled)
