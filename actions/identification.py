"""Identification form: customer number, or postcode + house number, for the CRM lookup.

``identification_form`` asks for the customer number; a customer who doesn't know it ("weet
ik niet", "no idea", or just "nee") is asked for postcode and house number instead. The slots
are filled here (custom mappings without an action, filled by the ``extract_*`` methods),
so the trigger message ("mijn klantnummer is 12345678") already counts. Invalid answers get
a short explanation and the form asks again. ``action_submit_identification`` sends
``{"webcare": {"identify": {...}}}``: the service looks the customer up and links the channel.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.protocol import identify_payload

FORM = "identification_form"
NUMBER_ROUTE = ["customer_number"]
ADDRESS_ROUTE = ["customer_number_unknown", "postcode", "house_number"]
FORM_SLOTS = ("customer_number", "postcode", "house_number", "customer_number_unknown")

_DIGIT_RUN = re.compile(r"\d(?:[\d .]*\d)?")
# Dutch postcode: 4 digits (no leading 0), optional space, 2 letters (SA, SD and SS are not used).
_POSTCODE = re.compile(r"(?<![\w])([1-9]\d{3})\s?(?!sa|sd|ss)([a-z]{2})(?![a-z])", re.I)
_HOUSE_NUMBER = re.compile(
    r"(?<![\d\w])(\d{1,5})(?:\s*-\s*(\d{1,4}|[a-z]{1,3})(?![a-z\d])|\s?([a-z])(?![a-z\d]))?", re.I
)
_DONT_KNOW = re.compile(
    r"weet (?:ik )?(?:het |dat |'?m |hem |die |mijn \w+ )?(?:echt )?niet|weet ik veel|geen idee|geen flauw idee"
    r"|\bkwijt\b|vergeten|niet bij de hand|kan (?:het|'?m|hem|die|dat) niet vinden|heb (?:ik )?(?:er )?geen"
    r"|heb (?:ik )?(?:het|hem|'?m|die) niet|onbekend|geen klantnummer"
    r"|(?:don'?t|do not) (?:know|have|remember)|\bdunno\b|no idea|not sure|can'?t (?:find|remember)"
    r"|cannot (?:find|remember)|\blost\b|forgot|not at hand|no customer number",
    re.I,
)
_CANCEL = re.compile(
    r"^\s*(?:stop|laat (?:ook )?maar|hoeft niet(?: meer)?|laat ook maar zitten|annuleer|niet nodig"
    r"|never ?mind|forget it|cancel|no need)\b",
    re.I,
)


def parse_customer_number(text: str) -> Optional[str]:
    """6 to 10 digits, spaces and dots allowed ("12.345.678", "123 456 78") -> "12345678"."""
    for match in _DIGIT_RUN.finditer(text or ""):
        digits = re.sub(r"[ .]", "", match.group())
        if 6 <= len(digits) <= 10:
            return digits
    return None


def parse_postcode(text: str) -> Optional[str]:
    """A Dutch postcode anywhere in the text: "1234 ab" -> "1234AB"."""
    match = _POSTCODE.search(text or "")
    return f"{match.group(1)}{match.group(2).upper()}" if match else None


def parse_house_number(text: str) -> Optional[str]:
    """House number with optional addition: "12" -> "12", "12a"/"12 A" -> "12A", "12-1" -> "12-1"."""
    rest = _POSTCODE.sub(" ", text or "")
    for match in _HOUSE_NUMBER.finditer(rest):
        number, dashed, letter = match.groups()
        if int(number) == 0:
            continue
        if dashed:
            return f"{number}-{dashed.upper()}"
        return f"{number}{(letter or '').upper()}"
    return None


def parse_address(text: str) -> Tuple[Optional[str], Optional[str]]:
    """Postcode and house number from one message ("1234 AB 12a"); the number only with a postcode."""
    postcode = parse_postcode(text)
    return postcode, parse_house_number(text) if postcode else None


def says_dont_know(text: str) -> bool:
    return bool(_DONT_KNOW.search(text or ""))


def wants_to_stop(text: str) -> bool:
    return bool(_CANCEL.search(text or ""))


def fresh_answer(tracker: Tracker) -> Optional[str]:
    """The customer's message the form is processing now, or ``None``.

    ``None`` when the form runs again after something else answered the latest message
    (returning to the form after a digression): that message is not an answer.
    """
    events = tracker.events
    index = len(events) - 1
    while index >= 0 and events[index].get("event") == "slot":
        index -= 1
    if index >= 0 and events[index].get("event") == "action" and events[index].get("name") == FORM:
        index -= 1
    while index >= 0:
        event = events[index]
        kind = event.get("event")
        if kind == "user":
            return event.get("text") or ""
        if kind in ("slot", "active_loop", "user_featurization"):
            index -= 1
            continue
        return None
    return None


class ValidateIdentificationForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_identification_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        if tracker.get_slot("requested_slot") and wants_to_stop(fresh_answer(tracker) or ""):
            # The customer stops: clear the slots and end the form (a cleared slot counts as
            # validated, so Rasa does not reject the form); the submit action says "no problem".
            return [SlotSet(slot, None) for slot in FORM_SLOTS] + [SlotSet("requested_slot", None)]
        return await super().run(dispatcher, tracker, domain)

    async def required_slots(
        self, domain_slots: List[Text], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Text]:
        if tracker.slots.get("customer_number_unknown"):
            return list(ADDRESS_ROUTE)
        return list(NUMBER_ROUTE)

    # --- extraction: what the latest message says ---------------------------------------

    async def extract_customer_number(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        text = fresh_answer(tracker)
        if text is None or text.startswith("/"):
            return {}
        requested = tracker.get_slot("requested_slot")
        if requested == "customer_number":
            return {"customer_number": text}  # validated (and explained if wrong) below
        if requested is None:  # the message that started the form
            number = parse_customer_number(text)
            if number:
                return {"customer_number": number}
            postcode, house_number = parse_address(text)
            if postcode or says_dont_know(text):
                found = {"customer_number_unknown": True}
                if postcode:
                    found["postcode"] = postcode
                if house_number:
                    found["house_number"] = house_number
                return found
        return {}

    async def extract_postcode(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        text = fresh_answer(tracker)
        if text is None or tracker.get_slot("requested_slot") != "postcode":
            return {}
        return {"postcode": text}

    async def extract_house_number(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        text = fresh_answer(tracker)
        requested = tracker.get_slot("requested_slot")
        if text is None:
            return {}
        if requested == "house_number":
            return {"house_number": text}
        if requested == "postcode":  # "1234 AB 12a" answers both
            _, house_number = parse_address(text)
            if house_number:
                return {"house_number": house_number}
        return {}

    # --- validation ----------------------------------------------------------------------

    def validate_customer_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        text = str(value or "")
        number = parse_customer_number(text)
        if number:
            return {"customer_number": number}
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        if says_dont_know(text) or intent == "deny":
            return {"customer_number": None, "customer_number_unknown": True}
        dispatcher.utter_message(response="utter_invalid_customer_number")
        return {"customer_number": None}

    def validate_customer_number_unknown(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return {"customer_number_unknown": bool(value) or None}

    def validate_postcode(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        postcode = parse_postcode(str(value or ""))
        if postcode:
            return {"postcode": postcode}
        dispatcher.utter_message(response="utter_invalid_postcode")
        return {"postcode": None}

    def validate_house_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        house_number = parse_house_number(str(value or ""))
        if house_number:
            return {"house_number": house_number}
        dispatcher.utter_message(response="utter_invalid_house_number")
        return {"house_number": None}


class ActionSubmitIdentification(Action):
    """Asks the service to look the customer up; says "one moment"; clears the form's slots."""

    def name(self) -> Text:
        return "action_submit_identification"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        number = tracker.get_slot("customer_number")
        postcode, house_number = tracker.get_slot("postcode"), tracker.get_slot("house_number")
        if number or (postcode and house_number):
            dispatcher.utter_message(response="utter_identification_received")
            dispatcher.utter_message(json_message=identify_payload(number, postcode, house_number))
        else:
            dispatcher.utter_message(response="utter_identification_stopped")
        return [SlotSet(slot, None) for slot in FORM_SLOTS if tracker.get_slot(slot) is not None]
