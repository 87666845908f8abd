"""action_contact_hours: the day asked about (with exceptions), else open until when or when we
open again, in the customer's language."""
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
    now: dt.datetime, language: Optional[str], hours: Optional[OpeningHours] = None, text: Optional[str] = None
) -> Dict[str, Any]:
    action = ActionContactHours(
        hours=hours or OpeningHours.from_config(DEFAULT_OPENING_HOURS), clock=lambda: now
    )
    dispatcher = CollectingDispatcher()
    slots = {} if language is None else {"language": language}
    latest = {} if text is None else {"text": text, "intent": {"name": "contact_hours", "confidence": 0.99}}
    events = await action.run(dispatcher, make_tracker(slots=slots, latest_message=latest), {})
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


# --- the day the customer asks about ---------------------------------------------------------

HOLIDAYS = OpeningHours.from_config({
    **DEFAULT_OPENING_HOURS,
    "exceptions": {
        "2026-12-24": "08:00-16:00",
        "2026-12-31": {"hours": "08:00-12:00", "name": {"nl": "Oudejaarsdag", "en": "New Year's Eve"}},
        "eerste_kerstdag": "closed",
        "tweede_kerstdag": "closed",
        "koningsdag": "closed",
    },
})


def rendered(message: Dict[str, Any], language: str) -> str:
    """The domain response the message names, in ``language``, filled in."""
    domain = yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))
    variants = domain["responses"][message["response"]]
    variant = next(v for v in variants if bool(v.get("condition")) == (language == "en"))
    return variant["text"].format(**message)


@pytest.mark.parametrize(
    "language, text, day, start",
    [
        # issue #16: asked during opening hours, the answer was "We're open right now, until 20:00"
        ("en", "what time are you guys open tomorrow?", "tomorrow", "We're open tomorrow from 08:00 to 20:00."),
        ("nl", "hoe laat zijn jullie morgen open?", "morgen", "We zijn morgen open van 08:00 tot 20:00."),
    ],
)
async def test_open_tomorrow_answers_about_tomorrow(language: str, text: str, day: str, start: str) -> None:
    message = await run_action(MONDAY_10, language, text=text)
    assert message["response"] == "utter_contact_hours_day_open"
    assert (message["day"], message["opens_at"], message["closes_at"]) == (day, "08:00", "20:00")
    assert rendered(message, language).startswith(start)
    assert message["hours"] in rendered(message, language)


@pytest.mark.parametrize(
    "now, language, text, response, day, span",
    [
        (FRIDAY_21, "en", "are you open tomorrow?", "utter_contact_hours_day_open", "tomorrow", ("09:00", "17:00")),
        (FRIDAY_21, "nl", "morgen open?", "utter_contact_hours_day_open", "morgen", ("09:00", "17:00")),
        (SATURDAY_18, "en", "are you open tomorrow?", "utter_contact_hours_day_closed", "tomorrow", None),
        (SATURDAY_18, "nl", "zijn jullie morgen bereikbaar", "utter_contact_hours_day_closed", "morgen", None),
        (THURSDAY_12, "en", "are you open on sunday?", "utter_contact_hours_day_closed", "on Sunday 29 November", None),
        (THURSDAY_12, "nl", "zondag open?", "utter_contact_hours_day_closed", "zondag 29 november", None),
        (THURSDAY_12, "en", "opening hours monday", "utter_contact_hours_day_open", "on Monday 30 November", ("08:00", "20:00")),
        (THURSDAY_12, "nl", "en overmorgen?", "utter_contact_hours_day_open", "zaterdag 28 november", ("09:00", "17:00")),
        # today: before opening and while open, the day's hours
        (MONDAY_07, "en", "are you open today?", "utter_contact_hours_day_open", "today", ("08:00", "20:00")),
        (MONDAY_10, "nl", "tot hoe laat vandaag?", "utter_contact_hours_day_open", "vandaag", ("08:00", "20:00")),
        (SUNDAY_2330, "en", "open today?", "utter_contact_hours_day_closed", "today", None),
    ],
)
async def test_the_day_asked_about(
    now: dt.datetime, language: str, text: str, response: str, day: str, span: Optional[tuple]
) -> None:
    message = await run_action(now, language, text=text)
    assert message["response"] == response
    assert message["day"] == day
    if span is None:
        assert "opens_at" not in message and "closes_at" not in message
        assert ("gesloten" if language == "nl" else "closed") in rendered(message, language)
    else:
        assert (message["opens_at"], message["closes_at"]) == span


@pytest.mark.parametrize("language", ["nl", "en"])
async def test_today_after_closing_says_when_we_open_again(language: str) -> None:
    message = await run_action(FRIDAY_21, language, text="zijn jullie vandaag nog open?")
    assert message["response"] == "utter_contact_hours_closed"
    assert (message["opens_day"], message["opens_at"]) == ({"nl": "morgen", "en": "tomorrow"}[language], "09:00")


@pytest.mark.parametrize("text", ["when are you open?", "wat zijn jullie openingstijden", "", "goedemorgen, open?"])
async def test_no_day_mentioned_answers_about_right_now(text: str) -> None:
    message = await run_action(MONDAY_10, "en", text=text)
    assert message["response"] == "utter_contact_hours_open"
    assert message["closes_at"] == "20:00"


