"""Scale mode on real services: two service replicas and two Rasa replicas on one PostgreSQL
database (store and tracker store), Rasa's lock store on Redis, its event broker on RabbitMQ.

Faults, each bounded in time: a replica killed with kill -9 under load, Rasa down for 30 s,
PostgreSQL restarted, a storm of duplicate webhook deliveries, the outbox after a crash.
Nothing may be lost and nothing answered twice. These tests need PostgreSQL's server programs,
Redis and RabbitMQ (``.ci/run`` starts the services when they are down); they fail, never skip.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
from typing import Any, AsyncIterator, Dict, List, Sequence, Tuple

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from sqlalchemy import create_engine, func, select, text

from bot.testing.fake_platform import FakePlatform, inbound, signed
from bot.pipeline.rasa_client import RasaReplicas
from bot.rasa.stack import PROJECT
from bot.store.models import InboundStatus, Message, OutboxItem, OutboxStatus
from tests.scale.topology import ScaleTopology, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "scale-mode-secret"
SECRET_ENV = {"SCALE_WEBHOOK_SECRET": SECRET}
# Intents the starter bot answers by itself (no case, no review), each a different question.
FAQ_INTENTS = ["tariffs", "contact_hours", "submit_meter_reading", "moving_house", "refund_status",
               "solar_feed_in", "login_problem"]
_numbers = itertools.count(1)


def faq_examples() -> Dict[str, List[Tuple[str, str]]]:
    """Training examples of the FAQ intents, per intent: (text, language)."""
    examples: Dict[str, List[Tuple[str, str]]] = collections.defaultdict(list)
    for path in sorted((PROJECT / "data" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            if block.get("intent") in FAQ_INTENTS:
                lang = (block.get("metadata") or {}).get("lang", "nl")
                for line in str(block["examples"]).splitlines()[:4]:
                    if line.startswith("- "):
                        examples[block["intent"]].append((line[2:].strip(), lang))
    return examples


EXAMPLES = faq_examples()


PLANS: Dict[str, List[Tuple[str, str]]] = {}


def conversation(sender: str, turns: int) -> List[Tuple[str, str]]:
    """The ``turns`` messages of customer ``sender`` (always the same), each a different FAQ question."""
    if sender not in PLANS:
        start = next(_numbers)
        intents = [FAQ_INTENTS[(start + n) % len(FAQ_INTENTS)] for n in range(turns)]
        PLANS[sender] = [EXAMPLES[intent][(start + n) % len(EXAMPLES[intent])] for n, intent in enumerate(intents)]
    return PLANS[sender]


class FlakyPlatform(FakePlatform):
    """The fake platform, which can be made to answer 503 (down) for a while."""

    down = False

    async def accept(self, data: Dict[str, Any]) -> web.Response:
        if self.down:
            return web.json_response({"error": "maintenance"}, status=503)
        return await super().accept(data)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform() -> AsyncIterator[FlakyPlatform]:
    async with FlakyPlatform(SECRET) as fake:
        yield fake


@pytest.fixture(scope="module")
def topology(platform: FakePlatform, tmp_path_factory: pytest.TempPathFactory):
    scale = ScaleTopology(tmp_path_factory.mktemp("scale"), platform.url, SECRET_ENV)
    try:
        scale.start()
        yield scale
    finally:
        scale.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def post(http: aiohttp.ClientSession, replica_url: str, message_id: str, sender: str, text_: str,
               lang: str) -> int:
    async with http.post(f"{replica_url}/webhooks/hook", **signed(SECRET, inbound(message_id, sender, text_, lang))) as r:
        await r.read()
        return r.status


async def converse(http: aiohttp.ClientSession, replicas: Sequence[str], sender: str, turns: int,
                   pause: float = 0.0) -> List[str]:
    """One customer's messages in order, each to the next replica (as a load balancer would)."""
    sent = []
    for n, (text_, lang) in enumerate(conversation(sender, turns)):
        message_id = f"{sender}-{n}"
        status = await post(http, replicas[n % len(replicas)], message_id, sender, text_, lang)
        assert status == 200, f"{message_id}: webhook answered {status}"
        sent.append(message_id)
        if pause:
            await asyncio.sleep(pause)
    return sent


def first_replies(platform: FakePlatform, senders: Sequence[str]) -> Dict[str, List[str]]:
    """Per sender, the idempotency keys of the first bubble of each reply, in arrival order."""
    wanted = set(senders)
    replies: Dict[str, List[str]] = collections.defaultdict(list)
    for call in platform.received:
        key = call.get("idempotency_key", "")
        if call.get("recipient") in wanted and key.startswith("reply:") and key.endswith(":0"):
            replies[call["recipient"]].append(key)
    return replies


