"""Opening hours: validation, open/closed around the clock and around DST, the summary line."""
from __future__ import annotations

import datetime as dt
from typing import Dict
from zoneinfo import ZoneInfo

import pytest

from bot.opening_hours import (
    DEFAULT_OPENING_HOURS,
    OpeningHours,
    OpeningHoursError,
    day_label,
)

AMS = ZoneInfo("Europe/Amsterdam")
UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def hours() -> OpeningHours:
    return OpeningHours.from_config(DEFAULT_OPENING_HOURS)


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=AMS)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- from_config ---------------------------------------------------------------------------


def test_defaults_parse(hours: OpeningHours) -> None:
    assert hours.timezone == AMS
    assert hours.days[:5] == ((dt.time(8), dt.time(20)),) * 5
    assert hours.days[5] == (dt.time(9), dt.time(17))
    assert hours.days[6] is None


def test_missing_days_are_closed_and_timezone_defaults_to_amsterdam() -> None:
    hours = OpeningHours.from_config({"wednesday": "10:00-12:30"})
    assert hours.timezone == AMS
    assert hours.days == (None, None, (dt.time(10), dt.time(12, 30)), None, None, None, None)


@pytest.mark.parametrize("closed", ["closed", "Closed", "gesloten", "", "none", None, "  CLOSED "])
def test_closed_spellings(closed: object) -> None:
    assert OpeningHours.from_config({"monday": closed}).days[0] is None


def test_spaces_around_the_dash_are_fine() -> None:
    assert OpeningHours.from_config({"friday": " 08:30 - 17:15 "}).days[4] == (dt.time(8, 30), dt.time(17, 15))


@pytest.mark.parametrize("value", ["8-20", "08:00", "08:00–20:00", "08:00-20:00-22:00", "8am-8pm", "25:00-26:00", "open"])
def test_bad_format_is_explained(value: str) -> None:
    with pytest.raises(OpeningHoursError) as error:
        OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "tuesday": value})
    message = str(error.value)
    assert "opening_hours.tuesday" in message
    assert repr(value) in message
    assert "'08:00-20:00'" in message and "'closed'" in message


@pytest.mark.parametrize("value", ["20:00-08:00", "08:00-08:00", "17:00-09:00"])
def test_closing_before_opening_is_explained(value: str) -> None:
    with pytest.raises(OpeningHoursError, match=r"opening_hours\.saturday: .* closes before it opens") as error:
        OpeningHours.from_config({"saturday": value})
    assert repr(value) in str(error.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/Amsterdm", "", "../etc/passwd"])
def test_unknown_time_zone_is_explained(zone: str) -> None:
    with pytest.raises(OpeningHoursError, match="unknown time zone") as error:
        OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "timezone": zone})
    assert repr(zone) in str(error.value)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(OpeningHoursError) as error:
        OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "mondag": "08:00-20:00", "holidays": "closed"})
    message = str(error.value)
    assert "unknown keys in opening_hours" in message
    assert "mondag" in message and "holidays" in message
    assert "monday" not in message.replace("mondag", "")


def test_errors_are_value_errors() -> None:
    assert issubclass(OpeningHoursError, ValueError)


# --- is_open / closes_at / next_opening ------------------------------------------------------


def test_weekday(hours: OpeningHours) -> None:
    monday = local(2026, 11, 23, 10, 0)
    assert hours.is_open(monday)
    assert hours.closes_at(monday) == local(2026, 11, 23, 20, 0)
    assert hours.next_opening(monday) == local(2026, 11, 24, 8, 0)


def test_boundaries(hours: OpeningHours) -> None:
    opening = local(2026, 11, 23, 8, 0)
    closing = local(2026, 11, 23, 20, 0)
    assert not hours.is_open(opening - MINUTE)
    assert hours.next_opening(opening - MINUTE) == opening
    assert hours.is_open(opening)
    assert hours.is_open(closing - MINUTE)
    assert not hours.is_open(closing)
    assert hours.closes_at(closing) is None
    assert hours.next_opening(closing) == local(2026, 11, 24, 8, 0)


