"""action_set_language: the `language` slot follows the language the NLU pipeline found."""
from __future__ import annotations

from typing import Any, Dict, Optional

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.language import ActionSetLanguage
from tests.actions.trackers import make_tracker


def parse(name: Optional[str], confidence: float = 0.9, source: str = "detected") -> Dict[str, Any]:
    return {
        "text": "some message",
        "intent": {"name": "greet", "confidence": 0.99},
        "entities": [],
        "language": {"name": name, "confidence": confidence, "source": source},
    }


async def run(latest_message: Dict[str, Any], slot: Optional[str]):
    dispatcher = CollectingDispatcher()
    slots = {} if slot is None else {"language": slot}
    events = await ActionSetLanguage().run(dispatcher, make_tracker(slots, latest_message), {})
    assert dispatcher.messages == []  # it never talks
    return events


def test_name() -> None:
    assert ActionSetLanguage().name() == "action_set_language"


@pytest.mark.parametrize(
    "detected, slot",
    [("en", None), ("en", "nl"), ("nl", None), ("nl", "en")],
)
async def test_sets_the_slot_to_the_detected_language(detected: str, slot: Optional[str]) -> None:
    events = await run(parse(detected), slot)
    assert events == [SlotSet("language", detected)]
    assert events[0]["event"] == "slot" and events[0]["name"] == "language"


async def test_a_channel_hint_sets_the_slot_too() -> None:
    assert await run(parse("en", 1.0, "channel"), "nl") == [SlotSet("language", "en")]


@pytest.mark.parametrize("slot", ["nl", "en", None])
async def test_no_language_keeps_the_slot(slot: Optional[str]) -> None:
    assert await run(parse(None), slot) == []


@pytest.mark.parametrize("language", ["nl", "en"])
async def test_same_language_sets_nothing(language: str) -> None:
    assert await run(parse(language), language) == []


@pytest.mark.parametrize("unsupported", ["de", "fr", "xx", "", "EN-us"])
@pytest.mark.parametrize("slot", ["nl", "en", None])
async def test_unsupported_languages_are_ignored(unsupported: str, slot: Optional[str]) -> None:
    assert await run(parse(unsupported), slot) == []


@pytest.mark.parametrize(
    "latest_message",
    [
        {},
        {"text": "hoi", "intent": {"name": "greet"}},  # a parse without the detector's key
        {"text": "hoi", "language": None},
        {"text": "hoi", "language": "en"},  # not the detector's dict
    ],
)
async def test_parses_without_a_language_dict_set_nothing(latest_message: Dict[str, Any]) -> None:
    assert await run(latest_message, "nl") == []
