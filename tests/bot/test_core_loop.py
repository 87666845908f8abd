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

from bot.app import STORE_KEY, create_app
from bot.config import load_config
from bot.store.database import Store
from bot.store.models import Conversation, Draft, DraftStatus, Message, Mode, OutboxItem
from bot.benchmarks.fake_platform import FakePlatform, inbound, signed
from bot.rasa_stack import PROJECT, free_port, wait_for

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


async def test_complaint_hands_the_conversation_to_a_human(rasa, tmp_path) -> None:
    async with FakePlatform(SECRET) as platform:
        app = create_app(load_config(str(write_config(tmp_path, rasa.url, platform.url))))
        async with TestClient(TestServer(app)) as client:
            text = "ik wil een officiële klacht indienen, al drie keer gebeld en niemand belt terug"
            await client.post("/webhooks/hook", **signed(SECRET, inbound("m-3", "carol", text)))
            store: Store = app[STORE_KEY]
            for _ in range(100):
                mode = store.transaction(lambda s: s.execute(select(Conversation.mode)).scalar())
                if mode == Mode.human:
                    break
                await asyncio.sleep(0.1)
            assert mode == Mode.human
            # The bot's reply to a complaint is always reviewed; nothing went out on its own.
            assert store.transaction(lambda s: s.execute(select(Draft.intent)).scalar()) == "complaint"
            # A human holds the conversation now: a later message gets no bot reply or draft.
            await client.post("/webhooks/hook", **signed(SECRET, inbound("m-4", "carol", "hallo??")))
            for _ in range(50):
                status = store.transaction(
                    lambda s: s.execute(select(Message.status).where(Message.channel_message_id == "m-4")).scalar()
                )
                if status == "processed":
                    break
                await asyncio.sleep(0.1)
            assert status == "processed"
            assert store.transaction(lambda s: s.execute(select(func.count()).select_from(Draft)).scalar()) == 1
            assert platform.received == []


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
