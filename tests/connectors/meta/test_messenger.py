"""Messenger and the Page's comments, and Instagram: recorded payloads through the real webhook,
outbound through the real dispatcher to the fake Graph API."""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict

import pytest
from sqlalchemy import select

from bot.cases import public_threads
from bot.cases.escalation import default_settings
from bot.accounts import hash_password
from bot.store.models import Conversation, OutboxStatus, Purpose, Role, User, Visibility
from connectors.base import ConnectorError
from tests.connectors.meta.conftest import Channel, MetaApp, build_app, recorded

PAGE = "104857600123456"
SANNE = "7412589630147258"  # PSID
LOTTE = "2584716390258471"  # a commenter under the Page's post
POST = "104857600123456_122187654321098765"
COMMENT = "122187654321098765_1098765432109876"
IG_ACCOUNT = "17841400123456789"
IG_SANNE = "1143256789012345"
IG_COMMENT = "17987654321012345"

MESSENGER = Channel("facebook", "connectors.meta.messenger.MessengerConnector", "MESSENGER", {"page_id": PAGE})
INSTAGRAM = Channel("instagram", "connectors.meta.messenger.InstagramConnector", "INSTAGRAM",
                    {"account_id": IG_ACCOUNT})


@pytest.fixture(params=[MESSENGER, INSTAGRAM], ids=["messenger", "instagram"])
def meta_channel(request: pytest.FixtureRequest) -> Channel:
    return request.param


def platform(meta: MetaApp) -> str:
    return "messenger" if meta.channel is MESSENGER else "instagram"


def agent(meta: MetaApp) -> User:
    def add(session: Any) -> User:
        user = User(username="anna", display_name="Anna", role=Role.agent, password_hash=hash_password("x" * 12))
        session.add(user)
        session.flush()
        session.expunge(user)
        return user
    return meta.store.transaction(add)


# (platform, payload) -> (kind, text, sender, visibility, metadata subset)
REPLAYS: Dict[tuple, tuple] = {
    ("messenger", "text"): ("text", "Mijn factuur is te hoog", SANNE, "private", {}),
    ("messenger", "quick_reply"): ("button", "ONDERWERP_FACTUUR", SANNE, "private", {"button_title": "Factuur"}),
    ("messenger", "postback"): ("button", "HUMAN_HANDOFF", SANNE, "private",
                                {"button_title": "Praat met een medewerker"}),
    ("messenger", "attachment_image"): ("attachment", "[photo]", SANNE, "private", {"attachment": "photo"}),
    ("messenger", "attachment_file"): ("attachment", "[file]", SANNE, "private", {"attachment": "file"}),
    ("messenger", "feed_comment_add"): ("text", "Wanneer wordt mijn pakket bezorgd? Ik wacht al een week.", LOTTE,
                                        "public", {"comment_id": COMMENT, "reply_to": COMMENT}),
    ("instagram", "text"): ("text", "Wanneer wordt mijn pakket bezorgd?", IG_SANNE, "private", {}),
    ("instagram", "quick_reply"): ("button", "ONDERWERP_LEVERING", IG_SANNE, "private", {}),
    ("instagram", "postback"): ("button", "ICEBREAKER_BESTELLING", IG_SANNE, "private", {}),
    ("instagram", "attachment_image"): ("attachment", "[photo]", IG_SANNE, "private", {"attachment": "photo"}),
    ("instagram", "story_reply"): ("attachment", "Is deze jas ook in maat M?", IG_SANNE, "private",
                                   {"attachment": "story_reply", "story_id": "18012345678901234"}),
    ("instagram", "story_mention"): ("attachment", "[story mention]", IG_SANNE, "private",
                                     {"attachment": "story_mention"}),
    ("instagram", "comment"): ("text", "Mijn factuur is te hoog, wie kan me helpen?", IG_SANNE, "public",
                               {"comment_id": IG_COMMENT, "reply_to": IG_COMMENT}),
    ("instagram", "comment_reply_to_comment"): ("text", "Nog steeds geen reactie?", IG_SANNE, "public",
                                                {"reply_to": IG_COMMENT}),  # replies go under the top comment
    ("instagram", "mention"): ("attachment", "[mention in comment 17894227900012345]", "mention:18055566677788899:17894227900012345",
                               "public", {"attachment": "mention", "mention_comment_id": "17894227900012345"}),
}


