"""Fuzzing every connector's inbound endpoint in the real app (hypothesis, deterministic).

Arbitrary bytes, arbitrary JSON (correctly signed / with the right secret, so the parsers
themselves are exercised) and near-valid payloads (wrong types, missing fields, huge strings,
lone surrogates, NULs, nested junk, Telegram update shapes with random fields) are posted to
``bot.web.app.create_app`` with a SQLite store. Each answer must be 2xx or 4xx (never 5xx), a 4xx
carries a reason, and the store holds exactly the accepted message or nothing new.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import pytest
import yaml
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings, strategies as st
from sqlalchemy import func, select

from bot.web.app import create_app
from bot.web.keys import STORE_KEY
from bot.config import load_config
from bot.store.models import ChannelIdentity, Conversation, Customer, Message
from connectors.signing import SIGNATURE_HEADER, sign
from connectors.telegram import SECRET_HEADER
from bot.testing.fake_telegram import TOKEN, FakeTelegram

HOOK_SECRET = "fuzz-hook-secret"
TG_SECRET = "fuzz-tg-secret_0123456789"
NOTHING_LISTENS = "http://127.0.0.1:9"
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
MODELS = (Message, Conversation, Customer, ChannelIdentity)


# ------------------------------------------------------------------ strategies

NASTY_STRINGS = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e\u200b", "🙂" * 50, "é" * 3000, "x" * 5000,
    "null", "[]", "{}", "0", "-1", "1e309", "NaN", "\n\t", "<script>alert(1)</script>", "' OR 1=1 --",
    "\U0010ffff", "ｆｕｌｌ", "nl", "en-GB", "zz-ZZ-xx", "a" * 201,
])
TEXT = st.one_of(st.text(max_size=60), st.text(st.characters(blacklist_categories=()), max_size=30),
                 NASTY_STRINGS)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2 ** 63, max_value=2 ** 80),
                   st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
MAYBE = st.one_of(JSON, SCALAR)


def _dumps(value: Any) -> bytes:
    """JSON as a client would send it (NaN/Infinity and lone surrogates included)."""
    return json.dumps(value).encode()


def _optional(fields: Dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A dict where every field may be missing or replaced by junk, plus random extra fields."""
    keyed = {k: st.one_of(v, MAYBE) for k, v in fields.items()}
    return st.tuples(st.fixed_dictionaries({}, optional=keyed),
                     st.dictionaries(TEXT, MAYBE, max_size=2)).map(lambda t: {**t[1], **t[0]})


WEBHOOK_BODY = _optional({
    "message_id": st.one_of(st.text(min_size=1, max_size=20), st.integers(), NASTY_STRINGS),
    "sender": _optional({"id": st.one_of(st.text(min_size=1, max_size=20), st.integers(), NASTY_STRINGS),
                         "name": TEXT, "language": TEXT}),
    "text": TEXT,
    "kind": st.sampled_from(["text", "button", "other"]),
    "metadata": st.dictionaries(TEXT, JSON, max_size=3),
})

TG_USER = _optional({"id": st.integers(), "is_bot": st.booleans(), "first_name": TEXT,
                     "last_name": TEXT, "username": TEXT, "language_code": TEXT})
TG_CHAT = _optional({"id": st.one_of(st.integers(), st.integers(min_value=2 ** 62)),
                     "type": st.sampled_from(["private", "group", "supergroup", "channel", "weird"]),
                     "first_name": TEXT})
TG_MESSAGE = _optional({
    "message_id": st.integers(), "date": st.integers(min_value=0, max_value=2 ** 33), "chat": TG_CHAT,
    "from": TG_USER, "text": TEXT, "caption": TEXT,
    "entities": st.lists(_optional({"type": st.sampled_from(["bot_command", "mention", "x"]),
                                    "offset": st.integers(-5, 50), "length": st.integers(-5, 50)}), max_size=2),
    "photo": st.lists(_optional({"file_id": TEXT, "file_unique_id": TEXT, "width": st.integers(),
                                 "height": st.integers()}), max_size=2),
    "location": _optional({"latitude": st.floats(), "longitude": st.floats()}),
    "voice": _optional({"file_id": TEXT, "file_unique_id": TEXT, "duration": MAYBE}),
    "sticker": _optional({"file_id": TEXT, "emoji": TEXT}),
    "document": _optional({"file_id": TEXT, "file_unique_id": TEXT, "file_name": TEXT}),
})
TG_UPDATE = _optional({
    "update_id": st.one_of(st.integers(), st.integers(min_value=0, max_value=10 ** 6)),
    "message": TG_MESSAGE,
    "edited_message": TG_MESSAGE,
    "callback_query": _optional({"id": TEXT, "from": TG_USER, "data": TEXT, "chat_instance": TEXT,
                                 "message": TG_MESSAGE}),
    "channel_post": TG_MESSAGE,
    "my_chat_member": JSON,
})

