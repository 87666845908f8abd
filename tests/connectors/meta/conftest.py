"""What the Meta connector tests share (WhatsApp, Messenger, Instagram): the real service app
built from a config with one Meta channel, pointed at a :class:`FakeGraph` on loopback; signed
webhook POSTs; the recorded payloads; the store and the real dispatcher.

A test module sets its channel with a ``meta_channel`` fixture returning a :class:`Channel`
(its name, dotted type, environment prefix and options); ``meta`` is then the started app.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.config import load_config
from bot.pipeline.dispatcher import Dispatcher, claim_due
from bot.pipeline.outbox import enqueue
from bot.store.database import Store
from bot.store.models import ChannelIdentity, Conversation, Customer, Direction, Message, OutboxItem, Purpose
from bot.testing.fake_graph import APP_SECRET, TOKEN, VERIFY_TOKEN, FakeGraph, signed_headers
from bot.web.app import create_app
from bot.web.keys import CONNECTORS_KEY, STORE_KEY

PAYLOADS = Path(__file__).parent / "payloads"
NOTHING_LISTENS = "http://127.0.0.1:9"


def recorded(platform: str, name: str) -> Dict[str, Any]:
    """A recorded payload, ``payloads/<platform>/<name>.json`` (``outbound/...`` for the Graph's)."""
    return json.loads((PAYLOADS / platform / f"{name}.json").read_text(encoding="utf-8"))


def env_names(prefix: str) -> Dict[str, str]:
    """The default environment variables of a Meta channel (``WEBCARE_<PREFIX>_...``)."""
    return {f"WEBCARE_{prefix}_VERIFY_TOKEN": VERIFY_TOKEN, f"WEBCARE_{prefix}_APP_SECRET": APP_SECRET,
            f"WEBCARE_{prefix}_ACCESS_TOKEN": TOKEN}


@dataclass
class Channel:
    """One Meta channel of the test config."""

    name: str
    type: str  # dotted path, e.g. connectors.meta.whatsapp.WhatsAppConnector
    env_prefix: str  # WHATSAPP, MESSENGER, INSTAGRAM
    options: Dict[str, Any] = field(default_factory=dict)


def write_config(tmp_path: Path, channel: Channel, graph_url: str) -> Path:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/store/webcare.db"},
        "rasa": {"url": NOTHING_LISTENS, "actions_url": NOTHING_LISTENS},
        "worker": {"enabled": False},
        "channels": {channel.name: {"type": channel.type, "graph_base_url": graph_url,
                                    "rate_limit_per_second": 1000, **channel.options}},
    }, sort_keys=False))  # the order of a template's languages matters (the first is the fallback)
    return path


def build_app(tmp_path: Path, channel: Channel, graph_url: str = NOTHING_LISTENS):
    """The real service app (raises the connector's ConnectorError for a bad config)."""
    return create_app(load_config(str(write_config(tmp_path, channel, graph_url)), environ={}))


