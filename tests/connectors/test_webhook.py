"""The signed webhook connector inside the real service app, served over loopback HTTP."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, Optional


import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.web.app import create_app
from bot.web.keys import CONNECTORS_KEY, STORE_KEY
from bot.config import load_config
from bot.store.models import Conversation, Message
from connectors.base import ConnectorError
from connectors.registry import ENTRY_POINT_GROUP, connector_class
from connectors.signing import SIGNATURE_HEADER, sign
from connectors.webhook import SignedWebhookConnector

SECRET = "inbound-shared-secret"
NOTHING_LISTENS = "http://127.0.0.1:9"
@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)


def write_config(tmp_path: Path, channel: Optional[Dict[str, Any]] = None) -> Path:
    channel = channel if channel is not None else {"type": "webhook"}
    channel = {"callback_url": "http://127.0.0.1:9/callback", "secret_env": "TEST_HOOK_SECRET", **channel}
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/store/webcare.db"},
        "rasa": {"url": NOTHING_LISTENS, "actions_url": NOTHING_LISTENS},
        "worker": {"enabled": False},
        "channels": {"hook": channel},
    }))
    return path


def app_for(tmp_path: Path, channel: Optional[Dict[str, Any]] = None, database_url: Optional[str] = None):
    environ = {"WEBCARE_DATABASE_URL": database_url} if database_url else {}
    return create_app(load_config(str(write_config(tmp_path, channel)), environ=environ))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(app_for(tmp_path)))
    await client.start_server()
    yield client
    await client.close()


def body_of(**overrides: Any) -> bytes:
    data: Dict[str, Any] = {
        "message_id": "wa-1",
        "sender": {"id": "31612345678", "name": "Ann", "language": "en"},
        "text": "How much is the unlimited plan?",
        "metadata": {"platform": "whatsapp"},
    }
    data.update(overrides)
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


async def post(client: TestClient, body: bytes, signature: Optional[str] = "sign"):
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers[SIGNATURE_HEADER] = sign(SECRET, body)
    elif signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return await client.post("/webhooks/hook", data=body, headers=headers)


def messages(client: TestClient) -> list:
    store = client.server.app[STORE_KEY]
    return store.transaction(lambda s: s.execute(select(Message).order_by(Message.id)).scalars().all())


def conversations(client: TestClient) -> int:
    store = client.server.app[STORE_KEY]
    return store.transaction(lambda s: s.execute(select(func.count()).select_from(Conversation)).scalar_one())


# ---------------------------------------------------------------- inbound


async def test_signed_message_is_accepted_and_stored(client: TestClient) -> None:
    response = await post(client, body_of())
    assert response.status == 200
    reply = await response.json()
    assert reply["status"] == "accepted"
    [message] = messages(client)
    assert reply["message_id"] == message.id
    assert message.channel == "hook" and message.channel_message_id == "wa-1"
    assert message.text == "How much is the unlimited plan?"
    assert message.status == "received"
    assert message.language_hint == "en"
    assert message.payload == {"kind": "text", "metadata": {"platform": "whatsapp"}, "truncated": False}
    assert conversations(client) == 1


async def test_same_message_again_is_a_duplicate(client: TestClient) -> None:
    first = await (await post(client, body_of())).json()
    response = await post(client, body_of())
    assert response.status == 200
    assert await response.json() == {"status": "duplicate", "message_id": first["message_id"]}
    assert len(messages(client)) == 1


async def test_numeric_ids_and_button_kind(client: TestClient) -> None:
    response = await post(client, body_of(message_id=1234, sender={"id": 99}, kind="button"))
    assert response.status == 200
    [message] = messages(client)
    assert message.channel_message_id == "1234"
    assert message.payload["kind"] == "button"
    store = client.server.app[STORE_KEY]
    sender = store.transaction(lambda s: s.execute(select(Conversation.rasa_sender_id)).scalar_one())
    assert sender == "hook:99"


async def test_long_text_is_accepted_truncated(client: TestClient) -> None:
    response = await post(client, body_of(text="a" * 100_000))
    assert response.status == 200
    [message] = messages(client)
    assert len(message.text) == 4000 and message.payload["truncated"] is True


@pytest.mark.parametrize("signature", [
    None,
    "",
    "sha256=" + "0" * 64,
    "sha256=deadbeef",
    "nonsense",
])
async def test_missing_or_wrong_signature_is_401(client: TestClient, signature) -> None:
    response = await post(client, body_of(), signature=signature)
    assert response.status == 401
    reply = await response.json()
    assert reply["error"] == "unauthorized"
    assert SIGNATURE_HEADER in reply["reason"]
    assert messages(client) == [] and conversations(client) == 0


async def test_signature_of_another_body_or_secret_is_401(client: TestClient) -> None:
    body = body_of()
    for signature in (sign(SECRET, body_of(text="something else")), sign("wrong-secret", body)):
        response = await post(client, body, signature=signature)
        assert response.status == 401
    assert messages(client) == []


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"[1, 2, 3]", "JSON object"),
    (body_of(text=...), "'text'"),
    (body_of(text="   "), "'text'"),
    (body_of(text=42), "'text'"),
    (body_of(sender=...), "'sender.id'"),
    (body_of(sender={"name": "Ann"}), "'sender.id'"),
    (body_of(sender="31612345678"), "'sender.id'"),
    (body_of(message_id=...), "'message_id'"),
    (body_of(message_id=""), "'message_id'"),
    (body_of(metadata=["platform", "whatsapp"]), "'metadata'"),
    (body_of(metadata="whatsapp"), "'metadata'"),
], ids=["malformed", "not_utf8", "array", "no_text", "blank_text", "numeric_text", "no_sender",
        "no_sender_id", "sender_not_object", "no_message_id", "empty_message_id", "metadata_list",
        "metadata_string"])
async def test_bad_body_is_400_with_a_reason(client: TestClient, body: bytes, reason: str) -> None:
    response = await post(client, body)  # correctly signed, so only the body is wrong
    assert response.status == 400
    assert response.content_type == "application/json"
    reply = await response.json()
    assert reply["error"] == "bad_request"
    assert reason in reply["reason"]
    assert messages(client) == [] and conversations(client) == 0


@pytest.mark.parametrize("body", [body_of(message_id=True), body_of(sender={"id": False}),
                                  body_of(sender={"id": ""})], ids=["true_message_id", "false_sender_id", "empty_sender_id"])
async def test_boolean_or_empty_ids_are_rejected(client: TestClient, body: bytes) -> None:
    response = await post(client, body)
    assert response.status == 400
    assert messages(client) == []


async def test_oversized_body_is_rejected(client: TestClient) -> None:
    response = await post(client, body_of(text="b" * (2 * 1024 ** 2)))
    assert response.status == 413
    assert messages(client) == []


# ---------------------------------------------------------------- plugin resolution


def test_webhook_type_resolves_through_the_entry_point(tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points().select(group=ENTRY_POINT_GROUP)}
    assert names["webhook"] == "connectors.webhook:SignedWebhookConnector"
    assert connector_class("webhook") is SignedWebhookConnector
    app = app_for(tmp_path)
    connector = app[CONNECTORS_KEY]["hook"]
    assert type(connector) is SignedWebhookConnector
    assert connector.name == "hook" and connector.secret == SECRET
    assert connector.callback_url == "http://127.0.0.1:9/callback"


async def test_dotted_path_works_too(tmp_path: Path) -> None:
    assert connector_class("connectors.webhook.SignedWebhookConnector") is SignedWebhookConnector
    app = app_for(tmp_path, {"type": "connectors.webhook.SignedWebhookConnector", "rate_limit_per_second": 5})
    connector = app[CONNECTORS_KEY]["hook"]
    assert isinstance(connector, SignedWebhookConnector)
    assert connector.capabilities.rate_limit_per_second == 5.0
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        response = await post(client, body_of())
        assert response.status == 200 and (await response.json())["status"] == "accepted"
    finally:
        await client.close()


def test_disabled_channel_is_not_built(tmp_path: Path) -> None:
    app = app_for(tmp_path, {"type": "webhook", "enabled": False})
    assert app[CONNECTORS_KEY] == {}


def test_missing_secret_is_a_connector_error_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_HOOK_SECRET")
    with pytest.raises(ConnectorError, match=r"TEST_HOOK_SECRET"):
        app_for(tmp_path)


def test_default_secret_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBCARE_WEBHOOK_SECRET", raising=False)
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["channels"]["hook"]["secret_env"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConnectorError, match="WEBCARE_WEBHOOK_SECRET"):
        create_app(load_config(str(path), environ={}))
    monkeypatch.setenv("WEBCARE_WEBHOOK_SECRET", "other")
    assert create_app(load_config(str(path), environ={}))[CONNECTORS_KEY]["hook"].secret == "other"


def test_missing_module_surfaces_its_import_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleNotFoundError) as caught:
        app_for(tmp_path, {"type": "connectors.no_such_module.Connector"})
    assert caught.value.name == "connectors.no_such_module"


def test_broken_plugin_surfaces_its_real_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken_webcare_plugin.py").write_text("import a_dependency_nobody_installed\n")
    monkeypatch.syspath_prepend(str(plugins))
    with pytest.raises(ModuleNotFoundError) as caught:
        app_for(tmp_path, {"type": "broken_webcare_plugin.Channel"})
    assert caught.value.name == "a_dependency_nobody_installed"


@pytest.mark.parametrize("type_name, message", [
    ("connectors.webhook.NoSuchClass", "has no class 'NoSuchClass'"),
    ("telepathy", "unknown connector type 'telepathy'"),
    ("bot.config.Config", "not a webcare Connector subclass"),
])
def test_bad_type_is_a_connector_error(tmp_path: Path, type_name: str, message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        app_for(tmp_path, {"type": type_name})


def test_channel_without_type_is_a_connector_error(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["channels"]["hook"]["type"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConnectorError, match="channels.hook: needs a 'type'"):
        create_app(load_config(str(path), environ={}))


# ---------------------------------------------------------------- PostgreSQL-backed service


@pytest.fixture
async def pg_client(tmp_path: Path, pg_url: str) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(app_for(tmp_path, database_url=pg_url)))
    await client.start_server()
    with client.server.app[STORE_KEY].engine.begin() as connection:
        connection.exec_driver_sql(
            "TRUNCATE outbox, drafts, messages, conversations, channel_identities, customers "
            "RESTART IDENTITY CASCADE")
    yield client
    await client.close()


async def test_accept_and_duplicate_on_postgresql(pg_client: TestClient) -> None:
    assert pg_client.server.app[STORE_KEY].engine.dialect.name == "postgresql"
    first = await post(pg_client, body_of())
    again = await post(pg_client, body_of())
    assert first.status == again.status == 200
    assert (await first.json())["status"] == "accepted"
    assert (await again.json())["status"] == "duplicate"
    assert len(messages(pg_client)) == 1


@pytest.mark.parametrize("body", [
    body_of(message_id="m" * 300),
    body_of(sender={"id": "s" * 300}),
    body_of(sender={"id": "42", "name": "n" * 300}),
], ids=["message_id", "sender_id", "sender_name"])
async def test_over_long_fields_are_not_a_server_error_on_postgresql(pg_client: TestClient, body: bytes) -> None:
    response = await post(pg_client, body)
    assert response.status in (200, 400), response.status
    if response.status == 400:
        assert messages(pg_client) == []