WEBCHAT_BODY = _optional({
    "client_message_id": st.one_of(st.uuids().map(str), TEXT),
    "text": TEXT,
    "language": st.sampled_from(["nl", "en", "de", ""]),
    "payload": TEXT,
})

HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)


# ------------------------------------------------------------------ harness


class Harness:
    """One real app (SQLite store in tmp) on loopback, driven from a synchronous hypothesis test."""

    def __init__(self, tmp_path: Path, channels: Dict[str, Any], cookies: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        self.tmp_path = tmp_path
        self.channels = channels
        self.cookies = cookies
        self.fake: Optional[FakeTelegram] = None
        self.client: Optional[TestClient] = None

    def start(self, with_telegram: bool = False) -> "Harness":
        if with_telegram:
            self.fake = FakeTelegram()
            self.loop.run_until_complete(self.fake.__aenter__())
            for options in self.channels.values():
                if options.get("type") == "connectors.telegram.TelegramConnector":
                    options["api_base_url"] = self.fake.url
        path = self.tmp_path / "webcare.yml"
        path.write_text(yaml.safe_dump({
            "database": {"url": f"sqlite:///{self.tmp_path}/store/webcare.db"},
            "rasa": {"url": NOTHING_LISTENS, "actions_url": NOTHING_LISTENS},
            "worker": {"enabled": False},
            "channels": self.channels,
        }))
        config = load_config(str(path), environ={})

        async def begin() -> TestClient:
            jar = CookieJar(unsafe=True) if self.cookies else None
            client = TestClient(TestServer(create_app(config)), **({"cookie_jar": jar} if jar else {}))
            await client.start_server()
            return client
        self.client = self.loop.run_until_complete(begin())
        return self

    def close(self) -> None:
        if self.client is not None:
            self.loop.run_until_complete(self.client.close())
        if self.fake is not None:
            self.loop.run_until_complete(self.fake.__aexit__(None, None, None))
        self.loop.close()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(self.loop.create_task(coroutine))

    def counts(self) -> Tuple[int, ...]:
        store = self.client.server.app[STORE_KEY]  # type: ignore[union-attr]
        return store.transaction(lambda s: tuple(
            s.execute(select(func.count()).select_from(m)).scalar_one() for m in MODELS))

    def post(self, path: str, body: bytes, headers: Dict[str, str]) -> Tuple[int, Any]:
        async def go() -> Tuple[int, Any]:
            response = await self.client.post(path, data=body, headers=headers)  # type: ignore[union-attr]
            raw = await response.read()
            try:
                data = json.loads(raw)
            except ValueError:
                data = raw.decode("utf-8", "replace")
            return response.status, data
        return self.run(go())

    def check(self, path: str, body: bytes, headers: Dict[str, str],
              accepted: Callable[[Any], bool]) -> Tuple[int, Any]:
        before = self.counts()
        status, data = self.post(path, body, headers)
        after = self.counts()
        assert status < 500, (status, data, body[:300])
        assert 200 <= status < 500, (status, data)
        if status >= 400:
            assert isinstance(data, dict) and isinstance(data.get("reason"), str) and data["reason"], data
            assert after == before, (status, data, before, after)
        elif accepted(data):
            messages, conversations, customers, identities = (a - b for a, b in zip(after, before))
            assert messages == 1 and conversations in (0, 1) and customers == identities and customers in (0, 1), \
                (before, after, data)
        else:  # duplicate or ignored: nothing new
            assert after == before, (status, data, before, after)
        return status, data


def _accepted(data: Any) -> bool:
    return isinstance(data, dict) and data.get("status") == "accepted"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)
    monkeypatch.setenv("FUZZ_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("FUZZ_TG_TOKEN", TOKEN)
    monkeypatch.setenv("FUZZ_TG_SECRET", TG_SECRET)


@pytest.fixture
def hook(tmp_path: Path):
    harness = Harness(tmp_path, {"hook": {"type": "webhook", "secret_env": "FUZZ_HOOK_SECRET",
                                          "callback_url": NOTHING_LISTENS}}).start()
    yield harness
    harness.close()


@pytest.fixture
def telegram(tmp_path: Path):
    harness = Harness(tmp_path, {"tg": {"type": "connectors.telegram.TelegramConnector",
                                        "token_env": "FUZZ_TG_TOKEN", "secret_env": "FUZZ_TG_SECRET",
                                        "rate_limit_per_second": 1000}}).start(with_telegram=True)
    yield harness
    harness.close()


@pytest.fixture
def webchat(tmp_path: Path):
    harness = Harness(tmp_path, {"webchat": {"type": "connectors.webchat.WebChatConnector",
                                             "rate_limit_per_minute": 100000, "poll_interval_seconds": 0.1}},
                      cookies=True).start()
    async def open_page() -> None:
        response = await harness.client.get("/chat")  # type: ignore[union-attr]
        assert response.status == 200
    harness.run(open_page())
    yield harness
    harness.close()


def _signed(body: bytes) -> Dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(HOOK_SECRET, body)}


