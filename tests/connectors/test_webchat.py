"""The web chat connector inside the real service app, served over loopback HTTP.

The page, the JSON API and the event stream are exercised through aiohttp's test client with
a cookie jar, like a browser; outbound messages go the real way: ``bot.pipeline.outbox.enqueue`` in the
store, then the real ``Dispatcher`` calls the connector's ``send``.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional

import psycopg2
import pytest
import yaml
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.web.app import create_app
from bot.web.keys import CONNECTORS_KEY, DISPATCHER_KEY, STORE_KEY
from bot.config import load_config
from bot.pipeline.dispatcher import claim_due
from bot.pipeline.outbox import enqueue
from bot.store.models import ChannelIdentity, Conversation, Direction, Message, OutboxItem, OutboxStatus
from connectors.base import ConnectorError, DeliveryError
from connectors.registry import connector_class
from connectors.webchat import COOKIE, WebChatConnector, new_outbound, preferred_language, sender_id_of

DOTTED = "connectors.webchat.WebChatConnector"
NOTHING_LISTENS = "http://127.0.0.1:9"
PG = dict(host="127.0.0.1", port=5432, user="postgres")
FAST = {"poll_interval_seconds": 0.1}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)


def write_config(tmp_path: Path, options: Optional[Dict[str, Any]] = None) -> Path:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/store/webcare.db"},
        "rasa": {"url": NOTHING_LISTENS, "actions_url": NOTHING_LISTENS},
        "worker": {"enabled": False},
        "channels": {"webchat": {"type": DOTTED, **FAST, **(options or {})}},
    }))
    return path


def app_for(tmp_path: Path, options: Optional[Dict[str, Any]] = None, database_url: Optional[str] = None):
    environ = {"WEBCARE_DATABASE_URL": database_url} if database_url else {}
    return create_app(load_config(str(write_config(tmp_path, options)), environ=environ))


async def started(app) -> TestClient:
    client = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    return client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    client = await started(app_for(tmp_path))
    yield client
    await client.close()


async def browser(client: TestClient) -> TestClient:
    """Another browser (its own cookie jar) on the same server."""
    other = TestClient(client.server, cookie_jar=CookieJar(unsafe=True))
    await other.start_server()  # the server is running already: only opens a session
    return other


# ---------------------------------------------------------------- helpers


def origin(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def open_page(client: TestClient, **headers: str):
    response = await client.get("/chat", headers=headers)
    assert response.status == 200
    return response


def token_of(client: TestClient) -> str:
    [cookie] = [c for c in client.session.cookie_jar if c.key == COOKIE]
    return cookie.value


async def say(client: TestClient, text: Any = "Hoe hoog is mijn termijnbedrag?", *, client_id: Optional[str] = None,
              language: Optional[str] = "nl", headers: Optional[Dict[str, str]] = None, **extra: Any):
    body: Dict[str, Any] = {"text": text, "client_message_id": client_id or str(uuid.uuid4()), **extra}
    if language is not None:
        body["language"] = language
    sent = {"Content-Type": "application/json", "Origin": origin(client), **(headers or {})}
    return await client.post("/chat/api/messages", data=json.dumps(body), headers=sent)


def store_of(client: TestClient):
    return client.server.app[STORE_KEY]


def messages(client: TestClient) -> List[Message]:
    return store_of(client).transaction(lambda s: s.execute(select(Message).order_by(Message.id)).scalars().all())


def count(client: TestClient, model) -> int:
    return store_of(client).transaction(lambda s: s.execute(select(func.count()).select_from(model)).scalar_one())


def conversation_of(client: TestClient) -> Conversation:
    sender = sender_id_of(token_of(client))

    def find(session):
        return session.execute(
            select(Conversation).join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
            .where(ChannelIdentity.channel == "webchat", ChannelIdentity.external_id == sender)
        ).scalar_one()

    return store_of(client).transaction(find)


async def reply(client: TestClient, key: str, payload: Dict[str, Any], *, sender: str = "bot",
                source: str = "bot", deliver: bool = True, conversation: Optional[Conversation] = None) -> None:
    """Queue an outbound message in the outbox (as the worker or the console do) and deliver it."""
    conversation = conversation or conversation_of(client)
    recipient = sender_id_of(token_of(client))
    await store_of(client).run(lambda s: enqueue(
        s, key=key, channel="webchat", recipient=recipient, payload=payload, source=source, sender=sender,
        conversation_id=conversation.id))
    if deliver:
        await dispatch(client.server.app)


async def dispatch(app) -> None:
    """What the dispatcher's loop does once: claim the due items and deliver them."""
    store = app[STORE_KEY]
    await app[DISPATCHER_KEY].deliver_all(await store.run(claim_due, ["webchat"], 100))


