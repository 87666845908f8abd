"""action_detect_escalation: hands a conversation over when the customer needs a human.

A custom slot mapping of the ``escalation_reason`` (and ``escalation_details``) slot, so Rasa
runs it on every customer message (inside ``action_extract_slots``, before the dialogue
policies). The decision is made in ``actions.escalation_rules``.

Rasa 3.6 keeps only the ``SlotSet`` events of a custom *mapping* action (its bot messages are
dropped in ``ActionExtractSlots._execute_validation_action``); the messages of the global
``action_validate_slot_mappings`` do reach the output channel. So the mapping action sets the
slots, and ``ValidateSlotMappings`` sends ``{"webcare": {"handover": {"reason": ...,
"details": {...}}}}`` when ``escalation_reason`` was just set. The service pauses the
conversation, opens a case and tells the customer the waiting time itself: no visible text.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker, ValidationAction
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.escalation_rules import DETAILS_SLOT, SLOT, detect_escalation, escalated_this_turn, fallback_threshold
from bot.protocol import handover_payload


class ActionDetectEscalation(Action):
    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = fallback_threshold() if threshold is None else threshold

    def name(self) -> Text:
        return "action_detect_escalation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        if tracker.is_paused():
            return []  # a human has the conversation: the service handles it
        text = (tracker.latest_message or {}).get("text") or ""
        if text.startswith("/"):
            return []  # a button payload ("/affirm") says nothing about the mood
        if escalated_this_turn(tracker.events):
            return []  # mappings run again when a form activates: already handled
        escalation = detect_escalation(tracker.events, self.threshold)
        if escalation is not None:
            return [SlotSet(SLOT, escalation.reason), SlotSet(DETAILS_SLOT, escalation.details)]
        if tracker.get_slot(SLOT) is not None:
            return [SlotSet(SLOT, None), SlotSet(DETAILS_SLOT, None)]
        return []


class ValidateSlotMappings(ValidationAction):
    """``action_validate_slot_mappings``: sends the handover payload of a new escalation."""

    async def required_slots(
        self, domain_slots: List[Text], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Text]:
        return [SLOT]  # the other global slots (language, ...) pass through unvalidated

    def validate_escalation_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if value:
            details = tracker.get_slot(DETAILS_SLOT)
            dispatcher.utter_message(
                json_message=handover_payload(value, details if isinstance(details, dict) else None)
            )
        return {SLOT: value}
