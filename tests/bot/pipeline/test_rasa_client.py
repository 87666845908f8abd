"""The Rasa client against a real Rasa server: replicas, fail-over, errors."""
from __future__ import annotations

import logging
import socket
import time
from itertools import count
from typing import AsyncIterator, Dict, List

import pytest

from bot.pipeline.rasa_client import RasaClient, RasaReplicas, RasaUnavailable
from bot.rasa.stack import free_port
from bot.testing.rasa_standin import FakeRasa, fake_rasa_replicas


def test_each_sender_has_its_own_replica_and_the_others_follow() -> None:
    replicas = RasaReplicas(["http://a:5005/", "http://b:5005", "http://c:5005"])
    assert replicas.urls == ["http://a:5005", "http://b:5005", "http://c:5005"]
    orders = {sender: replicas.for_sender(sender) for sender in (f"hook:{n}" for n in range(60))}
    for order in orders.values():
        assert sorted(order) == replicas.urls  # every replica, once
    assert {order[0] for order in orders.values()} == set(replicas.urls)  # the load is spread
    assert replicas.for_sender("hook:7") == orders["hook:7"]  # stable
    with pytest.raises(ValueError):
        RasaReplicas([])


async def test_an_unreachable_replica_is_skipped_for_the_next(rasa) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = RasaClient([dead, rasa.url], timeout_seconds=30)
    try:
        # whichever replica each sender starts with, every message is answered by the live one
        for n in range(4):
            reply = await client.send(f"replica-test:{n}", "what are your electricity prices?", f"r{n}",
                                      {"language": "en"})
            assert reply.intent == "tariffs" and reply.messages
    finally:
        await client.close()