class EventStream:
    """Reads Server-Sent Events from an open response, like the browser's EventSource."""

    def __init__(self, response) -> None:
        self.response = response
        self.retry: Optional[int] = None

    async def next(self, timeout: float = 5.0) -> Dict[str, Any]:
        event: Dict[str, Any] = {}
        data: List[str] = []
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), timeout)
            if not line:
                raise EOFError("the stream ended")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    event["data"] = json.loads("\n".join(data))
                    return event
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "id":
                event["id"] = value
            elif field == "retry":
                self.retry = int(value)

    async def nothing_for(self, seconds: float) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await self.next(timeout=seconds)

    def close(self) -> None:
        self.response.close()


async def events(client: TestClient, after: Optional[int] = None, last_event_id: Optional[str] = None) -> EventStream:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    url = "/chat/api/events" + (f"?after={after}" if after is not None else "")
    response = await client.get(url, headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/event-stream"
    return EventStream(response)


async def history(client: TestClient) -> Dict[str, Any]:
    response = await client.get("/chat/api/history", headers={"Accept": "application/json"})
    assert response.status == 200
    return await response.json()


# ---------------------------------------------------------------- the page


async def test_page_sets_the_session_cookie_and_serves_html_with_the_script(client: TestClient) -> None:
    response = await open_page(client)
    assert response.content_type == "text/html"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/chat"
    assert int(cookie["max-age"]) == 30 * 86400
    token = cookie.value
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    html = await response.text()
    assert '<html lang="nl">' in html and "Chat met Polder Energie" in html
    script = re.search(r'<script src="(/chat/static/chat\.js\?v=\w+)" defer>', html).group(1)
    style = re.search(r'<link rel="stylesheet" href="(/chat/static/chat\.css\?v=\w+)">', html).group(1)
    assert 'role="log"' in html and 'aria-live="polite"' in html
    assert '<label class="composer__label" for="message"' in html
    embedded = re.search(r'<script type="application/json" id="webchat-config">(.*?)</script>', html, re.S)
    config = json.loads(embedded.group(1))
    assert config["api"] == "/chat/api" and config["maxChars"] == 4000
    assert set(config["texts"]) == {"nl", "en"} and config["texts"]["en"]["send"] == "Send"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "http:" not in policy
    js = await client.get(script)
    assert js.status == 200 and js.content_type in ("application/javascript", "text/javascript")
    source = await js.text()
    assert "EventSource" in source and "innerHTML" not in source
    css = await client.get(style)
    assert css.status == 200 and css.content_type == "text/css"

    again = await open_page(client)  # a reload keeps the session (and renews the cookie)
    assert again.cookies[COOKIE].value == token


async def test_page_speaks_the_browsers_language(client: TestClient) -> None:
    html = await (await open_page(client, **{"Accept-Language": "en-GB,en;q=0.9,nl;q=0.5"})).text()
    assert '<html lang="en">' in html and "Chat with Polder Energie" in html and "Your message" in html
    assert preferred_language("de-DE,de;q=0.9") == "nl"
    assert preferred_language("de;q=1, en;q=0.8, nl;q=0.9") == "nl"
    assert preferred_language("EN-us") == "en"
    assert preferred_language(None) == "nl"


async def test_a_forged_or_malformed_cookie_gets_a_new_session(client: TestClient) -> None:
    client.session.cookie_jar.update_cookies({COOKIE: "not-a-session"})
    response = await open_page(client)
    assert response.cookies[COOKIE].value != "not-a-session"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", response.cookies[COOKIE].value)


# ---------------------------------------------------------------- sending


async def test_a_message_is_stored_for_the_cookies_session(client: TestClient) -> None:
    await open_page(client)
    client_id = str(uuid.uuid4())
    response = await say(client, "What is my monthly payment?", client_id=client_id, language="en")
    assert response.status == 200
    reply_body = await response.json()
    assert reply_body["status"] == "accepted"
    [message] = messages(client)
    assert reply_body["id"] == message.id
    sender = sender_id_of(token_of(client))
    assert message.channel == "webchat" and message.direction == Direction.inbound
    assert message.channel_message_id == f"{sender}/{client_id}"
    assert message.text == "What is my monthly payment?" and message.sender == "customer"
    assert message.language_hint == "en" and message.status == "received"
    assert message.payload == {"kind": "text", "metadata": {}, "truncated": False}
    conversation = conversation_of(client)
    assert conversation.rasa_sender_id == f"webchat:{sender}" and conversation.language == "en"
    # The cookie's token is a credential: it is not what the store (or an agent) sees.
    assert token_of(client) not in sender


async def test_a_retried_post_is_stored_once(client: TestClient) -> None:
    await open_page(client)
    client_id = str(uuid.uuid4())
    first = await (await say(client, client_id=client_id)).json()
    again = await say(client, client_id=client_id.upper())  # the same UUID, however it is spelt
    assert again.status == 200
    assert await again.json() == {"status": "duplicate", "id": first["id"]}
    assert len(messages(client)) == 1


async def test_the_same_client_id_from_another_session_is_another_message(client: TestClient) -> None:
    await open_page(client)
    other = await browser(client)
    try:
        await open_page(other)
        client_id = str(uuid.uuid4())
        assert (await (await say(client, client_id=client_id)).json())["status"] == "accepted"
        assert (await (await say(other, client_id=client_id)).json())["status"] == "accepted"
        assert len(messages(client)) == 2 and count(client, Conversation) == 2
    finally:
        await other.close()


async def test_a_session_id_in_the_body_is_ignored(client: TestClient) -> None:
    await open_page(client)
    victim = await browser(client)
    try:
        await open_page(victim)
        await say(victim, "mijn eigen bericht")
        stolen = token_of(victim)
        response = await say(client, "hijack", session_id=stolen, sender_id=sender_id_of(stolen),
                             sender={"id": sender_id_of(stolen)})
        assert response.status == 200
        assert len((await history(victim))["messages"]) == 1
        mine = await history(client)
        assert [m["text"] for m in mine["messages"]] == ["hijack"]
    finally:
        await victim.close()


async def test_a_button_press_is_sent_as_its_payload_and_shown_as_its_title(client: TestClient) -> None:
    await open_page(client)
    response = await say(client, "Ja, klopt", payload="/affirm")
    assert response.status == 200
    [message] = messages(client)
    assert message.text == "/affirm"
    assert message.payload["kind"] == "button" and message.payload["metadata"] == {"title": "Ja, klopt"}
    [shown] = (await history(client))["messages"]
    assert shown["text"] == "Ja, klopt" and shown["kind"] == "button" and shown["direction"] == "in"


async def test_the_longest_allowed_text_is_accepted(client: TestClient) -> None:
    await open_page(client)
    response = await say(client, "x" * 4000)
    assert response.status == 200
    assert len(messages(client)[0].text) == 4000


async def test_a_too_long_text_is_refused_with_413_and_a_reason(client: TestClient) -> None:
    await open_page(client)
    response = await say(client, "x" * 4001)
    assert response.status == 413
    body = await response.json()
    assert body["error"] == "payload_too_large"
    assert "4001" in body["reason"] and "4000" in body["reason"]
    assert body["details"] == {"length": 4001, "max": 4000}  # the page turns this into its own words
    assert messages(client) == []


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    (b'["text"]', "JSON object"),
    ({"text": ""}, "'text' must not be empty"),
    ({"text": "   \n\t "}, "'text' must not be empty"),
    ({"text": None}, "'text' must not be empty"),
    ({"text": 42}, "'text' must be a string"),
    ({"client_message_id": None}, "'client_message_id'"),
    ({"client_message_id": "1"}, "'client_message_id'"),
    ({"client_message_id": 12345}, "'client_message_id'"),
    ({"language": "de"}, "'language'"),
    ({"payload": ""}, "'payload'"),
    ({"payload": ["/affirm"]}, "'payload'"),
    ({"payload": "/" + "a" * 1000}, "'payload'"),
    ({"text": "\ud800"}, "not valid Unicode"),
], ids=["malformed", "not_utf8", "array", "empty", "blank", "null", "number", "no_client_id", "short_client_id",
        "numeric_client_id", "unknown_language", "empty_payload", "list_payload", "long_payload", "lone_surrogate"])