# ------------------------------------------------------------------ signed webhook

DEEP = b"[" * 50000 + b"]" * 50000
DEEP_OBJECT = b'{"message_id": "d", "sender": {"id": "1"}, "text": "t", "metadata": ' + \
    b'{"a":' * 20000 + b"1" + b"}" * 20000 + b"}"


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), WEBHOOK_BODY.map(_dumps), JSON.map(_dumps)))
@example(body=DEEP)
@example(body=DEEP_OBJECT)
@example(body=_dumps({"message_id": "s1", "sender": {"id": "1"}, "text": "lone \ud800 surrogate"}))
@example(body=_dumps({"message_id": "s2", "sender": {"id": "\udfff"}, "text": "x"}))
@example(body=_dumps({"message_id": "s3", "sender": {"id": "1", "name": "\ud83d"}, "text": "x"}))
@example(body=_dumps({"message_id": "s4", "sender": {"id": "1"}, "text": "x", "metadata": {"\ud800": 1}}))
@example(body=_dumps({"message_id": "s5", "sender": {"id": "1"}, "text": "x", "metadata": {"n": float("nan")}}))
@example(body=_dumps({"message_id": "ok-1", "sender": {"id": "31612345678", "name": "Ann"}, "text": "hallo"}))
def test_signed_webhook_never_fails_or_half_writes(hook: Harness, body: bytes) -> None:
    hook.check("/webhooks/hook", body, _signed(body), _accepted)


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), WEBHOOK_BODY.map(_dumps)),
       signature=st.one_of(st.none(), HEADER_VALUE, st.just("sha256="), HEADER_VALUE.map(lambda v: "sha256=" + v)),
       content_type=st.one_of(st.none(), HEADER_VALUE))
def test_unsigned_or_badly_signed_webhooks_store_nothing(hook: Harness, body: bytes, signature: Optional[str],
                                                          content_type: Optional[str]) -> None:
    headers = {}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    if content_type is not None:
        headers["Content-Type"] = content_type
    status, _ = hook.check("/webhooks/hook", body, headers, _accepted)
    if signature is None or signature != sign(HOOK_SECRET, body):
        assert status == 401


# ------------------------------------------------------------------ Telegram


@FUZZ
@given(body=st.one_of(TG_UPDATE.map(_dumps), JSON.map(_dumps), st.binary(max_size=200)))
@example(body=DEEP)
@example(body=_dumps({"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "lone \ud800",
                                                  "chat": {"id": 5, "type": "private"}}}))
@example(body=_dumps({"update_id": 2, "message": {"message_id": 1, "date": 0, "text": "nul \x00 byte",
                                                  "chat": {"id": 5, "type": "private"},
                                                  "from": {"id": 5, "is_bot": False, "first_name": "\udc00"}}}))