def test_weekend(hours: OpeningHours) -> None:
    saturday_noon = local(2026, 11, 28, 12, 0)
    assert hours.closes_at(saturday_noon) == local(2026, 11, 28, 17, 0)
    assert not hours.is_open(local(2026, 11, 28, 17, 0))
    for moment in (local(2026, 11, 28, 18, 0), local(2026, 11, 29, 0, 0), local(2026, 11, 29, 23, 59)):
        assert not hours.is_open(moment)
        assert hours.next_opening(moment) == local(2026, 11, 30, 8, 0)
    assert hours.next_opening(local(2026, 11, 27, 21, 0)) == local(2026, 11, 28, 9, 0)


def test_other_time_zones_of_now_are_converted(hours: OpeningHours) -> None:
    # 10:00 in New York on a Monday in November is 16:00 in Amsterdam: open, closes 20:00 CET.
    new_york = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("America/New_York"))
    assert hours.is_open(new_york)
    assert hours.closes_at(new_york) == utc(2026, 11, 23, 19, 0)
    # 15:00 in New York is 21:00 in Amsterdam: closed.
    assert not hours.is_open(new_york.replace(hour=15))


def test_a_single_open_day_wraps_to_next_week() -> None:
    mondays = OpeningHours.from_config({"monday": "09:00-10:00"})
    assert mondays.next_opening(local(2026, 11, 23, 10, 30)) == local(2026, 11, 30, 9, 0)
    assert mondays.next_opening(local(2026, 11, 23, 8, 30)) == local(2026, 11, 23, 9, 0)
    assert mondays.next_opening(local(2026, 11, 23, 9, 0)) == local(2026, 11, 30, 9, 0)


def test_never_open() -> None:
    never = OpeningHours.from_config({"timezone": "Europe/Amsterdam"})
    now = local(2026, 11, 23, 10, 0)
    assert not never.is_open(now)
    assert never.closes_at(now) is None
    assert never.next_opening(now) is None
    assert never.describe("nl") == ""


# --- daylight saving time (Europe/Amsterdam: Sunday 2026-03-29 02:00 CET -> 03:00 CEST,
#     Sunday 2026-10-25 03:00 CEST -> 02:00 CET) -------------------------------------------


def test_spring_forward_weekend(hours: OpeningHours) -> None:
    friday_evening = local(2026, 3, 27, 21, 0)
    assert hours.next_opening(friday_evening) == utc(2026, 3, 28, 8, 0)  # 09:00 CET
    for moment in (local(2026, 3, 28, 18, 0), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), local(2026, 3, 29, 12, 0)):
        opening = hours.next_opening(moment)
        assert opening == utc(2026, 3, 30, 6, 0)  # Monday 08:00 CEST
        assert opening.astimezone(AMS).hour == 8
        assert opening.utcoffset() == dt.timedelta(hours=2)


def test_same_utc_time_is_open_in_winter_and_closed_in_summer(hours: OpeningHours) -> None:
    # 18:30 UTC on the Monday before the change is 19:30 CET (open) ...
    before = utc(2026, 3, 23, 18, 30)
    assert hours.is_open(before)
    assert hours.closes_at(before) == utc(2026, 3, 23, 19, 0)
    # ... and on the Monday after it is 20:30 CEST (closed).
    after = utc(2026, 3, 30, 18, 30)
    assert not hours.is_open(after)
    assert hours.closes_at(utc(2026, 3, 30, 7, 30)) == utc(2026, 3, 30, 18, 0)  # 20:00 CEST
    assert hours.next_opening(after) == utc(2026, 3, 31, 6, 0)


def test_fall_back_weekend(hours: OpeningHours) -> None:
    assert hours.closes_at(local(2026, 10, 24, 12, 0)) == utc(2026, 10, 24, 15, 0)  # 17:00 CEST
    for moment in (local(2026, 10, 24, 18, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)):
        opening = hours.next_opening(moment)
        assert opening == utc(2026, 10, 26, 7, 0)  # Monday 08:00 CET
        assert opening.utcoffset() == dt.timedelta(hours=1)