async def test_a_bad_body_is_400_with_a_reason(client: TestClient, body: Any, reason: str) -> None:
    await open_page(client)
    if isinstance(body, dict):
        data = {"text": "hallo", "client_message_id": str(uuid.uuid4()), "language": "nl", **body}
        raw = json.dumps(data).encode()
    else:
        raw = body
    response = await client.post("/chat/api/messages", data=raw,
                                 headers={"Content-Type": "application/json", "Origin": origin(client)})
    assert response.status == 400
    reply_body = await response.json()
    assert reply_body["error"] == "bad_request" and reason in reply_body["reason"]
    assert messages(client) == [] and count(client, Conversation) == 0


async def test_control_characters_are_dropped(client: TestClient) -> None:
    await open_page(client)
    assert (await say(client, "meter\x00stand\x07 klopt niet\nzie foto")).status == 200
    assert messages(client)[0].text == "meterstand klopt niet\nzie foto"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
async def test_only_json_posts_are_accepted(client: TestClient, content_type: Optional[str]) -> None:
    await open_page(client)
    body = json.dumps({"text": "hallo", "client_message_id": str(uuid.uuid4())})
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    response = await client.post("/chat/api/messages", data=body, headers=headers)
    assert response.status == 415
    reply_body = await response.json()
    assert reply_body["error"] == "unsupported_media_type" and "application/json" in reply_body["reason"]
    assert messages(client) == []


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},
    {"Sec-Fetch-Site": "cross-site"},
], ids=["other_site", "null_origin", "other_port", "sec_fetch_cross_site"])
async def test_cross_origin_posts_are_refused(client: TestClient, headers: Dict[str, str]) -> None:
    await open_page(client)
    sent = {"Content-Type": "application/json", **headers}
    body = json.dumps({"text": "hallo", "client_message_id": str(uuid.uuid4())})
    response = await client.post("/chat/api/messages", data=body, headers=sent)
    assert response.status == 403
    assert "cross-origin" in (await response.json())["reason"]
    assert messages(client) == []


