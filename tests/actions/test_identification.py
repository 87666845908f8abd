"""identification_form: validate_identification_form and action_submit_identification."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.identification import (
    ActionSubmitIdentification, ValidateIdentificationForm, fresh_answer, parse_address,
    parse_customer_number, parse_house_number, parse_postcode, says_dont_know, wants_to_stop,
)
from bot.protocol import identify_payload
from tests.actions.trackers import make_tracker

FORM = "identification_form"
DOMAIN: Dict[str, Any] = {
    "slots": {
        "language": {"type": "categorical", "mappings": [{"type": "custom", "action": "action_set_language"}]},
        "customer_number": {"type": "text", "mappings": [{"type": "custom"}]},
        "postcode": {"type": "text", "mappings": [{"type": "custom"}]},
        "house_number": {"type": "text", "mappings": [{"type": "custom"}]},
        "customer_number_unknown": {"type": "bool", "mappings": [{"type": "custom"}]},
    },
    "forms": {FORM: {"required_slots": ["customer_number"]}},
}


def user(text: str, intent: str = "identify") -> Dict[str, Any]:
    parse = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    return {"event": "user", "text": text, "parse_data": parse, "timestamp": 1.0}


def ev(kind: str, **fields: Any) -> Dict[str, Any]:
    return {"event": kind, "timestamp": 1.0, **fields}


def form_tracker(
    text: str, requested: Optional[str], slots: Optional[Dict[str, Any]] = None,
    intent: str = "identify", language: str = "nl",
) -> Tracker:
    """The temporary tracker Rasa's FormAction sends to the validation action."""
    events: List[Dict[str, Any]] = [ev("action", name="action_listen")]
    if requested is not None:  # the form asked a question before this message
        events += [ev("active_loop", name=FORM), ev("slot", name="requested_slot", value=requested),
                   ev("bot", text="?"), ev("action", name="action_listen")]
    events += [user(text, intent), ev("slot", name="language", value=language)]
    if requested is None:  # activation
        events += [ev("active_loop", name=FORM)]
    events += [ev("slot", name="requested_slot", value=requested), ev("action", name=FORM)]
    tracker = make_tracker(
        {"language": language, "requested_slot": requested, **(slots or {})},
        user(text, intent)["parse_data"], events,
    )
    tracker.active_loop = {"name": FORM}
    return tracker


async def validate(tracker: Tracker):
    dispatcher = CollectingDispatcher()
    events = await ValidateIdentificationForm().run(dispatcher, tracker, DOMAIN)
    return events, [m["response"] for m in dispatcher.messages]


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, number",
    [("mijn klantnummer is 40012345", "40012345"), ("12.345.678", "12345678"), ("123 456 78", "12345678"),
     ("klantnr 123456", "123456"), ("1234567890", "1234567890"), ("1234", None), ("12345678901", None),
     ("", None), ("geen idee", None)],
)
def test_parse_customer_number(text: str, number: Optional[str]) -> None:
    assert parse_customer_number(text) == number


@pytest.mark.parametrize(
    "text, postcode, house_number",
    [("1234 AB 12a", "1234AB", "12A"), ("1234ab", "1234AB", None), ("postcode 2513 kl, huisnummer 8-1", "2513KL", "8-1"),
     ("9711 LM 4 A", "9711LM", "4A"), ("0123 AB", None, None), ("3511 SS", None, None), ("12a", None, None)],
)
def test_parse_address(text: str, postcode: Optional[str], house_number: Optional[str]) -> None:
    assert parse_address(text) == (postcode, house_number)


@pytest.mark.parametrize(
    "text, house_number",
    [("12", "12"), ("12a", "12A"), ("12 A", "12A"), ("12-1", "12-1"), ("12 - 3", "12-3"), ("huisnummer 7", "7"),
     ("nummer 112 hoor", "112"), ("12 appels", "12"), ("geen", None), ("0", None)],
)
def test_parse_house_number(text: str, house_number: Optional[str]) -> None:
    assert parse_house_number(text) == house_number
    assert parse_postcode(text) is None


@pytest.mark.parametrize(
    "text", ["weet ik niet", "ik weet het niet", "geen idee", "ik weet mijn klantnummer niet uit mijn hoofd",
             "ben ik kwijt", "heb ik niet bij de hand", "I don't know", "no idea", "I lost it", "can't find it",
             "dunno", "ik heb geen klantnummer"],
)
def test_says_dont_know(text: str) -> None:
    assert says_dont_know(text)


@pytest.mark.parametrize("text", ["40012345", "1234 AB", "ja", "mijn klantnummer is 4521"])
def test_does_not_say_dont_know(text: str) -> None:
    assert not says_dont_know(text)


def test_wants_to_stop() -> None:
    assert wants_to_stop("laat maar") and wants_to_stop("Stop") and wants_to_stop("never mind")
    assert not wants_to_stop("1234 AB") and not wants_to_stop("ik stop volgende maand met mijn contract?")


def test_fresh_answer_is_the_message_being_answered() -> None:
    assert fresh_answer(form_tracker("40012345", "customer_number")) == "40012345"
    assert fresh_answer(form_tracker("zoek me op", None)) == "zoek me op"
    # the form runs again after another action answered the latest message (a digression)
    back = make_tracker({}, {}, [user("hoe hoog is het tarief"), ev("action", name="utter_tariffs"),
                                  ev("bot", text="..."), ev("slot", name="requested_slot", value="postcode"),
                                  ev("action", name=FORM)])
    assert fresh_answer(back) is None


# --- the form's validation action ----------------------------------------------------------


def test_name() -> None:
    assert ValidateIdentificationForm().name() == "validate_identification_form"
    assert ValidateIdentificationForm().form_name() == FORM