def test_sunday_hours_on_the_day_of_the_change() -> None:
    sundays = OpeningHours.from_config({"sunday": "10:00-16:00"})
    saturday = local(2026, 3, 28, 12, 0)
    assert sundays.next_opening(saturday) == utc(2026, 3, 29, 8, 0)  # 10:00 CEST
    assert sundays.closes_at(utc(2026, 3, 29, 9, 0)) == utc(2026, 3, 29, 14, 0)
    assert not sundays.is_open(utc(2026, 3, 29, 7, 30))  # 09:30 CEST


WEEKS = {
    "ordinary week": utc(2026, 11, 22, 23, 0),  # Monday 2026-11-23 00:00 CET
    "spring-forward week": utc(2026, 3, 22, 23, 0),  # Monday 2026-03-23 00:00 CET
    "fall-back week": utc(2026, 10, 18, 22, 0),  # Monday 2026-10-19 00:00 CEST
}


@pytest.mark.parametrize("start", WEEKS.values(), ids=list(WEEKS))
def test_a_whole_week_in_quarter_hours(hours: OpeningHours, start: dt.datetime) -> None:
    step = dt.timedelta(minutes=15)
    moments = [start + i * step for i in range(7 * 24 * 4)]
    open_moments = [m for m in moments if hours.is_open(m)]
    # 5 days x 12 h + 8 h on Saturday = 68 h, DST or not (it happens on a closed Sunday night).
    assert len(open_moments) == 68 * 4
    per_day: Dict[int, int] = {}
    for moment in open_moments:
        weekday = moment.astimezone(AMS).weekday()
        per_day[weekday] = per_day.get(weekday, 0) + 1
    assert per_day == {0: 48, 1: 48, 2: 48, 3: 48, 4: 48, 5: 32}

    for moment in moments:
        closes = hours.closes_at(moment)
        opening = hours.next_opening(moment)
        assert opening is not None and opening > moment
        assert hours.is_open(opening) and not hours.is_open(opening - MINUTE)
        if closes is not None:
            assert moment < closes <= moment + dt.timedelta(hours=12)
            assert closes.astimezone(AMS).date() == moment.astimezone(AMS).date()
            assert not hours.is_open(closes) and hours.is_open(closes - MINUTE)
        else:
            # closed all the way until the next opening (checked every quarter hour)
            probe = moment
            while probe < opening:
                assert not hours.is_open(probe)
                probe += step


# --- describe / day_label ------------------------------------------------------------------


def test_describe_defaults(hours: OpeningHours) -> None:
    assert hours.describe("nl") == "ma–vr 08:00–20:00, za 09:00–17:00"
    assert hours.describe("en") == "Mo–Fr 08:00–20:00, Sa 09:00–17:00"
    assert hours.describe("de") == hours.describe("en")  # unknown language: English


def test_describe_groups_only_consecutive_equal_days() -> None:
    hours = OpeningHours.from_config(
        {
            "monday": "08:00-20:00",
            "tuesday": "08:00-20:00",
            "wednesday": "09:00-12:00",
            "thursday": "08:00-20:00",
            "friday": "08:00-20:00",
            "sunday": "10:00-14:00",
        }
    )
    assert hours.describe("nl") == "ma–di 08:00–20:00, wo 09:00–12:00, do–vr 08:00–20:00, zo 10:00–14:00"


@pytest.mark.parametrize(
    "moment, language, label",
    [
        (local(2026, 11, 23, 8, 0), "nl", "vandaag"),
        (local(2026, 11, 24, 8, 0), "nl", "morgen"),
        (local(2026, 11, 25, 8, 0), "nl", "woensdag"),
        (local(2026, 11, 23, 8, 0), "en", "today"),
        (local(2026, 11, 24, 8, 0), "en", "tomorrow"),
        (local(2026, 11, 30, 8, 0), "en", "on Monday"),
        (local(2026, 11, 25, 8, 0), "fr", "on Wednesday"),
    ],
)
def test_day_label(moment: dt.datetime, language: str, label: str) -> None:
    assert day_label(moment, local(2026, 11, 23, 7, 0), language) == label


def test_day_label_compares_local_dates() -> None:
    # 23:30 UTC on Sunday is already Monday 00:30 in Amsterdam: Monday 08:00 is "today".
    assert day_label(local(2026, 11, 30, 8, 0), utc(2026, 11, 29, 23, 30), "en") == "today"
