"""``webcare bench days``: simulated working days of the learning loop, end to end.

The real service runs as a subprocess (``python -m bot service``) against a Rasa server and
action server started for the run; its one channel is a signed webhook whose platform is
:class:`~bot.bench.load.LoadPlatform` on loopback. Rasa and the service share a models folder
in the benchmark's temporary folder (the starter model copied into it): a retrained model is
written there and the swap loads it by its path.

Each day ``per_day`` customers each write one message drawn from a labelled CSV
(``text,intent[,lang]``, never used for training; by default :data:`DEFAULT_MESSAGES`), at a
moderate pace (``rate`` per second). Simulated agents decide every draft through the console's
JSON API, the CSV's label being the truth: approve when the draft's intent is right, else pick
the alternative with the right intent, else send an edited reply labelled with it. When every
message of the day has been answered by the bot, drafted and decided, or handed over, the day
is measured from the store (read-only) and the platform's deliveries:

- ``auto_share``: messages answered with no agent action (a bot reply reached the platform, no
  draft, no handover) / messages;
- ``auto_precision``: auto-answered messages whose intent (the NLU result the service stored
  for the message) is the label / auto-answered messages;
- ``drafts``: messages that got a draft; ``agent_actions``: the agents' decisions on them plus
  the handovers (each a case a person must take);
- ``accuracy``: messages whose top intent is the label / messages (the model in use that day).

Between two days (never after the last) an admin (promoting is an admin's) does what the
console does, over HTTP: accepts every pending correction, starts a retrain, follows the job, and promotes the
candidate when its evaluation gate passed. During the promotion a background sender keeps
customers writing (``SWAP_RATE`` per second, labelled messages not counted in the day's
figures); afterwards each of them must have exactly one answer or draft: ``swap_lost`` and
``swap_duplicated`` count the others. The day's ``retrain_seconds`` is the job's own
``training_seconds``.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import aiohttp
import yaml

from bot import processes
from bot.bench.broadcast import Service
from bot.bench.load import LoadPlatform
from bot.rasa.stack import PROJECT, free_port, latest_model, rasa_stack
from bot.testing.fake_platform import inbound
from connectors.signing import SIGNATURE_HEADER, sign

logger = logging.getLogger(__name__)

SECRET = "bench-days-secret"
CHANNEL = "bench"
DEFAULT_MESSAGES = PROJECT / "tests" / "data" / "learning_days.csv"
DEFAULT_RATE = 4.0  # customers' messages per second during a day
# Auto-send threshold of the bench's drafting section (the global one; no per-intent ones). The
# starter model parsing tests/data/learning_days.csv (462 rows, 2026-12-04), handovers and
# nlu_fallback left out as the service does: at 0.90 auto-sent precision 0.982 (339 messages), at
# 0.95 0.987 (312): the margin a 340-message day's sampling needs above the 98 % target.
DEFAULT_THRESHOLD = 0.95
SWAP_RATE = 2.0  # messages per second sent while a model is being swapped in
SWAP_LEAD_SECONDS = 2.0  # the swap sender starts this long before the promotion ...
SWAP_TAIL_SECONDS = 3.0  # ... and stops this long after it
POLL_SECONDS = 0.5
RETRAIN_TIMEOUT = 1200.0  # a retrain job (training + evaluation) must end within this
MAX_REVIEW = 1000  # ids per review request (the API's limit)
# What an agent types when neither the draft nor an alternative is right (the intent label is
# what teaches the model; the text only has to be a reply).
CORRECTION_TEXT = {
    "nl": "Dank je voor je bericht! Ik zoek het voor je uit en laat het je zo weten.",
    "en": "Thanks for your message! I'm looking into it and will get back to you shortly.",
}
# A day's swap figures when nothing was swapped (so nothing measured), and the last day's.
NO_SWAP: Dict[str, Any] = {"swap_messages": None, "swap_lost": None, "swap_duplicated": None}
NOT_LEARNED: Dict[str, Any] = {"retrain_seconds": None, **NO_SWAP, "promoted": None}
# Outbound idempotency keys the bot itself sends for a customer message: "<kind>:<message id>:…".
BOT_KEYS = ("reply", "notice", "ack", "identify", "stop", "opt_in")


class BenchInputError(ValueError):
    """The benchmark's input (flags, the messages CSV) cannot be used; nothing was started."""