async def test_without_origin_a_same_origin_post_is_accepted(client: TestClient) -> None:
    await open_page(client)
    body = json.dumps({"text": "hallo", "client_message_id": str(uuid.uuid4())})
    response = await client.post("/chat/api/messages", data=body, headers={
        "Content-Type": "application/json; charset=utf-8", "Sec-Fetch-Site": "same-origin"})
    assert response.status == 200 and len(messages(client)) == 1


async def test_allowed_origins_for_a_proxy(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"allowed_origins": ["https://chat.polderenergie.nl"]}))
    try:
        await open_page(client)
        assert (await say(client, headers={"Origin": "https://chat.polderenergie.nl"})).status == 200
        assert (await say(client, headers={"Origin": "https://polderenergie.example"})).status == 403
    finally:
        await client.close()


async def test_without_a_session_cookie_nothing_is_accepted(client: TestClient) -> None:
    response = await say(client)
    assert response.status == 403
    assert "no chat session" in (await response.json())["reason"]
    assert (await client.get("/chat/api/history")).status == 403
    assert (await client.get("/chat/api/events")).status == 403
    assert messages(client) == [] and count(client, Conversation) == 0


async def test_rate_limit_per_session(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"rate_limit_per_minute": 3}))
    other = await browser(client)
    try:
        await open_page(client)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for client_id in ids:
            assert (await say(client, client_id=client_id)).status == 200
        refused = await say(client, "nog eentje")
        assert refused.status == 429
        body = await refused.json()
        assert body["error"] == "too_many_requests" and "at most 3 a minute" in body["reason"]
        assert 1 <= body["details"]["retry_after"] <= 60
        assert len(messages(client)) == 3
        # A retry of a message that got through is still answered (idempotent, not counted) ...
        assert (await (await say(client, client_id=ids[0])).json())["status"] == "duplicate"
        # ... and another session has its own budget.
        await open_page(other)
        assert (await say(other)).status == 200
    finally:
        await other.close()
        await client.close()


