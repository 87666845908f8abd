"""Answers "when are you open?" with what matters: the day asked about, or else right now.

"Are you open tomorrow?", "zijn jullie zaterdag open?", "this weekend?": the hours of that day
(or days), or that we are closed then, naming the holiday or exception when there is one. No
day mentioned: open until when, or when we open again. Exceptions in ``opening_hours`` count.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from bot.config import load_opening_hours
from bot.opening_hours import CLOSED_WORD, DayHours, OpeningHours, date_label, day_label, requested_days

logger = logging.getLogger(__name__)


class ActionContactHours(Action):
    """Tells the customer the hours of the day they ask about, or whether the team is open now."""

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
        local = now.astimezone(self.hours.timezone)
        text = (tracker.latest_message or {}).get("text") or ""
        days = [self.hours.hours_on(day) for day in requested_days(text, local.date())]
        logger.debug("contact hours: asked about %s", [d.date.isoformat() for d in days])
        hours_text = self.hours.describe(language)
        if len(days) > 1:
            dispatcher.utter_message(
                response="utter_contact_hours_days",
                days=", ".join(_list_entry(day, local.date(), language) for day in days),
                hours=hours_text,
            )
            return []
        if days and not _over_for_today(days[0], local):
            day = days[0]
            label = _label(day, local.date(), language)
            if day.span is None:
                dispatcher.utter_message(response="utter_contact_hours_day_closed", day=label, hours=hours_text)
            else:
                dispatcher.utter_message(
                    response="utter_contact_hours_day_open",
                    day=label,
                    opens_at=f"{day.span[0]:%H:%M}",
                    closes_at=f"{day.span[1]:%H:%M}",
                    hours=hours_text,
                )
            return []
        self._right_now(dispatcher, now, language, hours_text)
        return []

    def _right_now(self, dispatcher: CollectingDispatcher, now: dt.datetime, language: str, hours_text: str) -> None:
        """Open until when, or when we open again (no day asked, or today's hours are over)."""
        closes = self.hours.closes_at(now)
        if closes is not None:
            dispatcher.utter_message(
                response="utter_contact_hours_open",
                closes_at=f"{closes:%H:%M}",
                hours=hours_text,
            )
            return
        opens = self.hours.next_opening(now)
        dispatcher.utter_message(
            response="utter_contact_hours_closed",
            opens_day=day_label(opens, now, language) if opens else "",
            opens_at=f"{opens:%H:%M}" if opens else "",
            hours=hours_text,
        )


def _over_for_today(day: DayHours, local: dt.datetime) -> bool:
    """Asked about today after today's hours: "closed now, we open again ..." says more."""
    return day.date == local.date() and day.span is not None and local.time() >= day.span[1]


def _label(day: DayHours, today: dt.date, language: str, preposition: bool = True) -> str:
    """"morgen", "on Monday 27 April (King's Day)": the day, and the exception's name if any."""
    label = date_label(day.date, today, language, preposition)
    name = day.name(language)
    return f"{label} ({name})" if name else label


def _list_entry(day: DayHours, today: dt.date, language: str) -> str:
    """"zaterdag 28 november 09:00–17:00" / "Sunday 29 November closed"."""
    label = _label(day, today, language, preposition=False)
    if day.span is None:
        return f"{label} {CLOSED_WORD.get(language, CLOSED_WORD['en'])}"
    return f"{label} {day.span[0]:%H:%M}–{day.span[1]:%H:%M}"