async def test_every_recorded_customer_event_becomes_one_message(meta: MetaApp) -> None:
    name = platform(meta)
    for (where, payload), (kind, text, sender, visibility, metadata) in REPLAYS.items():
        if where != name:
            continue
        body = recorded(name, payload)
        first = await meta.post_ok(body)
        again = await meta.post_ok(body)
        assert (first["accepted"], again["duplicates"]) == (1, 1), payload
        message = meta.inbound()[-1]
        assert (message.payload["kind"], message.text) == (kind, text), payload
        conversation = meta.store.transaction(lambda s: s.get(Conversation, message.conversation_id))
        identity = [i for i in meta.identities() if i.id == conversation.identity_id][0]
        assert identity.external_id == sender and conversation.visibility.value == visibility, payload
        assert metadata.items() <= message.payload["metadata"].items(), payload
        if visibility == "public":
            assert conversation.thread_id == message.payload["metadata"]["post"]["id"]
    assert len(meta.inbound()) == sum(1 for where, _ in REPLAYS if where == name)


async def test_echoes_of_our_own_sends_are_ignored(meta: MetaApp) -> None:
    outcome = await meta.post_ok(recorded(platform(meta), "echo"))
    assert outcome["ignored"] == ["echo of our own message"] and meta.nothing_stored()


@pytest.mark.parametrize("meta_channel", [MESSENGER], ids=["messenger"])
async def test_a_batch_stores_every_event_and_applies_its_receipt(meta: MetaApp) -> None:
    outcome = await meta.post_ok(recorded("messenger", "batch"))
    assert outcome["accepted"] == 2 and len(meta.inbound()) == 2


@pytest.mark.parametrize("meta_channel", [MESSENGER], ids=["messenger"])
async def test_a_comment_thread_follows_edits_and_removals_and_ignores_our_own_comments(meta: MetaApp) -> None:
    await meta.post_ok(recorded("messenger", "feed_comment_add"))
    await meta.post_ok(recorded("messenger", "feed_comment_edited"))
    await meta.post_ok(recorded("messenger", "feed_comment_remove"))
    own = copy.deepcopy(recorded("messenger", "feed_comment_add"))
    own["entry"][0]["changes"][0]["value"].update(comment_id=COMMENT + "1", **{"from": {"id": PAGE, "name": "Polder"}})
    assert (await meta.post_ok(own))["ignored"] == ["our own comment"]
    kinds = [(m.payload["kind"], m.conversation_id) for m in meta.inbound()]
    assert [k for k, _ in kinds] == ["text", "edit", "deleted"]
    assert len({c for _, c in kinds}) == 1  # one public conversation