@dataclass(frozen=True)
class Labelled:
    """One customer message of the simulation set and its true intent."""

    text: str
    intent: str
    language: Optional[str] = None


@dataclass
class Sent:
    """One message a simulated customer sent (``service_id``: the service's message id)."""

    item: Labelled
    sender: str
    service_id: Optional[int] = None
    status: Optional[int] = None
    error: Optional[str] = None


# ----------------------------------------------------------------------------- input


def read_messages(path: Path) -> List[Labelled]:
    """The labelled messages of ``path`` (``text,intent[,lang]``), checked like
    ``webcare import-intents`` does (duplicates dropped); every intent must be in the domain."""
    from nlu.importing import CsvFormatError, intents_missing_from_domain, read_training_examples

    try:
        examples = read_training_examples(Path(path))
    except CsvFormatError as exc:
        raise BenchInputError(str(exc)) from None
    missing = intents_missing_from_domain(sorted({e.intent for e in examples}), PROJECT / "domain.yml")
    if missing:
        raise BenchInputError(f"{path}: intents not in domain.yml: {', '.join(missing)} "
                              "(an agent can only label a message with an intent of the domain)")
    return [Labelled(e.text, e.intent, e.lang) for e in examples]


def draw(pool: Sequence[Labelled], count: int, rng: random.Random) -> List[Labelled]:
    """``count`` messages of ``pool``: each at most once while the pool lasts (then again)."""
    drawn: List[Labelled] = []
    while len(drawn) < count:
        drawn.extend(rng.sample(list(pool), min(len(pool), count - len(drawn))))
    return drawn


def agent_decision(draft: Dict[str, Any], truth: Labelled) -> Tuple[str, Dict[str, Any]]:
    """What a careful agent does with ``draft`` (``GET /api/drafts/{id}``'s ``draft``) when the
    customer meant ``truth.intent``: ``(action, body)`` for ``POST /api/drafts/{id}/<action>``."""
    if draft.get("intent") == truth.intent and (draft.get("messages") or draft.get("text")):
        return "approve", {}
    for alternative in draft.get("alternatives") or []:
        if alternative.get("intent") == truth.intent and (alternative.get("messages") or alternative.get("text")):
            return "pick", {"index": alternative["index"]}
    return correction(draft, truth)


def correction(draft: Dict[str, Any], truth: Labelled) -> Tuple[str, Dict[str, Any]]:
    """The agent writes the reply and names the right intent (``edit`` with ``intent``)."""
    language = truth.language or (draft.get("conversation") or {}).get("language") or "nl"
    return "edit", {"text": CORRECTION_TEXT.get(language, CORRECTION_TEXT["en"]), "intent": truth.intent}


# ----------------------------------------------------------------------------- the console


class ConsoleError(RuntimeError):
    """The service's API answered something the benchmark cannot go on with."""


