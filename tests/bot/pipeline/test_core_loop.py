"""The core loop end to end on a real Rasa server: webhook → intake → Rasa → policy → outbox → callback."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

import aiohttp

from bot.cases import escalation as cases
from bot.web.app import create_app
from bot.web.keys import CASES_KEY, DISPATCHER_KEY, STORE_KEY, TRACKER_SYNC_KEY
from bot.accounts import create_user
from bot.config import load_config
from bot.store.database import Store
from bot.store.models import Case, Contact, Conversation, Draft, DraftStatus, Message, Mode, OutboxItem
from bot.testing.fake_platform import FakePlatform, inbound, signed
from bot.rasa.stack import PROJECT, free_port, wait_for

SECRET = "core-loop-secret"


def write_config(tmp_path: Path, rasa_url: str, callback: str, **extra) -> Path:
    config = {
        "database": {"url": f"sqlite:///{tmp_path}/webcare.db"},
        "rasa": {"url": rasa_url, "actions_url": "http://127.0.0.1:9"},
        "channels": {"hook": {"type": "webhook", "callback_url": callback, "secret_env": "CORE_LOOP_SECRET"}},
        **extra,
    }
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_LOOP_SECRET", SECRET)


async def test_confident_reply_goes_out_once_even_when_the_webhook_is_delivered_twice(rasa, tmp_path) -> None:
    async with FakePlatform(SECRET) as platform:
        app = create_app(load_config(str(write_config(tmp_path, rasa.url, platform.url))))
        async with TestClient(TestServer(app)) as client:
            message = inbound("m-1", "alice", "when are you open on saturday?", language="en")
            for _ in range(2):
                response = await client.post("/webhooks/hook", **signed(SECRET, message))
                assert response.status == 200
            received = await platform.wait_for(1)
            await asyncio.sleep(1.0)  # give a (wrong) second answer the chance to arrive
            store: Store = app[STORE_KEY]
            inbound_count = store.transaction(
                lambda s: s.execute(select(func.count()).select_from(Message).where(Message.direction == "in")).scalar()
            )
            assert inbound_count == 1
            assert len(platform.received) == len(received) == 1
            assert received[0]["recipient"] == "alice"
            assert "open" in received[0]["text"].lower()  # English answer about opening hours
            assert received[0]["idempotency_key"].startswith("reply:")
            nlu = store.transaction(lambda s: s.execute(select(Message.nlu).where(Message.direction == "in")).scalar())
            assert nlu["intent"]["name"] == "contact_hours"
            assert nlu["intent_ranking"][0]["name"] == "contact_hours"


async def test_always_reviewed_intent_waits_as_a_draft_with_alternatives(rasa, tmp_path) -> None:
    async with FakePlatform(SECRET) as platform:
        app = create_app(load_config(str(write_config(tmp_path, rasa.url, platform.url))))
        async with TestClient(TestServer(app)) as client:
            text = "ik wil mijn contract opzeggen, ik stap over naar een andere leverancier"
            response = await client.post("/webhooks/hook", **signed(SECRET, inbound("m-2", "bob", text)))
            assert response.status == 200
            store: Store = app[STORE_KEY]
            for _ in range(100):
                drafts = store.transaction(lambda s: s.execute(select(Draft)).scalars().all())
                if drafts:
                    break
                await asyncio.sleep(0.1)
            [draft] = drafts
            assert draft.status == DraftStatus.pending
            assert draft.intent == "cancel_contract"
            assert "always reviewed" in draft.reason
            assert draft.messages and draft.messages[0]["text"]
            assert 1 <= len(draft.alternatives) <= 3
            for alternative in draft.alternatives:
                assert alternative["intent"] != "cancel_contract"
                assert alternative["messages"][0]["text"]
            assert store.transaction(lambda s: s.execute(select(func.count()).select_from(OutboxItem)).scalar()) == 0
            assert platform.received == []


async def rasa_events(rasa_url: str, sender: str) -> list:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{rasa_url}/conversations/{sender}/tracker") as response:
            assert response.status == 200
            return (await response.json())["events"]


async def eventually(check, seconds: float = 15.0):  # type: ignore[no-untyped-def]
    """Poll ``check`` (sync or async) until it returns something truthy."""
    for _ in range(int(seconds * 10)):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {check}")


async def test_complaint_opens_a_case_pauses_rasa_and_the_agent_takes_over(rasa, tmp_path) -> None:
    async with FakePlatform(SECRET) as platform:
        app = create_app(load_config(str(write_config(tmp_path, rasa.url, platform.url))))
        async with TestClient(TestServer(app)) as client:
            store: Store = app[STORE_KEY]
            text = "ik wil een officiële klacht indienen, al drie keer gebeld en niemand belt terug"
            await client.post("/webhooks/hook", **signed(SECRET, inbound("m-3", "carol", text)))
            case = await eventually(lambda: store.transaction(lambda s: s.execute(select(Case)).scalar()))
            assert case.trigger == "complaint"
            conversation = store.transaction(lambda s: s.get(Conversation, case.conversation_id))
            assert conversation.mode == Mode.human
            # The customer hears a colleague takes over (with the waiting time or when we open);
            # the bot's own answer is kept in the case for the agent, not sent; no draft.
            [notice] = await platform.wait_for(1)
            assert notice["idempotency_key"] == f"case:{case.id}:handover" and "collega" in notice["text"]
            assert case.snapshot["bot_suggestion"] and store.transaction(
                lambda s: s.execute(select(func.count()).select_from(Draft)).scalar()) == 0
            sender = conversation.rasa_sender_id
            # Rasa's tracker is paused ...
            await eventually(lambda: _has_event(rasa.url, sender, "pause"))
            # ... and the case got Rasa's slots and its CRM status (not linked to a CRM customer)
            enriched = await eventually(lambda: store.transaction(
                lambda s: s.execute(select(Case).where(Case.crm_status != "pending")).scalar()))
            assert enriched.crm_status == "not_linked" and enriched.slots.get("language") == "nl"

            # ... so later customer messages get no bot reply, but are logged in the tracker
            # with their intent, and the agent sees them in the case.
            for number, later in enumerate(["hallo??", "wanneer zijn jullie open", "ik wil een mens"]):
                await client.post("/webhooks/hook", **signed(SECRET, inbound(f"m-h{number}", "carol", later)))
            await eventually(lambda: store.transaction(lambda s: s.execute(
                select(func.count()).select_from(Message)
                .where(Message.direction == "in", Message.status == "processed")).scalar()) == 4)
            events = await rasa_events(rasa.url, sender)
            assert [e["text"] for e in events if e["event"] == "user"][-3:] == [
                "hallo??", "wanneer zijn jullie open", "ik wil een mens"]
            pause_at = max(i for i, e in enumerate(events) if e["event"] == "pause")
            assert not [e for e in events[pause_at:] if e["event"] == "bot"]  # the bot stayed quiet
            await asyncio.sleep(0.5)
            assert len(platform.received) == 1
            assert store.transaction(lambda s: s.execute(select(func.count()).select_from(Case)).scalar()) == 1
            detail = store.transaction(cases.case_detail, case.id)
            assert [t["intent"] for t in detail["transcript"] if t["direction"] == "in"][2] == "contact_hours"

            # The agent's reply reaches the customer and Rasa's tracker.
            agent = store.transaction(lambda s: create_user(s, "anna", "correct horse battery", "agent", "Anna"))
            store.transaction(cases.reply, case.id, agent, "Ik pak je klacht persoonlijk op.", "token-123456")
            app[TRACKER_SYNC_KEY].wake()
            app[DISPATCHER_KEY].wake()
            received = await platform.wait_for(2)
            assert received[1]["text"] == "Ik pak je klacht persoonlijk op."
            await eventually(lambda: _has_bot_text(rasa.url, sender, "Ik pak je klacht persoonlijk op."))

            # Closing ends the contact (the agent's root cause, handled by a human), asks for a
            # rating once, and hands the conversation back: resume, and the bot answers again.
            store.transaction(cases.close, case.id, agent, "service_complaint", "Teruggebeld.", app[CASES_KEY])
            app[TRACKER_SYNC_KEY].wake()
            app[DISPATCHER_KEY].wake()
            received = await platform.wait_for(3)
            assert received[2]["idempotency_key"] == "csat:1" and len(received[2]["buttons"]) == 5
            contact = store.transaction(lambda s: s.execute(select(Contact)).scalar_one())
            assert (contact.root_cause, contact.root_cause_source, contact.handled_by, contact.case_id) == (
                "service_complaint", "agent", "human", case.id)
            assert contact.customer_messages == 4 and contact.first_response_seconds is not None
            await client.post("/webhooks/hook", **signed(SECRET, inbound("m-after", "carol",
                                                                          "wanneer zijn jullie open?")))
            received = await platform.wait_for(4)
            assert received[3]["idempotency_key"].startswith("reply:")
            assert await _has_event(rasa.url, sender, "resume")


async def _has_event(rasa_url: str, sender: str, kind: str) -> bool:
    return any(e["event"] == kind for e in await rasa_events(rasa_url, sender))


async def _has_bot_text(rasa_url: str, sender: str, text: str) -> bool:
    return any(e["event"] == "bot" and e.get("text") == text for e in await rasa_events(rasa_url, sender))


def start_service(config: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "service", "--port", str(port)],
        cwd=PROJECT, env=dict(os.environ, PYTHONPATH=str(PROJECT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


async def test_message_committed_before_a_crash_is_answered_after_restart(rasa, tmp_path) -> None:
    async with FakePlatform(SECRET) as platform:
        port = free_port()
        # First life: Rasa unreachable, so the message is committed but cannot be answered.
        dead_rasa = f"http://127.0.0.1:{free_port()}"
        service = start_service(write_config(tmp_path, dead_rasa, platform.url), port)
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, wait_for, f"http://127.0.0.1:{port}/version", 60, service)
            import aiohttp

            async with aiohttp.ClientSession() as http:
                response = await http.post(
                    f"http://127.0.0.1:{port}/webhooks/hook",
                    **signed(SECRET, inbound("m-9", "dave", "what are your current electricity prices?", "en")),
                )
                assert response.status == 200
        finally:
            os.killpg(service.pid, signal.SIGKILL)  # kill -9 between intake and processing
            service.wait()
        assert platform.received == []
        # Second life, Rasa reachable: the committed message is picked up and answered.
        service = start_service(write_config(tmp_path, rasa.url, platform.url), port)
        try:
            received = await platform.wait_for(1, timeout=90)
        finally:
            os.killpg(service.pid, signal.SIGTERM)
            service.wait()
        assert received[0]["recipient"] == "dave"
        assert "tarieven" in received[0]["text"] or "price" in received[0]["text"].lower()