async def test_the_default_rate_limit_is_20_a_minute(client: TestClient) -> None:
    await open_page(client)
    statuses = [(await say(client, f"bericht {i}")).status for i in range(21)]
    assert statuses == [200] * 20 + [429]


# ---------------------------------------------------------------- receiving: the event stream


async def test_replies_arrive_on_the_open_stream_and_a_reconnect_resumes_without_repeats(client: TestClient) -> None:
    await open_page(client)
    await say(client, "Mijn meterstand klopt niet")
    stream = await events(client, after=(await history(client))["cursor"])
    try:
        assert stream.retry is None
        await reply(client, "reply:1:0", {"text": "Vervelend! Welke meterstand heb je doorgegeven?"})
        first = await stream.next()
        assert stream.retry == 2000  # the browser reconnects quickly
        data = first["data"]
        assert first["id"] == str(data["id"])
        assert data["direction"] == "out" and data["from"] == "bot"
        assert data["text"] == "Vervelend! Welke meterstand heb je doorgegeven?" and data["buttons"] == []
        outbound = [m for m in messages(client) if m.direction == Direction.outbound]
        assert outbound[0].status == "sent" and outbound[0].channel_message_id == "out:reply:1:0"

        # A draft approved by an agent minutes later (here: after the stream has been idle a while).
        await stream.nothing_for(1.0)
        await reply(client, "draft:7:0", {"text": "Ik heb je meterstand aangepast."}, source="draft")
        await reply(client, "agent:7:1", {"text": "Groet, Sanne van Polder Energie"}, sender="agent:3",
                    source="agent")
        second, third = await stream.next(), await stream.next()
        assert second["data"]["text"] == "Ik heb je meterstand aangepast." and second["data"]["from"] == "bot"
        assert third["data"]["text"] == "Groet, Sanne van Polder Energie" and third["data"]["from"] == "agent"
        assert int(first["id"]) < int(second["id"]) < int(third["id"])
    finally:
        stream.close()

    # The browser reconnects with Last-Event-ID: nothing it has is sent again, new things are.
    resumed = await events(client, after=0, last_event_id=third["id"])
    try:
        await resumed.nothing_for(0.5)
        await reply(client, "reply:2:0", {"text": "Nog iets?"})
        assert (await resumed.next())["data"]["text"] == "Nog iets?"
    finally:
        resumed.close()

    # Resuming from an older event replays exactly what came after it, in order.
    replay = await events(client, last_event_id=first["id"])
    try:
        texts = [(await replay.next())["data"]["text"] for _ in range(3)]
        assert texts == ["Ik heb je meterstand aangepast.", "Groet, Sanne van Polder Energie", "Nog iets?"]
        await replay.nothing_for(0.3)
    finally:
        replay.close()


async def test_a_queued_message_shows_once_it_is_sent_and_holds_back_later_ones(client: TestClient) -> None:
    await open_page(client)
    await say(client)
    stream = await events(client, after=0)
    try:
        await reply(client, "reply:1:0", {"text": "eerste"}, deliver=False)
        await reply(client, "reply:1:1", {"text": "tweede"}, deliver=False)
        store = store_of(client)
        # The second is marked sent first (as a racing replica might): it must not overtake.
        await store.run(lambda s: s.execute(
            update(Message).where(Message.text == "tweede").values(status="sent")))
        await stream.nothing_for(0.5)
        assert [m["text"] for m in (await history(client))["messages"]] == ["Hoe hoog is mijn termijnbedrag?"]
        await store.run(lambda s: s.execute(
            update(Message).where(Message.text == "eerste").values(status="sent")))
        assert [(await stream.next())["data"]["text"] for _ in range(2)] == ["eerste", "tweede"]
    finally:
        stream.close()


async def test_a_failed_delivery_is_skipped(client: TestClient) -> None:
    await open_page(client)
    await say(client)
    await reply(client, "reply:1:0", {"text": "mislukt"}, deliver=False)

    def give_up(session) -> None:  # what record_failure does after the last attempt
        session.execute(update(Message).where(Message.text == "mislukt").values(status="failed"))
        session.execute(update(OutboxItem).where(OutboxItem.idempotency_key == "reply:1:0")
                        .values(status=OutboxStatus.failed))

    await store_of(client).run(give_up)
    await reply(client, "reply:1:1", {"text": "gelukt"})
    stream = await events(client, after=0)
    try:
        assert (await stream.next())["data"]["text"] == "gelukt"
    finally:
        stream.close()


