"""The WhatsApp Cloud API connector inside the real service app, against a fake Graph API.

Meta's documented payloads (``payloads/whatsapp``, see SOURCES.md) are replayed through the
real, signed webhook into a real SQLite store; outbound goes through the real dispatcher (with
its messaging-window decisions) to :class:`bot.testing.fake_graph.FakeGraph`, which records
every call and answers with Meta's recorded error bodies where a test asks it to.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any, Dict

import pytest

from bot.store.models import OutboxStatus, Purpose, utcnow
from bot.testing.fake_graph import TOKEN, VERIFY_TOKEN
from connectors.base import ConnectorError, TemplateSpec
from connectors.meta.whatsapp import WhatsAppConnector
from connectors.registry import connector_class
from tests.connectors.meta.conftest import Channel, MetaApp, build_app, env_names, recorded, with_status_id

TYPE = "connectors.meta.whatsapp.WhatsAppConnector"  # until the entry point is registered
PHONE_NUMBER_ID = "109283746556473"
MESSAGES = f"{PHONE_NUMBER_ID}/messages"
SANNE, DAAN = "31612345678", "31687654321"
TEMPLATES = {"broadcast": {"name": "storing_opgelost", "languages": {"nl": "nl", "en": "en_US"},
                           "parameters": ["customer_name", "text"]}}


def wa(name: str) -> Dict[str, Any]:
    return recorded("whatsapp", name)


def graph_error(code: int) -> Dict[str, Any]:
    return recorded("whatsapp", f"outbound/error_{code}")


@pytest.fixture
def meta_channel() -> Channel:
    return Channel("whatsapp", TYPE, "WHATSAPP", {"phone_number_id": PHONE_NUMBER_ID, "templates": TEMPLATES})


def first_message(data: Dict[str, Any]) -> Dict[str, Any]:
    return data["entry"][0]["changes"][0]["value"]["messages"][0]


async def sanne_wrote(meta: MetaApp) -> None:
    await meta.post_ok(wa("text"))


# ---------------------------------------------------------------- handshake, signature, envelope


@pytest.mark.parametrize("params, status", [
    ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}, 200),
    ({"hub.mode": "subscribe", "hub.verify_token": "not-ours", "hub.challenge": "1158201444"}, 403),
    ({"hub.mode": "subscribe", "hub.challenge": "1158201444"}, 400),
    ({}, 400),
], ids=["right_token", "wrong_token", "no_token", "no_params"])
async def test_verification_handshake(meta: MetaApp, params: Dict[str, str], status: int) -> None:
    response = await meta.verify(**params)
    assert response.status == status
    if status == 200:
        assert await response.text() == "1158201444"
    elif status == 403:
        assert "WEBCARE_WHATSAPP_VERIFY_TOKEN" in (await response.json())["reason"]


@pytest.mark.parametrize("signature, status", [(None, 401), ("sha256=" + "0" * 64, 403), ("garbage", 403)],
                         ids=["missing", "wrong", "garbage"])
async def test_unsigned_or_wrongly_signed_post_stores_nothing(meta: MetaApp, signature, status: int) -> None:
    response = await meta.post(wa("text"), signature=signature)
    assert response.status == status
    assert "X-Hub-Signature-256" in (await response.json())["reason"]
    assert meta.nothing_stored()


async def test_signed_with_another_secret_is_403(meta: MetaApp) -> None:
    response = await meta.post(wa("text"), secret="f" * 32)
    assert response.status == 403 and meta.nothing_stored()


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b'{"entry": []}', "'object' field"),
    (b"[1, 2]", "'object' field"),
    (b'{"object": "whatsapp_business_account", "entry": {}}', "'entry' must be a list"),
], ids=["malformed", "no_object", "array", "entry_not_a_list"])
async def test_malformed_envelope_is_400(meta: MetaApp, body: bytes, reason: str) -> None:
    response = await meta.post(body)
    assert response.status == 400
    assert reason in (await response.json())["reason"]
    assert meta.nothing_stored()


async def test_another_object_is_ignored(meta: MetaApp) -> None:
    data = wa("text")
    data["object"] = "page"
    reply = await meta.post_ok(data)
    assert reply["status"] == "ignored" and "whatsapp_business_account" in reply["reason"]
    assert meta.nothing_stored()


async def test_other_fields_and_other_numbers_are_ignored(meta: MetaApp) -> None:
    template_review = {"object": "whatsapp_business_account", "entry": [{"id": "104857600123456", "changes": [
        {"field": "message_template_status_update",
         "value": {"event": "APPROVED", "message_template_id": 594425479261596,
                   "message_template_name": "storing_opgelost", "message_template_language": "nl"}}]}]}
    other_number = wa("text")
    other_number["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "100000000000001"
    assert (await meta.post_ok(template_review))["ignored"] == ["field message_template_status_update"]
    assert (await meta.post_ok(other_number))["ignored"] == ["another phone number"]
    assert meta.nothing_stored()


# ---------------------------------------------------------------- inbound: Meta's recorded messages

MEDIA = {"mime_type", "sha256"}
REPLAYS = {
    "text": ("text", "Mijn factuur is te hoog", SANNE, "Sanne de Vries", {}),
    "interactive_button_reply": ("button", "csat_ja", SANNE, "Sanne de Vries", {
        "button_title": "Ja, bedankt", "context_id": "wamid.HBgLMzE2MTIzNDU2NzgVAgARGBI0QjJFN0YzQTBCMUQ0QzZFOEYA"}),
    "interactive_list_reply": ("button", "pakket_status", DAAN, "Daan Jansen", {
        "button_title": "Waar is mijn pakket?", "button_description": "Volg je bezorging",
        "context_id": "wamid.HBgLMzE2ODc2NTQzMjEVAgARGBI0QjNGOEE0QjFDMkU1RDdGOTAA"}),
    "button": ("button", "Bezorgmoment wijzigen", DAAN, "Daan Jansen", {
        "button_title": "Bezorgmoment wijzigen",
        "context_id": "wamid.HBgLMzE2ODc2NTQzMjEVAgARGBI0QjRBOUI1QzJEM0Y2RThBMDEA"}),
    "image": ("attachment", "Foto van mijn factuur", SANNE, "Sanne de Vries", {
        "attachment": "photo", "media_id": "1187345629904512", "mime_type": "image/jpeg",
        "sha256": "1mj8ZGi4gyxzDgZJwf2wCF5Do2gABwqRt9Mw53w+wLc="}),
    "audio": ("attachment", "[voice message]", DAAN, "Daan Jansen", {
        "attachment": "voice", "media_id": "1093847561203948", "mime_type": "audio/ogg; codecs=opus",
        "sha256": "3XVge/MCnPAf3Xu4T0wgJWP1fMAUEZ6Czez++KbcJlw="}),
    "video": ("attachment", "Beschadigd pakket bij aankomst", DAAN, "Daan Jansen", {
        "attachment": "video", "media_id": "1220394857610293", "mime_type": "video/mp4",
        "sha256": "9hmzI+fdg+DIdg9NXwXTkV+Suu/g77pamLzKvTlre2c="}),
    "document": ("attachment", "Mijn factuur van november", SANNE, "Sanne de Vries", {
        "attachment": "document", "media_id": "1304958671209384", "mime_type": "application/pdf",
        "file_name": "factuur-2026-11.pdf", "sha256": "cuF8y5fm0NqWkHN/7EMr3KQOVfL9ii5Bqh/jjp45ae8="}),
    "sticker": ("attachment", "[sticker]", SANNE, "Sanne de Vries", {
        "attachment": "sticker", "media_id": "1411029384756102", "mime_type": "image/webp",
        "sha256": "8y0PO+Rck+CnIO8nb7uRZIIVbSbI8AOCLpZbsiQRn5o="}),
    "location": ("attachment", "[location: Pakketpunt Damrak]", DAAN, "Daan Jansen", {
        "attachment": "location", "latitude": 52.37627410888672, "longitude": 4.897164344787598,
        "name": "Pakketpunt Damrak", "address": "Damrak 1, 1012 LG Amsterdam"}),
    "contacts": ("attachment", "[contact: Pieter Bakker]", SANNE, "Sanne de Vries", {
        "attachment": "contact", "contacts": [{"name": "Pieter Bakker", "phones": ["+31 6 11122233"]}]}),
    "reaction": ("reaction", "👍", SANNE, "Sanne de Vries", {
        "reacted_to": "wamid.HBgLMzE2MTIzNDU2NzgVAgARGBI0QjFENkUyRjlBMEMzQjVEN0UA", "removed": False}),
    "edited": ("edit", "Foto van mijn factuur (bedrag rechtsonder)", SANNE, "Sanne de Vries", {
        "original_message_id": "wamid.HBgLMzE2MTIzNDU2NzgVAgASGBQzQUMxRDJFM0Y0QTVCNkM3RDg0NQA=",
        "edited_kind": "attachment", "attachment": "photo", "media_id": "1187345629904512",
        "mime_type": "image/jpeg", "sha256": "1mj8ZGi4gyxzDgZJwf2wCF5Do2gABwqRt9Mw53w+wLc="}),
    "revoked": ("deleted", None, SANNE, "Sanne de Vries", {
        "original_message_id": "wamid.HBgLMzE2MTIzNDU2NzgVAgASGBQzQTFGMEM5RDJCN0U0QTZDOEQwMQA="}),
    "unsupported": ("attachment", "[unsupported message]", DAAN, "Daan Jansen", {
        "attachment": "unsupported", "whatsapp_type": "unsupported:edit",
        "errors": ["131051: Message type unknown (Message type is currently not supported.)"]}),
}


@pytest.mark.parametrize("name", list(REPLAYS))
async def test_recorded_message_is_stored_once(meta: MetaApp, name: str) -> None:
    kind, text, sender, display_name, extra = REPLAYS[name]
    data = wa(name)
    wamid = first_message(data)["id"]
    reply = await meta.post_ok(data)
    assert (reply["accepted"], reply["duplicates"], reply["ignored"]) == (1, 0, [])
    [message] = meta.inbound()
    assert message.channel == "whatsapp" and message.channel_message_id == wamid  # the edit's own id too
    assert message.text == text and message.language_hint is None and message.status == "received"
    assert message.payload == {"kind": kind, "truncated": False,
                               "metadata": {"whatsapp_message_id": wamid, "wa_id": sender, **extra}}
    [identity] = meta.identities()
    assert identity.external_id == sender and identity.display_name == display_name
    assert [c.display_name for c in meta.customers()] == [display_name]

    again = await meta.post_ok(data)  # Meta redelivers
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert len(meta.inbound()) == 1 and len(meta.customers()) == 1


async def test_removed_reaction_has_no_emoji(meta: MetaApp) -> None:
    data = wa("reaction")
    del first_message(data)["reaction"]["emoji"]
    await meta.post_ok(data)
    [message] = meta.inbound()
    assert message.payload["kind"] == "reaction" and not message.text
    assert message.payload["metadata"]["removed"] is True


async def test_a_username_user_without_phone_number_is_addressed_by_bsuid(meta: MetaApp) -> None:
    data = wa("text")
    value = data["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Sanne de Vries"}, "user_id": "NL.13491208655302741918"}]
    del value["messages"][0]["from"]
    await meta.post_ok(data)
    [message] = meta.inbound()
    assert message.payload["metadata"]["bsuid"] == "NL.13491208655302741918"
    assert "wa_id" not in message.payload["metadata"]
    assert [i.external_id for i in meta.identities()] == ["NL.13491208655302741918"]
    item = await meta.send("reply:bsuid", {"text": "Dank je, we kijken ernaar."}, "NL.13491208655302741918")
    assert item.status == OutboxStatus.sent
    [call] = meta.graph.calls_to(MESSAGES)
    assert call.body["recipient"] == "NL.13491208655302741918" and "to" not in call.body


async def test_phone_number_and_bsuid_are_both_kept(meta: MetaApp) -> None:
    data = wa("text")
    data["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "NL.13491208655302741918"
    await meta.post_ok(data)
    [message] = meta.inbound()
    assert message.payload["metadata"]["wa_id"] == SANNE
    assert message.payload["metadata"]["bsuid"] == "NL.13491208655302741918"
    assert meta.identities()[0].external_id == SANNE


async def test_one_unreadable_message_does_not_block_the_others(meta: MetaApp) -> None:
    data = wa("batch")
    first_message(data)["text"] = "not an object"  # a text body Meta never sends
    reply = await meta.post_ok(data)
    assert reply["accepted"] == 3
    unreadable, *texts = meta.inbound()
    assert unreadable.payload["kind"] == "attachment" and unreadable.text == "[unsupported message]"
    assert unreadable.payload["metadata"]["attachment"] == "unsupported"
    assert [m.text for m in texts] == ["Wanneer wordt mijn pakket bezorgd?", "Ik heb €45 te veel betaald."]


async def test_a_message_without_any_sender_is_ignored(meta: MetaApp) -> None:
    data = wa("text")
    value = data["entry"][0]["changes"][0]["value"]
    value["contacts"], _ = [], value["messages"][0].pop("from")
    reply = await meta.post_ok(data)
    assert reply["accepted"] == 0 and "without a sender" in reply["ignored"][0]
    assert meta.nothing_stored()


async def test_batch_stores_every_message_and_applies_its_status(meta: MetaApp) -> None:
    await meta.post_ok(wa("video"))  # Daan wrote earlier; we answered him
    sent = await meta.send("reply:daan", {"text": "We sturen een nieuw pakket."}, DAAN)
    data = with_status_id(wa("batch"), sent.channel_message_id)
    reply = await meta.post_ok(data)
    assert (reply["accepted"], reply["receipts"]) == (3, 1)
    assert [m.text for m in meta.inbound()[1:]] == ["Mijn factuur is te hoog", "Wanneer wordt mijn pakket bezorgd?",
                                                     "Ik heb €45 te veel betaald."]
    assert sorted(i.external_id for i in meta.identities()) == [SANNE, DAAN]
    assert meta.outbox(sent.id).delivery_status == "delivered"
    again = await meta.post_ok(data)
    assert (again["accepted"], again["duplicates"], again["receipts"]) == (0, 3, 0)
    assert len(meta.inbound()) == 4


# ---------------------------------------------------------------- statuses


async def test_statuses_move_the_receipt_on_and_never_back(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    item = await meta.send("reply:1", {"text": "Wil je je factuurnummer sturen?"}, SANNE)
    assert item.status == OutboxStatus.sent and item.delivery_status == "sent"
    wamid = item.channel_message_id
    assert wamid.startswith("wamid.FAKE")
    assert (await meta.post_ok(with_status_id(wa("status_sent"), wamid)))["receipts"] == 0  # already sent
    assert (await meta.post_ok(with_status_id(wa("status_delivered"), wamid)))["receipts"] == 1
    delivered = meta.outbox(item.id)
    assert delivered.delivery_status == "delivered"
    assert delivered.delivery_updated_at == dt.datetime(2026, 11, 30, 0, 55, 32, tzinfo=dt.timezone.utc)
    assert meta.outbound_message(item.id).status == "delivered"
    await meta.post_ok(with_status_id(wa("status_read"), wamid))
    assert meta.outbox(item.id).delivery_status == "read"
    assert (await meta.post_ok(with_status_id(wa("status_delivered"), wamid)))["receipts"] == 0
    assert meta.outbox(item.id).delivery_status == "read" and meta.outbound_message(item.id).status == "read"


async def test_failed_status_keeps_meta_s_error(meta: MetaApp) -> None:
    await meta.post_ok(wa("video"))
    item = await meta.send("reply:2", {"text": "Je pakket is onderweg."}, DAAN)
    await meta.post_ok(with_status_id(wa("status_failed"), item.channel_message_id))
    failed = meta.outbox(item.id)
    assert failed.delivery_status == "failed"
    assert failed.delivery_error.startswith("131049: This message was not delivered to maintain healthy")
    assert "(In order to maintain a healthy ecosystem engagement" in failed.delivery_error
    assert meta.outbound_message(item.id).status == "failed"
    await meta.post_ok(with_status_id(wa("status_read"), item.channel_message_id))
    assert meta.outbox(item.id).delivery_status == "failed"  # final


async def test_status_of_a_message_we_did_not_send_changes_nothing(meta: MetaApp) -> None:
    reply = await meta.post_ok(wa("status_delivered"))
    assert (reply["receipts"], reply["ignored"]) == (0, [])


# ---------------------------------------------------------------- outbound shapes


async def test_text_goes_out_as_meta_documents_it(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    text = recorded("whatsapp", "outbound/send_text_request")["text"]["body"]
    item = await meta.send("reply:3", {"text": text + " *niet vet*"}, SANNE)
    [call] = meta.graph.calls_to(MESSAGES)
    expected = recorded("whatsapp", "outbound/send_text_request")
    expected["to"], expected["text"]["body"] = SANNE, text + " *niet vet*"
    assert call.body == expected
    assert call.token == TOKEN  # the Authorization header's bearer token
    assert item.channel_message_id == "wamid.FAKE0000000001"
    assert meta.outbound_message(item.id).channel_message_id == "wamid.FAKE0000000001"


async def test_up_to_three_buttons_are_reply_buttons(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    request = recorded("whatsapp", "outbound/send_interactive_buttons_request")["interactive"]
    buttons = [{"title": b["reply"]["title"], "payload": b["reply"]["id"]} for b in request["action"]["buttons"]]
    buttons[2]["title"] = "Spreek een medewerker van de klantenservice"  # over 20 characters
    await meta.send("reply:4", {"text": request["body"]["text"], "buttons": buttons}, SANNE)
    [call] = meta.graph.calls_to(MESSAGES)
    assert call.body["type"] == "interactive"
    assert call.body["interactive"] == {"type": "button", "body": request["body"], "action": {"buttons": [
        {"type": "reply", "reply": {"id": "csat_ja", "title": "Ja, bedankt"}},
        {"type": "reply", "reply": {"id": "csat_nee", "title": "Nee, nog niet"}},
        {"type": "reply", "reply": {"id": "handover_agent", "title": "Spreek een medewerk…"}},
    ]}}


async def test_same_titles_are_made_unique(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    await meta.send("reply:5", {"text": "Welke?", "buttons": [
        {"title": "Meterstand doorgeven", "payload": "/meter{\"n\": 1}"},
        {"title": "Meterstand doorgeven", "payload": "/meter{\"n\": 2}"}]}, SANNE)
    [call] = meta.graph.calls_to(MESSAGES)
    replies = [b["reply"] for b in call.body["interactive"]["action"]["buttons"]]
    assert [r["title"] for r in replies] == ["Meterstand doorgeven", "Meterstand doorgev 2"]
    assert [r["id"] for r in replies] == ['/meter{"n": 1}', '/meter{"n": 2}']


async def test_four_to_ten_buttons_are_a_list(meta: MetaApp) -> None:
    await meta.post_ok(wa("video"))
    rows = recorded("whatsapp", "outbound/send_interactive_list_request")["interactive"]["action"]["sections"]
    buttons = [{"title": row["title"], "payload": row["id"]} for section in rows for row in section["rows"]]
    buttons.append({"title": "Mijn adres is veranderd en mijn pakket komt niet aan", "payload": "/verhuizing"})
    await meta.send("reply:6", {"text": "Waarmee kunnen we je helpen?", "buttons": buttons}, DAAN)
    [call] = meta.graph.calls_to(MESSAGES)
    assert call.body["to"] == DAAN
    assert call.body["interactive"] == {"type": "list", "body": {"text": "Waarmee kunnen we je helpen?"},
                                        "action": {"button": "Kies", "sections": [{"rows": [
        {"id": "pakket_status", "title": "Waar is mijn pakket?"},
        {"id": "retour_aanmelden", "title": "Retour aanmelden"},
        {"id": "factuur_vraag", "title": "Vraag over factuur"},
        {"id": "betaling_status", "title": "Status betaling"},
        {"id": "/verhuizing", "title": "Mijn adres is veranderd",
         "description": "en mijn pakket komt niet aan"},
    ]}]}}


async def test_more_than_ten_buttons_send_the_first_ten(meta: MetaApp, caplog) -> None:
    await sanne_wrote(meta)
    buttons = [{"title": f"Onderwerp {n}", "payload": f"/topic_{n}"} for n in range(12)]
    await meta.send("reply:7", {"text": "Kies een onderwerp", "buttons": buttons}, SANNE)
    [call] = meta.graph.calls_to(MESSAGES)
    rows = call.body["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [f"/topic_{n}" for n in range(10)]
    assert "12 buttons" in caplog.text


async def test_template_payload_is_a_template_call(meta: MetaApp) -> None:
    await meta.post_ok(wa("video"))
    await meta.send("reply:8", {"template": {"name": "bezorging_update", "language": "nl",
                                             "parameters": ["Daan", "NL-48213", "donderdag 10 december"]},
                                "text": "Je pakket komt donderdag."}, DAAN)
    [call] = meta.graph.calls_to(MESSAGES)
    expected = recorded("whatsapp", "outbound/send_template_request")
    for parameter in expected["template"]["components"][0]["parameters"]:
        del parameter["parameter_name"]  # ours are positional ({{1}}, {{2}}, ...)
    assert call.body == expected


async def test_image_then_text(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    await meta.send("reply:9", {"text": "Zo lees je je meter af.", "image": "https://example.com/meter.png"}, SANNE)
    image, text = meta.graph.calls_to(MESSAGES)
    assert image.body["type"] == "image" and image.body["image"] == {"link": "https://example.com/meter.png"}
    assert text.body["text"]["body"] == "Zo lees je je meter af."


async def test_long_text_with_buttons_sends_the_text_then_the_buttons(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    head = "Uitleg over je factuur. " * 60  # 1440 characters
    item = await meta.send("reply:10", {"text": head + "\n\nIs je vraag beantwoord?",
                                        "buttons": [{"title": "Ja", "payload": "/affirm"}]}, SANNE)
    plain, buttons = meta.graph.calls_to(MESSAGES)
    assert plain.body["text"]["body"] == head.strip()
    assert buttons.body["interactive"]["body"] == {"text": "Is je vraag beantwoord?"}
    assert item.channel_message_id == "wamid.FAKE0000000002"  # the last part's


async def test_a_retry_after_part_one_sends_only_the_rest(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    text = "Eerste alinea. " * 300 + "\n\n" + "Tweede alinea. " * 100  # 6002 characters
    item_id = meta.queue("reply:11", {"text": text}, SANNE)
    meta.graph.fail(MESSAGES, 200, recorded("whatsapp", "outbound/send_response"))  # part 1 goes out
    meta.graph.fail(MESSAGES, 429, graph_error(130429))  # part 2 hits the rate limit
    await meta.deliver()
    assert meta.outbox(item_id).status == OutboxStatus.pending
    meta.make_due()
    await meta.deliver()
    first, limited, second = meta.graph.calls_to(MESSAGES)
    assert first.body["text"]["body"] == ("Eerste alinea. " * 273).strip()  # cut at a word, 4096 at most
    assert limited.body == second.body
    both = first.body["text"]["body"] + " " + second.body["text"]["body"]
    assert both.split() == text.split()  # nothing lost, nothing twice
    item = meta.outbox(item_id)
    assert item.status == OutboxStatus.sent and item.channel_message_id.startswith("wamid.FAKE")


@pytest.mark.parametrize("payload, reason", [
    ({"text": " "}, "nothing to send"),
    ({"buttons": [{"title": "Ja", "payload": "/affirm"}]}, "buttons need a text"),
    ({"template": {"name": "x"}}, "needs a name and a language"),
])
async def test_unsendable_payload_fails_without_a_call(meta: MetaApp, payload: Dict[str, Any], reason: str) -> None:
    await sanne_wrote(meta)
    item = await meta.send("reply:12", payload, SANNE)
    assert item.status == OutboxStatus.failed and reason in item.last_error
    assert meta.graph.calls_to(MESSAGES) == []


# ---------------------------------------------------------------- the 24-hour window, Graph errors


async def test_inside_the_window_a_free_form_text(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    meta.age_inbound(hours=23)
    item = await meta.send("reply:13", {"text": "Nog even geduld."}, SANNE)
    assert item.status == OutboxStatus.sent
    assert [c.body["type"] for c in meta.graph.calls_to(MESSAGES)] == ["text"]


async def test_outside_the_window_the_purpose_s_template(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    meta.age_inbound(hours=25)
    item = await meta.send("broadcast:1", {"text": "De storing in\nAmsterdam is opgelost."}, SANNE,
                           source="broadcast", purpose=Purpose.broadcast)
    [call] = meta.graph.calls_to(MESSAGES)
    assert call.body["type"] == "template"
    assert call.body["template"] == {"name": "storing_opgelost", "language": {"code": "nl"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Sanne de Vries"},
                                        {"type": "text", "text": "De storing in Amsterdam is opgelost."}]}]}
    assert item.status == OutboxStatus.sent
    assert meta.outbound_message(item.id).payload["sent_as"]["template"] == "storing_opgelost"


async def test_outside_the_window_without_a_template_the_item_is_held(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    meta.age_inbound(hours=30)
    item = await meta.send("reply:14", {"text": "Heb je nog vragen?"}, SANNE)
    assert item.status == OutboxStatus.needs_template
    assert "needs a template" in item.last_error and "'answer'" in item.last_error
    assert meta.graph.calls_to(MESSAGES) == []
    assert meta.outbound_message(item.id).status == "needs_template"


async def test_graph_says_the_window_closed(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    meta.graph.fail(MESSAGES, 400, graph_error(131047))
    item = await meta.send("reply:15", {"text": "Nog een vraag?"}, SANNE)
    assert item.status == OutboxStatus.needs_template and "131047" in item.last_error


async def test_rate_limit_retries_later(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    meta.graph.fail(MESSAGES, 429, graph_error(130429))
    item = await meta.send("reply:16", {"text": "Hallo"}, SANNE)
    assert item.status == OutboxStatus.pending and item.attempts == 0
    assert (item.next_attempt_at - utcnow()).total_seconds() > 30
    assert "130429" in item.last_error


async def test_rejected_token_waits_and_says_which_variable(meta: MetaApp, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="connectors.meta.graph")
    await sanne_wrote(meta)
    meta.graph.fail(MESSAGES, 401, graph_error(190))
    item = await meta.send("reply:17", {"text": "Hallo"}, SANNE)
    assert item.status == OutboxStatus.pending and item.attempts == 0
    assert (item.next_attempt_at - utcnow()).total_seconds() > 120
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "$WEBCARE_WHATSAPP_ACCESS_TOKEN" in line.getMessage() and TOKEN not in caplog.text


async def test_undeliverable_marks_the_identity_unreachable(meta: MetaApp) -> None:
    await sanne_wrote(meta)
    meta.graph.fail(MESSAGES, 400, graph_error(131026))
    item = await meta.send("reply:18", {"text": "Hallo"}, SANNE)
    assert item.status == OutboxStatus.failed and "131026" in item.last_error
    assert meta.identities()[0].reachable is False


# ---------------------------------------------------------------- configuration


def build(**options: Any) -> WhatsAppConnector:
    return WhatsAppConnector.from_config("whatsapp", {"phone_number_id": PHONE_NUMBER_ID, **options})


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env_names("WHATSAPP").items():
        monkeypatch.setenv(name, value)


def test_dotted_path_capabilities_and_templates(secrets: None) -> None:
    assert connector_class(TYPE) is WhatsAppConnector
    connector = build(phone_number_id=int(PHONE_NUMBER_ID), templates={
        **TEMPLATES, "csat": {"name": "hoe_was_het", "language": "nl", "parameters": []}})
    assert connector.phone_number_id == PHONE_NUMBER_ID  # YAML reads it as a number
    capabilities = connector.capabilities
    assert (capabilities.max_text_length, capabilities.buttons, capabilities.rate_limit_per_second) == (4096, True, 20)
    assert (capabilities.window.free_form_hours, capabilities.window.human_agent_hours) == (24, None)
    assert connector.template_for("broadcast") == TemplateSpec(
        "storing_opgelost", (("nl", "nl"), ("en", "en_US")), ("customer_name", "text"))
    assert connector.template_for("csat") == TemplateSpec("hoe_was_het", (("nl", "nl"),), ())
    assert connector.template_for("answer") is None


@pytest.mark.parametrize("options, message", [
    ({"phone_number_id": None}, "phone_number_id is required"),
    ({"phone_number_id": "+31 20 123 4567"}, "digits only"),
    ({"rate_limit_per_second": "fast"}, "rate_limit_per_second must be a number"),
    ({"templates": ["answer"]}, "templates must be a mapping"),
    ({"templates": {"reminder": {"name": "x", "language": "nl"}}}, r"templates\.reminder: unknown purpose"),
    ({"templates": {"answer": {"name": "Hallo Daan", "language": "nl"}}}, r"templates\.answer\.name"),
    ({"templates": {"answer": {"name": "antwoord"}}}, r"templates\.answer: give either languages"),
    ({"templates": {"answer": {"name": "antwoord", "language": "nl", "languages": {"nl": "nl"}}}},
     "give either languages"),
    ({"templates": {"answer": {"name": "antwoord", "languages": {"nl": "Nederlands"}}}},
     r"templates\.answer\.languages\.nl"),
    ({"templates": {"answer": {"name": "antwoord", "language": "nl", "parameters": ["order_id"]}}},
     r"templates\.answer\.parameters: 'order_id'"),
    ({"templates": {"answer": {"name": "antwoord", "language": "nl", "category": "utility"}}},
     r"templates\.answer\.category: unknown key"),
], ids=["missing_phone_number_id", "phone_number", "rate", "templates_list", "purpose", "name", "no_language",
        "both_languages", "language_code", "parameter", "unknown_key"])
def test_misconfiguration_is_a_connector_error(secrets: None, options: Dict[str, Any], message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        build(**options)


@pytest.mark.parametrize("variable", list(env_names("WHATSAPP")))
def test_missing_secret_names_its_variable(secrets: None, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.delenv(variable)
    with pytest.raises(ConnectorError, match=rf"\${variable}"):
        build()


def test_missing_phone_number_id_stops_the_service_at_start_up(tmp_path: Path, secrets: None,
                                                               meta_channel: Channel) -> None:
    del meta_channel.options["phone_number_id"]
    with pytest.raises(ConnectorError, match="channels.whatsapp.phone_number_id is required"):
        build_app(tmp_path, meta_channel)