@example(body=_dumps({"update_id": 3, "message": {"message_id": 1, "date": 0, "text": "hoi",
                                                  "chat": {"id": 5, "type": "private"},
                                                  "from": {"id": 5, "is_bot": False, "first_name": "A",
                                                           "language_code": "\ud800"}}}))
@example(body=_dumps({"update_id": 4, "callback_query": {"id": "q", "from": {"id": 5, "is_bot": False,
                                                                            "first_name": "A"},
                                                         "chat_instance": "c", "data": "\ud800"}}))
@example(body=_dumps({"update_id": 2 ** 70, "message": {"message_id": 1, "date": 0, "text": "big",
                                                        "chat": {"id": 5, "type": "private"}}}))
@example(body=_dumps({"update_id": 5, "message": {"message_id": 1, "date": 2 ** 40, "text": "far future",
                                                  "chat": {"id": 5, "type": "private"}}}))
def test_telegram_webhook_never_fails_or_half_writes(telegram: Harness, body: bytes) -> None:
    telegram.check("/webhooks/tg", body, {"Content-Type": "application/json", SECRET_HEADER: TG_SECRET},
                   _accepted)


@FUZZ
@given(body=TG_UPDATE.map(_dumps), secret=st.one_of(st.none(), HEADER_VALUE))
def test_telegram_without_the_secret_stores_nothing(telegram: Harness, body: bytes, secret: Optional[str]) -> None:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    status, _ = telegram.check("/webhooks/tg", body, headers, _accepted)
    assert status == 403 or secret == TG_SECRET


# ------------------------------------------------------------------ web chat


@FUZZ
@given(body=st.one_of(WEBCHAT_BODY.map(_dumps), JSON.map(_dumps), st.binary(max_size=200)),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                     "multipart/form-data", "application/x-www-form-urlencoded"]),
       same_origin=st.booleans())
@example(body=DEEP, content_type="application/json", same_origin=True)
@example(body=_dumps({"client_message_id": str(uuid.UUID(int=1)), "text": "lone \ud800"}),
         content_type="application/json", same_origin=True)
@example(body=_dumps({"client_message_id": str(uuid.UUID(int=2)), "text": "ok", "payload": "\x00/x"}),
         content_type="application/json", same_origin=True)
@example(body=_dumps({"client_message_id": str(uuid.UUID(int=3)), "text": "hallo"}),
         content_type="application/json", same_origin=True)
def test_webchat_post_never_fails_or_half_writes(webchat: Harness, body: bytes, content_type: str,
                                                 same_origin: bool) -> None:
    origin = str(webchat.client.make_url("")).rstrip("/") if same_origin else "https://evil.example"  # type: ignore
    webchat.check("/chat/api/messages", body, {"Content-Type": content_type, "Origin": origin}, _accepted)


@FUZZ
@given(body=WEBCHAT_BODY.map(_dumps), cookie=st.one_of(st.none(), HEADER_VALUE))
def test_webchat_without_a_session_stores_nothing(tmp_path: Path, body: bytes, cookie: Optional[str],
                                                  webchat_anonymous: Harness) -> None:
    headers = {"Content-Type": "application/json"}
    if cookie is not None:
        headers["Cookie"] = f"webcare_chat={cookie}"
    status, _ = webchat_anonymous.check("/chat/api/messages", body, headers, _accepted)
    assert status >= 400


@pytest.fixture
def webchat_anonymous(tmp_path: Path):
    harness = Harness(tmp_path, {"webchat": {"type": "connectors.webchat.WebChatConnector",
                                             "poll_interval_seconds": 0.1}}).start()
    yield harness
    harness.close()


# ------------------------------------------------------------------ regressions (found by the fuzzing)


def test_regression_lone_surrogates_and_deep_json_get_400_not_500(hook: Harness) -> None:
    for body in (_dumps({"message_id": "r1", "sender": {"id": "1"}, "text": "x \ud800"}),
                 _dumps({"message_id": "r2", "sender": {"id": "\udfff"}, "text": "x"}),
                 _dumps({"message_id": "r3", "sender": {"id": "1"}, "text": "x", "metadata": {"k": ["\ud83d"]}}),
                 _dumps({"message_id": "r4", "sender": {"id": "1"}, "text": "x", "metadata": {"n": float("nan")}}),
                 DEEP, DEEP_OBJECT):
        status, data = hook.check("/webhooks/hook", body, _signed(body), _accepted)
        assert status == 400 and any(w in data["reason"] for w in ("Unicode", "deeply", "finite")), data


