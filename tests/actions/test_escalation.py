"""action_detect_escalation and its rules (actions/escalation_rules.py), on real rasa_sdk trackers."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.escalation import ActionDetectEscalation, ValidateSlotMappings
from actions.escalation_rules import (
    DEFAULT_FALLBACK_THRESHOLD, Escalation, Turn, detect_escalation, fallback_threshold,
    turns_since_reset,
)
from bot.protocol import handover_payload
from tests.actions.trackers import make_tracker

THRESHOLD = 0.35


def parse(text: str, intent: str = "bill_too_high", confidence: float = 0.9) -> Dict[str, Any]:
    return {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": [],
        "language": {"name": "nl", "confidence": 0.9, "source": "detected"},
    }


def user(text: str, intent: str = "bill_too_high", confidence: float = 0.9) -> Dict[str, Any]:
    return {"event": "user", "text": text, "parse_data": parse(text, intent, confidence), "timestamp": 1.0}


def action(name: str) -> Dict[str, Any]:
    return {"event": "action", "name": name, "timestamp": 1.0}


def bot(text: str = "Een antwoord.") -> Dict[str, Any]:
    return {"event": "bot", "text": text, "data": {}, "metadata": {}, "timestamp": 1.0}


def answered(text: str, intent: str = "bill_too_high", confidence: float = 0.9) -> List[Dict[str, Any]]:
    """A customer turn the bot answered, as Rasa logs it."""
    return [user(text, intent, confidence), action(f"utter_{intent}"), bot(), action("action_listen")]


def slot(name: str, value: Any) -> Dict[str, Any]:
    return {"event": "slot", "name": name, "value": value, "timestamp": 1.0}


def tracker(events: List[Dict[str, Any]], paused: bool = False, slots: Optional[Dict[str, Any]] = None) -> Tracker:
    latest = next((e["parse_data"] for e in reversed(events) if e["event"] == "user"), {})
    built = make_tracker({"language": "nl", **(slots or {})}, latest, [action("action_listen")] + events)
    built._paused = paused
    return built


async def run(events: List[Dict[str, Any]], **kwargs: Any):
    dispatcher = CollectingDispatcher()
    result = await ActionDetectEscalation(threshold=THRESHOLD).run(dispatcher, tracker(events, **kwargs), {})
    return result, dispatcher.messages


def assert_escalated(result, messages, reason: str) -> Dict[str, Any]:
    """The mapping action sets the slots (its messages would be dropped by Rasa 3.6)."""
    assert messages == []
    assert [e["name"] for e in result] == ["escalation_reason", "escalation_details"]
    assert result[0] == SlotSet("escalation_reason", reason)
    return result[1]["value"]


async def send_payload(reason: Optional[str], details: Optional[Dict[str, Any]]):
    """action_validate_slot_mappings as Rasa runs it: the new slot values trail the events."""
    events = [user("kutbedrijf"), slot("escalation_reason", reason), slot("escalation_details", details)]
    built = make_tracker({"language": "nl", "escalation_reason": reason, "escalation_details": details},
                         events[0]["parse_data"], [action("action_listen")] + events)
    dispatcher = CollectingDispatcher()
    domain = {"slots": {"language": {}, "escalation_reason": {}, "escalation_details": {}}}
    result = await ValidateSlotMappings().run(dispatcher, built, domain)
    return result, dispatcher.messages


async def test_the_slot_mapping_validation_sends_the_handover_payload() -> None:
    details = {"matched": ["kutbedrijf"], "score": -0.412}
    result, messages = await send_payload("profanity", details)
    assert ValidateSlotMappings().name() == "action_validate_slot_mappings"
    assert result == [SlotSet("escalation_reason", "profanity")]
    assert len(messages) == 1
    [message] = messages
    assert message["text"] is None and message["response"] is None  # the service tells the customer
    assert message["custom"] == {"webcare": {"handover": {"reason": "profanity", "details": details}}}
    assert message["custom"] == handover_payload("profanity", details)


async def test_no_payload_when_the_slot_is_cleared() -> None:
    result, messages = await send_payload(None, None)
    assert result == [SlotSet("escalation_reason", None)]
    assert messages == []


# --- the action -----------------------------------------------------------------------------


def test_name_and_threshold_from_config() -> None:
    assert ActionDetectEscalation().name() == "action_detect_escalation"
    assert ActionDetectEscalation().threshold == fallback_threshold() == 0.35


async def test_profanity_is_handed_over_with_the_words() -> None:
    result, messages = await run([user("wat een kutbedrijf, f*ck jullie")])
    details = assert_escalated(result, messages, "profanity")
    assert details["matched"] == ["kutbedrijf", "f*ck"]
    assert details["score"] < 0


async def test_strong_negative_sentiment_is_handed_over() -> None:
    result, messages = await run([user("I'm fed up with your useless service!!!", "login_problem")])
    details = assert_escalated(result, messages, "negative_sentiment")
    assert details["matched"] == ["fed up", "useless"]
    assert details["score"] <= -0.5


async def test_a_normal_complaint_is_not_handed_over() -> None:
    assert await run([user("mijn rekening is te hoog")]) == ([], [])


async def test_two_low_confidence_turns_in_a_row() -> None:
    first = answered("asdf qwerty bla", "nlu_fallback", 0.35)
    result, messages = await run(first + [user("hmm zoiets met mijn ding", "tariffs", 0.21)])
    details = assert_escalated(result, messages, "low_confidence")
    assert details == {"intents": ["nlu_fallback", "tariffs"], "confidences": [0.35, 0.21], "threshold": 0.35}


async def test_one_low_confidence_turn_is_not_enough() -> None:
    first = answered("mijn rekening is te hoog")
    assert await run(first + [user("asdf qwerty", "nlu_fallback", 0.35)]) == ([], [])


async def test_asking_the_same_question_again() -> None:
    events = answered("waarom is mijn jaarafrekening zo hoog") + answered("ja", "affirm")
    result, messages = await run(events + [user("maar waarom moet ik 900 euro bijbetalen dan")])
    details = assert_escalated(result, messages, "repeated_question")
    assert details == {"intent": "bill_too_high", "previous_text": "waarom is mijn jaarafrekening zo hoog"}


async def test_a_near_identical_message_again() -> None:
    events = answered("ik snap niks van deze brief over mijn contract", "nlu_fallback", 0.3)
    events += answered("hallo", "greet")
    result, messages = await run(events + [user("ik snap niks van die brief over mijn contract!", "cancel_contract", 0.5)])
    details = assert_escalated(result, messages, "repeated_question")
    assert details["similarity"] >= 0.8
    assert details["previous_text"] == "ik snap niks van deze brief over mijn contract"


async def test_the_same_intent_without_an_answer_in_between_is_not_repeated() -> None:
    events = [user("mijn rekening is te hoog"), action("action_listen")]  # e.g. the bot was paused
    assert await run(events + [user("hallo? waarom is mijn rekening zo hoog")]) == ([], [])


@pytest.mark.parametrize("intent", ["greet", "thank", "affirm", "deny", "goodbye"])
async def test_chitchat_repeats_naturally(intent: str) -> None:
    events = answered("ja dank je wel", intent)
    assert await run(events + [user("ja dank je wel", intent)]) == ([], [])


@pytest.mark.parametrize("intent", ["complaint", "request_human"])
async def test_the_dialogue_hands_these_over_itself(intent: str) -> None:
    events = answered("ik wil een mens spreken", intent)
    assert await run(events + [user("kut, ik wil een mens spreken", intent)]) == ([], [])


async def test_button_payloads_are_skipped() -> None:
    events = answered("asdf", "nlu_fallback", 0.2)
    assert await run(events + [user("/deny", "deny", 1.0)]) == ([], [])


async def test_nothing_happens_while_paused() -> None:
    events = [user("kutbedrijf")]
    assert await run(events, paused=True) == ([], [])


async def test_the_same_cause_does_not_fire_twice() -> None:
    events = answered("asdf", "nlu_fallback", 0.2) + [user("qwer", "nlu_fallback", 0.2), slot("escalation_reason", "low_confidence")]
    events += [action("utter_please_rephrase"), bot("Sorry?"), action("action_listen"), {"event": "pause", "timestamp": 1.0}]
    # still paused: skipped entirely
    assert await run(events + [user("zxcv", "nlu_fallback", 0.2)], paused=True) == ([], [])
    # not paused (e.g. the service could not pause): the same cause stays quiet, the slot is cleared
    result, messages = await run(events + [user("zxcv", "nlu_fallback", 0.2)], slots={"escalation_reason": "low_confidence"})
    assert (result, messages) == ([SlotSet("escalation_reason", None), SlotSet("escalation_details", None)], [])
    # ... but another cause still escalates
    result, messages = await run(events + [user("kut", "nlu_fallback", 0.2)])
    assert_escalated(result, messages, "profanity")


async def test_counting_restarts_after_a_resume() -> None:
    before = answered("asdf", "nlu_fallback", 0.2) + [user("qwer", "nlu_fallback", 0.2), slot("escalation_reason", "low_confidence")]
    before += [{"event": "pause", "timestamp": 1.0}, user("hallo??", "nlu_fallback", 0.1), {"event": "resume", "timestamp": 1.0}]
    # the first message after the resume: nothing to compare with, the old slot value is cleared
    result, messages = await run(before + [user("zxcv", "nlu_fallback", 0.2)], slots={"escalation_reason": "low_confidence"})
    assert (result, messages) == ([SlotSet("escalation_reason", None), SlotSet("escalation_details", None)], [])
    # two new low-confidence turns after the resume escalate again
    after = before + answered("zxcv", "nlu_fallback", 0.2)
    result, messages = await run(after + [user("uiop", "nlu_fallback", 0.2)])
    assert_escalated(result, messages, "low_confidence")


async def test_a_question_from_before_the_resume_is_not_a_repeat() -> None:
    events = answered("waarom is mijn rekening zo hoog") + [{"event": "resume", "timestamp": 1.0}]
    assert await run(events + [user("en waarom is de eindafrekening zo hoog")]) == ([], [])


async def test_form_answers_are_not_low_confidence_or_repeats() -> None:
    events = [
        user("kun je mijn gegevens opzoeken", "identify"),
        action("identification_form"),
        {"event": "active_loop", "name": "identification_form", "timestamp": 1.0},
        slot("requested_slot", "customer_number"),
        bot("Wat is je klantnummer?"),
        action("action_listen"),
        user("1234", "nlu_fallback", 0.2),
        action("identification_form"),
        slot("requested_slot", "customer_number"),
        bot("Wat is je klantnummer?"),
        action("action_listen"),
    ]
    assert await run(events + [user("4444 12", "nlu_fallback", 0.2)]) == ([], [])
    # profanity still counts inside a form
    result, messages = await run(events + [user("kutformulier", "nlu_fallback", 0.2)])
    assert_escalated(result, messages, "profanity")


async def test_slot_mappings_run_again_when_a_form_activates() -> None:
    events = [user("kutbedrijf, zoek me op", "identify"), slot("escalation_reason", "profanity"),
              {"event": "active_loop", "name": "identification_form", "timestamp": 1.0}]
    assert await run(events, slots={"escalation_reason": "profanity"}) == ([], [])


async def test_the_slot_is_cleared_only_when_it_was_set() -> None:
    assert await run([user("hoi", "greet")]) == ([], [])
    assert await run([user("hoi", "greet")], slots={"escalation_reason": "profanity"}) == (
        [SlotSet("escalation_reason", None), SlotSet("escalation_details", None)], []
    )


# --- the rules as plain functions ------------------------------------------------------------


def test_turns_since_reset() -> None:
    events = answered("oud", "greet") + [{"event": "restart"}, user("nieuw", "greet", 0.8), bot("Hoi")]
    assert turns_since_reset(events) == [Turn("nieuw", "greet", 0.8, in_loop=False, answered=True)]
    assert turns_since_reset([]) == []
    assert detect_escalation([]) is None


def test_priority_profanity_first() -> None:
    events = answered("asdf", "nlu_fallback", 0.2) + [user("kut kut", "nlu_fallback", 0.2)]
    assert detect_escalation(events, THRESHOLD) == Escalation("profanity", {"matched": ["kut", "kut"], "score": -0.583})


def test_low_confidence_uses_the_threshold(tmp_path) -> None:
    events = answered("iets", "tariffs", 0.4) + [user("nog iets", "moving_house", 0.45)]
    assert detect_escalation(events, 0.35) is None
    assert detect_escalation(events, 0.5).reason == "low_confidence"
    config = tmp_path / "config.yml"
    config.write_text("pipeline:\n- name: FallbackClassifier\n  threshold: 0.6\n")
    assert fallback_threshold(config) == 0.6
    assert fallback_threshold(tmp_path / "missing.yml") == DEFAULT_FALLBACK_THRESHOLD
