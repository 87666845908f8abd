"""The outbox dispatcher with the real signed webhook connector and a fake platform on loopback."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import event, func, select, update

from bot.privacy import gdpr
from bot.pipeline.dispatcher import (
    LEASE_SECONDS,
    Delivery,
    Dispatcher,
    claim_due,
    confirm_send,
    release_own_leases,
    renew_leases,
)
from bot.pipeline.intake import store_inbound
from bot.pipeline.outbox import enqueue
from bot.pipeline.rate_limit import TokenBucket
from bot.store.database import Store
from tests.bot.locking_support import claim_beside_a_lock
from bot.store.models import (
    AuditEntry,
    Broadcast,
    BroadcastRecipient,
    ChannelIdentity,
    Conversation,
    Message,
    OutboxItem,
    OutboxStatus,
    utcnow,
)
from connectors.base import InboundMessage
from connectors.signing import SIGNATURE_HEADER, verify
from connectors.webhook import SignedWebhookConnector

SECRET = "platform-shared-secret"
class FakePlatform:
    """Records every callback and answers as scripted (default: 200 with a message id)."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.script: List[Tuple[int, Any, Dict[str, str]]] = []
        self.server: Optional[TestServer] = None
        self.delay = 0.0  # a slow platform: seconds before each answer

    def answer(self, status: int, body: Any = None, headers: Optional[Dict[str, str]] = None) -> None:
        self.script.append((status, body, headers or {}))

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append({
            "body": json.loads(raw),
            "verified": verify(SECRET, raw, request.headers.get(SIGNATURE_HEADER)),
        })
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            status, body, headers = self.script.pop(0)
        else:
            status, body, headers = 200, {"message_id": f"p-{len(self.requests)}"}, {}
        return web.json_response(body if body is not None else {"error": status}, status=status, headers=headers)

    @property
    def bodies(self) -> List[Dict[str, Any]]:
        return [r["body"] for r in self.requests]

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/callback"))


@pytest.fixture
async def platform() -> AsyncIterator[FakePlatform]:
    fake = FakePlatform()
    app = web.Application()
    app.router.add_post("/callback", fake.handle)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


@pytest.fixture
async def connector(platform: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SignedWebhookConnector]:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    connector = SignedWebhookConnector.from_config(
        "hook", {"callback_url": platform.url, "secret_env": "TEST_HOOK_SECRET", "rate_limit_per_second": 1000}
    )
    await connector.start()
    yield connector
    await connector.stop()


@pytest.fixture
def dispatcher(store: Store, connector: SignedWebhookConnector) -> Dispatcher:
    return Dispatcher(store, {"hook": connector}, max_attempts=3)


def conversation(store: Store, sender: str = "42") -> int:
    """A conversation created the way intake creates it (so identities and messages exist)."""
    message = InboundMessage(channel="hook", channel_message_id=f"in-{sender}-{uuid.uuid4().hex[:6]}",
                             sender_id=sender, text="hi")
    return store.transaction(store_inbound, message).conversation_id


def queue(store: Store, key: str, recipient: str = "42", conversation_id: Optional[int] = None,
          text: Optional[str] = None, **kwargs) -> int:
    def unit(session):
        return enqueue(session, key=key, channel="hook", recipient=recipient,
                       payload={"text": text or f"text of {key}"}, source="bot",
                       conversation_id=conversation_id, **kwargs).id
    return store.transaction(unit)


def item(store: Store, item_id: int) -> OutboxItem:
    return store.transaction(lambda s: s.get(OutboxItem, item_id))


def message_of(store: Store, item_id: int) -> Message:
    return store.transaction(lambda s: s.get(Message, s.get(OutboxItem, item_id).message_id))


def make_due(store: Store) -> None:
    """Skip the backoff: every pending item is due now."""
    past = utcnow() - dt.timedelta(seconds=1)
    store.transaction(lambda s: s.execute(
        update(OutboxItem).where(OutboxItem.status == OutboxStatus.pending).values(next_attempt_at=past)
    ))


async def one_round(store: Store, dispatcher: Dispatcher) -> List[Delivery]:
    deliveries = await store.run(claim_due, ["hook"], 100)
    await dispatcher.deliver_all(deliveries)
    return deliveries


def seconds_from_now(moment: dt.datetime) -> float:
    return (moment - utcnow()).total_seconds()


# ---------------------------------------------------------------- delivery outcomes


async def test_delivered_item_is_sent_and_recorded(store, dispatcher, platform) -> None:
    conv = conversation(store)
    item_id = queue(store, "reply:1:0", conversation_id=conv, text="Hello there")
    message = message_of(store, item_id)
    assert message.status == "queued" and message.direction.value == "out"

    deliveries = await one_round(store, dispatcher)
    assert [d.id for d in deliveries] == [item_id]
    assert platform.requests == [{
        "body": {"idempotency_key": "reply:1:0", "recipient": "42", "text": "Hello there"},
        "verified": True,
    }]
    sent = item(store, item_id)
    assert sent.status == OutboxStatus.sent
    assert sent.channel_message_id == "p-1"
    assert sent.attempts == 1 and sent.lease_until is None and sent.sent_at is not None
    message = message_of(store, item_id)
    assert message.status == "sent" and message.channel_message_id == "p-1"
    assert message.processed_at is not None