def test_regression_nul_characters_are_dropped_from_the_text(hook: Harness) -> None:
    body = _dumps({"message_id": "n1", "sender": {"id": "1", "name": "A\x00nn"}, "text": "ha\x00llo"})
    status, data = hook.check("/webhooks/hook", body, _signed(body), _accepted)
    assert status == 200 and data["status"] == "accepted"
    store = hook.client.server.app[STORE_KEY]  # type: ignore[union-attr]
    assert store.transaction(lambda s: s.execute(select(Message.text)).scalar_one()) == "hallo"
    for junk in ({"message_id": "n2", "sender": {"id": "1"}, "text": "\x00"},
                 {"message_id": "n\x003", "sender": {"id": "1"}, "text": "x"}):
        status, data = hook.check("/webhooks/hook", _dumps(junk), _signed(_dumps(junk)), _accepted)
        assert status == 400 and data["reason"]


# ------------------------------------------------------------------ Meta (WhatsApp, Messenger and comments)

META_ENV = {"WEBCARE_WHATSAPP_VERIFY_TOKEN": "fuzz-verify", "WEBCARE_WHATSAPP_APP_SECRET": "fuzz-app-secret",
            "WEBCARE_WHATSAPP_ACCESS_TOKEN": "fuzz-token", "WEBCARE_MESSENGER_VERIFY_TOKEN": "fuzz-verify",
            "WEBCARE_MESSENGER_APP_SECRET": "fuzz-app-secret", "WEBCARE_MESSENGER_ACCESS_TOKEN": "fuzz-token"}
META_ID = st.one_of(st.text(min_size=1, max_size=20), st.integers(), NASTY_STRINGS)
WA_MESSAGE = _optional({
    "from": META_ID, "id": META_ID, "timestamp": st.one_of(st.text(max_size=12), st.integers()),
    "type": st.sampled_from(["text", "interactive", "button", "image", "location", "reaction", "unsupported", "x"]),
    "text": _optional({"body": TEXT}),
    "interactive": _optional({"type": st.sampled_from(["button_reply", "list_reply", "x"]),
                              "button_reply": _optional({"id": TEXT, "title": TEXT}),
                              "list_reply": _optional({"id": TEXT, "title": TEXT, "description": TEXT})}),
    "image": _optional({"id": META_ID, "mime_type": TEXT, "caption": TEXT}),
    "location": _optional({"latitude": st.floats(), "longitude": st.floats()}),
})
WA_BODY = _optional({
    "object": st.just("whatsapp_business_account"),
    "entry": st.lists(_optional({"id": META_ID, "changes": st.lists(_optional({
        "field": st.sampled_from(["messages", "account_update", "x"]),
        "value": _optional({
            "messaging_product": st.just("whatsapp"),
            "metadata": _optional({"phone_number_id": st.sampled_from(["109283746556473", "1"]),
                                   "display_phone_number": TEXT}),
            "contacts": st.lists(_optional({"wa_id": META_ID, "profile": _optional({"name": TEXT})}), max_size=2),
            "messages": st.lists(WA_MESSAGE, max_size=2),
            "statuses": st.lists(_optional({"id": META_ID, "status": st.sampled_from(["sent", "read", "failed", "x"]),
                                            "timestamp": TEXT, "recipient_id": META_ID}), max_size=2),
        })}), max_size=2)}), max_size=2),
})
PAGE_BODY = _optional({
    "object": st.just("page"),
    "entry": st.lists(_optional({"id": META_ID, "time": st.integers(), "messaging": st.lists(_optional({
        "sender": _optional({"id": META_ID}), "recipient": _optional({"id": META_ID}),
        "timestamp": st.one_of(st.integers(), st.floats(), TEXT),
        "message": _optional({"mid": META_ID, "text": TEXT, "is_echo": st.booleans(),
                              "quick_reply": _optional({"payload": TEXT}),
                              "attachments": st.lists(_optional({"type": TEXT, "payload": _optional({"url": TEXT})}),
                                                      max_size=2)}),
        "postback": _optional({"mid": META_ID, "title": TEXT, "payload": TEXT}),
        "delivery": _optional({"mids": st.lists(META_ID, max_size=2), "watermark": st.integers()}),
        "read": _optional({"watermark": st.one_of(st.integers(), st.floats(), TEXT)}),
    }), max_size=2), "changes": st.lists(_optional({
        "field": st.sampled_from(["feed", "ratings"]),
        "value": _optional({"item": st.sampled_from(["comment", "post", "reaction"]),
                            "verb": st.sampled_from(["add", "edited", "remove", "hide"]),
                            "comment_id": META_ID, "post_id": META_ID, "parent_id": META_ID,
                            "from": _optional({"id": META_ID, "name": TEXT}), "message": TEXT,
                            "created_time": st.one_of(st.integers(), st.floats(), TEXT)}),
    }), max_size=2)}), max_size=2),
})