async def test_a_message_sent_by_another_replica_arrives_by_polling(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path))
    replica = app_for(tmp_path)  # a second service process on the same database
    try:
        await open_page(client)
        await say(client)
        stream = await events(client, after=0)
        try:
            conversation = conversation_of(client)
            await reply(client, "reply:1:0", {"text": "van de andere replica"}, deliver=False,
                        conversation=conversation)
            await dispatch(replica)  # its send() cannot wake this process's stream
            assert (await stream.next(timeout=3))["data"]["text"] == "van de andere replica"
        finally:
            stream.close()
    finally:
        await client.close()
        replica[STORE_KEY].close()


async def test_a_local_send_wakes_the_stream_without_waiting_for_the_poll(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"poll_interval_seconds": 30}))
    try:
        await open_page(client)
        await say(client)
        stream = await events(client, after=0)
        try:
            await asyncio.sleep(0.3)  # the stream now sleeps for up to 30 s
            started_at = time.monotonic()
            await reply(client, "reply:1:0", {"text": "meteen"})
            assert (await stream.next(timeout=5))["data"]["text"] == "meteen"
            assert time.monotonic() - started_at < 3
        finally:
            stream.close()
    finally:
        await client.close()


async def test_buttons_reach_the_page_as_buttons(client: TestClient) -> None:
    await open_page(client)
    await say(client, "Ik wil mijn termijnbedrag aanpassen")
    stream = await events(client, after=0)
    try:
        await reply(client, "reply:1:0", {
            "text": "Wil je je termijnbedrag verhogen?",
            "buttons": [{"title": "Ja", "payload": "/affirm"}, {"title": "Nee", "payload": "/deny"},
                        {"title": "kapot"}, "rommel"],
        })
        data = (await stream.next())["data"]
        assert data["buttons"] == [{"title": "Ja", "payload": "/affirm"}, {"title": "Nee", "payload": "/deny"}]
    finally:
        stream.close()
    assert (await say(client, "Ja", payload="/affirm")).status == 200
    shown = (await history(client))["messages"]
    assert [(m["direction"], m["text"]) for m in shown] == [
        ("in", "Ik wil mijn termijnbedrag aanpassen"), ("out", "Wil je je termijnbedrag verhogen?"), ("in", "Ja")]
    assert shown[1]["buttons"][0] == {"title": "Ja", "payload": "/affirm"}


async def test_an_image_is_offered_as_a_web_link_only(client: TestClient) -> None:
    await open_page(client)
    await say(client)
    await reply(client, "reply:1:0", {"text": "Zo lees je je meter af:", "image": "https://example.nl/meter.png"})
    await reply(client, "reply:1:1", {"image": "javascript:alert(1)"})
    shown = (await history(client))["messages"][1:]
    assert shown[0]["image"] == "https://example.nl/meter.png"
    assert "image" not in shown[1] and shown[1]["text"] == ""


async def test_history_after_a_reload_has_both_directions_in_order(client: TestClient) -> None:
    await open_page(client)
    await say(client, "Hallo")
    await reply(client, "reply:1:0", {"text": "Hoi! Waarmee kan ik helpen?"})
    await say(client, "Mijn factuur is te hoog")
    await reply(client, "reply:2:0", {"text": "Gaat het om je jaarafrekening?",
                                      "buttons": [{"title": "Ja", "payload": "/affirm"}]})
    await reply(client, "reply:2:1", {"text": "nog in de wachtrij"}, deliver=False)

    await open_page(client)  # reload: same cookie, same conversation
    data = await history(client)
    shown = data["messages"]
    assert [(m["direction"], m["from"], m["text"]) for m in shown] == [
        ("in", "customer", "Hallo"),
        ("out", "bot", "Hoi! Waarmee kan ik helpen?"),
        ("in", "customer", "Mijn factuur is te hoog"),
        ("out", "bot", "Gaat het om je jaarafrekening?"),
    ]
    assert shown[3]["buttons"] == [{"title": "Ja", "payload": "/affirm"}]
    assert [m["id"] for m in shown] == sorted(m["id"] for m in shown)
    assert all(m["created_at"] for m in shown)
    assert data["cursor"] == shown[3]["id"]  # the queued one comes through the stream
    assert set(shown[0]) == {"id", "direction", "from", "kind", "text", "created_at"}  # nothing internal
    stream = await events(client, after=data["cursor"])
    try:
        await dispatch(client.server.app)
        assert (await stream.next())["data"]["text"] == "nog in de wachtrij"
    finally:
        stream.close()