async def test_idempotency_key_is_stable_across_retries(store, dispatcher, platform) -> None:
    item_id = queue(store, "reply:7:0", conversation_id=conversation(store))
    platform.answer(500, {"error": "try later"})
    await one_round(store, dispatcher)
    assert item(store, item_id).status == OutboxStatus.pending
    make_due(store)
    await one_round(store, dispatcher)
    assert item(store, item_id).status == OutboxStatus.sent
    assert [b["idempotency_key"] for b in platform.bodies] == ["reply:7:0", "reply:7:0"]
    assert platform.bodies[0] == platform.bodies[1]
    assert all(r["verified"] for r in platform.requests)


async def test_429_waits_without_counting_an_attempt_and_pauses_the_channel(store, dispatcher, platform) -> None:
    item_id = queue(store, "k429", conversation_id=conversation(store))
    platform.answer(429, {"error": "slow down"}, {"Retry-After": "30"})
    before = time.monotonic()
    await one_round(store, dispatcher)
    waiting = item(store, item_id)
    assert waiting.status == OutboxStatus.pending
    assert waiting.attempts == 0
    assert waiting.lease_until is None
    assert 25 <= seconds_from_now(waiting.next_attempt_at) <= 31
    assert "429" in waiting.last_error
    bucket = dispatcher.buckets["hook"]
    assert bucket.paused_until >= before + 29
    assert bucket.tokens == 0.0
    assert await store.run(claim_due, ["hook"], 100) == []  # not due yet
    assert message_of(store, item_id).status == "queued"


async def test_500_backs_off_exponentially_then_fails_after_max_attempts(store, dispatcher, platform) -> None:
    item_id = queue(store, "k500", conversation_id=conversation(store))
    for _ in range(3):
        platform.answer(500, {"error": "boom"})

    await one_round(store, dispatcher)
    first = item(store, item_id)
    assert first.status == OutboxStatus.pending and first.attempts == 1
    assert first.lease_until is None
    assert "500" in first.last_error
    assert 1.0 <= seconds_from_now(first.next_attempt_at) <= 3.0  # 2 s ± 20 % jitter

    make_due(store)
    await one_round(store, dispatcher)
    second = item(store, item_id)
    assert second.status == OutboxStatus.pending and second.attempts == 2
    assert 2.5 <= seconds_from_now(second.next_attempt_at) <= 5.5  # 4 s ± 20 % jitter

    make_due(store)
    await one_round(store, dispatcher)
    last = item(store, item_id)
    assert last.status == OutboxStatus.failed and last.attempts == 3
    assert message_of(store, item_id).status == "failed"
    assert len(platform.requests) == 3

    make_due(store)
    assert await one_round(store, dispatcher) == []
    assert len(platform.requests) == 3


async def test_400_fails_at_once_and_the_next_item_still_goes(store, dispatcher, platform) -> None:
    conv = conversation(store)
    bad = queue(store, "bad", conversation_id=conv)
    good = queue(store, "good", conversation_id=conv)
    platform.answer(400, {"error": "text too long"})
    await one_round(store, dispatcher)
    failed = item(store, bad)
    assert failed.status == OutboxStatus.failed and failed.attempts == 1
    assert "400" in failed.last_error
    assert message_of(store, bad).status == "failed"
    assert store.transaction(lambda s: s.execute(select(ChannelIdentity.reachable)).scalar_one()) is True
    # a permanently failed item no longer blocks the recipient's queue
    await one_round(store, dispatcher)
    assert item(store, good).status == OutboxStatus.sent
    assert [b["idempotency_key"] for b in platform.bodies] == ["bad", "good"]


async def test_410_marks_the_recipient_unreachable_and_fails_their_queue(store, dispatcher, platform) -> None:
    gone = conversation(store, "42")
    other = conversation(store, "43")
    first = queue(store, "g1", conversation_id=gone)
    rest = [queue(store, "g2", conversation_id=gone), queue(store, "g3", conversation_id=gone)]
    platform.answer(410, {"error": "user blocked the bot"})
    await one_round(store, dispatcher)
    elsewhere = queue(store, "o1", recipient="43", conversation_id=other)
    await one_round(store, dispatcher)

    assert item(store, first).status == OutboxStatus.failed
    for item_id in rest:
        stopped = item(store, item_id)
        assert stopped.status == OutboxStatus.failed
        assert stopped.last_error == "recipient unreachable"
        assert stopped.attempts == 0
    assert item(store, elsewhere).status == OutboxStatus.sent
    reachable = dict(store.transaction(
        lambda s: s.execute(select(ChannelIdentity.external_id, ChannelIdentity.reachable)).all()))
    assert reachable == {"42": False, "43": True}
    make_due(store)
    await one_round(store, dispatcher)
    assert sorted(b["idempotency_key"] for b in platform.bodies) == ["g1", "o1"]


