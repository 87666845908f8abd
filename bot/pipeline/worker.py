"""The intake worker: answers committed customer messages, one conversation at a time, in order.

A worker claims a conversation with unprocessed messages by taking a time-limited lease on it
(candidates read with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas claiming at
the same moment pass each other instead of queueing; then an atomic ``UPDATE … WHERE lease
expired``). Several workers and service replicas run side by side; a live worker renews the
leases of the conversations it is working on every few seconds, so a crashed (kill -9) one's
conversations are picked up again by another within :data:`LEASE_SECONDS`.
For each message, in order: Rasa (through webcare's channel) → drafting policy → outbox or
draft queue. A Rasa outage leaves the message ``received`` and retries it with backoff.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from bot.cases.escalation import CaseSettings, default_settings, has_open_case, open_case
from bot.customer_texts import customer_text
from bot.customers.contacts import record_comment
from bot.pipeline.drafting_policy import Decision, DraftingPolicy
from bot.protocol import read_instructions
from bot.pipeline.leases import LEASE_SECONDS, claim_conversations, release, renew_leases
from bot.pipeline.outbox import enqueue, enqueue_all
from bot.outreach.known_issues import known_issue_reply
from bot.pipeline.rasa_client import RasaClient, RasaRejected, RasaReply, RasaUnavailable
from bot.pipeline.service_buttons import parse_command
from bot.pipeline.service_commands import carry_out
from bot.store.database import Store
from bot.pipeline.tracker_sync import TrackerSync, has_pending
from bot.store.models import (
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    Draft,
    DraftStatus,
    InboundStatus,
    Message,
    Mode,
    Purpose,
    Visibility,
    utcnow,
)
from bot.cases.escalation import tracker_events
from bot.privacy import personal_data

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0  # a live worker renews its leases this often
MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class Job:
    """One customer message to answer, with what the worker needs to know about it."""

    message_id: int
    conversation_id: int
    text: str
    kind: str
    truncated: bool
    attempts: int
    channel: str
    recipient: str
    rasa_sender_id: str
    mode: Mode
    language: Optional[str]
    language_hint: Optional[str]
    attachment: Optional[str] = None  # photo, voice, document, ... for kind "attachment"
    command: Optional[str] = None  # a channel command such as Telegram's /start
    tracker_pending: bool = False  # tracker events (pause/resume/agent reply) not yet in Rasa
    csat_comment_open: bool = False  # the customer just rated us: this may be their comment


Identify = Callable[[Job, Dict[str, Any]], Awaitable[Any]]  # (job, request) -> outcome


class Applied(NamedTuple):
    """What :func:`apply_reply` did."""

    queued: bool  # something went to the outbox
    next_job: Optional[Job]  # the conversation's next message (None: lease released)
    case_id: Optional[int] = None  # a case opened by this reply (to enrich with CRM data)
    identify: Optional[Dict[str, Any]] = None  # an action asked to identify the customer


class Worker:
    """Claims conversations with unprocessed messages and answers them."""

    def __init__(
        self,
        store: Store,
        rasa: RasaClient,
        policy: DraftingPolicy,
        concurrency: int = 8,
        owner: Optional[str] = None,
        cases: Optional[CaseSettings] = None,
        tracker_sync: Optional[TrackerSync] = None,
        max_attempts: int = 10,
        identify: Optional[Identify] = None,
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts  # Rasa unreachable this many times: an agent answers
        self.rasa = rasa
        self.policy = policy
        self.concurrency = concurrency
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.cases = cases or default_settings()
        self.tracker_sync = tracker_sync
        # carries out an action's "identify" request (a CRM look-up) before the next message
        self.identify = identify
        self._wake = asyncio.Event()
        self._active: Dict[int, asyncio.Task] = {}
        self._tasks: Set[asyncio.Task] = set()

    def wake(self) -> None:
        """A new message was committed: look for work now."""
        self._wake.set()

    def has_capacity(self) -> bool:
        """Whether this worker can take one more conversation right now."""
        return self.free_capacity() > 0

    def free_capacity(self) -> int:
        """How many more conversations this worker can take right now."""
        return max(0, self.concurrency - len(self._active))

    def submit(self, job: Job) -> None:
        """Process a conversation intake already leased for us, starting with ``job``."""
        self._start(job.conversation_id, job)

    def _start(self, conversation_id: int, first: Optional[Job] = None) -> None:
        task = asyncio.create_task(self._process(conversation_id, first))
        self._active[conversation_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Work until cancelled."""
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + HEARTBEAT_SECONDS
        while True:
            if loop.time() >= next_heartbeat:
                next_heartbeat = loop.time() + HEARTBEAT_SECONDS
                if self._active:
                    try:
                        await self.store.run(renew_leases, self.owner, list(self._active))
                    except Exception:
                        logger.exception("worker: renewing leases failed; retrying")
            free = self.free_capacity()
            claimed: List[int] = []
            if free > 0:
                try:
                    claimed = await self.store.run(claim_conversations, self.owner, free)
                except Exception:
                    logger.exception("worker: claiming work failed; retrying")
                    await asyncio.sleep(1.0)
            for conversation_id in claimed:
                self._start(conversation_id)
            if not claimed:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass

    async def stop(self) -> None:
        """Cancel in-flight work; unfinished messages stay ``received`` for the next run."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _process(self, conversation_id: int, job: Optional[Job] = None) -> None:
        delay = 0.0
        released = False
        try:
            if job is None:
                job = await self.store.run(next_job, conversation_id, self.owner)
            while job is not None:
                if job.kind == "attachment":
                    await self.store.run(route_attachment, job)
                    job = await self.store.run(next_job, conversation_id, self.owner)
                    continue
                if job.kind not in ("text", "button"):
                    await self.store.run(route_to_agent, job)
                    job = await self.store.run(next_job, conversation_id, self.owner)
                    continue
                command = parse_command(job.kind, job.text)
                if command is not None:  # the service's own buttons, "stop": never to Rasa
                    await self.store.run(carry_out, job, command, self.cases)
                    job = await self.store.run(next_job, conversation_id, self.owner)
                    continue
                if job.csat_comment_open and job.kind == "text":
                    await self.store.run(record_comment, job)
                try:
                    if job.tracker_pending and self.tracker_sync is not None:
                        # a pause/resume/agent reply must reach the tracker before this message
                        await self.tracker_sync.flush(job.rasa_sender_id)
                    # In human mode too: the paused tracker logs the message (no prediction),
                    # and the parse gives the agent the intent of every customer turn.
                    reply = await self.rasa.send(
                        job.rasa_sender_id,
                        rasa_text(job),
                        str(job.message_id),
                        {"language": job.language_hint, "conversation_language": job.language,
                         "webcare_message_id": job.message_id},
                    )
                except RasaUnavailable as exc:
                    if job.attempts + 1 >= self.max_attempts:
                        # Rasa has been down for minutes: a person answers instead of nobody.
                        logger.error("worker: %s; message %s handed to an agent after %d tries",
                                     exc, job.message_id, job.attempts + 1)
                        await self.store.run(fail_to_agent, job, str(exc), self.cases, "rasa_unavailable")
                        job = await self.store.run(next_job, conversation_id, self.owner)
                        continue
                    delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(job.attempts, 5))
                    logger.warning("worker: %s; message %s retried in %.0f s", exc, job.message_id, delay)
                    await self.store.run(record_failure, job.message_id, str(exc))
                    break
                except RasaRejected as exc:
                    logger.error("worker: message %s refused by Rasa: %s", job.message_id, exc)
                    await self.store.run(fail_to_agent, job, str(exc), self.cases)
                    job = await self.store.run(next_job, conversation_id, self.owner)
                    continue
                # One transaction: the reply, then the next message or the lease released.
                current = job
                applied = await self.store.run(
                    apply_reply, job, reply, self.policy, self.owner, self.cases)
                job = applied.next_job
                released = job is None
                if applied.identify is not None and self.identify is not None:
                    await self.identify(current, applied.identify)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("worker: conversation %s failed; it will be retried", conversation_id)
            delay = 5.0
        finally:
            if self._active.get(conversation_id) is asyncio.current_task():
                del self._active[conversation_id]
            if not released:
                try:
                    await self.store.run(release, conversation_id, self.owner, delay)
                except Exception:
                    logger.exception("worker: could not release conversation %s", conversation_id)


def rasa_text(job: Job) -> str:
    """What Rasa gets for a customer message.

    Button presses carry an intent payload ("/affirm") and go as they are; a customer's own
    text never does: Rasa would take "/complaint" typed by a customer as that intent at full
    confidence, skipping NLU, so leading slashes are dropped. A channel's "start" command
    (Telegram's /start, every new user's first message) is a greeting.
    """
    if job.kind == "button":
        return job.text
    if job.command == "start":
        return "/greet"
    return job.text.lstrip("/").strip() or job.text


# ---------------------------------------------------------------- units of work


def next_job(session: Session, conversation_id: int, owner: str) -> Optional[Job]:
    """The conversation's oldest unprocessed message, if we still hold the lease."""
    conversation = session.get(Conversation, conversation_id, populate_existing=True)
    if conversation is None or conversation.lease_owner != owner:
        return None
    conversation.lease_until = utcnow() + dt.timedelta(seconds=LEASE_SECONDS)
    message = session.execute(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.inbound,
            Message.status == InboundStatus.received.value,
        )
        .order_by(Message.id)
        .limit(1)
    ).scalar_one_or_none()
    if message is None:
        return None
    return build_job(session, conversation, message)