async def test_history_is_capped_and_the_cursor_covers_what_was_left_out(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"history_limit": 3, "rate_limit_per_minute": 100}))
    try:
        await open_page(client)
        await say(client, "1")
        await reply(client, "r:1", {"text": "a"})
        for text in ("2", "3", "4"):
            await say(client, text)
        data = await history(client)
        assert [m["text"] for m in data["messages"]] == ["2", "3", "4"]
        stream = await events(client, after=data["cursor"])
        try:
            await stream.nothing_for(0.4)  # "a" is older than what the page shows: not replayed
        finally:
            stream.close()
    finally:
        await client.close()


async def test_sessions_see_only_their_own_conversation(client: TestClient) -> None:
    await open_page(client)
    other = await browser(client)
    try:
        await open_page(other)
        await say(client, "van A")
        await say(other, "van B")
        stream_b = await events(other, after=0)
        try:
            await reply(client, "reply:a", {"text": "alleen voor A"})
            await stream_b.nothing_for(0.5)
        finally:
            stream_b.close()
        assert [m["text"] for m in (await history(other))["messages"]] == ["van B"]
    finally:
        await other.close()


async def test_an_outbox_item_without_a_logged_message_is_still_shown(client: TestClient) -> None:
    """E.g. a broadcast ("the outage is fixed") queued without a conversation."""
    await open_page(client)
    await say(client)
    recipient = sender_id_of(token_of(client))
    stream = await events(client, after=0)
    try:
        await store_of(client).run(lambda s: enqueue(
            s, key="broadcast:1:x", channel="webchat", recipient=recipient,
            payload={"text": "De storing is opgelost."}, source="broadcast"))
        await dispatch(client.server.app)
        data = (await stream.next())["data"]
        assert data["text"] == "De storing is opgelost." and data["from"] == "bot"
    finally:
        stream.close()
    await dispatch(client.server.app)  # nothing left to do; no second copy
    assert [m.text for m in messages(client)].count("De storing is opgelost.") == 1
    item = store_of(client).transaction(lambda s: s.execute(select(OutboxItem)).scalar_one())
    assert item.status == OutboxStatus.sent and item.channel_message_id == "out:broadcast:1:x"


async def test_send_to_an_unknown_session_is_unreachable(client: TestClient) -> None:
    connector = client.server.app[CONNECTORS_KEY]["webchat"]
    with pytest.raises(DeliveryError) as caught:
        await connector.send("no-such-session", {"text": "hallo"}, "k-1")
    assert caught.value.unreachable and caught.value.permanent
    with pytest.raises(DeliveryError) as caught:
        await connector.send("whoever", {"custom": {"x": 1}}, "k-2")
    assert caught.value.permanent


async def test_a_bad_resume_point_is_400(client: TestClient) -> None:
    await open_page(client)
    for url, headers in (("/chat/api/events?after=abc", {}), ("/chat/api/events", {"Last-Event-ID": "-1"}),
                         ("/chat/api/events", {"Last-Event-ID": "1" * 30})):
        response = await client.get(url, headers=headers)
        assert response.status == 400
        assert "message id" in (await response.json())["reason"]


async def test_too_many_streams_per_session_is_429(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"max_streams_per_session": 2}))
    try:
        await open_page(client)
        streams = [await events(client), await events(client)]
        third = await client.get("/chat/api/events")
        assert third.status == 429
        assert "at most 2" in (await third.json())["reason"]
        streams[0].close()  # a window closed: its slot frees up within a poll interval
        await asyncio.sleep(0.5)
        streams[0] = await events(client)
        for stream in streams:
            stream.close()
    finally:
        await client.close()


