"""action_handover: tells the customer a colleague takes over and asks the service to do so."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.handover import ActionHandover
from bot.protocol import handover_payload
from tests.actions.trackers import make_tracker


def user_message(text: str, intent: str) -> Dict[str, Any]:
    return {
        "text": text,
        "intent": {"name": intent, "confidence": 0.97},
        "entities": [],
        "language": {"name": "nl", "confidence": 0.95, "source": "detected"},
    }


def user_event(parse: Dict[str, Any]) -> Dict[str, Any]:
    return {"event": "user", "text": parse["text"], "parse_data": parse, "timestamp": 1.0}


def action_event(name: str) -> Dict[str, Any]:
    return {"event": "action", "name": name, "timestamp": 1.0}


async def run(latest: Dict[str, Any], history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    tracker = make_tracker({"language": "nl"}, latest, history + [user_event(latest)])
    dispatcher = CollectingDispatcher()
    events = await ActionHandover().run(dispatcher, tracker, {})
    assert events == []
    return dispatcher.messages


def assert_handover(messages: List[Dict[str, Any]], response: str, reason: str) -> None:
    assert len(messages) == 2, messages
    utterance, payload = messages
    assert utterance["response"] == response
    assert utterance["custom"] == {}
    assert payload["response"] is None and payload["text"] is None
    assert payload["custom"] == {"webcare": {"handover": {"reason": reason}}}
    assert payload["custom"] == handover_payload(reason)


def test_name() -> None:
    assert ActionHandover().name() == "action_handover"


async def test_complaint_is_acknowledged_and_handed_over() -> None:
    latest = user_message("dit is de derde keer dat ik bel, ik dien een klacht in", "complaint")
    messages = await run(latest, [action_event("action_listen")])
    assert_handover(messages, "utter_complaint_ack", "complaint")


async def test_request_human_is_handed_over() -> None:
    latest = user_message("mag ik een mens spreken?", "request_human")
    messages = await run(latest, [action_event("action_listen")])
    assert_handover(messages, "utter_handover", "request_human")


async def test_yes_to_the_colleague_offer_is_handed_over() -> None:
    question = user_message("ik kan niet in een keer betalen", "payment_arrangement")
    history = [
        action_event("action_listen"),
        user_event(question),
        action_event("utter_payment_arrangement"),
        {"event": "bot", "text": "…", "metadata": {"utter_action": "utter_payment_arrangement"}},
        action_event("utter_did_that_help"),
        {"event": "bot", "text": "Heb ik je hiermee geholpen?", "metadata": {"utter_action": "utter_did_that_help"}},
        action_event("action_listen"),
        user_event(user_message("nee", "deny")),
        action_event("utter_offer_human"),
        {"event": "bot", "text": "Wil je dat een collega meekijkt?", "metadata": {"utter_action": "utter_offer_human"}},
        action_event("action_listen"),
    ]
    messages = await run(user_message("ja, doe maar", "affirm"), history)
    assert_handover(messages, "utter_handover", "customer_asked_after_bot_answer")