class Console:
    """One console user's session on the service's JSON API: cookie and CSRF token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.csrf = ""
        self.http: Optional[aiohttp.ClientSession] = None

    async def __aenter__(self) -> "Console":
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1
                                          timeout=aiohttp.ClientTimeout(total=120))
        status, data = await self.request("POST", "/api/login", {"username": self.username,
                                                                  "password": self.password})
        if status != 200:
            await self.http.close()
            raise ConsoleError(f"login as {self.username} failed: HTTP {status} {data}")
        self.csrf = data["csrf_token"]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.http is not None:
            await self.http.close()

    async def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Tuple[int, Any]:
        """``(status, JSON answer)``; a POST carries the CSRF token and ``body`` (``{}`` by default)."""
        assert self.http is not None
        headers = {"X-CSRF-Token": self.csrf} if method != "GET" else {}
        kwargs: Dict[str, Any] = {"json": body if body is not None else {}} if method != "GET" else {}
        async with self.http.request(method, self.base_url + path, headers=headers, **kwargs) as response:
            try:
                data = await response.json(content_type=None)
            except ValueError:
                data = {"error": "not JSON", "text": (await response.text())[:300]}
            return response.status, data

    async def get(self, path: str) -> Any:
        """The JSON of a ``GET`` that must answer 200."""
        status, data = await self.request("GET", path)
        if status != 200:
            raise ConsoleError(f"GET {path}: HTTP {status} {data}")
        return data


class Agents:
    """Simulated agents: decide every pending draft of a message whose truth they know."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.truth: Dict[int, Labelled] = {}  # the service's message id -> what the customer meant
        self.decided: Dict[int, str] = {}  # inbound message id -> approve | pick | edit
        self.refused: Dict[int, str] = {}  # inbound message id -> why a decision was refused
        self._done: Set[int] = set()  # draft ids taken care of

    async def run(self) -> None:
        """Sweep the queue until cancelled."""
        while True:
            try:
                await self.sweep()
            except (aiohttp.ClientError, asyncio.TimeoutError, ConsoleError) as exc:
                logger.warning("agents: %s; trying again", exc)
            await asyncio.sleep(POLL_SECONDS)

    async def sweep(self) -> int:
        """Decide every pending draft once; returns how many were decided."""
        queue = await self.console.get("/api/drafts")
        count = 0
        for summary in queue["drafts"]:
            draft_id = summary["id"]
            if draft_id in self._done:
                continue
            draft = (await self.console.get(f"/api/drafts/{draft_id}"))["draft"]
            truth = self.truth.get(draft["inbound_message_id"])
            if truth is None:  # its webhook call has not answered yet: next sweep
                continue
            action, body = agent_decision(draft, truth)
            status, data = await self.console.request("POST", f"/api/drafts/{draft_id}/{action}", body)
            if status == 400 and action != "edit":  # e.g. nothing to send after all: write it instead
                action, body = correction(draft, truth)
                status, data = await self.console.request("POST", f"/api/drafts/{draft_id}/{action}", body)
            self._done.add(draft_id)
            if status == 200:
                self.decided[draft["inbound_message_id"]] = action
                count += 1
            else:
                self.refused[draft["inbound_message_id"]] = f"{action}: HTTP {status} {data.get('error')}"
                logger.warning("agents: %s on draft %s refused: HTTP %s %s", action, draft_id, status, data)
        return count


# ----------------------------------------------------------------------------- customers


async def _post(http: aiohttp.ClientSession, url: str, message: Sent, agents: Agents) -> None:
    body = json.dumps(inbound(f"{message.sender}:0", message.sender, message.item.text,
                              message.item.language)).encode()
    try:
        async with http.post(url, data=body, headers={"Content-Type": "application/json",
                                                      SIGNATURE_HEADER: sign(SECRET, body)}) as response:
            message.status = response.status
            data = await response.read()
            if 200 <= response.status < 300:
                message.service_id = int(json.loads(data)["message_id"])
                agents.truth[message.service_id] = message.item
            else:
                message.error = f"HTTP {response.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
        message.error = type(exc).__name__


async def send_paced(url: str, messages: Iterable[Sent], rate: float, agents: Agents,
                     until: Optional[asyncio.Event] = None) -> List[Sent]:
    """Send ``messages`` ``rate`` a second (fixed times), each from its own customer; with
    ``until``, stop starting new ones once it is set. Returns the messages sent."""
    sent: List[Sent] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        tasks = []
        start = time.monotonic()
        for index, message in enumerate(messages):
            if until is not None and until.is_set():
                break
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                if until is None:
                    await asyncio.sleep(delay)
                else:
                    try:
                        await asyncio.wait_for(until.wait(), delay)
                        break
                    except asyncio.TimeoutError:
                        pass
            sent.append(message)
            tasks.append(asyncio.create_task(_post(http, url, message, agents)))
        await asyncio.gather(*tasks)
    return sent