async def test_shutting_down_ends_open_streams_promptly(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"poll_interval_seconds": 30}))
    await open_page(client)
    stream = await events(client)
    started_at = time.monotonic()
    await client.close()
    assert time.monotonic() - started_at < 5
    stream.close()


async def test_heartbeats_keep_an_idle_stream_alive(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"heartbeat_seconds": 0.2}))
    try:
        await open_page(client)
        stream = await events(client)
        try:
            lines = []
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and b": keep-alive\n" not in lines:
                lines.append(await asyncio.wait_for(stream.response.content.readline(), 2))
            assert b": keep-alive\n" in lines
        finally:
            stream.close()
    finally:
        await client.close()


def test_new_outbound_starts_after_the_cursor(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    store = app[STORE_KEY]
    try:
        assert store.transaction(new_outbound, "webchat", "nobody", 0) == ([], 0)
    finally:
        store.close()


# ---------------------------------------------------------------- configuration


def test_capabilities_and_defaults(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    try:
        connector = app[CONNECTORS_KEY]["webchat"]
        assert type(connector) is WebChatConnector
        assert connector.capabilities.max_text_length == 4096
        assert connector.capabilities.buttons is True
        assert connector.capabilities.rate_limit_per_second == 200
        assert connector.path == "/chat" and connector.rate_limit_per_minute == 20
        assert connector_class(DOTTED) is WebChatConnector
    finally:
        app[STORE_KEY].close()


def test_the_entry_point_once_registered(tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    from connectors.registry import ENTRY_POINT_GROUP

    names = {e.name: e.value for e in entry_points().select(group=ENTRY_POINT_GROUP)}
    if "webchat" not in names:
        pytest.skip("the 'webchat' entry point is not in pyproject.toml (or not reinstalled) yet")
    assert names["webchat"] == "connectors.webchat:WebChatConnector"
    assert connector_class("webchat") is WebChatConnector


@pytest.mark.parametrize("options, message", [
    ({"path": "chat"}, "path"),
    ({"path": "/chat/"}, "path"),
    ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
    ({"poll_interval_seconds": "often"}, "poll_interval_seconds"),
    ({"allowed_origins": "https://x"}, "allowed_origins"),
])
def test_bad_options_are_a_connector_error(tmp_path: Path, options: Dict[str, Any], message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        app_for(tmp_path, options)


async def test_another_path(tmp_path: Path) -> None:
    client = await started(app_for(tmp_path, {"path": "/klantenservice/chat"}))
    try:
        response = await client.get("/klantenservice/chat")
        assert response.status == 200
        assert response.cookies[COOKIE]["path"] == "/klantenservice/chat"
        assert "/klantenservice/chat/static/chat.js" in await response.text()
        body = json.dumps({"text": "hallo", "client_message_id": str(uuid.uuid4())})
        posted = await client.post("/klantenservice/chat/api/messages", data=body,
                                   headers={"Content-Type": "application/json"})
        assert posted.status == 200
    finally:
        await client.close()


# ---------------------------------------------------------------- PostgreSQL-backed service


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this module (fails, not skips, when the server is down)."""
    name = f"webcare_webchat_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


async def test_the_whole_exchange_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    client = await started(app_for(tmp_path, database_url=pg_url))
    try:
        assert store_of(client).engine.dialect.name == "postgresql"
        await open_page(client)
        client_id = str(uuid.uuid4())
        assert (await (await say(client, "hallo\x00 daar", client_id=client_id)).json())["status"] == "accepted"
        assert (await (await say(client, client_id=client_id)).json())["status"] == "duplicate"
        stream = await events(client, after=(await history(client))["cursor"])
        try:
            await reply(client, "reply:pg:0", {"text": "Hoi!", "buttons": [{"title": "Ja", "payload": "/affirm"}]})
            data = (await stream.next())["data"]
            assert data["text"] == "Hoi!" and data["buttons"] == [{"title": "Ja", "payload": "/affirm"}]
        finally:
            stream.close()
        shown = (await history(client))["messages"]
        assert [(m["direction"], m["text"]) for m in shown] == [("in", "hallo daar"), ("out", "Hoi!")]
        refused = await say(client, "x" * 5000)
        assert refused.status == 413
    finally:
        await client.close()
