"""action_contact_hours: open until when, or when we open again, in the customer's language."""
from __future__ import annotations

import datetime as dt
import string
from pathlib import Path
from typing import Any, Dict, Optional
from zoneinfo import ZoneInfo

import pytest
import yaml
from rasa_sdk.executor import CollectingDispatcher

from actions.contact_hours import ActionContactHours
from bot.opening_hours import DEFAULT_OPENING_HOURS, OpeningHours
from tests.actions.trackers import make_tracker

AMS = ZoneInfo("Europe/Amsterdam")
PROJECT = Path(__file__).resolve().parents[2]

# The week of Monday 2026-11-23 (CET, UTC+1).
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=AMS)
MONDAY_07 = dt.datetime(2026, 11, 23, 7, 0, tzinfo=AMS)
THURSDAY_12 = dt.datetime(2026, 11, 26, 12, 0, tzinfo=AMS)
FRIDAY_21 = dt.datetime(2026, 11, 27, 21, 0, tzinfo=AMS)
SATURDAY_18 = dt.datetime(2026, 11, 28, 18, 0, tzinfo=AMS)
SUNDAY_2330 = dt.datetime(2026, 11, 29, 23, 30, tzinfo=AMS)


async def run_action(
    now: dt.datetime, language: Optional[str], hours: Optional[OpeningHours] = None
) -> Dict[str, Any]:
    action = ActionContactHours(
        hours=hours or OpeningHours.from_config(DEFAULT_OPENING_HOURS), clock=lambda: now
    )
    dispatcher = CollectingDispatcher()
    slots = {} if language is None else {"language": language}
    events = await action.run(dispatcher, make_tracker(slots=slots), {})
    assert events == []
    assert len(dispatcher.messages) == 1, dispatcher.messages
    return dispatcher.messages[0]


def test_name() -> None:
    action = ActionContactHours(hours=OpeningHours.from_config(DEFAULT_OPENING_HOURS))
    assert action.name() == "action_contact_hours"


@pytest.mark.parametrize(
    "language, hours_text",
    [("nl", "ma–vr 08:00–20:00, za 09:00–17:00"), ("en", "Mo–Fr 08:00–20:00, Sa 09:00–17:00")],
)
async def test_open_on_a_weekday_morning(language: str, hours_text: str) -> None:
    message = await run_action(MONDAY_10, language)
    assert message["response"] == "utter_contact_hours_open"
    assert message["closes_at"] == "20:00"
    assert message["hours"] == hours_text
    assert "opens_day" not in message


async def test_open_with_a_utc_clock_uses_amsterdam_time() -> None:
    # 09:00 UTC is 10:00 in Amsterdam in November; 19:30 UTC is 20:30 there (closed).
    message = await run_action(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc), "nl")
    assert message["response"] == "utter_contact_hours_open"
    assert message["closes_at"] == "20:00"

    message = await run_action(dt.datetime(2026, 11, 23, 19, 30, tzinfo=dt.timezone.utc), "nl")
    assert message["response"] == "utter_contact_hours_closed"
    assert (message["opens_day"], message["opens_at"]) == ("morgen", "08:00")


async def test_saturday_is_open_until_five() -> None:
    message = await run_action(dt.datetime(2026, 11, 28, 16, 59, tzinfo=AMS), "en")
    assert message["response"] == "utter_contact_hours_open"
    assert message["closes_at"] == "17:00"


@pytest.mark.parametrize(
    "now, language, opens_day, opens_at",
    [
        (SATURDAY_18, "nl", "maandag", "08:00"),
        (SATURDAY_18, "en", "on Monday", "08:00"),
        # Friday evening: Saturday is the next day, so it is "tomorrow", not "Saturday".
        (FRIDAY_21, "nl", "morgen", "09:00"),
        (FRIDAY_21, "en", "tomorrow", "09:00"),
        (SUNDAY_2330, "nl", "morgen", "08:00"),
        (SUNDAY_2330, "en", "tomorrow", "08:00"),
        (MONDAY_07, "nl", "vandaag", "08:00"),
        (MONDAY_07, "en", "today", "08:00"),
    ],
)
async def test_closed_says_when_we_open(
    now: dt.datetime, language: str, opens_day: str, opens_at: str
) -> None:
    message = await run_action(now, language)
    assert message["response"] == "utter_contact_hours_closed"
    assert message["opens_day"] == opens_day
    assert message["opens_at"] == opens_at
    assert message["hours"] == OpeningHours.from_config(DEFAULT_OPENING_HOURS).describe(language)
    assert "closes_at" not in message


@pytest.mark.parametrize("language, day", [("nl", "zaterdag"), ("en", "on Saturday")])
async def test_weekday_name_when_the_opening_is_more_than_a_day_away(language: str, day: str) -> None:
    saturdays_only = OpeningHours.from_config({"timezone": "Europe/Amsterdam", "saturday": "09:00-17:00"})
    message = await run_action(THURSDAY_12, language, saturdays_only)
    assert message["response"] == "utter_contact_hours_closed"
    assert (message["opens_day"], message["opens_at"]) == (day, "09:00")


async def test_language_defaults_to_dutch_without_a_slot() -> None:
    message = await run_action(SATURDAY_18, None)
    assert message["opens_day"] == "maandag"
    assert message["hours"] == "ma–vr 08:00–20:00, za 09:00–17:00"


async def test_never_open_leaves_the_opening_empty() -> None:
    never = OpeningHours.from_config({"timezone": "Europe/Amsterdam"})
    message = await run_action(MONDAY_10, "en", never)
    assert message["response"] == "utter_contact_hours_closed"
    assert (message["opens_day"], message["opens_at"]) == ("", "")


@pytest.mark.parametrize("now", [MONDAY_10, SATURDAY_18])
@pytest.mark.parametrize("language", ["nl", "en"])
async def test_every_placeholder_of_the_domain_response_is_filled(now: dt.datetime, language: str) -> None:
    message = await run_action(now, language)
    domain = yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))
    variants = domain["responses"][message["response"]]
    assert variants
    for variant in variants:
        placeholders = {
            field for _, field, _, _ in string.Formatter().parse(variant["text"]) if field
        }
        assert placeholders, variant["text"]
        assert placeholders <= set(message), (placeholders, sorted(message))
        assert "{" not in variant["text"].format(**message)


@pytest.mark.parametrize("language", ["nl", "en"])
async def test_closed_answer_states_the_configured_hours(language: str) -> None:
    no_saturdays = OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "saturday": "closed"})
    message = await run_action(SATURDAY_18, language, no_saturdays)
    domain = yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))
    variants = domain["responses"]["utter_contact_hours_closed"]
    variant = variants[0] if language == "nl" else next(v for v in variants if v.get("condition"))
    text = variant["text"].format(**message)
    assert message["hours"] in text, text