class MetaApp:
    """The started app with one Meta channel, and what the tests do with it."""

    def __init__(self, client: TestClient, channel: Channel, graph: FakeGraph) -> None:
        self.client, self.channel, self.graph = client, channel, graph

    @property
    def store(self) -> Store:
        return self.client.server.app[STORE_KEY]

    @property
    def connector(self) -> Any:
        return self.client.server.app[CONNECTORS_KEY][self.channel.name]

    @property
    def path(self) -> str:
        return f"/webhooks/{self.channel.name}"

    # ------------------------------------------------------------ webhooks

    async def post(self, body: Any, *, signature: Optional[str] = "valid", secret: str = APP_SECRET):
        """POST ``body`` (a dict, or raw bytes) signed as Meta signs it; ``signature=None``:
        unsigned; any other string: that header value."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = signed_headers(data, secret)
        if signature is None:
            del headers["X-Hub-Signature-256"]
        elif signature != "valid":
            headers["X-Hub-Signature-256"] = signature
        return await self.client.post(self.path, data=data, headers=headers)

    async def post_ok(self, body: Any) -> Dict[str, Any]:
        response = await self.post(body)
        assert response.status == 200, await response.text()
        return await response.json()

    async def verify(self, **params: str):
        return await self.client.get(self.path, params=params)

    # ------------------------------------------------------------ the store

    def query(self, statement: Any) -> List[Any]:
        return self.store.transaction(lambda s: s.execute(statement).scalars().all())

    def inbound(self) -> List[Message]:
        return self.query(select(Message).where(Message.direction == Direction.inbound).order_by(Message.id))

    def identities(self) -> List[ChannelIdentity]:
        return self.query(select(ChannelIdentity).order_by(ChannelIdentity.id))

    def customers(self) -> List[Customer]:
        return self.query(select(Customer).order_by(Customer.id))

    def count(self, model: Any) -> int:
        return self.store.transaction(lambda s: s.execute(select(func.count()).select_from(model)).scalar_one())

    def nothing_stored(self) -> bool:
        return all(self.count(model) == 0 for model in (Message, Conversation, Customer, ChannelIdentity))

    def outbox(self, item_id: int) -> OutboxItem:
        return self.store.transaction(lambda s: s.get(OutboxItem, item_id))

    def outbound_message(self, item_id: int) -> Message:
        return self.store.transaction(lambda s: s.get(Message, s.get(OutboxItem, item_id).message_id))

    def age_inbound(self, hours: float) -> None:
        """Every customer message written ``hours`` ago (the messaging window)."""
        at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
        self.store.transaction(lambda s: s.execute(
            update(Message).where(Message.direction == Direction.inbound).values(created_at=at)))

    def make_due(self) -> None:
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        self.store.transaction(lambda s: s.execute(update(OutboxItem).values(next_attempt_at=past)))

    # ------------------------------------------------------------ outbound

    def queue(self, key: str, payload: Dict[str, Any], recipient: str, *, source: str = "bot",
              purpose: Purpose = Purpose.answer) -> int:
        """Queue ``payload`` in ``recipient``'s latest conversation (they must have written)."""
        def run(session: Any) -> int:
            conversation = session.execute(
                select(Conversation).join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(ChannelIdentity.channel == self.channel.name, ChannelIdentity.external_id == recipient)
                .order_by(Conversation.id.desc()).limit(1)).scalar_one()
            return enqueue(session, key=key, channel=self.channel.name, recipient=recipient, payload=payload,
                           source=source, conversation_id=conversation.id, purpose=purpose).id
        return self.store.transaction(run)

    async def deliver(self, dispatcher: Optional[Dispatcher] = None) -> Dispatcher:
        """One round of the real dispatcher over the due items (a fresh one: no paused bucket)."""
        dispatcher = dispatcher or Dispatcher(self.store, self.client.server.app[CONNECTORS_KEY])
        await dispatcher.deliver_all(await self.store.run(claim_due, [self.channel.name], 100))
        return dispatcher

    async def send(self, key: str, payload: Dict[str, Any], recipient: str, **kwargs: Any) -> OutboxItem:
        item_id = self.queue(key, payload, recipient, **kwargs)
        await self.deliver()
        return self.outbox(item_id)


def with_status_id(status_payload: Dict[str, Any], message_id: str) -> Dict[str, Any]:
    """A recorded WhatsApp status webhook about ``message_id`` (the wamid the fake returned)."""
    data = copy.deepcopy(status_payload)
    for entry in data["entry"]:
        for change in entry["changes"]:
            for status in change["value"].get("statuses", []):
                status["id"] = message_id
    return data


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    async with FakeGraph() as fake:
        yield fake


@pytest.fixture
def meta_env(meta_channel: Channel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Dict[str, str]:
    """The channel's secrets in its default environment variables; the test in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)
    names = env_names(meta_channel.env_prefix)
    for name, value in names.items():
        monkeypatch.setenv(name, value)
    return names


@pytest.fixture
async def meta(tmp_path: Path, meta_channel: Channel, meta_env: Dict[str, str],
               graph: FakeGraph) -> AsyncIterator[MetaApp]:
    client = TestClient(TestServer(build_app(tmp_path, meta_channel, graph.url)))
    await client.start_server()
    try:
        yield MetaApp(client, meta_channel, graph)
    finally:
        await client.close()
