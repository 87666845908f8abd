"""``webcare bench load``: a bounded open-loop load on the signed webhook, then drain.

The real service runs as a subprocess (``python -m bot service``, its own event loop and
process) against a Rasa server and action server started for the run (or ``--rasa-url``);
its channel's platform is :class:`LoadPlatform`, a signed-callback server on loopback in the
benchmark's process that records when each reply arrives. The benchmark sends ``rate``
messages per second for ``seconds`` seconds on an open-loop schedule: every send time is
fixed in advance and a message goes out at its time whether or not earlier ones were
answered (aiohttp, one connection pool). Most messages come from new customers; about one
customer in seven writes three messages a couple of seconds apart (a multi-message
conversation). Then it waits, at most ``drain_seconds``, until every message is answered.

Latencies are measured from the *scheduled* send time, so a generator falling behind or a
full connection pool counts against the service, never for it:

- ack: the webhook's 2xx (the message is committed);
- e2e: the first reply for the message reaching the platform (Rasa cannot answer hundreds of
  messages a second, so under overload this is mostly queueing behind Rasa).

A message counts as answered when a reply for it reached the platform or it was handed to
a person (a case opened on it, a draft waits for an agent, or its conversation is already
held by one); ``lost`` counts messages never answered (or never acknowledged with a 2xx),
``duplicated`` reply deliveries beyond the first of the same idempotency key.
"""
from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import yaml
from aiohttp import web

from bot import processes
from bot.bench.broadcast import Service
from bot.testing.fake_platform import SignedCallbackServer, inbound
from bot.bench.pipeline import percentile
from bot.rasa.stack import PROJECT, free_port, rasa_stack
from connectors.signing import SIGNATURE_HEADER, sign

SECRET = "bench-load-secret"
CHANNEL = "bench"
WARMUP = 3  # sequential messages answered before the clock starts (Rasa's first calls are slow)
FOLLOW_UPS = 2  # extra messages of a multi-message conversation
FOLLOW_UP_EVERY = 7  # one new customer in this many writes FOLLOW_UPS more messages
FOLLOW_UP_GAP = 2.0  # seconds between the messages of one conversation
# Intents whose only reply is a person (or a form waiting for a number): left out of the
# message pool, so that e2e mostly measures the bot's own answers.
SKIPPED_INTENTS = {"request_human", "complaint", "identify", "affirm", "deny"}


class LoadPlatform(SignedCallbackServer):
    """Records each reply's idempotency key and arrival time (``time.monotonic()``)."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.arrivals: List[Tuple[str, str, float]] = []  # (idempotency key, recipient, when)

    async def accept(self, data: Dict[str, Any]) -> web.Response:
        self.arrivals.append((str(data.get("idempotency_key")), str(data.get("recipient")), time.monotonic()))
        return web.json_response({"message_id": f"p{len(self.arrivals)}"})


@dataclass
class Planned:
    """One message of the schedule (``offset``: seconds after the start)."""

    offset: float
    sender: str
    message_id: str
    text: str
    language: str
    body: bytes = b""
    signature: str = ""
    # filled in by the run
    started: Optional[float] = None  # when the request actually went out
    acked: Optional[float] = None
    status: Optional[int] = None
    error: Optional[str] = None
    service_id: Optional[int] = None  # the service's message id (from the webhook's answer)


def message_pool() -> Dict[str, List[Tuple[str, str]]]:
    """intent -> [(text, language)] from the starter NLU data, minus :data:`SKIPPED_INTENTS`."""
    pool: Dict[str, List[Tuple[str, str]]] = {}
    for path in sorted((PROJECT / "data" / "nlu").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for block in data.get("nlu", []):
            intent = block.get("intent")
            if not intent or intent in SKIPPED_INTENTS:
                continue
            lang = (block.get("metadata") or {}).get("lang", "nl")
            for line in str(block.get("examples", "")).splitlines():
                if line.startswith("- "):
                    pool.setdefault(intent, []).append((line[2:].strip(), lang))
    return pool


def schedule(rate: float, seconds: float, seed: int = 11, run: str = "") -> List[Planned]:
    """``round(rate * seconds)`` messages at fixed times ``i / rate``: new customers, and
    every :data:`FOLLOW_UP_EVERY`-th of them writes :data:`FOLLOW_UPS` more messages (other
    intents, same language) :data:`FOLLOW_UP_GAP` seconds apart, as long as they fit."""
    rng = random.Random(seed)
    pool = message_pool()
    intents = sorted(pool)
    total = int(round(rate * seconds))
    planned: List[Planned] = []
    due: List[Tuple[float, str, str, List[str]]] = []  # (due offset, sender, language, intents used)
    customers = 0
    for index in range(total):
        offset = index / rate
        if due and due[0][0] <= offset:
            _, sender, language, used = due.pop(0)
            intent = rng.choice([i for i in intents if i not in used])
            used.append(intent)
            if len(used) <= FOLLOW_UPS:
                due.append((offset + FOLLOW_UP_GAP, sender, language, used))
                due.sort(key=lambda d: d[0])
            texts = [t for t in pool[intent] if t[1] == language] or pool[intent]
            text = rng.choice(texts)[0]
        else:
            customers += 1
            sender = f"load{run}-{customers}"
            intent = rng.choice(intents)
            text, language = rng.choice(pool[intent])
            if customers % FOLLOW_UP_EVERY == 0:
                due.append((offset + FOLLOW_UP_GAP, sender, language, [intent]))
                due.sort(key=lambda d: d[0])
        body = json.dumps(inbound(f"{sender}:{index}", sender, text, language)).encode()
        planned.append(Planned(offset, sender, f"{sender}:{index}", text, language, body, sign(SECRET, body)))
    return planned


async def _post(http: aiohttp.ClientSession, url: str, message: Planned) -> None:
    message.started = time.monotonic()
    try:
        async with http.post(url, data=message.body, headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: message.signature}) as response:
            data = await response.read()
            message.acked = time.monotonic()
            message.status = response.status
            if 200 <= response.status < 300:
                message.service_id = int(json.loads(data)["message_id"])
            else:
                message.error = f"HTTP {response.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
        message.error = type(exc).__name__


async def _send_all(url: str, planned: List[Planned], connections: int) -> float:
    """Send every planned message at its time (open loop); returns the start (monotonic)."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        tasks = []
        start = time.monotonic() + 0.2
        for message in planned:
            delay = start + message.offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(http, url, message)))
        await asyncio.gather(*tasks)
    return start