async def test_410_also_fails_the_log_messages_of_the_stopped_items(store, dispatcher, platform) -> None:
    conv = conversation(store)
    queue(store, "g1", conversation_id=conv)
    later = queue(store, "g2", conversation_id=conv)
    platform.answer(410)
    await one_round(store, dispatcher)
    assert item(store, later).status == OutboxStatus.failed
    assert message_of(store, later).status == "failed"


async def test_connector_without_callback_url_fails_permanently(store, monkeypatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    connector = SignedWebhookConnector("hook", {"secret_env": "TEST_HOOK_SECRET"})
    dispatcher = Dispatcher(store, {"hook": connector})
    item_id = queue(store, "nowhere")
    await one_round(store, dispatcher)
    failed = item(store, item_id)
    assert failed.status == OutboxStatus.failed and "callback_url" in failed.last_error
    await connector.stop()


async def test_unreachable_platform_is_retried(store, monkeypatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    connector = SignedWebhookConnector("hook", {"secret_env": "TEST_HOOK_SECRET",
                                                "callback_url": "http://127.0.0.1:9/callback"})
    dispatcher = Dispatcher(store, {"hook": connector})
    item_id = queue(store, "refused")
    await one_round(store, dispatcher)
    await connector.stop()
    retried = item(store, item_id)
    assert retried.status == OutboxStatus.pending and retried.attempts == 1
    assert "unreachable" in retried.last_error
    assert seconds_from_now(retried.next_attempt_at) > 1.0


# ---------------------------------------------------------------- order per recipient


async def test_order_per_recipient_across_claim_rounds(store, dispatcher, platform) -> None:
    conv = conversation(store, "42")
    other = conversation(store, "43")
    ids = [queue(store, f"a{i}", conversation_id=conv) for i in range(3)]
    queue(store, "b0", recipient="43", conversation_id=other)
    rounds = 0
    while any(item(store, i).status == OutboxStatus.pending for i in ids):
        claimed = await one_round(store, dispatcher)
        # never two items of one recipient in flight at once
        recipients = [d.recipient for d in claimed]
        assert len(recipients) == len(set(recipients))
        rounds += 1
        assert rounds <= 5
    assert rounds == 3
    assert [b["idempotency_key"] for b in platform.bodies if b["recipient"] == "42"] == ["a0", "a1", "a2"]
    ids_sent = [item(store, i).channel_message_id for i in ids]
    assert len(set(ids_sent)) == 3


async def test_order_per_recipient_with_the_run_loop(store, dispatcher, platform) -> None:
    conv = conversation(store)
    ids = [queue(store, f"r{i}", conversation_id=conv) for i in range(3)]
    task = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(200):
            if len(platform.requests) >= 3:
                break
            await asyncio.sleep(0.05)
        # queued later: wake() makes the loop look at once
        ids.append(queue(store, "r3", conversation_id=conv))
        dispatcher.wake()
        for _ in range(200):
            if item(store, ids[-1]).status == OutboxStatus.sent:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [b["idempotency_key"] for b in platform.bodies] == ["r0", "r1", "r2", "r3"]
    assert all(item(store, i).status == OutboxStatus.sent for i in ids)


async def test_a_failing_first_item_blocks_the_later_ones(store, dispatcher, platform) -> None:
    conv = conversation(store)
    ids = [queue(store, f"f{i}", conversation_id=conv) for i in range(3)]
    platform.answer(500)
    await one_round(store, dispatcher)
    assert [b["idempotency_key"] for b in platform.bodies] == ["f0"]
    # f0 waits for its backoff; f1 and f2 wait for f0
    assert await store.run(claim_due, ["hook"], 100) == []
    make_due(store)
    while any(item(store, i).status == OutboxStatus.pending for i in ids):
        assert len(platform.requests) < 10
        await one_round(store, dispatcher)
    assert [b["idempotency_key"] for b in platform.bodies] == ["f0", "f0", "f1", "f2"]


async def test_deliver_all_stops_a_recipient_batch_at_the_first_failure(store, dispatcher, platform) -> None:
    """Even when handed several items of one recipient, a failure keeps the later ones back."""
    conv = conversation(store)
    ids = [queue(store, f"d{i}", conversation_id=conv) for i in range(3)]
    leased = utcnow() + dt.timedelta(seconds=LEASE_SECONDS)
    store.transaction(lambda s: s.execute(update(OutboxItem).values(lease_until=leased)))
    batch = [Delivery(i, "hook", "42", {"text": f"d{n}"}, f"d{n}", 0) for n, i in enumerate(ids)]
    platform.answer(503)
    await dispatcher.deliver_all(batch)
    assert [b["idempotency_key"] for b in platform.bodies] == ["d0"]
    assert item(store, ids[0]).attempts == 1
    for later in ids[1:]:
        waiting = item(store, later)
        assert waiting.status == OutboxStatus.pending and waiting.attempts == 0
        assert waiting.lease_until is None  # given back, not left leased until the lease expires


async def test_an_item_taken_over_while_waiting_for_the_rate_limit_is_sent_once(
        store, platform, monkeypatch) -> None:
    """Should a claim still expire while the dispatcher waits for the channel (429 pause) --
    its heartbeat stalled -- another replica may claim the item; the first dispatcher notices
    and does not send it."""
    monkeypatch.setattr("bot.pipeline.dispatcher.LEASE_SECONDS", 1)
    monkeypatch.setattr("bot.pipeline.dispatcher.HEARTBEAT_SECONDS", 60.0)  # no heartbeat in time
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    connector = SignedWebhookConnector("hook", {"secret_env": "TEST_HOOK_SECRET", "callback_url": platform.url,
                                                "rate_limit_per_second": 1})
    first_replica = Dispatcher(store, {"hook": connector})
    queue(store, "first", recipient="1")
    waiting = queue(store, "second", recipient="2")
    platform.answer(429, {"error": "flood"}, {"Retry-After": "2"})
    task = asyncio.create_task(first_replica.deliver_all(await store.run(claim_due, ["hook"], 100)))
    try:
        await asyncio.sleep(1.5)  # "second" is still waiting for the channel; its lease has run out
        assert item(store, waiting).status == OutboxStatus.pending
        stolen = await store.run(claim_due, ["hook"], 100)  # another replica takes it over
        assert waiting in [d.id for d in stolen]
    finally:
        await task
    assert [b["idempotency_key"] for b in platform.bodies].count("second") == 0
    second_replica = Dispatcher(store, {"hook": connector})
    await second_replica.deliver_all([d for d in stolen if d.id == waiting])
    await connector.stop()
    assert [b["idempotency_key"] for b in platform.bodies].count("second") == 1
    assert item(store, waiting).status == OutboxStatus.sent


# ---------------------------------------------------------------- leases and the heartbeat

# Ten heartbeats per lease: a busy CI machine may stall the loop or the database for a while
# without a lease lapsing under a test that checks it never does.
SHORT_LEASE = 2.0
SHORT_HEARTBEAT = 0.2


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` holds (checked every 50 ms); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 s lease renewed every 0.2 s (instead of 15 s and 5 s)."""
    monkeypatch.setattr("bot.pipeline.dispatcher.LEASE_SECONDS", SHORT_LEASE)
    monkeypatch.setattr("bot.pipeline.dispatcher.HEARTBEAT_SECONDS", SHORT_HEARTBEAT)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store on SQLite, then on PostgreSQL."""
    from tests.conftest import fresh_store

    yield from fresh_store(request.param, tmp_path, "webcare_dispatcher_lease")


def heartbeats(owner: str) -> List[asyncio.Task]:
    """The heartbeat tasks of dispatcher ``owner`` still alive."""
    return [t for t in asyncio.all_tasks() if t.get_name() == f"{owner} heartbeat" and not t.done()]


def steal(store: Store, item_id: int) -> dt.datetime:
    """Another replica holds the item now (it took it over after our lease lapsed)."""
    until = utcnow() + dt.timedelta(seconds=60)
    store.transaction(lambda s: s.execute(
        update(OutboxItem).where(OutboxItem.id == item_id).values(lease_owner="thief", lease_until=until)))
    return until


async def test_a_send_slower_than_the_lease_keeps_it_and_goes_out_once(
        any_store: Store, platform: FakePlatform, connector, short_leases) -> None:
    """The heartbeat keeps the lease while the platform takes 2.5 leases to answer: another
    replica running beside it never gets the item, and it is sent exactly once."""
    store = any_store
    item_id = queue(store, "slow", conversation_id=conversation(store))
    platform.delay = 2.5 * SHORT_LEASE
    first = Dispatcher(store, {"hook": connector}, owner="first")
    second = Dispatcher(store, {"hook": connector}, owner="second")
    [claimed] = await store.run(claim_due, ["hook"], 100, "first")
    started = time.monotonic()
    sending = asyncio.create_task(first.deliver_all([claimed]))
    rival = asyncio.create_task(second.run())  # another replica, looking for work all along
    latest = claimed.lease_until
    try:
        while not sending.done():
            row = item(store, item_id)
            if row.status == OutboxStatus.sent:
                break
            assert row.status == OutboxStatus.pending and row.lease_owner == "first"
            assert row.lease_until > utcnow()  # never lapsed
            latest = max(latest, row.lease_until)
            assert await store.run(claim_due, ["hook"], 100, "third") == []
            await asyncio.sleep(0.1)
        await sending
    finally:
        rival.cancel()
        await asyncio.gather(rival, return_exceptions=True)
    assert time.monotonic() - started >= 2.5 * SHORT_LEASE
    assert seconds_from_now(latest) > seconds_from_now(claimed.lease_until) + SHORT_LEASE  # renewed on and on
    assert [b["idempotency_key"] for b in platform.bodies] == ["slow"]
    sent = item(store, item_id)
    assert (sent.status, sent.attempts, sent.lease_until, sent.channel_message_id) == (
        OutboxStatus.sent, 1, None, "p-1")
    assert heartbeats("first") == []


async def test_a_retry_after_pause_longer_than_the_lease_keeps_the_waiting_items(
        any_store: Store, platform: FakePlatform, short_leases, monkeypatch) -> None:
    """A 429 pauses the channel for 3 leases: the items waiting for it stay ours (nobody else
    can claim them) and go out once, by us, when the pause is over."""
    store = any_store
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    connector = SignedWebhookConnector("hook", {"secret_env": "TEST_HOOK_SECRET", "callback_url": platform.url,
                                                "rate_limit_per_second": 1})
    first = Dispatcher(store, {"hook": connector}, owner="first")
    queue(store, "first", recipient="1")
    waiting = [queue(store, f"waiting{n}", recipient=str(n)) for n in (2, 3)]
    platform.answer(429, {"error": "flood"}, {"Retry-After": str(3 * SHORT_LEASE)})
    task = asyncio.create_task(first.deliver_all(await store.run(claim_due, ["hook"], 100, "first")))
    try:
        deadline = time.monotonic() + 2.5 * SHORT_LEASE
        while time.monotonic() < deadline:
            assert await store.run(claim_due, ["hook"], 100, "second") == []
            for item_id in waiting:
                row = item(store, item_id)
                assert (row.status, row.lease_owner) == (OutboxStatus.pending, "first")
                assert row.lease_until > utcnow()
            await asyncio.sleep(0.1)
        assert [b["idempotency_key"] for b in platform.bodies] == ["first"]  # still paused
    finally:
        await task
        await connector.stop()
    keys = [b["idempotency_key"] for b in platform.bodies]
    assert sorted(keys) == ["first", "waiting2", "waiting3"]
    assert all(item(store, i).status == OutboxStatus.sent for i in waiting)
    assert heartbeats("first") == []


@pytest.mark.parametrize("how", ["taken over", "released", "erased"])
async def test_an_item_lost_between_heartbeats_is_not_sent(
        any_store: Store, platform: FakePlatform, connector, short_leases, caplog, how) -> None:
    """While the recipient's older item is slowly sent, the later one's lease is taken over by
    another replica, released, or the item cancelled by an erase: the heartbeat finds it no
    longer ours and leaves it alone (no renewal over another's lease), and it is not sent."""
    store = any_store
    conv = conversation(store)
    slow = queue(store, "a0", conversation_id=conv)
    later = queue(store, "a1", conversation_id=conv)
    platform.delay = 2 * SHORT_LEASE
    first = Dispatcher(store, {"hook": connector}, owner="first")
    deliveries = await store.run(claim_due, ["hook"], 100, "first")
    assert [d.id for d in deliveries] == [slow]  # a1 waits for a0 ...
    # ... so lease it as the same claim would have (claim_due takes one item per recipient)
    store.transaction(lambda s: s.execute(update(OutboxItem).where(OutboxItem.id == later).values(
        lease_owner="first", lease_until=deliveries[0].lease_until)))
    deliveries.append(Delivery(later, "hook", "42", {"text": "text of a1"}, "a1", 0,
                               deliveries[0].lease_until, "first"))
    caplog.set_level(logging.INFO, logger="bot.pipeline.dispatcher")
    task = asyncio.create_task(first.deliver_all(deliveries))
    try:
        while not platform.requests:
            await asyncio.sleep(0.02)
        # a0 in flight; the heartbeat renews a1's lease meanwhile
        await eventually(lambda: item(store, later).lease_until > deliveries[0].lease_until,
                         SHORT_LEASE / 2, "a1's lease renewed")
        thief_until = None
        if how == "taken over":
            thief_until = steal(store, later)
        elif how == "released":
            assert store.transaction(release_own_leases, "first") == 2  # (a0's too: it is still sent)
        else:
            erase(store)
        await eventually(lambda: f"lost the lease on outbox {later}" in caplog.text,  # the heartbeat noticed
                         SHORT_LEASE / 2, "the lost lease noticed")
    finally:
        await task
    assert [b["idempotency_key"] for b in platform.bodies] == ["a0"]
    row = item(store, later)
    if how == "taken over":
        assert (row.status, row.lease_owner, row.lease_until) == (OutboxStatus.pending, "thief", thief_until)
    elif how == "released":
        assert (row.status, row.lease_owner, row.lease_until) == (OutboxStatus.pending, None, None)
    else:
        assert_cancelled(store, later)
    assert row.attempts == 0


async def test_a_lease_running_short_is_renewed_at_send_time(any_store: Store) -> None:
    """The heartbeat did not keep up: confirm_send renews a lease with less than half left, and
    the delivery it returns carries the new token (the old one no longer confirms)."""
    store = any_store
    item_id = queue(store, "short")
    [claimed] = await store.run(claim_due, ["hook"], 100, "first")
    assert await store.run(confirm_send, claimed) == claimed  # plenty left: as it is
    nearly = utcnow() + dt.timedelta(seconds=1)
    store.transaction(lambda s: s.execute(update(OutboxItem).values(lease_until=nearly)))
    running_short = Delivery(claimed.id, "hook", "42", claimed.payload, "short", 0, nearly, "first")
    renewed = await store.run(confirm_send, running_short)
    assert renewed is not None and renewed.lease_until > nearly + dt.timedelta(seconds=LEASE_SECONDS / 2)
    assert item(store, item_id).lease_until == renewed.lease_until
    assert await store.run(confirm_send, running_short) is None
    assert await store.run(confirm_send, Delivery(claimed.id, "hook", "42", claimed.payload, "short", 0,
                                                  renewed.lease_until, "someone else")) is None


async def test_one_heartbeat_is_one_update_for_the_whole_batch(any_store: Store) -> None:
    store = any_store
    ids = [queue(store, f"hb{n}", recipient=str(n)) for n in range(5)]
    claimed = {d.id: (d.owner, d.lease_until) for d in await store.run(claim_due, ["hook"], 100, "first")}
    assert sorted(claimed) == ids
    statements: List[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        until, extended = await store.run(renew_leases, claimed)
        assert sorted(extended) == ids
        assert statements.count("UPDATE") == 1 and "SELECT" not in statements
        # Some are not ours any more: one UPDATE still, then which ones were extended.
        stolen_until = steal(store, ids[1])
        store.transaction(lambda s: s.execute(update(OutboxItem).where(OutboxItem.id == ids[2]).values(
            status=OutboxStatus.sent, lease_until=None)))
        store.transaction(lambda s: s.execute(update(OutboxItem).where(OutboxItem.id == ids[3]).values(
            lease_until=None)))  # unclaimed
        statements.clear()
        ours = {i: ("first", until) for i in ids}
        later, extended = await store.run(renew_leases, ours)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert later > until
    assert sorted(extended) == [ids[0], ids[4]]
    assert statements.count("UPDATE") == 1
    rows = {i: item(store, i) for i in ids}
    assert rows[ids[0]].lease_until == rows[ids[4]].lease_until == later
    assert (rows[ids[1]].lease_owner, rows[ids[1]].lease_until) == ("thief", stolen_until)
    assert rows[ids[2]].lease_until is None and rows[ids[3]].lease_until is None
    # A stale token (a renewal we do not know of) is not ours either.
    assert (await store.run(renew_leases, {ids[0]: ("first", until)}))[1] == []


async def test_the_heartbeat_stops_with_the_batch(store, platform, connector, short_leases) -> None:
    """Gone when the batch is done, when it fails, and when it is cancelled; and nothing is
    renewed afterwards."""
    first = Dispatcher(store, {"hook": connector}, owner="first")
    # done
    queue(store, "done")
    platform.delay = 3 * SHORT_HEARTBEAT
    task = asyncio.create_task(first.deliver_all(await store.run(claim_due, ["hook"], 100, "first")))
    while not platform.requests:
        await asyncio.sleep(0.02)
    assert len(heartbeats("first")) == 1  # running while the batch is
    await task
    assert heartbeats("first") == []

    # failed: a recipient's delivery raises (no connector for its channel); the others still
    # finish under the heartbeat, then the error comes out
    platform.delay = 2 * SHORT_LEASE
    sent_later = queue(store, "other recipient", recipient="43")
    claimed = await store.run(claim_due, ["hook"], 100, "first")
    broken = Delivery(10_000, "nowhere", "44", {"text": "x"}, "broken", 0, None, None)
    with pytest.raises(KeyError):
        await first.deliver_all([broken, *claimed])
    assert heartbeats("first") == []
    assert item(store, sent_later).status == OutboxStatus.sent

    # cancelled mid-send (the dispatcher stops): the lease is left to expire, not renewed
    cancelled = queue(store, "cancelled", recipient="45")
    task = asyncio.create_task(first.deliver_all(await store.run(claim_due, ["hook"], 100, "first")))
    while len(platform.requests) < 3:
        await asyncio.sleep(0.02)
    await asyncio.sleep(2 * SHORT_HEARTBEAT)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert heartbeats("first") == []
    left = item(store, cancelled).lease_until
    await asyncio.sleep(3 * SHORT_HEARTBEAT)
    row = item(store, cancelled)
    assert (row.status, row.lease_owner, row.lease_until) == (OutboxStatus.pending, "first", left)
    assert seconds_from_now(left) < SHORT_LEASE


# ---------------------------------------------------------------- GDPR erase


def erase(store: Store, sender: str = "42") -> int:
    """Erase the customer behind ``hook:<sender>`` as ``webcare gdpr erase`` does; their id."""
    def unit(session) -> int:
        customer_id = gdpr.resolve_customer(session, f"hook:{sender}")
        gdpr.erase_store(session, customer_id)
        return customer_id
    return store.transaction(unit)


def audits(store: Store, action: str) -> List[AuditEntry]:
    return store.transaction(lambda s: s.execute(
        select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).scalars().all())


def assert_cancelled(store: Store, item_id: int) -> None:
    row = item(store, item_id)
    assert (row.status, row.last_error, row.lease_until) == (OutboxStatus.failed, gdpr.CANCELLED, None)
    assert row.recipient == "erased" and row.payload == {"erased": True}
    if row.message_id is not None:
        logged = message_of(store, item_id)
        assert logged.text is None and logged.status == "failed" and "ZZ" not in json.dumps(logged.payload)


async def check_claimed_before_the_erase_is_dropped(store: Store, dispatcher: Dispatcher,
                                                    platform: FakePlatform) -> None:
    conv = conversation(store)
    reply = queue(store, "e1", conversation_id=conv, text="Dag Jan ZZSECRET")
    deliveries = await store.run(claim_due, ["hook"], 100)
    assert [d.id for d in deliveries] == [reply] and deliveries[0].payload["text"] == "Dag Jan ZZSECRET"
    erase(store)  # commits while the dispatcher holds the claim (recipient and text in memory)
    await dispatcher.deliver_all(deliveries)
    assert platform.requests == []
    assert_cancelled(store, reply)
    [entry] = audits(store, "gdpr.erase")
    assert entry.details["outbox_cancelled"] == [reply]
    make_due(store)
    assert await store.run(claim_due, ["hook"], 100) == []


async def test_an_item_claimed_just_before_an_erase_is_dropped_not_sent(store, dispatcher, platform) -> None:
    await check_claimed_before_the_erase_is_dropped(store, dispatcher, platform)


async def test_an_item_claimed_just_before_an_erase_is_dropped_on_postgresql(connector, platform) -> None:
    from tests.conftest import fresh_postgres_database

    with fresh_postgres_database("webcare_dispatcher_erase") as url:
        store = Store.from_url(url)
        try:
            await check_claimed_before_the_erase_is_dropped(store, Dispatcher(store, {"hook": connector}), platform)
        finally:
            store.close()


async def test_items_queued_after_an_erase_are_cancelled_at_send_time(store, dispatcher, platform) -> None:
    """Work already under way (a worker that read the job before the erase) may still queue a
    reply, or an announcement to a customer without a conversation: neither goes out."""
    conv = conversation(store)
    customer_id = erase(store)
    late = queue(store, "late", conversation_id=conv, text="Dag Jan ZZLATE")

    def announcement(session) -> int:
        identity_id = session.get(Conversation, conv).identity_id
        item_id = enqueue(session, key="broadcast:1:42", channel="hook", recipient="42",
                          payload={"text": "Opgelost ZZLATE"}, source="broadcast").id
        broadcast = Broadcast(text_nl="Opgelost.", text_en="Fixed.")
        session.add(broadcast)
        session.flush()
        session.add(BroadcastRecipient(broadcast_id=broadcast.id, customer_id=customer_id, identity_id=identity_id,
                                       reason="subscriber", status="queued", outbox_id=item_id))
        return item_id
    announced = store.transaction(announcement)
    await one_round(store, dispatcher)
    await one_round(store, dispatcher)  # the announcement waited for the older reply
    assert platform.requests == []
    for item_id in (late, announced):
        assert_cancelled(store, item_id)
    assert [(e.target_type, e.target_id, e.details) for e in audits(store, gdpr.OUTBOX_AUDIT)] == [
        ("customer", customer_id, {"outbox_cancelled": [late]}),
        ("customer", customer_id, {"outbox_cancelled": [announced]})]


@pytest.mark.parametrize("status", [200, 500])
async def test_a_send_already_under_way_when_the_erase_commits(store, dispatcher, platform, connector,
                                                               monkeypatch, status) -> None:
    """It cannot be stopped: delivered, it is recorded as sent, keeping nothing of it; failed, it
    stays cancelled and is not tried again."""
    conv = conversation(store)
    reply = queue(store, "inflight", conversation_id=conv, text="Dag Jan ZZSECRET")
    send = connector.send

    async def send_while_erasing(recipient: str, payload: Dict[str, Any], key: str) -> Any:
        erase(store)
        return await send(recipient, payload, key)
    monkeypatch.setattr(connector, "send", send_while_erasing)
    if status != 200:
        platform.answer(status)
    await one_round(store, dispatcher)
    assert len(platform.requests) == 1
    row = item(store, reply)
    if status == 200:
        assert (row.status, row.last_error, row.channel_message_id) == (OutboxStatus.sent, gdpr.SENT_WHILE_ERASED, None)
        assert row.payload == {"erased": True} and row.sent_at is not None
        logged = message_of(store, reply)
        assert logged.status == "sent" and logged.text is None and logged.channel_message_id is None
    else:
        assert_cancelled(store, reply)
        assert row.attempts == 0
        make_due(store)
        assert await store.run(claim_due, ["hook"], 100) == []


# ---------------------------------------------------------------- outbox and claiming


def test_enqueue_same_key_twice_is_one_item(store) -> None:
    conv = conversation(store)
    first = queue(store, "same", conversation_id=conv, text="one")
    second = queue(store, "same", conversation_id=conv, text="two")
    assert first == second
    assert store.transaction(lambda s: s.execute(select(func.count()).select_from(OutboxItem)).scalar_one()) == 1
    outbound = store.transaction(lambda s: s.execute(
        select(func.count()).select_from(Message).where(Message.direction == "out")).scalar_one())
    assert outbound == 1
    assert item(store, first).payload == {"text": "one"}


def test_enqueue_without_conversation_logs_no_message(store) -> None:
    item_id = queue(store, "broadcast:1:42")
    assert item(store, item_id).message_id is None


async def test_not_before_delays_the_item(store) -> None:
    queue(store, "later", not_before=utcnow() + dt.timedelta(minutes=5))
    assert await store.run(claim_due, ["hook"], 100) == []


async def test_claims_back_to_back_are_disjoint_and_leases_expire(store) -> None:
    ids = [queue(store, f"c{n}", recipient=str(n)) for n in range(6)]
    first = await store.run(claim_due, ["hook"], 4)
    second = await store.run(claim_due, ["hook"], 100)
    assert [d.id for d in first] == ids[:4]
    assert [d.id for d in second] == ids[4:]
    assert await store.run(claim_due, ["hook"], 100) == []
    assert await store.run(claim_due, ["other-channel"], 100) == []
    assert await store.run(claim_due, [], 100) == []
    assert first[0].key == "c0" and first[0].payload == {"text": "text of c0"} and first[0].attempts == 0
    # a crashed dispatcher's lease runs out: the item is claimed again
    past = utcnow() - dt.timedelta(seconds=1)
    store.transaction(lambda s: s.execute(update(OutboxItem).where(OutboxItem.id == ids[0]).values(lease_until=past)))
    assert [d.id for d in await store.run(claim_due, ["hook"], 100)] == [ids[0]]


# ---------------------------------------------------------------- rate limits


async def test_token_bucket_rate() -> None:
    bucket = TokenBucket(10, burst=1)
    start = time.monotonic()
    for _ in range(20):
        await bucket.acquire()
    assert time.monotonic() - start >= 1.5


async def test_token_bucket_pause() -> None:
    bucket = TokenBucket(1000)
    bucket.pause(0.5)
    start = time.monotonic()
    await bucket.acquire()
    assert time.monotonic() - start >= 0.4


async def test_dispatcher_honours_the_channel_rate_limit(store, platform, monkeypatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    connector = SignedWebhookConnector("hook", {"secret_env": "TEST_HOOK_SECRET", "callback_url": platform.url,
                                                "rate_limit_per_second": 10})
    dispatcher = Dispatcher(store, {"hook": connector})
    for n in range(16):
        queue(store, f"rl{n}", recipient=str(n))
    start = time.monotonic()
    await one_round(store, dispatcher)
    elapsed = time.monotonic() - start
    await connector.stop()
    assert len(platform.requests) == 16
    assert elapsed >= 0.5  # burst 10, then 6 more at 10/s


# ---------------------------------------------------------------- PostgreSQL


async def test_concurrent_claims_are_disjoint_on_postgresql(pg_url: str) -> None:
    store = Store.from_url(pg_url)
    try:
        ids = [queue(store, f"pg{n}", recipient=str(n)) for n in range(40)]
        claims = await asyncio.gather(*(store.run(claim_due, ["hook"], 100) for _ in range(6)))
        claimed = [d.id for claim in claims for d in claim]
        assert sorted(claimed) == ids  # every item exactly once
    finally:
        store.close()


def test_claim_skips_items_locked_by_another_replica_on_postgresql(pg_url: str) -> None:
    """SELECT … FOR UPDATE SKIP LOCKED: a claim does not wait for an item another replica is claiming."""
    store = Store.from_url(pg_url)
    try:
        locked = queue(store, "sk-locked", recipient="sk-1")
        free = queue(store, "sk-free", recipient="sk-2")
        with store.engine.connect() as other:
            other_tx = other.begin()
            other.execute(select(OutboxItem.id).where(OutboxItem.id == locked).with_for_update())
            claimed = claim_beside_a_lock(store, other_tx, claim_due, ["hook"], 10)
        assert [d.id for d in claimed] == [free]
        assert [d.id for d in store.transaction(claim_due, ["hook"], 10)] == [locked]
    finally:
        store.close()