async def test_no_replica_reachable_is_unavailable() -> None:
    client = RasaClient([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"], timeout_seconds=5)
    try:
        with pytest.raises(RasaUnavailable, match="unreachable"):
            await client.send("hook:1", "hello", "m1", {})
    finally:
        await client.close()


async def test_a_message_rasa_already_handled_is_answered_the_same_not_handled_again(rasa) -> None:
    """The worker retries a message after a timeout or a crash: Rasa must not see it twice
    (a repeated question would escalate), and the first answer comes back."""
    import aiohttp

    client = RasaClient(rasa.url)
    sender = "idempotent:1"
    try:
        first = await client.send(sender, "wat kost stroom bij jullie?", "idem-1", {"language": "nl"})
        again = await client.send(sender, "wat kost stroom bij jullie?", "idem-1", {"language": "nl"})
        other = await client.send(sender, "wanneer zijn jullie open?", "idem-2", {"language": "nl"})
    finally:
        await client.close()
    assert again.messages == first.messages and first.messages
    assert again.intent == first.intent == "tariffs"
    assert again.confidence == pytest.approx(first.confidence)
    assert [a["intent"] for a in again.alternatives] == [a["intent"] for a in first.alternatives]
    assert other.intent == "contact_hours" and other.messages != first.messages
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{rasa.url}/conversations/{sender}/tracker") as response:
            events = (await response.json())["events"]
    user_turns = [e["message_id"] for e in events if e["event"] == "user"]
    assert user_turns == ["idem-1", "idem-2"]


# ---------------------------------------------------------------- a failing replica (circuit breaker)
# aiohttp servers on loopback stand in for Rasa replicas: one hangs (takes the request and never
# answers within the client's timeout), one answers 503, one answers.


@pytest.fixture
async def fakes() -> AsyncIterator[Dict[str, FakeRasa]]:
    async with fake_rasa_replicas(("hung", "hang"), ("failing", "fail"), ("healthy", "answer")) as servers:
        yield servers


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sender_of(replicas: RasaReplicas, own: str) -> str:
    """A sender whose own replica (the first of its stable order) is ``own``."""
    return next(sender for sender in (f"hook:{n}" for n in count()) if replicas.for_sender(sender)[0] == own)


def client_for(*fakes: FakeRasa, clock: Clock, timeout_seconds: float = 0.5) -> RasaClient:
    return RasaClient([fake.url for fake in fakes], timeout_seconds=timeout_seconds, suspect_seconds=30, clock=clock)


def records(caplog: pytest.LogCaptureFixture, words: str) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.pipeline.rasa_client" and words in r.getMessage()]


async def test_a_hung_replica_fails_the_call_and_the_retry_is_answered_by_a_healthy_one(fakes) -> None:
    hung, failing, healthy = fakes["hung"], fakes["failing"], fakes["healthy"]
    clock = Clock()
    client = client_for(failing, hung, healthy, clock=clock)
    sender = sender_of(client.replicas, hung.url)
    assert client.replicas.to_try(sender) == [hung.url, healthy.url, failing.url]
    try:
        with pytest.raises(RasaUnavailable, match="TimeoutError"):
            await client.send(sender, "what does it cost?", "m1", {})
        # the hung replica took the request (and may process it): no resend within the call
        assert hung.message_ids() == ["m1"]
        assert healthy.received == [] and failing.received == []
        assert client.replicas.suspect(hung.url)
        assert client.replicas.to_try(sender) == [healthy.url, failing.url, hung.url]
        clock.now += 1  # the worker's first backoff
        reply = await client.send(sender, "what does it cost?", "m1", {})
    finally:
        await client.close()
    assert reply.messages == [{"text": "answered by healthy"}] and reply.intent == "tariffs"
    assert healthy.message_ids() == ["m1"] and hung.message_ids() == ["m1"] and failing.received == []
    assert client.replicas.for_sender(sender)[0] == hung.url  # its own replica is still the hung one


async def test_a_suspect_replica_is_tried_again_after_the_cool_down_and_cleared_when_it_answers(
        fakes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.pipeline.rasa_client")
    hung, healthy = fakes["hung"], fakes["healthy"]
    clock = Clock()
    client = client_for(hung, healthy, clock=clock)
    sender = sender_of(client.replicas, hung.url)
    try:
        with pytest.raises(RasaUnavailable):
            await client.send(sender, "hello", "m1", {})
        for n in range(2, 5):  # during the cool-down: straight to the healthy replica
            clock.now += 9
            assert (await client.send(sender, "hello", f"m{n}", {})).messages == [{"text": "answered by healthy"}]
        assert hung.message_ids() == ["m1"] and healthy.message_ids() == ["m2", "m3", "m4"]
        clock.now += 4  # 31 s after the timeout: the cool-down is over, still hanging
        assert not client.replicas.suspect(hung.url)
        with pytest.raises(RasaUnavailable):
            await client.send(sender, "hello", "m5", {})
        assert hung.message_ids() == ["m1", "m5"] and client.replicas.suspect(hung.url)  # suspect again
        clock.now += 29
        assert (await client.send(sender, "hello", "m5", {})).messages == [{"text": "answered by healthy"}]
        hung.behaviour = "answer"  # it has recovered
        clock.now += 2
        assert (await client.send(sender, "hello", "m6", {})).messages == [{"text": "answered by hung"}]
        assert not client.replicas.suspect(hung.url)
        clock.now += 1
        assert (await client.send(sender, "hello", "m7", {})).messages == [{"text": "answered by hung"}]
    finally:
        await client.close()
    assert hung.message_ids() == ["m1", "m5", "m6", "m7"]
    assert healthy.message_ids() == ["m2", "m3", "m4", "m5"]
    # one line when it became suspect, one when it recovered: not one per request
    assert len(records(caplog, "is suspect")) == 1 and hung.url in records(caplog, "is suspect")[0]
    assert len(records(caplog, "answers again")) == 1 and hung.url in records(caplog, "answers again")[0]


async def test_a_5xx_marks_the_replica_suspect_without_resending(fakes) -> None:
    failing, healthy = fakes["failing"], fakes["healthy"]
    clock = Clock()
    client = client_for(failing, healthy, clock=clock)
    sender = sender_of(client.replicas, failing.url)
    try:
        with pytest.raises(RasaUnavailable, match="503"):
            await client.send(sender, "hello", "m1", {})
        assert failing.message_ids() == ["m1"] and healthy.received == []
        assert client.replicas.suspect(failing.url) and not client.replicas.suspect(healthy.url)
        reply = await client.send(sender, "hello", "m1", {})
    finally:
        await client.close()
    assert reply.messages == [{"text": "answered by healthy"}]
    assert healthy.message_ids() == ["m1"] and failing.message_ids() == ["m1"]


async def test_when_every_replica_is_suspect_the_normal_order_is_tried(fakes) -> None:
    hung, failing = fakes["hung"], fakes["failing"]
    clock = Clock()
    client = client_for(hung, failing, clock=clock)
    sender = sender_of(client.replicas, hung.url)
    try:
        with pytest.raises(RasaUnavailable, match="TimeoutError"):
            await client.send(sender, "hello", "m1", {})  # its own replica hangs
        with pytest.raises(RasaUnavailable, match="503"):
            await client.send(sender, "hello", "m1", {})  # the other one fails
        assert client.replicas.suspect(hung.url) and client.replicas.suspect(failing.url)
        assert client.replicas.to_try(sender) == client.replicas.for_sender(sender) == [hung.url, failing.url]
        hung.behaviour = "answer"
        reply = await client.send(sender, "hello", "m1", {})  # back to its own replica first
    finally:
        await client.close()
    assert reply.messages == [{"text": "answered by hung"}]
    assert hung.message_ids() == ["m1", "m1"] and failing.message_ids() == ["m1"]
    assert not client.replicas.suspect(hung.url) and client.replicas.suspect(failing.url)


async def test_healthy_replicas_keep_the_stable_assignment(fakes) -> None:
    for fake in fakes.values():
        fake.behaviour = "answer"
    clock = Clock()
    client = client_for(*fakes.values(), clock=clock)
    senders = [f"hook:{n}" for n in range(12)]
    try:
        for n, sender in enumerate(senders):
            reply = await client.send(sender, "hello", f"m{n}", {})
            own = client.replicas.for_sender(sender)[0]
            assert reply.messages == [{"text": f"answered by {next(f.name for f in fakes.values() if f.url == own)}"}]
    finally:
        await client.close()
    assert all(fake.received for fake in fakes.values())  # every replica has its share
    assert sum(len(fake.received) for fake in fakes.values()) == len(senders)


def test_suspect_replicas_go_last_and_come_back_after_the_cool_down() -> None:
    clock = Clock()
    replicas = RasaReplicas(["http://a:5005", "http://b:5005", "http://c:5005"], suspect_seconds=30, clock=clock)
    senders = [f"hook:{n}" for n in range(60)]
    stable = {sender: replicas.for_sender(sender) for sender in senders}
    assert all(replicas.to_try(sender) == stable[sender] for sender in senders)  # all healthy: unchanged
    replicas.failed("http://b:5005", "answered 503")
    for sender in senders:
        assert replicas.to_try(sender) == [u for u in stable[sender] if u != "http://b:5005"] + ["http://b:5005"]
        assert replicas.for_sender(sender) == stable[sender]
    replicas.failed("http://a:5005", "TimeoutError")
    for sender in senders:
        assert replicas.to_try(sender) == ["http://c:5005"] + [u for u in stable[sender] if u != "http://c:5005"]
    replicas.failed("http://c:5005", "ClientConnectorError")
    assert all(replicas.to_try(sender) == stable[sender] for sender in senders)  # all suspect: the normal order
    clock.now += 29.9
    assert replicas.suspect("http://a:5005")
    clock.now += 0.2
    assert all(replicas.to_try(sender) == stable[sender] for sender in senders)
    assert not any(replicas.suspect(url) for url in replicas.urls)
    replicas.answered("http://c:5005")
    assert not replicas.suspect("http://c:5005")


async def test_an_unreachable_replica_is_suspect_and_skipped_within_the_call(fakes, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bot.pipeline.rasa_client")
    healthy = fakes["healthy"]
    dead = f"http://127.0.0.1:{free_port()}"
    client = RasaClient([dead, healthy.url], timeout_seconds=2, suspect_seconds=30, clock=Clock())
    sender = sender_of(client.replicas, dead)
    try:
        for n in range(3):
            assert (await client.send(sender, "hello", f"m{n}", {})).messages == [{"text": "answered by healthy"}]
    finally:
        await client.close()
    assert healthy.message_ids() == ["m0", "m1", "m2"]
    assert client.replicas.suspect(dead)
    assert len(records(caplog, "unreachable; trying")) == 1  # later calls did not try it first
    assert len(records(caplog, "is suspect")) == 1


async def test_a_replica_that_cannot_be_connected_to_in_time_is_skipped_fast(fakes) -> None:
    """An unroutable replica: connecting gets the connect timeout, not the whole timeout."""
    healthy = fakes["healthy"]
    # a listening socket whose accept queue is full: the kernel drops further connection attempts
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    stuck = f"http://127.0.0.1:{listener.getsockname()[1]}"
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    client = RasaClient([stuck, healthy.url], timeout_seconds=10, connect_timeout_seconds=0.3,
                        suspect_seconds=30, clock=Clock())
    assert client.timeout.total == 10 and client.timeout.sock_connect == 0.3
    sender = sender_of(client.replicas, stuck)
    started = time.monotonic()
    try:
        reply = await client.send(sender, "hello", "m1", {})
    finally:
        await client.close()
        for sock in [listener, *fillers]:
            sock.close()
    assert time.monotonic() - started < 3
    assert reply.messages == [{"text": "answered by healthy"}] and healthy.message_ids() == ["m1"]
    assert client.replicas.suspect(stuck)


def test_the_default_timeouts() -> None:
    client = RasaClient("http://127.0.0.1:9")
    assert client.timeout.total == 30 and client.timeout.sock_connect == 5
    assert client.replicas.suspect_seconds == 30
    assert RasaClient("http://127.0.0.1:9", timeout_seconds=2).timeout.sock_connect == 2
