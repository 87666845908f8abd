"""``webcare bench pipeline``: the service's overhead over talking to Rasa directly.

The same N messages (starter intents, Dutch and English) go once through the service
(signed webhook → intake → worker → Rasa via webcare's channel → drafting policy → reply
committed to the outbox; auto-send path) and once straight to Rasa's REST channel, one at a
time and alternating, against the same Rasa server in the same run.
"""
from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import yaml
from aiohttp import web

from bot import processes
from bot.testing.fake_platform import FakePlatform, inbound, signed
from bot.rasa.stack import PROJECT, free_port, rasa_stack

SECRET = "bench-pipeline-secret"
WARMUP = 5


def bench_messages(count: int, seed: int = 7) -> List[Tuple[str, str]]:
    """``count`` (text, lang) pairs sampled from the starter NLU data, both languages."""
    pool: List[Tuple[str, str]] = []
    for path in sorted((PROJECT / "data" / "nlu").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for block in data.get("nlu", []):
            lang = (block.get("metadata") or {}).get("lang", "nl")
            for line in str(block.get("examples", "")).splitlines():
                if line.startswith("- "):
                    pool.append((line[2:].strip(), lang))
    rng = random.Random(seed)
    return [rng.choice(pool) for _ in range(count)]


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _run(count: int, database_url: Optional[str], workdir: Path, rasa_url: str) -> Dict[str, Any]:
    from bot.web.app import create_app
    from bot.web.keys import STORE_KEY
    from bot.events import OutboxQueued
    from bot.config import load_config
    from bot.store.models import Case, Draft, Message, OutboxItem
    from sqlalchemy import func, select

    os.environ["WEBCARE_BENCH_SECRET"] = SECRET
    async with FakePlatform(SECRET) as platform:
        config_path = workdir / "webcare.yml"
        config_path.write_text(yaml.safe_dump({
            "database": {"url": database_url or f"sqlite:///{workdir}/bench.db"},
            "rasa": {"url": rasa_url, "actions_url": "http://127.0.0.1:9"},
            "drafting": {"threshold": 0.0, "always_review": [], "review_customer_flags": []},
            "channels": {"bench": {"type": "webhook", "callback_url": platform.url,
                                   "secret_env": "WEBCARE_BENCH_SECRET", "rate_limit_per_second": 1000}},
        }))
        app = create_app(load_config(str(config_path)))
        committed = asyncio.Event()
        app[STORE_KEY].events.subscribe(OutboxQueued, lambda _: committed.set())
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        service_url = f"http://127.0.0.1:{port}/webhooks/bench"

        messages = bench_messages(count + WARMUP)
        # Senders new to Rasa too, also when --rasa-url names a server an earlier run used
        # (a known sender and message id would not be a first contact there).
        run = uuid.uuid4().hex[:8]
        service_ms: List[float] = []
        rasa_ms: List[float] = []
        ack_ms: List[float] = []
        try:
            async with aiohttp.ClientSession() as http:
                for index, (text, lang) in enumerate(messages):
                    # A new customer each time: a handover earlier in a conversation would
                    # (rightly) silence the bot for the rest of it.
                    sender = f"customer-{run}-{index}"
                    committed.clear()
                    started = time.perf_counter()
                    response = await http.post(service_url, **signed(SECRET, inbound(f"b{run}-{index}", sender, text, lang)))
                    acked = time.perf_counter()
                    assert response.status == 200, await response.text()
                    try:
                        await asyncio.wait_for(committed.wait(), 30)
                    except asyncio.TimeoutError:
                        continue  # counted as lost below
                    done = time.perf_counter()

                    started_direct = time.perf_counter()
                    async with http.post(f"{rasa_url}/webhooks/rest/webhook",
                                         json={"sender": f"direct-{sender}", "message": text}) as direct:
                        await direct.json()
                    done_direct = time.perf_counter()
                    if index >= WARMUP:
                        service_ms.append((done - started) * 1000)
                        ack_ms.append((acked - started) * 1000)
                        rasa_ms.append((done_direct - started_direct) * 1000)
            # Every reply committed: let the dispatcher deliver them all, then count.
            store = app[STORE_KEY]
            expected = store.transaction(lambda s: s.execute(select(OutboxItem.idempotency_key)).scalars().all())
            deadline = time.monotonic() + 60
            while len({r["idempotency_key"] for r in platform.received}) < len(expected) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            # Answered: a bot reply went out, or the message was handed to a human (a case
            # opened on it, or a draft waits for an agent) -- never left without either.
            answered = {key.split(":")[1] for key in expected if key.startswith("reply:")}
            answered |= {str((c or {}).get("message_id")) for c in store.transaction(
                lambda s: s.execute(select(Case.trigger_details)).scalars().all())}
            answered |= {str(i) for i in store.transaction(
                lambda s: s.execute(select(Draft.inbound_message_id)).scalars().all())}
            handed_over = store.transaction(lambda s: s.execute(select(func.count()).select_from(Case)).scalar())
            inbound_ids = store.transaction(
                lambda s: s.execute(select(Message.id).where(Message.direction == "in")).scalars().all()
            )
            delivered = Counter(r["idempotency_key"] for r in platform.received)
        finally:
            await runner.cleanup()
    lost = sum(1 for i in inbound_ids if str(i) not in answered) + len(set(expected) - set(delivered))
    duplicated = sum(n - 1 for n in delivered.values() if n > 1)
    service_p50, service_p95 = percentile(service_ms, 50), percentile(service_ms, 95)
    rasa_p50, rasa_p95 = percentile(rasa_ms, 50), percentile(rasa_ms, 95)
    return {
        "messages": count,
        "database": (database_url or "sqlite").split(":")[0],
        "service_p50_ms": round(service_p50, 2),
        "service_p95_ms": round(service_p95, 2),
        "rasa_p50_ms": round(rasa_p50, 2),
        "rasa_p95_ms": round(rasa_p95, 2),
        "ratio_p50": round(service_p50 / rasa_p50, 3),
        "ratio_p95": round(service_p95 / rasa_p95, 3),
        "ack_p50_ms": round(percentile(ack_ms, 50), 2),
        "service_mean_ms": round(statistics.fmean(service_ms), 2),
        "rasa_mean_ms": round(statistics.fmean(rasa_ms), 2),
        "lost": lost,
        "duplicated": duplicated,
        "handed_over": handed_over,  # complaints, requests for a person, upset customers: cases
    }


def run_pipeline_bench(count: int, database_url: Optional[str] = None, rasa_url: Optional[str] = None) -> Dict[str, Any]:
    """Start Rasa (unless ``rasa_url`` is given), run the benchmark, return the figures."""
    with processes.sigterm_exits("the pipeline benchmark"), \
            tempfile.TemporaryDirectory(prefix="webcare-bench-") as tmp:
        workdir = Path(tmp)
        if rasa_url:
            return asyncio.run(_run(count, database_url, workdir, rasa_url))
        with rasa_stack(workdir) as stack:
            return asyncio.run(_run(count, database_url, workdir, stack.url))