async def wait_answered(platform: FakePlatform, senders: Sequence[str], per_sender: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        replies = first_replies(platform, senders)
        missing = {s: per_sender - len(set(replies.get(s, []))) for s in senders}
        if all(n <= 0 for n in missing.values()):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not answered within {timeout} s: "
                                 f"{ {s: n for s, n in missing.items() if n > 0} }")
        await asyncio.sleep(0.5)


def store_rows(topology: ScaleTopology, statement) -> list:
    engine = create_engine(topology.database_url, future=True)
    try:
        with engine.connect() as connection:
            return list(connection.execute(statement))
    finally:
        engine.dispose()


def assert_once_and_in_order(topology: ScaleTopology, platform: FakePlatform, senders: Sequence[str],
                             per_sender: int, resent_in_flight: bool = False) -> None:
    """Every message answered exactly once; each customer's replies in the order of their messages.

    "Once" as the customer sees it: a platform deduplicates on ``idempotency_key`` (the signed
    webhook's contract). Only after a kill -9 may a reply whose delivery was in flight at that
    instant be sent again -- with the same key, so it still reaches the customer once.
    """
    replies = first_replies(platform, senders)
    for sender in senders:
        keys = list(dict.fromkeys(replies[sender]))  # the platform's view, first arrival first
        assert len(keys) == per_sender, f"{sender}: replies {replies[sender]}"
        inbound_ids = [int(key.split(":")[1]) for key in keys]
        assert inbound_ids == sorted(inbound_ids), f"{sender}: replies out of order {inbound_ids}"
        resent = len(replies[sender]) - len(keys)
        # a customer has at most one reply in flight at a time (the outbox keeps their order)
        assert resent <= (1 if resent_in_flight else 0), f"{sender}: sent again {replies[sender]}"
    rows = store_rows(topology, select(Message.status, func.count()).where(
        Message.direction == "inbound").group_by(Message.status))
    assert dict(rows).get(InboundStatus.received.value, 0) == 0


# ---------------------------------------------------------------- the topology at work


async def test_two_replicas_answer_every_message_once_in_order(topology, platform, http) -> None:
    replicas = [service.url for service in topology.services]
    senders = [f"order-{n}" for n in range(24)]
    # 24 customers at once, each writing 3 messages in a row, alternating between replicas
    await asyncio.gather(*(converse(http, replicas[n % 2:] + replicas[:n % 2], sender, 3)
                           for n, sender in enumerate(senders)))
    await wait_answered(platform, senders, 3, timeout=120)
    assert_once_and_in_order(topology, platform, senders, 3)
    # both service replicas and both Rasa replicas did work
    owners = store_rows(topology, text("SELECT DISTINCT lease_owner FROM outbox WHERE lease_owner IS NOT NULL"))
    assert len({owner for (owner,) in owners}) == 2, owners
    # Rasa's trackers are in the shared PostgreSQL tracker store ...
    tracked = store_rows(topology, text("SELECT count(DISTINCT sender_id) FROM events WHERE sender_id LIKE 'hook:order-%'"))
    assert tracked[0][0] == len(senders)
    # ... and its events went to RabbitMQ
    events = await drain_queue(topology.queue)
    assert {e["sender_id"] for e in events if e.get("sender_id", "").startswith("hook:order-")} == \
        {f"hook:{s}" for s in senders}


async def drain_queue(queue_name: str, idle_seconds: float = 2.0) -> List[dict]:
    """Every event Rasa published to the RabbitMQ queue so far."""
    import aio_pika

    from tests.scale.topology import RABBITMQ_HOST

    connection = await aio_pika.connect_robust(f"amqp://guest:guest@{RABBITMQ_HOST}:5672/")
    events: List[dict] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True, passive=True)
        while True:
            message = await queue.get(no_ack=True, fail=False, timeout=idle_seconds)
            if message is None:
                return events
            events.append(json.loads(message.body))
    finally:
        await connection.close()


async def test_a_storm_of_duplicate_deliveries_is_one_message_and_one_answer(topology, platform, http) -> None:
    replicas = [service.url for service in topology.services]
    (text_, lang), = conversation("storm", 1)
    statuses = await asyncio.gather(*(post(http, replicas[n % 2], "storm-1", "storm", text_, lang) for n in range(40)))
    assert set(statuses) == {200}
    await wait_answered(platform, ["storm"], 1, timeout=60)
    await asyncio.sleep(3)  # a second answer would have arrived by now
    assert_once_and_in_order(topology, platform, ["storm"], 1)
    stored = store_rows(topology, text("SELECT count(*) FROM messages WHERE channel_message_id = 'storm-1'"))
    assert stored[0][0] == 1