def build_job(session: Session, conversation: Conversation, message: Message,
              tracker_pending: Optional[bool] = None) -> Job:
    """The Job for ``message`` of ``conversation`` (whose lease the caller holds).

    ``tracker_pending``: known by the caller (a first contact has no tracker events), else read.
    """
    identity = session.get(ChannelIdentity, conversation.identity_id)
    return Job(
        message_id=message.id,
        conversation_id=conversation.id,
        text=message.text or "",
        kind=(message.payload or {}).get("kind", "text"),
        truncated=bool((message.payload or {}).get("truncated")),
        attempts=message.attempts,
        channel=conversation.channel,
        recipient=identity.external_id,
        rasa_sender_id=conversation.rasa_sender_id,
        mode=conversation.mode,
        language=conversation.language,
        language_hint=message.language_hint,
        attachment=((message.payload or {}).get("metadata") or {}).get("attachment"),
        command=((message.payload or {}).get("metadata") or {}).get("command"),
        tracker_pending=(has_pending(session, conversation.rasa_sender_id)
                         if tracker_pending is None else tracker_pending),
        csat_comment_open=bool(conversation.csat_contact_id and conversation.csat_comment_until
                               and conversation.csat_comment_until > utcnow()),
    )


def record_failure(session: Session, message_id: int, error: str) -> None:
    message = session.get(Message, message_id)
    if message is not None:
        message.attempts += 1
        message.last_error = error[:2000]


