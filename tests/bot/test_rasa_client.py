"""The Rasa client against a real Rasa server: replicas, fail-over, errors."""
from __future__ import annotations

import pytest

from bot.rasa_client import RasaClient, RasaReplicas, RasaUnavailable
from bot.rasa_stack import free_port


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
