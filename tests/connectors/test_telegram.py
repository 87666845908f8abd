"""The Telegram connector inside the real service app, against a fake Bot API server on loopback.

Recorded Update payloads (``telegram_updates/*.json``, shaped like Telegram's documented
objects) are replayed through the real webhook; outbound goes through the real dispatcher to
the fake server, which records every call and answers like Telegram (429, 403, ...).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot import cli
from bot.web.app import create_app
from bot.web.keys import CONNECTORS_KEY, STORE_KEY
from bot.config import load_config
from bot.pipeline.dispatcher import Dispatcher, claim_due
from bot.pipeline.outbox import enqueue
from bot.store.database import Store
from bot.store.models import ChannelIdentity, Conversation, Customer, Message, OutboxItem, OutboxStatus, utcnow
from connectors.base import ConnectorError
from connectors.registry import connector_class
from connectors.telegram import SECRET_HEADER, TelegramConnector, split_text
from bot.testing.fake_telegram import TOKEN, FakeTelegram

SECRET = "tg-webhook-secret_0123456789"
TYPE = "connectors.telegram.TelegramConnector"  # until the entry point is registered
UPDATES = Path(__file__).parent / "telegram_updates"
NOTHING_LISTENS = "http://127.0.0.1:9"
SANNE = 612345678  # chat id (= user id) of the private chat in most recordings


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_TG_SECRET", SECRET)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def channel_options(api_base_url: str, **overrides: Any) -> Dict[str, Any]:
    return {"type": TYPE, "token_env": "TEST_TG_TOKEN", "secret_env": "TEST_TG_SECRET",
            "api_base_url": api_base_url, "rate_limit_per_second": 1000, **overrides}


def write_config(tmp_path: Path, api_base_url: str, **overrides: Any) -> Path:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/store/webcare.db"},
        "rasa": {"url": NOTHING_LISTENS, "actions_url": NOTHING_LISTENS},
        "worker": {"enabled": False},
        "channels": {"tg": channel_options(api_base_url, **overrides)},
    }))
    return path


async def started(tmp_path: Path, fake: FakeTelegram, **overrides: Any) -> TestClient:
    client = TestClient(TestServer(create_app(load_config(str(write_config(tmp_path, fake.url, **overrides)),
                                                          environ={}))))
    await client.start_server()
    return client


@pytest.fixture
async def client(tmp_path: Path, fake: FakeTelegram) -> AsyncIterator[TestClient]:
    client = await started(tmp_path, fake)
    yield client
    await client.close()


def recorded(name: str) -> Dict[str, Any]:
    return json.loads((UPDATES / f"{name}.json").read_text(encoding="utf-8"))


async def post(client: TestClient, body: Any, secret: Optional[str] = SECRET):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return await client.post("/webhooks/tg", data=data, headers=headers)


def store_of(client: TestClient) -> Store:
    return client.server.app[STORE_KEY]


def messages(client: TestClient) -> List[Message]:
    return store_of(client).transaction(
        lambda s: s.execute(select(Message).order_by(Message.id)).scalars().all())


def count(client: TestClient, model: Any) -> int:
    return store_of(client).transaction(lambda s: s.execute(select(func.count()).select_from(model)).scalar_one())


def nothing_stored(client: TestClient) -> bool:
    return messages(client) == [] and count(client, Conversation) == 0 and count(client, Customer) == 0


# ---------------------------------------------------------------- inbound: recorded updates

REPLAYS = {
    "text_private": ("text", "Waarom is mijn voorschot ineens zo hoog?", "nl", SANNE, "Sanne de Vries",
                     {"telegram_message_id": 1021}),
    "command_start": ("text", "/start", "en", 587654321, "Tom",
                      {"telegram_message_id": 1019, "command": "start"}),
    "edited_message": ("edit", "Waarom is mijn maandelijkse voorschot ineens zo hoog?", "nl", SANNE,
                       "Sanne de Vries", {"telegram_message_id": 1021}),
    "callback_query": ("button", "/tariffs", "nl", SANNE, "Sanne de Vries",
                       {"callback_query_id": "2630364715389302591", "telegram_message_id": 5012}),
    "photo": ("attachment", "Mijn meterstand van vandaag", "nl", SANNE, "Sanne de Vries", {
        "telegram_message_id": 1022, "attachment": "photo",  # the largest size
        "file_id": "AgACAgQAAxkBAAIEBWZbJ2mQ5sm1e0Jc9Vh8cQABHwABAAJ4wDEbqW7YUhAAAQdz1EPiAQADAgADeQADNQQ",
        "file_unique_id": "AQADeMAxG6lu2FJ9"}),
    "sticker": ("attachment", "[sticker 👍]", "en", 587654321, "Tom", {
        "telegram_message_id": 1023, "attachment": "sticker", "emoji": "👍",
        "file_id": "CAACAgIAAxkBAAIEB2ZbJ4T7vWqg3mXfNqA9n3QeXb1DAAJCAQACVp29CiqXDJ0IUyEONQQ",
        "file_unique_id": "AgADQgEAAlad"}),
    "voice": ("attachment", "[voice message]", "nl", SANNE, "Sanne de Vries", {
        "telegram_message_id": 1024, "attachment": "voice", "mime_type": "audio/ogg", "duration": 7.0,
        "file_id": "AwACAgQAAxkBAAIECGZbJ5uXr2Ywp2y7aQABXH3fAAFLnAACjhQAAqlu2FLV3hJ1m7s9mjUE",
        "file_unique_id": "AgADjhQAAqlu2FI"}),
    "document": ("attachment", "[document: annual-statement-2024.pdf]", "en", 587654321, "Tom", {
        "telegram_message_id": 1025, "attachment": "document", "mime_type": "application/pdf",
        "file_name": "annual-statement-2024.pdf",
        "file_id": "BQACAgQAAxkBAAIECWZbJ7nb3W0F5b7a2y2h7iUAAT0ZAAKPFAACqW7YUq0Ew6cAAYd1RjUE",
        "file_unique_id": "AgADjxQAAqlu2FI"}),
    "location": ("attachment", "[location]", "nl", SANNE, "Sanne de Vries", {
        "telegram_message_id": 1026, "attachment": "location", "latitude": 52.370216, "longitude": 4.895168}),
}


@pytest.mark.parametrize("name", list(REPLAYS))
async def test_recorded_update_is_stored_once(client: TestClient, name: str) -> None:
    kind, text, language, chat_id, sender_name, metadata = REPLAYS[name]
    data = recorded(name)
    response = await post(client, data)
    assert response.status == 200
    reply = await response.json()
    assert reply["status"] == "accepted"
    [message] = messages(client)
    assert reply["message_id"] == message.id
    assert message.channel == "tg"
    assert message.channel_message_id == str(data["update_id"])
    assert message.text == text
    assert message.language_hint == language
    assert message.status == "received"
    assert message.payload == {"kind": kind, "metadata": metadata, "truncated": False}
    identity = store_of(client).transaction(lambda s: s.execute(select(ChannelIdentity)).scalar_one())
    assert identity.external_id == str(chat_id)  # the chat id: what send() needs
    assert identity.display_name == sender_name
    rasa_sender = store_of(client).transaction(lambda s: s.execute(select(Conversation.rasa_sender_id)).scalar_one())
    assert rasa_sender == f"tg:{chat_id}"

    again = await post(client, data)  # Telegram redelivers the same update
    assert again.status == 200
    assert await again.json() == {"status": "duplicate", "message_id": message.id}
    assert len(messages(client)) == 1 and count(client, Conversation) == 1


async def test_callback_query_is_answered(client: TestClient, fake: FakeTelegram) -> None:
    response = await post(client, recorded("callback_query"))
    assert response.status == 200
    [answered] = await fake.wait_for("answerCallbackQuery")
    assert answered == {"callback_query_id": "2630364715389302591"}
    assert [m.payload["kind"] for m in messages(client)] == ["button"]


async def test_failed_callback_answer_does_not_fail_the_update(client: TestClient, fake: FakeTelegram) -> None:
    fake.fail("answerCallbackQuery", 400, "Bad Request: query is too old and response timeout expired")
    response = await post(client, recorded("callback_query"))
    assert response.status == 200 and (await response.json())["status"] == "accepted"
    await fake.wait_for("answerCallbackQuery")
    assert len(messages(client)) == 1


@pytest.mark.parametrize("name, reason", [
    ("group_message", "group chat"),
    ("supergroup_message", "supergroup chat"),
    ("channel_post", "channel post"),
    ("my_chat_member", "unsupported update type my_chat_member"),
    ("poll", "unsupported update type poll"),
])
async def test_ignored_update_is_200_and_stores_nothing(client: TestClient, name: str, reason: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connectors.telegram")
    response = await post(client, recorded(name))
    assert response.status == 200
    assert await response.json() == {"status": "ignored", "reason": reason}
    assert nothing_stored(client)
    assert f"update {recorded(name)['update_id']} ignored: {reason}" in caplog.text


async def test_update_type_newer_than_the_library_is_ignored(client: TestClient) -> None:
    response = await post(client, {"update_id": 815022099, "holographic_message": {"text": "from the future"}})
    assert response.status == 200
    assert await response.json() == {"status": "ignored", "reason": "unsupported update type holographic_message"}
    assert nothing_stored(client)


async def test_button_in_a_group_is_ignored_but_answered(client: TestClient, fake: FakeTelegram) -> None:
    data = recorded("callback_query")
    data["callback_query"]["message"]["chat"] = recorded("group_message")["message"]["chat"]
    response = await post(client, data)
    assert await response.json() == {"status": "ignored", "reason": "group chat"}
    await fake.wait_for("answerCallbackQuery")  # the spinner stops anyway
    assert nothing_stored(client)


async def test_100_kb_text_is_accepted_and_truncated_by_intake(client: TestClient) -> None:
    data = recorded("text_private")
    data["message"]["text"] = "Mijn verhaal. " * 7500  # 105 000 characters
    response = await post(client, data)
    assert response.status == 200 and (await response.json())["status"] == "accepted"
    [message] = messages(client)
    assert len(message.text) == 4000
    assert message.payload["truncated"] is True
    assert message.payload["metadata"]["original_length"] == 105_000


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1]],
                         ids=["missing", "empty", "wrong", "longer", "shorter"])
async def test_missing_or_wrong_secret_is_403(client: TestClient, fake: FakeTelegram, secret) -> None:
    response = await post(client, recorded("callback_query"), secret=secret)
    assert response.status == 403
    reply = await response.json()
    assert reply["error"] == "forbidden" and SECRET_HEADER in reply["reason"]
    assert nothing_stored(client)
    await asyncio.sleep(0.05)
    assert fake.calls_to("answerCallbackQuery") == []


def message_update(**fields: Any) -> Dict[str, Any]:
    data = recorded("text_private")
    data["message"].update(fields)
    return data


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    (b"[1, 2, 3]", "must be a JSON object"),
    (b'"update"', "must be a JSON object"),
    (b"{}", "update_id"),
    ({"update_id": "815022001", "message": recorded("text_private")["message"]}, "'update_id' must be an integer"),
    ({"update_id": 815022001, "message": "hello"}, "not a Telegram Update"),
    (message_update(chat={"id": SANNE}), "not a Telegram Update"),
    (message_update(date="yesterday"), "not a Telegram Update"),
    (message_update(text=42), "'text' must be a string"),
    (message_update(chat={"id": "sanne", "type": "private"}), "'chat.id' must be an integer"),
], ids=["malformed", "not_utf8", "array", "string", "empty_object", "string_update_id", "message_string",
        "chat_without_type", "bad_date", "numeric_text", "string_chat_id"])
async def test_malformed_update_is_400_with_a_reason(client: TestClient, body: Any, reason: str) -> None:
    response = await post(client, body)
    assert response.status == 400
    reply = await response.json()
    assert reply["error"] == "bad_request"
    assert reason in reply["reason"]
    assert nothing_stored(client)


# ---------------------------------------------------------------- outbound through the dispatcher


async def customer_wrote(client: TestClient) -> int:
    """Sanne writes first (as in real life); returns her conversation id."""
    response = await post(client, recorded("text_private"))
    assert response.status == 200
    return messages(client)[0].conversation_id


def queue(client: TestClient, key: str, payload: Dict[str, Any], conversation_id: int) -> int:
    return store_of(client).transaction(lambda s: enqueue(
        s, key=key, channel="tg", recipient=str(SANNE), payload=payload, source="bot",
        conversation_id=conversation_id).id)


async def deliver(client: TestClient, dispatcher: Optional[Dispatcher] = None) -> None:
    store = store_of(client)
    dispatcher = dispatcher or Dispatcher(store, client.server.app[CONNECTORS_KEY])
    await dispatcher.deliver_all(await store.run(claim_due, ["tg"], 100))


def outbox(client: TestClient, item_id: int) -> OutboxItem:
    return store_of(client).transaction(lambda s: s.get(OutboxItem, item_id))


def outbound_message(client: TestClient, item_id: int) -> Message:
    return store_of(client).transaction(lambda s: s.get(Message, s.get(OutboxItem, item_id).message_id))


def reachable(client: TestClient) -> bool:
    return store_of(client).transaction(lambda s: s.execute(select(ChannelIdentity.reachable)).scalar_one())


def make_due(client: TestClient) -> None:
    past = utcnow() - dt.timedelta(seconds=1)
    store_of(client).transaction(lambda s: s.execute(
        update(OutboxItem).where(OutboxItem.status == OutboxStatus.pending).values(next_attempt_at=past)))


async def test_text_with_buttons_goes_out_as_an_inline_keyboard(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    long_payload = '/inform{"topic": "' + "x" * 80 + '"}'  # over Telegram's 64 bytes of callback data
    item_id = queue(client, "reply:1:0", {"text": "Waar gaat je vraag over? <b>niet vet</b>", "buttons": [
        {"title": "Tarieven", "payload": "/tariffs"},
        {"title": "Iets anders", "payload": long_payload},
        {"title": "Onze website", "url": "https://example.com/help"},
    ]}, conversation)
    await deliver(client)
    [sent] = fake.calls_to("sendMessage")
    assert sent == {
        "chat_id": SANNE,
        "text": "Waar gaat je vraag over? <b>niet vet</b>",  # plain text: no parse mode
        "reply_markup": {"inline_keyboard": [
            [{"text": "Tarieven", "callback_data": "/tariffs"}],
            [{"text": "Iets anders", "callback_data": "Iets anders"}],
            [{"text": "Onze website", "url": "https://example.com/help"}],
        ]},
    }
    item = outbox(client, item_id)
    assert item.status == OutboxStatus.sent and item.attempts == 1
    assert item.channel_message_id == "5001"
    message = outbound_message(client, item_id)
    assert message.status == "sent" and message.channel_message_id == "5001"


async def test_text_over_4096_characters_goes_out_in_two_messages(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    text = "x" * 5000
    item_id = queue(client, "reply:2:0", {"text": text, "buttons": [{"title": "Ja", "payload": "/affirm"}]},
                    conversation)
    await deliver(client)
    first, second = fake.calls_to("sendMessage")
    assert (len(first["text"]), len(second["text"])) == (4096, 904)
    assert first["text"] + second["text"] == text
    assert "reply_markup" not in first and second["reply_markup"]["inline_keyboard"][0][0]["text"] == "Ja"
    assert {first["chat_id"], second["chat_id"]} == {SANNE}
    assert outbox(client, item_id).channel_message_id == "5002"  # the last message's id


async def test_429_waits_retry_after_without_counting_an_attempt(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    item_id = queue(client, "reply:3:0", {"text": "Je voorschot is aangepast."}, conversation)
    fake.flood(retry_after=3)
    dispatcher = Dispatcher(store_of(client), client.server.app[CONNECTORS_KEY])
    await deliver(client, dispatcher)
    waiting = outbox(client, item_id)
    assert waiting.status == OutboxStatus.pending
    assert waiting.attempts == 0 and waiting.lease_until is None
    assert 2.0 <= (waiting.next_attempt_at - utcnow()).total_seconds() <= 3.5
    assert "RetryAfter" in waiting.last_error
    assert dispatcher.buckets["tg"].tokens == 0.0  # the channel is paused too
    assert outbound_message(client, item_id).status == "queued"
    assert await store_of(client).run(claim_due, ["tg"], 100) == []  # not due yet


async def test_retry_after_429_on_the_second_part_sends_only_the_rest(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    text = "Eerste alinea. " * 200 + "\n\n" + "Tweede alinea. " * 100  # 4502 characters
    item_id = queue(client, "reply:4:0", {"text": text}, conversation)
    fake.succeed("sendMessage")
    fake.flood(retry_after=3)
    await deliver(client)
    assert outbox(client, item_id).status == OutboxStatus.pending
    make_due(client)
    await deliver(client)  # a fresh dispatcher: no 3 s pause in this test
    first, flooded, second = fake.calls_to("sendMessage")
    assert flooded == second
    assert first["text"] == ("Eerste alinea. " * 200).strip()  # cut at the paragraph
    assert second["text"] == ("Tweede alinea. " * 100).strip()
    item = outbox(client, item_id)
    assert item.status == OutboxStatus.sent and item.attempts == 1 and item.channel_message_id == "5002"


async def test_blocked_by_the_user_fails_and_marks_unreachable(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    item_id = queue(client, "reply:5:0", {"text": "Hallo?"}, conversation)
    later_id = queue(client, "reply:5:1", {"text": "Nog een bericht"}, conversation)
    fake.blocked()
    await deliver(client)
    failed = outbox(client, item_id)
    assert failed.status == OutboxStatus.failed
    assert "bot was blocked by the user" in failed.last_error
    assert outbound_message(client, item_id).status == "failed"
    assert reachable(client) is False
    assert outbox(client, later_id).status == OutboxStatus.failed  # nothing more reaches her
    assert len(fake.calls_to("sendMessage")) == 1


async def test_bad_request_fails_permanently(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    item_id = queue(client, "reply:6:0", {"text": "Hallo"}, conversation)
    fake.fail("sendMessage", 400, "Bad Request: chat not found")
    await deliver(client)
    item = outbox(client, item_id)
    assert item.status == OutboxStatus.failed and item.attempts == 1
    assert "chat not found" in item.last_error.lower()
    assert reachable(client) is True


async def test_network_error_is_retried_with_backoff(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    item_id = queue(client, "reply:7:0", {"text": "Hallo"}, conversation)
    fake.fail("sendMessage", 502, "Bad Gateway")
    await deliver(client)
    item = outbox(client, item_id)
    assert item.status == OutboxStatus.pending and item.attempts == 1
    assert (item.next_attempt_at - utcnow()).total_seconds() > 1
    assert "NetworkError" in item.last_error
    make_due(client)
    await deliver(client)
    assert outbox(client, item_id).status == OutboxStatus.sent


async def test_unreachable_api_is_transient_and_the_token_never_leaks(
        tmp_path: Path, fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = await started(tmp_path, fake)
    try:
        conversation = await customer_wrote(client)
        item_id = queue(client, "reply:8:0", {"text": "Hallo"}, conversation)
        await fake.server.close()  # Telegram is down
        await deliver(client)
        item = outbox(client, item_id)
        assert item.status == OutboxStatus.pending and item.attempts == 1
        assert TOKEN not in (item.last_error or "")
    finally:
        await client.close()
    assert "<token>/getMe" in caplog.text  # httpx logs each request URL at INFO, redacted
    assert TOKEN not in caplog.text


async def test_image_then_text(client: TestClient, fake: FakeTelegram) -> None:
    conversation = await customer_wrote(client)
    item_id = queue(client, "reply:9:0", {"text": "Zo lees je je meter af.",
                                          "image": "https://example.com/meter.png"}, conversation)
    await deliver(client)
    assert fake.calls_to("sendPhoto") == [{"chat_id": SANNE, "photo": "https://example.com/meter.png"}]
    assert [c["text"] for c in fake.calls_to("sendMessage")] == ["Zo lees je je meter af."]
    assert outbox(client, item_id).status == OutboxStatus.sent


@pytest.mark.parametrize("payload, reason", [
    ({"text": ""}, "nothing to send"),
    ({"text": "  \n "}, "nothing to send"),
    ({"buttons": [{"title": "Ja", "payload": "/affirm"}]}, "buttons need a text"),
])
async def test_unsendable_payload_fails_permanently_without_a_call(
        client: TestClient, fake: FakeTelegram, payload: Dict[str, Any], reason: str) -> None:
    conversation = await customer_wrote(client)
    item_id = queue(client, "reply:10:0", payload, conversation)
    await deliver(client)
    item = outbox(client, item_id)
    assert item.status == OutboxStatus.failed and reason in item.last_error
    assert fake.calls_to("sendMessage") == []


# ---------------------------------------------------------------- long polling


async def test_long_polling_stores_every_update(tmp_path: Path, fake: FakeTelegram,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_TG_SECRET")  # not needed without a webhook
    await fake.push_updates(recorded("text_private"), recorded("callback_query"))
    client = await started(tmp_path, fake, mode="polling", poll_timeout_seconds=1)
    try:
        for _ in range(100):
            if len(messages(client)) == 2:
                break
            await asyncio.sleep(0.05)
        assert [(m.channel_message_id, m.payload["kind"], m.text) for m in messages(client)] == [
            ("815022001", "text", "Waarom is mijn voorschot ineens zo hoog?"),
            ("815022004", "button", "/tariffs"),
        ]
        await fake.wait_for("answerCallbackQuery")
        polls = await fake.wait_for("getUpdates", 2)
        assert polls[0]["allowed_updates"] == ["message", "edited_message", "callback_query"]
        assert polls[1]["offset"] == 815022005  # both confirmed
        await fake.push_updates(recorded("photo"))  # arrives while polling
        for _ in range(100):
            if len(messages(client)) == 3:
                break
            await asyncio.sleep(0.05)
        assert messages(client)[-1].payload["metadata"]["attachment"] == "photo"
        assert (await client.post("/webhooks/tg", json={})).status == 404  # no webhook in polling mode
    finally:
        await client.close()
    assert fake.calls_to("getMe")


# ---------------------------------------------------------------- command line


async def run_cli(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, list(argv))  # the CLI runs its own event loop


async def test_set_webhook_command(tmp_path: Path, fake: FakeTelegram, capsys: pytest.CaptureFixture) -> None:
    config = str(write_config(tmp_path, fake.url))
    assert await run_cli("--config", config, "telegram", "set-webhook", "--channel", "tg",
                         "--url", "https://care.example.com/") == 0
    [call] = fake.calls_to("setWebhook")
    assert call["url"] == "https://care.example.com/webhooks/tg"
    assert call["secret_token"] == SECRET
    assert call["allowed_updates"] == ["message", "edited_message", "callback_query"]
    assert call.get("drop_pending_updates") in (None, False)
    output = capsys.readouterr()
    assert "webhook set to https://care.example.com/webhooks/tg" in output.out
    assert TOKEN not in output.out + output.err and SECRET not in output.out + output.err


async def test_delete_webhook_command(tmp_path: Path, fake: FakeTelegram) -> None:
    config = str(write_config(tmp_path, fake.url))
    assert await run_cli("--config", config, "telegram", "delete-webhook", "--channel", "tg",
                         "--drop-pending-updates") == 0
    assert fake.calls_to("deleteWebhook") == [{"drop_pending_updates": True}]


@pytest.mark.parametrize("args, message", [
    (["set-webhook", "--channel", "tg", "--url", "http://care.example.com"], "public https:// URL"),
    (["set-webhook", "--channel", "nope", "--url", "https://care.example.com"], "no channel 'nope'"),
], ids=["http_url", "unknown_channel"])
async def test_set_webhook_command_rejects_bad_input(tmp_path: Path, fake: FakeTelegram, capsys, args, message) -> None:
    config = str(write_config(tmp_path, fake.url))
    assert await run_cli("--config", config, "telegram", *args) == 2
    assert message in capsys.readouterr().err
    assert fake.calls_to("setWebhook") == []


# ---------------------------------------------------------------- configuration


def build(**overrides: Any) -> TelegramConnector:
    options = {k: v for k, v in {**channel_options(NOTHING_LISTENS), **overrides}.items() if k != "type"}
    return TelegramConnector.from_config("tg", options)


def test_dotted_path_and_capabilities() -> None:
    assert connector_class(TYPE) is TelegramConnector
    connector = build()
    assert connector.capabilities.max_text_length == 4096 and connector.capabilities.buttons is True
    assert connector.capabilities.rate_limit_per_second == 1000.0
    options = {k: v for k, v in channel_options(NOTHING_LISTENS).items() if k not in ("type", "rate_limit_per_second")}
    assert TelegramConnector.from_config("tg", options).capabilities.rate_limit_per_second == 25.0


@pytest.mark.parametrize("unset, overrides, message", [
    ("TEST_TG_TOKEN", {}, r"bot token .* \$TEST_TG_TOKEN"),
    ("TEST_TG_SECRET", {}, r"secret token in \$TEST_TG_SECRET"),
    ("TEST_TG_TOKEN", {"token_env": None}, r"\$WEBCARE_TELEGRAM_TOKEN"),
    ("TEST_TG_SECRET", {"secret_env": None}, r"\$WEBCARE_TELEGRAM_SECRET"),
    (None, {"mode": "carrier-pigeon"}, "must be 'webhook' or 'polling'"),
    (None, {"api_base_url": "api.telegram.org"}, "must be an http"),
], ids=["token", "secret", "default_token_variable", "default_secret_variable", "mode", "api_base_url"])
def test_misconfiguration_is_a_connector_error(monkeypatch: pytest.MonkeyPatch, unset, overrides, message) -> None:
    if unset:
        monkeypatch.delenv(unset)
    monkeypatch.delenv("WEBCARE_TELEGRAM_TOKEN", raising=False)
    monkeypatch.delenv("WEBCARE_TELEGRAM_SECRET", raising=False)
    options = {k: v for k, v in {**channel_options(NOTHING_LISTENS), **overrides}.items() if v is not None}
    with pytest.raises(ConnectorError, match=message):
        TelegramConnector.from_config("tg", {k: v for k, v in options.items() if k != "type"})


def test_secret_must_be_what_telegram_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TG_SECRET", "has spaces and ümlauts")
    with pytest.raises(ConnectorError, match="A-Z, a-z, 0-9"):
        build()


def test_missing_secret_stops_the_service_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_TG_SECRET")
    with pytest.raises(ConnectorError, match="TEST_TG_SECRET"):
        create_app(load_config(str(write_config(tmp_path, NOTHING_LISTENS)), environ={}))


async def test_rejected_token_is_a_connector_error_at_start(fake: FakeTelegram, monkeypatch) -> None:
    monkeypatch.setenv("TEST_TG_TOKEN", "7012345678:not-the-right-token")
    connector = build(api_base_url=fake.url)
    with pytest.raises(ConnectorError, match=r"rejected the bot token in \$TEST_TG_TOKEN") as caught:
        await connector.start()
    assert "not-the-right-token" not in str(caught.value)
    await connector.stop()


@pytest.mark.parametrize("text, parts", [
    ("short", ["short"]),
    ("", []),
    ("a" * 4096, ["a" * 4096]),
    ("😀" * 2049, ["😀" * 2048, "😀"]),  # Telegram counts UTF-16 code units
    ("word " * 1000, [("word " * 819).strip(), ("word " * 181).strip()]),
], ids=["short", "empty", "exactly_4096", "astral", "words"])
def test_split_text(text: str, parts: List[str]) -> None:
    assert split_text(text) == parts
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in split_text(text))