def route_to_agent(session: Session, job: Job) -> None:
    """Human-held conversation (or a non-text message): no bot reply; the agent sees it."""
    message = session.get(Message, job.message_id)
    if message is not None and message.status == InboundStatus.received.value:
        message.status = InboundStatus.processed.value
        message.processed_at = utcnow()


ATTACHMENT_NAMES = {
    "photo": {"nl": "foto", "en": "photo"},
    "sticker": {"nl": "sticker", "en": "sticker"},
    "voice": {"nl": "spraakbericht", "en": "voice message"},
    "document": {"nl": "document", "en": "document"},
    "location": {"nl": "locatie", "en": "location"},
    "video": {"nl": "video", "en": "video"},
    "video_note": {"nl": "videobericht", "en": "video message"},
    "animation": {"nl": "GIF", "en": "GIF"},
    "audio": {"nl": "audiobestand", "en": "audio file"},
    "contact": {"nl": "contactkaart", "en": "contact card"},
    "venue": {"nl": "locatie", "en": "location"},
    "story_mention": {"nl": "vermelding in je story", "en": "story mention"},
    "story_reply": {"nl": "reactie op onze story", "en": "story reply"},
    "file": {"nl": "bestand", "en": "file"},
    "unsupported": {"nl": "bericht", "en": "message"},
    "mention": {"nl": "vermelding", "en": "mention"},
}


def route_attachment(session: Session, job: Job) -> bool:
    """A photo, voice message, document, ...: acknowledge it and put it before an agent.

    The bot cannot read attachments, so the customer is told we received it and an agent
    gets it in the draft queue (an empty draft: the agent writes the reply). In a
    conversation a human already holds, the agent sees it there and nothing else is sent.
    """
    message = session.get(Message, job.message_id)
    if message is None or message.status != InboundStatus.received.value:
        return False
    message.status = InboundStatus.processed.value
    message.processed_at = utcnow()
    if job.mode == Mode.human:
        return False
    conversation = session.get(Conversation, job.conversation_id)
    language = conversation.language or job.language_hint
    names = ATTACHMENT_NAMES.get(job.attachment or "", {"nl": "bestand", "en": "file"})
    kind = names.get(language or "nl", names["nl"])
    if conversation.visibility != Visibility.public:  # in public an agent answers, nothing automatic
        enqueue(session, key=f"ack:{message.id}", channel=job.channel, recipient=job.recipient,
                payload={"text": customer_text("attachment_received", language, kind=kind)},
                source="bot", conversation_id=conversation.id, purpose=Purpose.ack)
    session.add(Draft(
        conversation_id=conversation.id,
        inbound_message_id=message.id,
        messages=[],
        reason=f"the customer sent a {names['en']}: the bot cannot read it, an agent must answer",
    ))
    return True