@pytest.fixture
def meta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in META_ENV.items():
        monkeypatch.setenv(name, value)
    harness = Harness(tmp_path, {
        "wa": {"type": "connectors.meta.whatsapp.WhatsAppConnector", "phone_number_id": "109283746556473",
               "graph_base_url": NOTHING_LISTENS},
        "fb": {"type": "connectors.meta.messenger.MessengerConnector", "page_id": "104857600123456",
               "graph_base_url": NOTHING_LISTENS}}).start()
    yield harness
    harness.close()


def meta_check(harness: Harness, path: str, body: bytes, headers: Dict[str, str]) -> Tuple[int, Any]:
    """A Meta webhook: never 5xx; a 4xx has a reason and changes nothing; a 200 stores exactly
    the messages it says it accepted (a batch may hold several)."""
    before = harness.counts()
    status, data = harness.post(path, body, headers)
    after = harness.counts()
    assert 200 <= status < 500, (status, data, body[:300])
    if status >= 400:
        assert isinstance(data, dict) and isinstance(data.get("reason"), str) and data["reason"], data
        assert after == before, (status, data)
        return status, data
    messages, conversations, customers, identities = (a - b for a, b in zip(after, before))
    accepted = data.get("accepted", 0) if isinstance(data, dict) else 0
    assert messages == accepted and 0 <= conversations <= accepted and customers <= identities <= accepted, \
        (before, after, data)
    return status, data


def _meta_signed(body: bytes) -> Dict[str, str]:
    from bot.testing.fake_graph import signed_headers
    return signed_headers(body, META_ENV["WEBCARE_WHATSAPP_APP_SECRET"])


@FUZZ
@given(body=st.one_of(WA_BODY.map(_dumps), JSON.map(_dumps), st.binary(max_size=200)))
@example(body=DEEP)
@example(body=_dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
    "metadata": {"phone_number_id": "109283746556473"}, "contacts": [{"wa_id": "316"}],
    "messages": [{"from": "316", "id": "wamid.x", "timestamp": "1", "type": "text", "text": {"body": "\ud800"}},
                 {"from": "316", "id": "wamid.y", "timestamp": "1", "type": "text", "text": {"body": "ok"}}]}}]}]}))
def test_whatsapp_webhook_never_fails_or_half_writes(meta: Harness, body: bytes) -> None:
    meta_check(meta, "/webhooks/wa", body, _meta_signed(body))


@FUZZ
@given(body=st.one_of(PAGE_BODY.map(_dumps), JSON.map(_dumps)))
def test_page_webhook_never_fails_or_half_writes(meta: Harness, body: bytes) -> None:
    meta_check(meta, "/webhooks/fb", body, _meta_signed(body))


@FUZZ
@given(body=st.one_of(PAGE_BODY.map(_dumps), WA_BODY.map(_dumps)),
       signature=st.one_of(st.none(), HEADER_VALUE, HEADER_VALUE.map(lambda v: "sha256=" + v)))
def test_meta_webhooks_without_the_signature_store_nothing(meta: Harness, body: bytes,
                                                           signature: Optional[str]) -> None:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    for path in ("/webhooks/wa", "/webhooks/fb"):
        status, _ = meta_check(meta, path, body, headers)
        assert status == (401 if not signature else 403)