# ----------------------------------------------------------------------------- measuring


@dataclass
class StoreView:
    """What the store says about some customer messages (read in the benchmark's process)."""

    status: Dict[int, Optional[str]] = field(default_factory=dict)  # message id -> inbound status
    intent: Dict[int, Optional[str]] = field(default_factory=dict)  # message id -> the NLU's top intent
    drafts: Dict[int, Tuple[int, str]] = field(default_factory=dict)  # message id -> (draft id, status)
    handed: Set[int] = field(default_factory=set)  # messages a case was opened on
    unsent: int = 0  # outbox items of their conversations still to deliver


def read_store(engine: Any, ids: Sequence[int]) -> StoreView:
    """Read-only: the messages' status and NLU intent, their drafts and cases, unsent replies."""
    from sqlalchemy import func, select

    from bot.store.models import Case, Draft, Message, OutboxItem, OutboxStatus

    view = StoreView()
    wanted = set(ids)
    conversations: Set[int] = set()
    with engine.connect() as connection:
        for chunk in _chunks(sorted(wanted), 500):
            for row in connection.execute(select(Message.id, Message.status, Message.nlu, Message.conversation_id)
                                          .where(Message.id.in_(chunk))):
                view.status[row.id] = row.status
                view.intent[row.id] = ((row.nlu or {}).get("intent") or {}).get("name")
                conversations.add(row.conversation_id)
            for row in connection.execute(select(Draft.inbound_message_id, Draft.id, Draft.status)
                                          .where(Draft.inbound_message_id.in_(chunk))):
                view.drafts[row.inbound_message_id] = (row.id, getattr(row.status, "value", row.status))
        for details in connection.execute(select(Case.trigger_details)).scalars():
            message_id = (details or {}).get("message_id")
            if isinstance(message_id, int) and message_id in wanted:
                view.handed.add(message_id)
        for chunk in _chunks(sorted(conversations), 500):
            view.unsent += connection.execute(
                select(func.count()).select_from(OutboxItem)
                .where(OutboxItem.status == OutboxStatus.pending, OutboxItem.conversation_id.in_(chunk))).scalar_one()
    return view