# ---------------------------------------------------------------- faults


async def test_one_rasa_replica_down_its_conversations_move_to_the_other_at_once(topology, platform, http) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, topology.rasa.stop_rasa, [1])
    senders = [f"one-rasa-{n}" for n in range(8)]
    stopped = topology.rasa.urls[1]
    assert any(RasaReplicas(topology.rasa.urls).for_sender(f"hook:{s}")[0] == stopped for s in senders)
    try:
        await asyncio.gather(*(converse(http, [topology.services[n % 2].url], sender, 2)
                               for n, sender in enumerate(senders)))
        # no waiting for the replica to come back: answered by the live one right away
        await wait_answered(platform, senders, 2, timeout=45)
    finally:
        await loop.run_in_executor(None, topology.rasa.start_rasa, [1])
    assert_once_and_in_order(topology, platform, senders, 2)
    failed = store_rows(topology, text("SELECT count(*) FROM messages WHERE attempts > 0 AND channel_message_id LIKE 'one-rasa-%'"))
    assert failed[0][0] == 0  # fail-over, not retry with backoff



async def test_replica_killed_with_kill_9_under_load_loses_and_repeats_nothing(topology, platform, http) -> None:
    survivor, victim = topology.services
    senders = [f"kill-{n}" for n in range(16)]
    load = asyncio.gather(*(converse(http, [victim.url, survivor.url], sender, 3, pause=0.3)
                            for sender in senders), return_exceptions=True)
    await asyncio.sleep(1.0)
    await asyncio.get_running_loop().run_in_executor(None, victim.kill)  # mid-load, leases held
    try:
        results = await load
        # Webhooks refused by the dead replica are retried by the platform, at the live one.
        for sender, result in zip(senders, results):
            if isinstance(result, BaseException):
                await resend_to(http, survivor.url, sender, 3)
        await wait_answered(platform, senders, 3, timeout=120)
        await asyncio.sleep(3)
        assert_once_and_in_order(topology, platform, senders, 3, resent_in_flight=True)
    finally:  # the next tests need both replicas
        await asyncio.get_running_loop().run_in_executor(None, victim.start, SECRET_ENV)


async def resend_to(http: aiohttp.ClientSession, url: str, sender: str, turns: int) -> None:
    """The platform's retry: every message of ``sender`` again (duplicates are ignored)."""
    for n, (text_, lang) in enumerate(conversation(sender, turns)):
        assert await post(http, url, f"{sender}-{n}", sender, text_, lang) == 200


async def test_rasa_down_for_30_seconds_messages_wait_and_are_answered_after(topology, platform, http) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, topology.rasa.stop_rasa)
    senders = [f"rasa-down-{n}" for n in range(6)]
    try:
        await asyncio.gather(*(converse(http, [topology.services[n % 2].url], sender, 1)
                               for n, sender in enumerate(senders)))  # accepted: 2xx
        await asyncio.sleep(30)
        assert first_replies(platform, senders) == {}  # nobody answered while Rasa was down
    finally:
        await loop.run_in_executor(None, topology.rasa.start_rasa)
    await wait_answered(platform, senders, 1, timeout=120)
    assert_once_and_in_order(topology, platform, senders, 1)
    opened = store_rows(topology, text("SELECT count(*) FROM cases WHERE trigger = 'rasa_unavailable'"))
    assert opened[0][0] == 0  # waited for the bot, not handed to a person


async def test_outbox_items_survive_a_crash_of_every_replica(topology, platform, http) -> None:
    loop = asyncio.get_running_loop()
    senders = [f"outbox-crash-{n}" for n in range(5)]
    platform.down = True  # replies are committed to the outbox but cannot be delivered
    try:
        await asyncio.gather(*(converse(http, [topology.services[0].url], sender, 1) for sender in senders))
        await loop.run_in_executor(None, lambda: wait_until(
            lambda: failed_attempts(topology, senders) >= len(senders), 90, what="delivery attempts"))
        for service in topology.services:
            await loop.run_in_executor(None, service.kill)
    finally:
        platform.down = False
    for service in topology.services:
        await loop.run_in_executor(None, service.start, SECRET_ENV)
    await wait_answered(platform, senders, 1, timeout=90)
    await asyncio.sleep(3)
    assert_once_and_in_order(topology, platform, senders, 1, resent_in_flight=True)


