"""Shared set-up for the console, API, auth, drafts and feedback tests.

A real SQLite store in ``tmp_path``; the real app from ``create_app(load_config(...))``
(with the background worker off, so nothing but the test touches the store); state built
directly with the models.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web.app import create_app
from bot.web.keys import STORE_KEY
from bot.accounts import create_user
from bot.config import Config, load_config
from bot.store.database import Store
from bot.store.models import (
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    Draft,
    Message,
    Mode,
    Role,
    User,
    utcnow,
)

PASSWORD = "correct horse battery"
USERS = {Role.agent: ("anna", "Anna Agent"), Role.process_owner: ("piet", "Piet Owner"),
         Role.admin: ("ada", "Ada Admin")}
HOSTILE = "<script>alert(1)</script>"

DRAFTED = [
    {"text": "Wat vervelend dat je rekening hoger is dan verwacht. Zal ik het voor je nakijken?",
     "buttons": [{"title": "Ja graag", "payload": "/affirm"}, {"title": "Nee", "payload": "/deny"}]},
    {"text": "Ik heb daarvoor je klantnummer nodig."},
]
ALTERNATIVES = [
    {"intent": "meter_reading", "confidence": 0.21,
     "messages": [{"text": "Je meterstand geef je door in de app onder Verbruik."}]},
    {"intent": "payment_arrangement", "confidence": 0.12,
     "messages": [{"text": "Een betalingsregeling vraag je aan via Mijn Polder."},
                  {"text": "Lukt dat niet? Dan regel ik het met je."}]},
]

_external_ids = itertools.count(1000)


def environ(tmp_path: Path) -> Dict[str, str]:
    return {
        "WEBCARE_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
        "WEBCARE_RASA_URL": "http://127.0.0.1:9",
        "WEBCARE_ACTIONS_URL": "http://127.0.0.1:9",
    }


def make_config(tmp_path: Path, **console: Any) -> Config:
    config = load_config(environ=environ(tmp_path))
    config = dataclasses.replace(config, worker=dataclasses.replace(config.worker, enabled=False))
    if console:
        config = dataclasses.replace(config, console=dataclasses.replace(config.console, **console))
    return config


def make_store(tmp_path: Path) -> Store:
    return Store.from_url(f"sqlite:///{tmp_path}/t.db")


def seed_users(session: Any) -> Dict[Role, User]:
    return {role: create_user(session, name, PASSWORD, role, display) for role, (name, display) in USERS.items()}


def seed_draft(
    session: Any,
    *,
    customer_text: str = "Mijn jaarafrekening is veel te hoog!",
    customer_name: Optional[str] = "Jan Klant",
    language: Optional[str] = "nl",
    channel: str = "telegram",
    intent: Optional[str] = "bill_too_high",
    confidence: Optional[float] = 0.62,
    messages: Optional[List[Dict[str, Any]]] = None,
    alternatives: Optional[List[Dict[str, Any]]] = None,
    created_at: Optional[dt.datetime] = None,
    history: bool = True,
) -> int:
    """A customer, identity, conversation, a little history, the inbound message and its draft."""
    now = utcnow()
    created_at = created_at or now
    external_id = str(next(_external_ids))
    customer = Customer(display_name=customer_name, language=language, flags=[])
    session.add(customer)
    session.flush()
    identity = ChannelIdentity(customer_id=customer.id, channel=channel, external_id=external_id,
                               display_name=customer_name)
    session.add(identity)
    session.flush()
    conversation = Conversation(customer_id=customer.id, identity_id=identity.id, channel=channel,
                                rasa_sender_id=f"{channel}:{external_id}", mode=Mode.bot, language=language)
    session.add(conversation)
    session.flush()
    if history:
        session.add(Message(conversation_id=conversation.id, direction=Direction.inbound, channel=channel,
                            channel_message_id=f"{external_id}-1", sender="customer", text="Hallo",
                            status="processed", created_at=created_at - dt.timedelta(minutes=2)))
        session.add(Message(conversation_id=conversation.id, direction=Direction.outbound, channel=channel,
                            sender="bot", text="Hoi! Waarmee kan ik je helpen?", status="sent",
                            payload={"text": "Hoi! Waarmee kan ik je helpen?"},
                            created_at=created_at - dt.timedelta(minutes=1)))
    inbound = Message(conversation_id=conversation.id, direction=Direction.inbound, channel=channel,
                      channel_message_id=f"{external_id}-2", sender="customer", text=customer_text,
                      status="processed", created_at=created_at)
    session.add(inbound)
    session.flush()
    draft = Draft(conversation_id=conversation.id, inbound_message_id=inbound.id,
                  messages=DRAFTED if messages is None else messages, intent=intent, confidence=confidence,
                  alternatives=ALTERNATIVES if alternatives is None else alternatives,
                  reason="confidence 0.62 below the threshold 0.80", created_at=created_at)
    session.add(draft)
    session.flush()
    return draft.id


@pytest.fixture
async def app_client(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A TestClient on the real app, with an agent, a process owner and an admin."""
    app = create_app(make_config(tmp_path))
    app[STORE_KEY].transaction(seed_users)
    async with TestClient(TestServer(app)) as client:
        yield client


def store_of(client: TestClient) -> Store:
    return client.app[STORE_KEY]


async def api_login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the API; the cookie lands in the client's jar. Returns the CSRF token."""
    response = await client.post("/api/login", json={"username": username, "password": password})
    assert response.status == 200, await response.text()
    return (await response.json())["csrf_token"]


async def console_login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form, like a browser."""
    page = await client.get("/console/login")
    token = hidden_field(await page.text(), "csrf_token")
    response = await client.post("/console/login", data={"csrf_token": token, "username": username,
                                                          "password": password}, allow_redirects=False)
    assert response.status == 303, await response.text()


def hidden_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)