async def test_customer_number_in_the_trigger_message_fills_the_form() -> None:
    events, responses = await validate(form_tracker("hoi, mijn klantnummer is 40.012.345", None))
    assert events == [SlotSet("customer_number", "40012345")]
    assert responses == []


async def test_trigger_without_details_asks_for_the_number() -> None:
    events, responses = await validate(form_tracker("kun je mijn gegevens opzoeken?", None))
    assert events == [] and responses == []  # Rasa's form asks utter_ask_customer_number


async def test_trigger_with_an_address_goes_to_the_address_route() -> None:
    events, _ = await validate(form_tracker("klantnummer kwijt, 3511 AB 12a", None))
    assert events == [
        SlotSet("customer_number_unknown", True), SlotSet("postcode", "3511AB"), SlotSet("house_number", "12A"),
        SlotSet("requested_slot", None),
    ]


async def test_trigger_saying_dont_know_asks_the_postcode() -> None:
    events, _ = await validate(form_tracker("ik weet mijn klantnummer niet, zoek me op", None))
    assert events == [SlotSet("customer_number_unknown", True), SlotSet("requested_slot", "postcode")]


async def test_valid_customer_number_answer_is_normalised() -> None:
    events, responses = await validate(form_tracker("het is 45 21 88 90", "customer_number"))
    assert events == [SlotSet("customer_number", "45218890")]
    assert responses == []


@pytest.mark.parametrize("language", ["nl", "en"])
async def test_invalid_customer_number_is_explained_and_asked_again(language: str) -> None:
    events, responses = await validate(form_tracker("mijn klantnummer is 4521", "customer_number", language=language))
    assert events == [SlotSet("customer_number", None)]
    # the response's nl/en variant is picked by the language slot; the form then asks again
    assert responses == ["utter_invalid_customer_number"]


@pytest.mark.parametrize("text, intent", [("weet ik niet", "identify"), ("I have no idea", "identify"), ("nee", "deny")])
async def test_dont_know_switches_to_postcode_and_house_number(text: str, intent: str) -> None:
    events, responses = await validate(form_tracker(text, "customer_number", intent=intent))
    assert events == [
        SlotSet("customer_number", None), SlotSet("customer_number_unknown", True), SlotSet("requested_slot", "postcode"),
    ]
    assert responses == []


async def test_postcode_then_house_number() -> None:
    events, _ = await validate(form_tracker("postcode 3512 jk", "postcode", {"customer_number_unknown": True}))
    assert events == [SlotSet("postcode", "3512JK"), SlotSet("requested_slot", "house_number")]
    events, _ = await validate(form_tracker(
        "huisnummer 14a", "house_number", {"customer_number_unknown": True, "postcode": "3512JK"}
    ))
    assert events == [SlotSet("house_number", "14A"), SlotSet("requested_slot", None)]


async def test_postcode_and_house_number_in_one_answer() -> None:
    events, _ = await validate(form_tracker("1234 AB 12-1", "postcode", {"customer_number_unknown": True}))
    assert events == [SlotSet("postcode", "1234AB"), SlotSet("house_number", "12-1"), SlotSet("requested_slot", None)]


async def test_invalid_postcode_and_house_number_are_asked_again() -> None:
    events, responses = await validate(form_tracker("ergens in utrecht", "postcode", {"customer_number_unknown": True}))
    assert events == [SlotSet("postcode", None), SlotSet("requested_slot", "postcode")]
    assert responses == ["utter_invalid_postcode"]
    events, responses = await validate(form_tracker(
        "de blauwe deur", "house_number", {"customer_number_unknown": True, "postcode": "1234AB"}
    ))
    assert events == [SlotSet("house_number", None), SlotSet("requested_slot", "house_number")]
    assert responses == ["utter_invalid_house_number"]


async def test_the_customer_can_stop() -> None:
    events, responses = await validate(form_tracker("laat maar", "customer_number"))
    assert events == [SlotSet("customer_number", None), SlotSet("postcode", None), SlotSet("house_number", None),
                      SlotSet("customer_number_unknown", None), SlotSet("requested_slot", None)]
    assert responses == []
    events, _ = await validate(form_tracker("never mind", "postcode", {"customer_number_unknown": True}))
    assert events[-1] == SlotSet("requested_slot", None)


# --- submit ------------------------------------------------------------------------------------


async def submit(slots: Dict[str, Any]):
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitIdentification().run(dispatcher, make_tracker(slots, {}, []), {})
    return events, dispatcher.messages


async def test_submit_customer_number() -> None:
    events, messages = await submit({"customer_number": "40012345", "language": "en"})
    assert [m["response"] for m in messages] == ["utter_identification_received", None]
    assert messages[1]["custom"] == {"webcare": {"identify": {"customer_number": "40012345"}}}
    assert events == [SlotSet("customer_number", None)]


async def test_submit_postcode_and_house_number() -> None:
    events, messages = await submit({"customer_number_unknown": True, "postcode": "1234AB", "house_number": "12A"})
    assert messages[1]["custom"] == {"webcare": {"identify": {"postcode": "1234AB", "house_number": "12A"}}}
    assert messages[1]["custom"] == identify_payload(postcode="1234AB", house_number="12A")
    assert events == [SlotSet("postcode", None), SlotSet("house_number", None), SlotSet("customer_number_unknown", None)]


async def test_submit_after_stopping_sends_no_lookup() -> None:
    events, messages = await submit({"customer_number_unknown": True, "postcode": "1234AB"})
    assert [m["response"] for m in messages] == ["utter_identification_stopped"]
    assert all(not m["custom"] for m in messages)
    assert events == [SlotSet("postcode", None), SlotSet("customer_number_unknown", None)]


def test_identify_payload_needs_a_key() -> None:
    with pytest.raises(ValueError):
        identify_payload(postcode="1234AB")
