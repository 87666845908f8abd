"""Keeps the `language` slot in step with the language of the customer's messages."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

SUPPORTED = ("nl", "en")


class ActionSetLanguage(Action):
    """Slot mapping action: copies the language the NLU pipeline found into the slot.

    The NLU `LanguageDetector` adds ``language: {name, confidence, source}`` to every parse;
    ``name`` is empty when a message is too short to tell, and then the slot keeps its value.
    """

    def name(self) -> Text:
        return "action_set_language"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        detected = (tracker.latest_message or {}).get("language") or {}
        name = detected.get("name") if isinstance(detected, dict) else None
        if name in SUPPORTED and name != tracker.get_slot("language"):
            return [SlotSet("language", name)]
        return []