@pytest.mark.parametrize(
    "language, text, days",
    [
        ("nl", "zijn jullie dit weekend open?", "zaterdag 28 november 09:00–17:00, zondag 29 november gesloten"),
        ("en", "are you open this weekend?", "Saturday 28 November 09:00–17:00, Sunday 29 November closed"),
    ],
)
async def test_this_weekend_lists_both_days(language: str, text: str, days: str) -> None:
    message = await run_action(THURSDAY_12, language, text=text)
    assert message["response"] == "utter_contact_hours_days"
    assert message["days"] == days
    assert days in rendered(message, language)


async def test_the_weekend_asked_on_saturday_starts_today() -> None:
    message = await run_action(dt.datetime(2026, 11, 28, 10, 0, tzinfo=AMS), "en", text="open this weekend?")
    assert message["days"] == "today 09:00–17:00, tomorrow closed"


@pytest.mark.parametrize(
    "now, language, text, day",
    [
        (dt.datetime(2026, 12, 24, 12, 0, tzinfo=AMS), "nl", "zijn jullie morgen open?", "morgen (Eerste Kerstdag)"),
        (dt.datetime(2026, 12, 24, 12, 0, tzinfo=AMS), "en", "are you open tomorrow?", "tomorrow (Christmas Day)"),
        (dt.datetime(2026, 12, 23, 12, 0, tzinfo=AMS), "en", "open on saturday?", "on Saturday 26 December (Boxing Day)"),
        (dt.datetime(2026, 12, 25, 12, 0, tzinfo=AMS), "nl", "zijn jullie vandaag open", "vandaag (Eerste Kerstdag)"),
        # Koningsdag 2025: the 27th is a Sunday, so it is Saturday the 26th
        (dt.datetime(2025, 4, 24, 12, 0, tzinfo=AMS), "nl", "zaterdag open?", "zaterdag 26 april (Koningsdag)"),
        (dt.datetime(2026, 4, 23, 12, 0, tzinfo=AMS), "en", "are you open on monday?", "on Monday 27 April (King's Day)"),
    ],
)
async def test_closed_for_a_holiday_names_it(now: dt.datetime, language: str, text: str, day: str) -> None:
    message = await run_action(now, language, HOLIDAYS, text)
    assert message["response"] == "utter_contact_hours_day_closed"
    assert message["day"] == day
    assert day in rendered(message, language)


@pytest.mark.parametrize(
    "language, text, day, span",
    [
        ("en", "what time do you close tomorrow?", "tomorrow", ("08:00", "16:00")),  # 24 December, no name
        ("nl", "hoe laat gaan jullie morgen dicht", "morgen", ("08:00", "16:00")),
    ],
)
async def test_different_hours_on_a_date(language: str, text: str, day: str, span: tuple) -> None:
    message = await run_action(dt.datetime(2026, 12, 23, 12, 0, tzinfo=AMS), language, HOLIDAYS, text)
    assert message["response"] == "utter_contact_hours_day_open"
    assert (message["day"], message["opens_at"], message["closes_at"]) == (day, *span)


@pytest.mark.parametrize("language, day", [("nl", "morgen (Oudejaarsdag)"), ("en", "tomorrow (New Year's Eve)")])
async def test_a_named_exception_with_hours_is_named(language: str, day: str) -> None:
    message = await run_action(dt.datetime(2026, 12, 30, 12, 0, tzinfo=AMS), language, HOLIDAYS, "open tomorrow?")
    assert message["response"] == "utter_contact_hours_day_open"
    assert (message["day"], message["opens_at"], message["closes_at"]) == (day, "08:00", "12:00")


async def test_the_weekend_list_names_the_holiday() -> None:
    message = await run_action(dt.datetime(2026, 12, 23, 12, 0, tzinfo=AMS), "nl", HOLIDAYS, "dit weekend?")
    assert message["days"] == "zaterdag 26 december (Tweede Kerstdag) gesloten, zondag 27 december gesloten"


@pytest.mark.parametrize("language, opens_day", [("nl", "maandag"), ("en", "on Monday")])
async def test_no_day_mentioned_the_next_opening_skips_the_holidays(language: str, opens_day: str) -> None:
    # Christmas Eve after 16:00: Christmas (Friday), Boxing Day (Saturday), Sunday closed.
    message = await run_action(dt.datetime(2026, 12, 24, 17, 0, tzinfo=AMS), language, HOLIDAYS, "wanneer weer open?")
    assert message["response"] == "utter_contact_hours_closed"
    assert (message["opens_day"], message["opens_at"]) == (opens_day, "08:00")


@pytest.mark.parametrize(
    "now, text",
    [(MONDAY_10, "open tomorrow?"), (SATURDAY_18, "open tomorrow?"), (THURSDAY_12, "dit weekend?")],
)
@pytest.mark.parametrize("language", ["nl", "en"])
async def test_every_placeholder_of_the_day_responses_is_filled(now: dt.datetime, text: str, language: str) -> None:
    message = await run_action(now, language, text=text)
    domain = yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))
    variants = domain["responses"][message["response"]]
    assert len(variants) == 2 and [v.get("condition") for v in variants][0] is None
    for variant in variants:
        placeholders = {field for _, field, _, _ in string.Formatter().parse(variant["text"]) if field}
        assert placeholders <= set(message), (placeholders, sorted(message))
        assert "{" not in variant["text"].format(**message)
