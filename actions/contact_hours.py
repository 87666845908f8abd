"""Answers "when are you open?" with what matters right now: open until when, or when we open."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from bot.config import load_opening_hours
from bot.opening_hours import OpeningHours, day_label


class ActionContactHours(Action):
    """Tells the customer whether the team is open now, and the hours."""

    def __init__(
        self,
        hours: Optional[OpeningHours] = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        self.hours = hours or load_opening_hours()
        self.clock = clock

    def name(self) -> Text:
        return "action_contact_hours"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        language = tracker.get_slot("language") or "nl"
        now = self.clock()
        hours_text = self.hours.describe(language)
        closes = self.hours.closes_at(now)
        if closes is not None:
            dispatcher.utter_message(
                response="utter_contact_hours_open",
                closes_at=f"{closes:%H:%M}",
                hours=hours_text,
            )
            return []
        opens = self.hours.next_opening(now)
        dispatcher.utter_message(
            response="utter_contact_hours_closed",
            opens_day=day_label(opens, now, language) if opens else "",
            opens_at=f"{opens:%H:%M}" if opens else "",
            hours=hours_text,
        )
        return []