async def test_dm_replies_quick_replies_and_an_agent_s_late_reply_with_the_human_agent_tag(meta: MetaApp) -> None:
    name = platform(meta)
    await meta.post_ok(recorded(name, "text"))
    customer = SANNE if name == "messenger" else IG_SANNE
    account = PAGE if name == "messenger" else IG_ACCOUNT
    item = await meta.send("answer", {"text": "Waar gaat je vraag over?", "buttons": [
        {"title": "Factuur", "payload": "/invoice"}, {"title": "Een heel lange knoptitel hier", "payload": "/x"}]},
        customer)
    assert item.status == OutboxStatus.sent and item.channel_message_id.startswith("m_FAKE")
    [call] = meta.graph.calls_to(f"{account}/messages")
    assert call.body["messaging_type"] == "RESPONSE" and call.body["recipient"] == {"id": customer}
    assert [q["title"] for q in call.body["message"]["quick_replies"]] == ["Factuur", "Een heel lange knop…"]
    meta.age_inbound(hours=30)
    late = await meta.send("late-agent", {"text": "Excuses voor het wachten."}, customer, source="agent")
    held = await meta.send("late-bot", {"text": "Hoe beoordeel je ons?"}, customer, purpose=Purpose.csat)
    tagged = meta.graph.calls_to(f"{account}/messages")[-1].body
    assert (tagged["messaging_type"], tagged["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    assert late.status == OutboxStatus.sent
    assert held.status == OutboxStatus.needs_template and "needs a template" in held.last_error
    assert len(meta.graph.calls_to(f"{account}/messages")) == 2  # the held one never left


@pytest.mark.parametrize("meta_channel", [MESSENGER], ids=["messenger"])
async def test_receipts_move_the_delivery_status(meta: MetaApp) -> None:
    await meta.post_ok(recorded("messenger", "text"))
    item = await meta.send("answer", {"text": "Dank je!"}, SANNE)
    delivery = copy.deepcopy(recorded("messenger", "delivery"))
    delivery["entry"][0]["messaging"][0]["delivery"]["mids"] = [item.channel_message_id]
    assert (await meta.post_ok(delivery))["receipts"] == 1
    assert meta.outbox(item.id).delivery_status == "delivered"
    read = copy.deepcopy(recorded("messenger", "read"))
    read["entry"][0]["messaging"][0]["read"]["watermark"] = 4102444800000  # 2100: everything before it
    assert (await meta.post_ok(read))["receipts"] == 1
    assert meta.outbox(item.id).delivery_status == "read"
    assert meta.outbound_message(item.id).status == "read"
    assert (await meta.post_ok(delivery))["receipts"] == 0  # never back from read


async def test_public_reply_hide_and_move_to_private_reach_the_graph_api(meta: MetaApp) -> None:
    name = platform(meta)
    await meta.post_ok(recorded(name, "feed_comment_add" if name == "messenger" else "comment"))
    comment = COMMENT if name == "messenger" else IG_COMMENT
    account = PAGE if name == "messenger" else IG_ACCOUNT
    conversation = meta.inbound()[0].conversation_id
    user = agent(meta)
    meta.store.transaction(lambda s: public_threads.reply_public(s, conversation, user, "Vervelend! We kijken mee."))
    meta.store.transaction(lambda s: public_threads.hide_comment(s, conversation, user))
    meta.graph.psid_of_comment[comment] = "7999999999999999"
    result = meta.store.transaction(lambda s: public_threads.move_to_private(s, conversation, user, default_settings()))
    for _ in range(3):  # one item per recipient and round: the dispatcher keeps their order
        await meta.deliver()
    edge = "comments" if name == "messenger" else "replies"
    replies = [c.body for c in meta.graph.calls_to(f"{comment}/{edge}")]
    assert replies == [{"message": "Vervelend! We kijken mee."},
                       {"message": "We sturen je een DM, dan kijken we er samen naar."}]
    assert [c.body for c in meta.graph.calls_to(comment)] == [
        {"is_hidden": True} if name == "messenger" else {"hide": True}]
    [private] = meta.graph.calls_to(f"{account}/messages")
    assert private.body["recipient"] == {"comment_id": comment}
    # The customer answers the DM from the PSID Meta gave back: it lands in the private conversation.
    dm = copy.deepcopy(recorded(name, "text"))
    dm["entry"][0]["messaging"][0]["sender"]["id"] = "7999999999999999"
    await meta.post_ok(dm)
    answer = meta.inbound()[-1]
    assert answer.conversation_id == result["private_conversation_id"]
    conversations = {c.id: c for c in meta.query(select(Conversation))}
    assert conversations[answer.conversation_id].visibility == Visibility.private
    assert conversations[answer.conversation_id].customer_id == conversations[conversation].customer_id


@pytest.mark.parametrize("meta_channel", [MESSENGER], ids=["messenger"])
@pytest.mark.parametrize("error, outcome", [
    ("error_10_2018278_outside_window", "needs_template"),
    ("error_551_1545041_unavailable", "unreachable"),
    ("error_613_2534040_rate_limit", "retry"),
    ("error_190_invalid_token", "token"),
    ("error_100_invalid_parameter", "failed"),
])
async def test_graph_errors(meta: MetaApp, error: str, outcome: str, caplog: pytest.LogCaptureFixture) -> None:
    await meta.post_ok(recorded("messenger", "text"))
    meta.graph.fail(f"{PAGE}/messages", 400, recorded("messenger", f"outbound/{error}"))
    with caplog.at_level(logging.ERROR):
        item = await meta.send("answer", {"text": "Hoi"}, SANNE)
    identity = meta.identities()[0]
    if outcome == "needs_template":
        assert item.status == OutboxStatus.needs_template
    elif outcome == "unreachable":
        assert item.status == OutboxStatus.failed and identity.reachable is False
    elif outcome == "failed":
        assert item.status == OutboxStatus.failed and identity.reachable is True
    else:  # retried later, not failed: a rate limit, or a token an operator must fix (said once, loudly)
        assert item.status == OutboxStatus.pending and item.attempts == 0 and item.next_attempt_at > item.created_at
        if outcome == "token":
            assert "WEBCARE_MESSENGER_ACCESS_TOKEN" in caplog.text


@pytest.mark.parametrize("meta_channel", [INSTAGRAM], ids=["instagram"])
async def test_instagram_dms_are_cut_at_1000_bytes(meta: MetaApp) -> None:
    await meta.post_ok(recorded("instagram", "text"))
    await meta.send("long", {"text": "🙂 " * 600}, IG_SANNE)
    parts = [c.body["message"]["text"] for c in meta.graph.calls_to(f"{IG_ACCOUNT}/messages")]
    assert len(parts) > 1 and all(len(p.encode()) <= 1000 for p in parts)


@pytest.mark.parametrize("meta_channel", [MESSENGER], ids=["messenger"])
async def test_another_object_or_field_is_ignored_and_nothing_is_stored(meta: MetaApp) -> None:
    whatsapp = recorded("whatsapp", "text")
    assert (await meta.post_ok(whatsapp))["status"] == "ignored"
    other = copy.deepcopy(recorded("messenger", "feed_comment_add"))
    other["entry"][0]["changes"][0]["field"] = "ratings"
    assert (await meta.post_ok(other))["ignored"] == ["field ratings"]
    assert meta.nothing_stored()


@pytest.mark.parametrize("meta_channel", [MESSENGER], ids=["messenger"])
async def test_the_handshake_and_the_signature(meta: MetaApp) -> None:
    ok = await meta.verify(**{"hub.mode": "subscribe", "hub.verify_token": "webcare-verify-0123",
                              "hub.challenge": "1158201444"})
    assert ok.status == 200 and await ok.text() == "1158201444"
    wrong = await meta.verify(**{"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
    assert wrong.status == 403
    assert (await meta.verify(**{"hub.mode": "subscribe"})).status == 400
    body = recorded("messenger", "text")
    assert (await meta.post(body, signature=None)).status == 401
    assert (await meta.post(body, signature="sha256=" + "0" * 64)).status == 403
    assert (await meta.post(b"{not json")).status == 400
    assert meta.nothing_stored()


def test_a_page_id_is_required(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("WEBCARE_MESSENGER_VERIFY_TOKEN", "v"), ("WEBCARE_MESSENGER_APP_SECRET", "s"),
                        ("WEBCARE_MESSENGER_ACCESS_TOKEN", "t")):
        monkeypatch.setenv(name, value)
    with pytest.raises(ConnectorError, match="page_id"):
        build_app(tmp_path, Channel("facebook", MESSENGER.type, "MESSENGER", {}))
    monkeypatch.delenv("WEBCARE_MESSENGER_APP_SECRET")
    with pytest.raises(ConnectorError, match="WEBCARE_MESSENGER_APP_SECRET"):
        build_app(tmp_path, MESSENGER)


@pytest.mark.parametrize("meta_channel", [INSTAGRAM], ids=["instagram"])
async def test_a_mention_is_answered_through_the_mentions_edge_with_its_media(meta: MetaApp) -> None:
    await meta.post_ok(recorded("instagram", "mention"))
    conversation = meta.inbound()[0].conversation_id
    user = agent(meta)
    meta.store.transaction(lambda s: public_threads.reply_public(s, conversation, user, "Dank voor het taggen!"))
    await meta.deliver()
    [call] = meta.graph.calls_to(f"{IG_ACCOUNT}/mentions")
    assert call.body == {"media_id": "18055566677788899", "comment_id": "17894227900012345",
                         "message": "Dank voor het taggen!"}


@pytest.mark.parametrize("meta_channel", [MESSENGER], ids=["messenger"])
async def test_one_malformed_event_does_not_drop_the_rest_of_its_entry(meta: MetaApp) -> None:
    body = copy.deepcopy(recorded("messenger", "text"))
    good = body["entry"][0]["messaging"][0]
    bad = copy.deepcopy(good)
    del bad["sender"]
    later = copy.deepcopy(good)
    later["message"]["mid"] += "2"
    body["entry"][0]["messaging"] = [bad, good, later]
    outcome = await meta.post_ok(body)
    assert outcome["accepted"] == 2 and len(outcome["ignored"]) == 1 and len(meta.inbound()) == 2