def _store_state(database_url: str, ids: List[int]) -> Dict[str, Any]:
    """What the store says about this run's messages (read from the benchmark's process)."""
    from sqlalchemy import create_engine, func, select

    from bot.store.models import Case, Conversation, Draft, Message, OutboxItem

    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            waiting = connection.execute(
                select(func.count()).select_from(Message)
                .where(Message.direction == "in", Message.status == "received")).scalar_one()
            unsent = connection.execute(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "pending")).scalar_one()
            cases = {case_id: (details or {}).get("message_id") for case_id, details in
                     connection.execute(select(Case.id, Case.trigger_details)).all()}
            drafted = set(connection.execute(select(Draft.inbound_message_id)).scalars())
            held = {row.id for row in connection.execute(
                select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.direction == "in", Message.status != "received",
                       Conversation.id.in_(select(Case.conversation_id))))}
            failed = connection.execute(
                select(func.count()).select_from(Message)
                .where(Message.direction == "in", Message.status == "failed")).scalar_one()
    finally:
        engine.dispose()
    wanted = set(ids)
    return {"waiting": waiting, "unsent": unsent, "cases": cases, "drafted": drafted & wanted,
            "held": held & wanted, "failed": failed}


def _message_of(key: str, cases: Dict[int, Any]) -> Optional[int]:
    """The customer message an outbound idempotency key answers."""
    parts = key.split(":")
    if len(parts) >= 2 and parts[0] in ("reply", "notice", "ack", "identify", "stop", "opt_in"):
        return int(parts[1]) if parts[1].isdigit() else None
    if len(parts) == 3 and parts[0] == "case" and parts[2] == "handover" and parts[1].isdigit():
        message_id = cases.get(int(parts[1]))
        return int(message_id) if isinstance(message_id, int) or str(message_id).isdigit() else None
    return None