def failed_attempts(topology: ScaleTopology, senders: Sequence[str]) -> int:
    """Outbox replies to ``senders`` that were tried and failed at least once."""
    rows = store_rows(topology, select(func.count()).select_from(OutboxItem).where(
        OutboxItem.recipient.in_(list(senders)), OutboxItem.status == OutboxStatus.pending,
        OutboxItem.attempts >= 1))
    return rows[0][0]


async def test_a_model_swapped_into_both_rasa_replicas_under_load_loses_and_repeats_nothing(
        topology, platform, http, tmp_path) -> None:
    """The learning loop's promotion (bot/retraining/promotion.py, the console's button) while
    customers write: both replicas load the new model one after the other; every message is
    answered once and in order, and both replicas serve the new file afterwards."""
    import shutil

    from bot.config import load_config
    from bot.learning import registry
    from bot.rasa.stack import latest_model
    from bot.retraining import promotion
    from bot.retraining.replicas import serving
    from bot.store.database import Store

    models = tmp_path / "models"
    (models / "candidates").mkdir(parents=True)
    serving_now = latest_model()
    shutil.copy2(serving_now, models / serving_now.name)
    candidate = models / "candidates" / "candidate-swap-under-load.tar.gz"
    shutil.copy2(serving_now, candidate)  # the same weights under a new name: the swap itself is tested
    config_file = tmp_path / "webcare.yml"
    config_file.write_text(yaml.safe_dump({"database": {"url": topology.database_url},
                                           "rasa": {"url": topology.rasa.urls, "model_dir": str(models)}}))
    config = load_config(str(config_file), environ={})
    store = Store.from_url(topology.database_url)
    try:
        def register(session):
            in_use, _ = registry.adopt(session, serving_now.name)
            job = registry.start_job(session, None, auto_promote=False)
            passed = {"in_use": {"model_id": in_use}, "gate": {"passed": True, "reasons": ["as good as the model in use"]}}
            model_id = registry.add_candidate(session, job.id, candidate.name, 0, 1.0, passed, True)
            registry.finish_job(session, job.id)
            return model_id
        model_id = store.transaction(register)
        senders = [f"swap-{n}" for n in range(16)]
        load = asyncio.gather(*(converse(http, [topology.services[n % 2].url, topology.services[(n + 1) % 2].url],
                                         sender, 4, pause=1.0) for n, sender in enumerate(senders)))
        await asyncio.sleep(1.0)
        result = await promotion.promote(store, config, model_id, None)  # while the customers write
        await load
        assert [r["ok"] for r in result["swap"]["replicas"]] == [True, True], result
        await wait_answered(platform, senders, 4, timeout=180)
        await asyncio.sleep(3)  # a late second answer would show up here
        assert_once_and_in_order(topology, platform, senders, 4)
        for url in topology.rasa.urls:
            assert await serving(http, url) == candidate.name
        assert store.transaction(registry.in_use_file) == (model_id, candidate.name)
    finally:
        store.close()


async def test_postgresql_restarted_the_service_recovers_by_itself(topology, platform, http) -> None:
    loop = asyncio.get_running_loop()
    replica = topology.services[0].url
    before = [f"pg-before-{n}" for n in range(3)]
    await asyncio.gather(*(converse(http, [replica], sender, 1) for sender in before))
    await loop.run_in_executor(None, topology.postgres.stop)
    try:
        # While the database is down: a clear 503 with Retry-After, nothing half-written.
        (text_, lang), = conversation("pg-during", 1)
        async with http.post(f"{replica}/webhooks/hook",
                             **signed(SECRET, inbound("pg-during-0", "pg-during", text_, lang))) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            assert "store is unavailable" in (await response.json())["reason"]
        async with http.get(f"{replica}/health") as response:
            assert response.status == 503
        await asyncio.sleep(5)
    finally:
        await loop.run_in_executor(None, topology.postgres.start)
    # The platform retries the refused delivery; new customers write as well.
    assert await post(http, replica, "pg-during-0", "pg-during", text_, lang) == 200
    after = [f"pg-after-{n}" for n in range(3)]
    await asyncio.gather(*(converse(http, [topology.services[n % 2].url], sender, 1) for n, sender in enumerate(after)))
    everyone = before + ["pg-during"] + after
    await wait_answered(platform, everyone, 1, timeout=120)
    await asyncio.sleep(3)
    assert_once_and_in_order(topology, platform, everyone, 1)
    for service in topology.services:
        async with http.get(f"{service.url}/health") as response:
            assert response.status == 200, await response.text()