def fail_to_agent(session: Session, job: Job, error: str,
                  settings: Optional[CaseSettings] = None, reason: str = "rasa_refused") -> Optional[int]:
    """Rasa refused the message (or stayed unreachable): open a case so nobody is left waiting;
    returns a new case's id."""
    message = session.get(Message, job.message_id)
    if message is None or message.status != InboundStatus.received.value:
        return None
    message.status = InboundStatus.failed.value
    message.last_error = error[:2000]
    message.processed_at = utcnow()
    case, created = open_case(session, job.conversation_id, reason, settings or default_settings(),
                              {"error": error[:500], "message_id": job.message_id})
    return case.id if created else None


def _visible(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The messages a customer sees (custom payloads are instructions for the service)."""
    visible = []
    for message in messages:
        shown = {k: v for k, v in message.items() if k in ("text", "buttons", "image") and v}
        if shown:
            visible.append(shown)
    return visible


def apply_reply(
    session: Session, job: Job, reply: RasaReply, policy: DraftingPolicy, owner: str,
    settings: Optional[CaseSettings] = None,
) -> Applied:
    """Record the parse, auto-send, draft or hand over, and move on in the same transaction.

    Returns what was done and the conversation's next message (``None``: nothing left, and
    the lease has been released).
    """
    queued, case_id, identify = _apply(session, job, reply, policy, settings or default_settings())
    # Usually nothing else waits: one conditional UPDATE gives the lease back unless another
    # message of the conversation is still unprocessed (then that one is the next job).
    released = session.execute(
        _RELEASE_IF_IDLE, {"conversation_id": job.conversation_id, "owner": owner}).rowcount == 1
    following = None if released else next_job(session, job.conversation_id, owner)
    if following is None and not released:
        release(session, job.conversation_id, owner, 0)
    return Applied(queued, following, case_id, identify)


# The statements of the reply path, built once (values come as parameters).
_CLAIM_MESSAGE = (
    update(Message)
    .where(Message.id == bindparam("message_id"), Message.status == InboundStatus.received.value)
    .values(status=InboundStatus.processed.value, processed_at=bindparam("p_processed_at"), nlu=bindparam("p_nlu"))
    .execution_options(synchronize_session=False)
)
_CONVERSATION_FOR_REPLY = (
    select(Conversation.id, Conversation.mode, Conversation.language, Conversation.rasa_sender_id,
           Conversation.visibility, Customer.flags)
    .join(Customer, Customer.id == Conversation.customer_id)
    .where(Conversation.id == bindparam("conversation_id"))
    .with_for_update(of=Conversation)
)
# The lease goes back unless another message of the conversation is still unprocessed.
_RELEASE_IF_IDLE = (
    update(Conversation)
    .where(
        Conversation.id == bindparam("conversation_id"),
        Conversation.lease_owner == bindparam("owner"),
        ~select(Message.id).where(
            Message.conversation_id == bindparam("conversation_id"),
            Message.direction == Direction.inbound,
            Message.status == InboundStatus.received.value,
        ).exists(),
    )
    .values(lease_owner=None, lease_until=None)
    .execution_options(synchronize_session=False)
)


def has_received(session: Session, conversation_id: int, before: Optional[int] = None) -> bool:
    """Whether the conversation has an unprocessed customer message (older than ``before``)."""
    query = select(Message.id).where(
        Message.conversation_id == conversation_id,
        Message.direction == Direction.inbound,
        Message.status == InboundStatus.received.value,
    )
    if before is not None:
        query = query.where(Message.id < before)
    return session.execute(query.limit(1)).first() is not None


def _apply(
    session: Session, job: Job, reply: RasaReply, policy: DraftingPolicy, settings: CaseSettings
) -> Tuple[bool, Optional[int], Optional[Dict[str, Any]]]:
    # Write first: the conditional UPDATE claims the message and takes the database's write
    # lock (SQLite) before the conversation's mode is read, and the conversation row is
    # locked (PostgreSQL), so a case opened meanwhile by an agent is seen here: no bot reply
    # can slip out after a human took over.
    claimed = session.execute(_CLAIM_MESSAGE, {
        "message_id": job.message_id, "p_processed_at": utcnow(), "p_nlu": reply.parse,
    })
    if claimed.rowcount != 1:
        return False, None, None  # already handled (another worker after a lease expiry)
    # One read for the conversation (row-locked on PostgreSQL) and its customer's flags.
    row = session.execute(_CONVERSATION_FOR_REPLY, {"conversation_id": job.conversation_id}).one()
    conversation_id, mode, language = row.id, Mode(row.mode), row.language
    new_language = reply.language or (job.language_hint if not language else None)
    if new_language and new_language != language:
        language = new_language
        session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(language=language)
            .execution_options(synchronize_session=False)
        )

    if mode == Mode.human:
        # A human holds the conversation: the bot never answers (whatever Rasa returned);
        # the agent sees the message in the case, with its intent. A conversation handed over
        # before cases existed gets its case now, so an agent sees it.
        if not has_open_case(session, conversation_id):
            case, created = open_case(session, conversation_id, "handover", settings, {"message_id": job.message_id})
            return True, (case.id if created else None), None
        if _visible(reply.messages):
            # Rasa predicted answers, so its tracker is not paused (e.g. a new Rasa session
            # began): pause it again; the answers themselves are never sent.

            tracker_events(session, row.rasa_sender_id, [{"event": "pause"}])
        return False, None, None

    queued = False
    if job.truncated:
        enqueue(session, key=f"notice:{job.message_id}:too_long", channel=job.channel, recipient=job.recipient,
                payload={"text": customer_text("message_too_long", language)},
                source="bot", conversation_id=conversation_id, purpose=Purpose.notice)
        queued = True

    visible = _visible(reply.messages)
    instructions = read_instructions(reply.messages)
    if instructions.handover is not None:
        # The customer gets the service's handover notice with the expected wait; what the
        # bot would have said is kept in the case for the agent.
        details = {**instructions.handover.details, "intent": reply.intent, "confidence": reply.confidence,
                   "message_id": job.message_id}
        case, created = open_case(session, conversation_id, instructions.handover.reason, settings, details,
                                  bot_suggestion=visible)
        return True, (case.id if created else None), None
    identify = dict(instructions.identify) if instructions.identify is not None else None
    known = known_issue_reply(session, reply.intent, language, settings.taxonomy)
    if known is not None and visible:
        visible = known  # an open known issue: its text and the offer to tell them when it's fixed

    decision = policy.decide(
        intent=reply.intent, confidence=reply.confidence, mode=mode,
        channel=job.channel, customer_flags=row.flags or [], public=row.visibility == Visibility.public,
    )
    if decision.auto_send and row.visibility == Visibility.public:
        leaked = personal_data.find(" ".join(str(m.get("text") or "") for m in visible))
        if leaked:  # never published without a person: the agent decides
            kinds = ", ".join(dict.fromkeys(f.kind.replace("_", " ") for f in leaked))
            decision = Decision(False, f"a public reply with personal data ({kinds}): reviewed")
    if visible and not decision.silent:
        if decision.auto_send:
            enqueue_all(session, [(f"reply:{job.message_id}:{index}", payload) for index, payload in enumerate(visible)],
                        channel=job.channel, recipient=job.recipient, source="bot",
                        conversation_id=conversation_id)
            queued = True
        else:
            session.execute(
                update(Draft)
                .where(Draft.conversation_id == conversation_id, Draft.status == DraftStatus.pending)
                .values(status=DraftStatus.superseded)
                .execution_options(synchronize_session=False)
            )
            session.add(Draft(
                conversation_id=conversation_id,
                inbound_message_id=job.message_id,
                messages=visible,
                intent=reply.intent,
                confidence=reply.confidence,
                alternatives=reply.alternatives[:3],
                reason=decision.reason,
            ))
    elif not visible and not decision.silent and identify is None:
        # Rasa answered nothing (e.g. a tracker still paused for a moment after a case
        # closed): an agent answers instead, so the customer is never left waiting.
        session.add(Draft(
            conversation_id=conversation_id, inbound_message_id=job.message_id, messages=[],
            intent=reply.intent, confidence=reply.confidence, alternatives=reply.alternatives[:3],
            reason="the bot had no answer to this message: an agent must answer",
        ))
    return queued, None, identify