def _chunks(values: List[int], size: int) -> Iterable[List[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def settled(view: StoreView, ids: Sequence[int]) -> bool:
    """Every message processed (or given up on), every draft decided, every reply delivered."""
    return (all(view.status.get(i) not in (None, "received") for i in ids)
            and all(status != "pending" for _, status in (view.drafts.get(i, (0, "")) for i in ids))
            and view.unsent == 0)


@dataclass
class Outcome:
    """How each of a batch of messages was answered."""

    auto: List[int] = field(default_factory=list)  # a bot reply, no draft, no handover
    drafted: List[int] = field(default_factory=list)
    handed: List[int] = field(default_factory=list)  # a case opened on it (no draft)
    unanswered: List[int] = field(default_factory=list)
    duplicated: int = 0  # deliveries beyond one per idempotency key, answers beyond one per message


def outcome(ids: Sequence[int], view: StoreView, arrivals: Iterable[Tuple[str, str, float]]) -> Outcome:
    """Classify each message by the store's view and what reached the platform."""
    draft_of = {draft_id: message_id for message_id, (draft_id, _) in view.drafts.items()}
    deliveries = Counter(key for key, _, _ in arrivals)
    bot_replies: Set[int] = set()
    result = Outcome()
    for key, count in deliveries.items():
        message_id = _bot_reply_to(key)
        if message_id is None and key.startswith("draft:"):
            parts = key.split(":")
            message_id = draft_of.get(int(parts[1])) if parts[1].isdigit() else None
        if message_id is None or message_id not in view.status:
            continue
        result.duplicated += count - 1
        if key.split(":")[0] in BOT_KEYS:
            bot_replies.add(message_id)
    for message_id in ids:
        routes = [message_id in view.drafts, message_id in view.handed]
        if not any(routes) and message_id in bot_replies:
            result.auto.append(message_id)
        elif message_id in view.drafts:
            result.drafted.append(message_id)
        elif message_id in view.handed:
            result.handed.append(message_id)
        else:
            result.unanswered.append(message_id)
        if all(routes):  # a draft and a case for one message
            result.duplicated += 1
    return result


def _bot_reply_to(key: str) -> Optional[int]:
    """The customer message a bot's own outbound key answers (``reply:31:0`` -> 31)."""
    parts = key.split(":")
    if len(parts) >= 2 and parts[0] in BOT_KEYS and parts[1].isdigit():
        return int(parts[1])
    return None


def _share(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def day_figures(sent: List[Sent], view: StoreView, result: Outcome, agents: Agents) -> Dict[str, Any]:
    """The day's figures (see the module docstring)."""
    acked = [m for m in sent if m.service_id is not None]
    truth = {m.service_id: m.item.intent for m in acked}
    right = [i for i in result.auto if view.intent.get(i) == truth[i]]
    decisions = Counter(agents.decided[i] for i in result.drafted if i in agents.decided)
    return {
        "messages": len(sent),
        "acked": len(acked),
        "auto": len(result.auto),
        "auto_share": _share(len(result.auto), len(sent)),
        "auto_precision": _share(len(right), len(result.auto)),
        "auto_wrong": dict(Counter(f"{view.intent.get(i)} (truth {truth[i]})" for i in result.auto
                                   if view.intent.get(i) != truth[i]).most_common()),
        "drafts": len(result.drafted),
        "decisions": {action: decisions.get(action, 0) for action in ("approve", "pick", "edit")},
        "refused_decisions": sum(1 for i in result.drafted if i in agents.refused),
        "handed_over": len(result.handed),
        "agent_actions": sum(decisions.values()) + len(result.handed),
        "unanswered": len(result.unanswered) + len(sent) - len(acked),
        "duplicated": result.duplicated,
        "accuracy": _share(sum(1 for i, intent in truth.items() if view.intent.get(i) == intent), len(sent)),
    }


# ----------------------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything one benchmark run holds on to."""

    service: Service
    platform: LoadPlatform
    agents: Agents
    owner: Console
    engine: Any
    rasa_url: str
    pool: List[Labelled]
    seed: int
    rate: float
    rng: random.Random = field(init=False)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # the days' draws

    @property
    def webhook(self) -> str:
        return f"{self.service.url}/webhooks/{CHANNEL}"

    async def store(self, ids: Sequence[int]) -> StoreView:
        return await asyncio.get_running_loop().run_in_executor(None, read_store, self.engine, ids)

    async def wait_settled(self, sent: List[Sent], timeout: float) -> Tuple[StoreView, bool]:
        """Poll the store until ``sent`` is :func:`settled` (or ``timeout``)."""
        ids = [m.service_id for m in sent if m.service_id is not None]
        deadline = time.monotonic() + timeout
        while True:
            view = await self.store(ids)
            if settled(view, ids):
                await asyncio.sleep(POLL_SECONDS)  # a late duplicate delivery would show up here
                return await self.store(ids), True
            if time.monotonic() >= deadline:
                return view, False
            await asyncio.sleep(POLL_SECONDS)

    async def model_in_rasa(self) -> Optional[str]:
        """The file name of the model Rasa serves now."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"{self.rasa_url}/status") as response:
                data = await response.json(content_type=None)
        return Path(str(data.get("model_file") or "")).name or None

    async def model_in_use(self) -> Optional[int]:
        """The id of the model the service says is in use (``None`` before the first promotion,
        or while the models API is missing)."""
        status, data = await self.owner.request("GET", "/api/models")
        if status != 200:
            return None
        return ((data or {}).get("in_use") or {}).get("id")


def _settle_seconds(messages: int) -> float:
    """How long a batch may take to be answered and decided after its last message went out."""
    return 120.0 + 0.5 * messages


async def run_day(run: Run, day: int, per_day: int, seen: Set[str]) -> Dict[str, Any]:
    """One day: ``per_day`` customers write, the agents decide, the figures are measured."""
    model_file, model_id = await run.model_in_rasa(), await run.model_in_use()
    drawn = draw(run.pool, per_day, run.rng)
    messages = [Sent(item, f"d{day}-{run.run_id}-{index}") for index, item in enumerate(drawn)]
    started = time.monotonic()
    sent = await send_paced(run.webhook, messages, run.rate, run.agents)
    view, drained = await run.wait_settled(sent, _settle_seconds(len(sent)))
    ids = [m.service_id for m in sent if m.service_id is not None]
    result = outcome(ids, view, run.platform.arrivals)
    figures = day_figures(sent, view, result, run.agents)
    texts = [m.item.text.casefold() for m in sent]
    figures.update({
        "seen_before": _share(sum(1 for t in texts if t in seen), len(texts)),
        "model_file": model_file,
        "model_id": model_id,
        "drained": drained,
        "day_seconds": round(time.monotonic() - started, 1),
    })
    seen.update(texts)
    logger.info("day %d: %s", day, {k: figures[k] for k in ("messages", "auto_share", "auto_precision",
                                                             "drafts", "agent_actions", "accuracy")})
    return figures


async def accept_corrections(owner: Console) -> Dict[str, int]:
    """Accept every pending correction with an agent's intent of the domain; drop the others."""
    accepted = dropped = 0
    while True:
        data = await owner.get("/api/learning/corrections?status=pending&limit=500")
        examples = data["examples"]
        if not examples:
            return {"accepted": accepted, "dropped": dropped}
        intents = set(data["intents"])
        for action, ids in (("accept", [e["id"] for e in examples if e.get("agent_intent") in intents]),
                            ("drop", [e["id"] for e in examples if e.get("agent_intent") not in intents])):
            for chunk in _chunks(ids, MAX_REVIEW):
                status, answer = await owner.request("POST", "/api/learning/corrections/review",
                                                     {"ids": chunk, "action": action})
                if status != 200:
                    raise ConsoleError(f"review ({action}) refused: HTTP {status} {answer}")
            accepted += len(ids) if action == "accept" else 0
            dropped += len(ids) if action == "drop" else 0


async def retrain(owner: Console) -> Dict[str, Any]:
    """Start a retrain and follow its job to the end; returns the finished job."""
    status, data = await owner.request("POST", "/api/learning/retrain", {})
    if status != 202:
        raise ConsoleError(f"POST /api/learning/retrain: HTTP {status} {data}")
    job = data["job"]
    deadline = time.monotonic() + RETRAIN_TIMEOUT
    while job["status"] == "running":
        if time.monotonic() >= deadline:
            raise ConsoleError(f"the retrain job {job['id']} did not end within {RETRAIN_TIMEOUT:.0f} s: {job}")
        await asyncio.sleep(1.0)
        job = (await owner.get(f"/api/learning/jobs/{job['id']}"))["job"]
    return job


async def promote_under_load(run: Run, day: int, candidate_id: int) -> Dict[str, Any]:
    """Promote the candidate while customers keep writing; check that each got exactly one answer."""
    in_use = await run.model_in_use()  # as the console's page does: refused if another model took over
    body = {"in_use": in_use} if in_use is not None else {}
    stop = asyncio.Event()
    rng = random.Random(f"{run.seed}-swap-{day}")
    messages = (Sent(rng.choice(run.pool), f"s{day}-{run.run_id}-{index}") for index in itertools.count())
    sender = asyncio.create_task(send_paced(run.webhook, messages, SWAP_RATE, run.agents, until=stop))
    try:
        await asyncio.sleep(SWAP_LEAD_SECONDS)
        started = time.monotonic()
        status, data = await run.owner.request("POST", f"/api/models/{candidate_id}/promote", body)
        promote_seconds = time.monotonic() - started
        await asyncio.sleep(SWAP_TAIL_SECONDS)
    finally:
        stop.set()
        sent = await sender
    view, drained = await run.wait_settled(sent, _settle_seconds(len(sent)))
    ids = [m.service_id for m in sent if m.service_id is not None]
    result = outcome(ids, view, run.platform.arrivals)
    swap = ((data or {}).get("swap") or {}) if status == 200 else {}
    return {
        "promoted": status == 200,
        "promote_error": None if status == 200 else f"HTTP {status} {data}",
        "promote_seconds": round(promote_seconds, 2),
        "swap_seconds": swap.get("seconds"),
        "swap_replicas": swap.get("replicas"),
        "swap_messages": len(sent),
        "swap_lost": len(result.unanswered) + len(sent) - len(ids),
        "swap_duplicated": result.duplicated,
        "swap_drained": drained,
    }


async def learn_between_days(run: Run, day: int) -> Dict[str, Any]:
    """What an admin does in the console after a day: accept the corrections, retrain, read the
    evaluation, promote the candidate if its gate passed (with customers writing)."""
    started = time.monotonic()
    figures: Dict[str, Any] = {"corrections": await accept_corrections(run.owner)}
    job = await retrain(run.owner)
    figures.update({"retrain_seconds": job.get("training_seconds"), "retrain_job": job["id"],
                    "retrain_status": job["status"], "retrain_error": job.get("error"),
                    "retrain_total_seconds": round(time.monotonic() - started, 1),
                    "candidate_id": job.get("candidate_id")})
    if job["status"] != "succeeded" or job.get("candidate_id") is None:
        return {**figures, **NO_SWAP, "promoted": False, "gate": None}
    model = (await run.owner.get(f"/api/models/{job['candidate_id']}"))["model"]
    evaluation = model.get("evaluation") or {}
    gate = evaluation.get("gate") or {}
    figures.update({
        "candidate_file": model.get("file"),
        "gate": {"passed": gate.get("passed"), "reasons": gate.get("reasons")},
        "evaluation": {side: {k: (evaluation.get(side) or {}).get(k) for k in ("accuracy", "coverage", "n")}
                       for side in ("candidate", "in_use")},
    })
    if model.get("status") == "in_use":  # promoted by the job (learning.promotion: auto): no load around it
        return {**figures, **NO_SWAP, "promoted": True, "promoted_by": model.get("promoted_by")}
    if not gate.get("passed"):
        return {**figures, **NO_SWAP, "promoted": False}
    swap = await promote_under_load(run, day, job["candidate_id"])
    return {**figures, **swap}


async def _run(days: int, per_day: int, pool: List[Labelled], seed: int, rate: float, threshold: float,
               workdir: Path, models: Path, database_url: str, rasa_url: str, actions_url: str) -> Dict[str, Any]:
    from sqlalchemy import create_engine

    agent_name, owner_name, password = _seed_users(database_url)
    async with LoadPlatform(SECRET) as platform:
        port = free_port()
        config_path = workdir / "webcare.yml"
        config_path.write_text(yaml.safe_dump({
            "service": {"host": "127.0.0.1", "port": port},
            "database": {"url": database_url},
            "rasa": {"url": rasa_url, "actions_url": actions_url, "model_dir": str(models)},
            "drafting": {"threshold": threshold, "always_review": [], "review_customer_flags": []},
            "channels": {CHANNEL: {"type": "webhook", "callback_url": platform.url,
                                   "secret_env": "WEBCARE_BENCH_SECRET", "rate_limit_per_second": 1000}},
        }))
        service = Service(config_path, port, workdir / "service.log", secret=SECRET)
        engine = create_engine(database_url, future=True)
        await service.start()
        try:
            async with Console(service.url, agent_name, password) as agent, \
                    Console(service.url, owner_name, password) as owner:
                agents = Agents(agent)
                deciding = asyncio.create_task(agents.run())
                run = Run(service, platform, agents, owner, engine, rasa_url, pool, seed, rate)
                seen: Set[str] = set()
                report: List[Dict[str, Any]] = []
                try:
                    for day in range(1, days + 1):
                        figures = {"day": day, **await run_day(run, day, per_day, seen)}
                        figures.update(await learn_between_days(run, day) if day < days else NOT_LEARNED)
                        report.append(figures)
                finally:
                    deciding.cancel()
                    await asyncio.gather(deciding, return_exceptions=True)
        finally:
            service.stop()
            engine.dispose()
    return {"days": report, **_summary(report)}


def _summary(days: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The issue's targets, checked on this run's figures."""
    if not days:
        return {}
    first, last = days[0], days[-1]
    gain = (round(100 * (last["auto_share"] - first["auto_share"]), 1)
            if last["auto_share"] is not None and first["auto_share"] is not None else None)
    learned = days[:-1]
    return {
        "auto_share_gain_points": gain,
        "swaps": sum(1 for d in learned if d.get("promoted")),  # swap_* are null on a day without one
        "targets": {
            "auto_precision_at_least_0.98_every_day": all((d["auto_precision"] or 0) >= 0.98 for d in days),
            "auto_share_gain_at_least_10_points": gain is not None and gain >= 10,
            "no_swap_lost_or_duplicated": all(d.get("swap_lost") in (0, None) and d.get("swap_duplicated")
                                              in (0, None) for d in learned),
            "retrain_at_most_90_seconds": all(d.get("retrain_seconds") is not None and d["retrain_seconds"] <= 90
                                              for d in learned),
        },
    }


def _seed_users(database_url: str) -> Tuple[str, str, str]:
    """An agent (decides drafts) and an admin (reviews, retrains and promotes: promoting is an
    admin's), new in the store."""
    from bot.accounts import create_user
    from bot.store.database import Store
    from bot.store.models import Role

    suffix = uuid.uuid4().hex[:6]  # new users also in a --database-url store used before
    agent, owner, password = f"bench-agent-{suffix}", f"bench-admin-{suffix}", "bench-days-password"
    store = Store.from_url(database_url)
    try:
        store.transaction(lambda session: (create_user(session, agent, password, Role.agent, "Bench Agent"),
                                           create_user(session, owner, password, Role.admin, "Bench Admin")))
    finally:
        store.close()
    return agent, owner, password


def run_days_bench(days: int, per_day: int, messages: Optional[Path] = None, seed: int = 1,
                   rate: float = DEFAULT_RATE, threshold: float = DEFAULT_THRESHOLD,
                   database_url: Optional[str] = None) -> Dict[str, Any]:
    """Start Rasa and the service in a fresh temporary folder, run the days, return the figures."""
    if days < 1 or per_day < 1:
        raise BenchInputError("--days and --per-day must be at least 1")
    if rate <= 0:
        raise BenchInputError("--rate must be positive")
    if not 0 < threshold <= 1:
        raise BenchInputError("--threshold must be above 0 and at most 1")
    path = Path(messages) if messages is not None else DEFAULT_MESSAGES
    pool = read_messages(path)
    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.monotonic()
    with processes.sigterm_exits("the days benchmark"), \
            tempfile.TemporaryDirectory(prefix="webcare-bench-days-") as tmp:
        workdir = Path(tmp)
        models = workdir / "models"  # shared by Rasa and the service: the swap loads a model by its path
        models.mkdir()
        starter = Path(shutil.copy2(latest_model(), models))
        url = database_url or f"sqlite:///{workdir}/bench.db"
        with rasa_stack(workdir, model=starter) as stack:
            report = asyncio.run(_run(days, per_day, pool, seed, rate, threshold, workdir, models, url,
                                      stack.url, stack.actions_url))
    return {**report, "seed": seed, "per_day": per_day, "days_run": len(report["days"]),
            "messages_csv": str(path), "pool": len(pool), "rate": rate, "threshold": threshold,
            "starter_model": starter.name, "database": url.split(":")[0],
            "total_seconds": round(time.monotonic() - started, 1)}