async def _run(rate: float, seconds: float, drain_seconds: float, connections: int, workdir: Path,
               database_url: Optional[str], rasa_url: str) -> Dict[str, Any]:
    database_url = database_url or f"sqlite:///{workdir}/bench.db"
    run = uuid.uuid4().hex[:8]  # senders new to Rasa too (also on a --rasa-url server used before)
    planned = schedule(rate, seconds, run=run)
    async with LoadPlatform(SECRET) as platform:
        port = free_port()
        config_path = workdir / "webcare.yml"
        config_path.write_text(yaml.safe_dump({
            "service": {"host": "127.0.0.1", "port": port},
            "database": {"url": database_url},
            "rasa": {"url": rasa_url, "actions_url": "http://127.0.0.1:9"},
            "drafting": {"threshold": 0.0, "always_review": [], "review_customer_flags": []},
            "channels": {CHANNEL: {"type": "webhook", "callback_url": platform.url,
                                   "secret_env": "WEBCARE_BENCH_SECRET", "rate_limit_per_second": 1000}},
        }))
        service = Service(config_path, port, workdir / "service.log", secret=SECRET)
        await service.start()
        url = f"{service.url}/webhooks/{CHANNEL}"
        try:
            # Warm up (first parses are slow): a few messages, each answered before the next.
            async with aiohttp.ClientSession() as http:
                for index in range(WARMUP):
                    body = json.dumps(inbound(f"warm{run}-{index}", f"warm{run}-{index}", "hallo", "nl")).encode()
                    async with http.post(url, data=body, headers={
                            "Content-Type": "application/json", SIGNATURE_HEADER: sign(SECRET, body)}) as response:
                        assert response.status == 200, await response.text()
                    deadline = time.monotonic() + 60
                    while len(platform.arrivals) <= index and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
            warm_keys = {key for key, _, _ in platform.arrivals}

            start = await _send_all(url, planned, connections)
            sent_until = time.monotonic()
            ids = [m.service_id for m in planned if m.service_id is not None]
            deadline = sent_until + drain_seconds
            drained = False
            state: Dict[str, Any] = {}
            while True:
                state = await asyncio.get_running_loop().run_in_executor(None, _store_state, database_url, ids)
                if state["waiting"] == 0 and state["unsent"] == 0:
                    drained = True
                    break
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(1.0)
            drain = time.monotonic() - sent_until
            await asyncio.sleep(0.5)  # a late duplicate delivery would show up here
        finally:
            service.stop()

    arrivals = [(k, r, t) for k, r, t in platform.arrivals if k not in warm_keys]
    deliveries = Counter(k for k, _, _ in arrivals)
    first_reply: Dict[int, float] = {}
    for key, _, when in arrivals:
        message_id = _message_of(key, state["cases"])
        if message_id is not None and (message_id not in first_reply or when < first_reply[message_id]):
            first_reply[message_id] = when
    handed = {m for m in state["cases"].values() if isinstance(m, int)} | state["drafted"] | state["held"]
    acked = [m for m in planned if m.service_id is not None and m.status is not None and 200 <= m.status < 300]
    ack_ms = [(m.acked - (start + m.offset)) * 1000 for m in acked if m.acked is not None]
    lag_ms = [(m.started - (start + m.offset)) * 1000 for m in planned if m.started is not None]
    e2e_ms = [(first_reply[m.service_id] - (start + m.offset)) * 1000 for m in acked if m.service_id in first_reply]
    replied = sum(1 for m in acked if m.service_id in first_reply)
    handed_over = sum(1 for m in acked if m.service_id not in first_reply and m.service_id in handed)
    answered = replied + handed_over
    errors = Counter(m.error for m in planned if m.error)
    window = max((m.started for m in planned if m.started is not None), default=start) - start
    last_answer = max(first_reply.values(), default=start)
    return {
        "rate": rate,
        "seconds": seconds,
        "database": database_url.split(":")[0],
        "sent": len(planned),
        "acked": len(acked),
        "achieved_rate": round((len(planned) - 1) / window, 1) if window > 0 else None,
        "customers": len({m.sender for m in planned}),
        "ack_p50_ms": round(percentile(ack_ms, 50), 2),
        "ack_p95_ms": round(percentile(ack_ms, 95), 2),
        "ack_p99_ms": round(percentile(ack_ms, 99), 2),
        "ack_max_ms": round(max(ack_ms, default=float("nan")), 2),
        "send_lag_p99_ms": round(percentile(lag_ms, 99), 2),  # the generator's own lateness
        "e2e_p50_ms": round(percentile(e2e_ms, 50), 1),
        "e2e_p95_ms": round(percentile(e2e_ms, 95), 1),
        "e2e_max_ms": round(max(e2e_ms, default=float("nan")), 1),
        "answered": answered,
        "replied": replied,
        "handed_over": handed_over,
        "lost": len(planned) - answered,
        "duplicated": sum(n - 1 for n in deliveries.values() if n > 1),
        "failed": state.get("failed", 0),  # messages the service gave up on (an agent must look)
        "errors": dict(errors),
        "drained": drained,
        "drain_seconds": round(drain, 1),
        "answer_rate": round(answered / (last_answer - start), 1) if last_answer > start else None,
        "connections": connections,
    }


def default_drain_seconds(rate: float, seconds: float) -> float:
    """Generous: 2 minutes plus a quarter of a second per message (Rasa answers ~10 a second)."""
    return 120.0 + 0.25 * rate * seconds


def run_load_bench(rate: float, seconds: float, drain_seconds: Optional[float] = None,
                   database_url: Optional[str] = None, rasa_url: Optional[str] = None,
                   connections: int = 100) -> Dict[str, Any]:
    """Start Rasa (unless ``rasa_url`` is given) and the service, run the load, return the figures."""
    if rate <= 0 or seconds <= 0 or int(round(rate * seconds)) < 1:
        raise ValueError("--rate and --seconds must be positive (at least one message)")
    if connections < 1:
        raise ValueError("--connections must be at least 1")
    drain = default_drain_seconds(rate, seconds) if drain_seconds is None else drain_seconds
    import logging

    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with processes.sigterm_exits("the load benchmark"), \
            tempfile.TemporaryDirectory(prefix="webcare-bench-load-") as tmp:
        workdir = Path(tmp)
        if rasa_url:
            return asyncio.run(_run(rate, seconds, drain, connections, workdir, database_url, rasa_url))
        with rasa_stack(workdir) as stack:
            return asyncio.run(_run(rate, seconds, drain, connections, workdir, database_url, stack.url))
