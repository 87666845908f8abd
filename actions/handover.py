"""Hands the conversation over to a human agent (the service opens the case)."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from bot.protocol import handover_payload


class ActionHandover(Action):
    """Tells the customer a colleague takes over and asks the service to hand over."""

    def name(self) -> Text:
        return "action_handover"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        reason = "complaint" if intent == "complaint" else "request_human"
        if intent not in ("complaint", "request_human"):
            reason = "customer_asked_after_bot_answer"
        dispatcher.utter_message(
            response="utter_complaint_ack" if intent == "complaint" else "utter_handover"
        )
        dispatcher.utter_message(json_message=handover_payload(reason))
        return []
