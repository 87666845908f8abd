"""Opening hours: validation, open/closed around the clock and around DST, the summary line,
exceptions (dates, public holidays) and which day a customer asks about."""
from __future__ import annotations

import datetime as dt
from typing import Dict
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.opening_hours import (
    DEFAULT_OPENING_HOURS,
    HOLIDAYS,
    DayHours,
    OpeningHours,
    OpeningHoursError,
    date_label,
    day_label,
    easter_sunday,
    requested_days,
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


# --- exceptions: dates and public holidays -------------------------------------------------

HOLIDAY_CONFIG = """
timezone: Europe/Amsterdam
monday: "08:00-20:00"
tuesday: "08:00-20:00"
wednesday: "08:00-20:00"
thursday: "08:00-20:00"
friday: "08:00-20:00"
saturday: "09:00-17:00"
sunday: closed
exceptions:
  2026-12-24: "08:00-16:00"          # YAML makes this a date
  "2026-12-31": {hours: "08:00-12:00", name: {nl: Oudejaarsmiddag, en: New Year's Eve afternoon}}
  "2026-06-12": {hours: closed, name: Teamdag}
  koningsdag: closed
  Eerste Kerstdag: closed
  tweede-kerstdag: closed
"""


@pytest.fixture
def holidays() -> OpeningHours:
    return OpeningHours.from_config(yaml.safe_load(HOLIDAY_CONFIG))


@pytest.mark.parametrize(
    "year, easter",
    [(2024, dt.date(2024, 3, 31)), (2025, dt.date(2025, 4, 20)), (2026, dt.date(2026, 4, 5)),
     (2027, dt.date(2027, 3, 28)), (2038, dt.date(2038, 4, 25)), (2285, dt.date(2285, 3, 22))],
)
def test_easter_sunday(year: int, easter: dt.date) -> None:
    assert easter_sunday(year) == easter


@pytest.mark.parametrize(
    "key, year, date",
    [
        ("koningsdag", 2026, dt.date(2026, 4, 27)),  # a Monday
        ("koningsdag", 2025, dt.date(2025, 4, 26)),  # the 27th is a Sunday: Saturday the 26th
        ("koningsdag", 2031, dt.date(2031, 4, 26)),
        ("tweede_paasdag", 2026, dt.date(2026, 4, 6)),
        ("goede_vrijdag", 2026, dt.date(2026, 4, 3)),
        ("hemelvaartsdag", 2026, dt.date(2026, 5, 14)),
        ("tweede_pinksterdag", 2026, dt.date(2026, 5, 25)),
        ("eerste_kerstdag", 2026, dt.date(2026, 12, 25)),
        ("nieuwjaarsdag", 2027, dt.date(2027, 1, 1)),
    ],
)
def test_holiday_dates(key: str, year: int, date: dt.date) -> None:
    assert HOLIDAYS[key].date_in(year) == date


def test_exceptions_parse_with_names(holidays: OpeningHours) -> None:
    christmas_eve = holidays.hours_on(dt.date(2026, 12, 24))
    assert christmas_eve.span == (dt.time(8), dt.time(16))
    assert christmas_eve.exception is not None and christmas_eve.exception.key == "2026-12-24"
    assert christmas_eve.name("nl") is None  # a date without a name
    new_years_eve = holidays.hours_on(dt.date(2026, 12, 31))
    assert new_years_eve.span == (dt.time(8), dt.time(12))
    assert (new_years_eve.name("nl"), new_years_eve.name("en")) == ("Oudejaarsmiddag", "New Year's Eve afternoon")
    team_day = holidays.hours_on(dt.date(2026, 6, 12))
    assert team_day.span is None and team_day.name("en") == team_day.name("nl") == "Teamdag"
    for day, nl, en in ((dt.date(2026, 12, 25), "Eerste Kerstdag", "Christmas Day"),
                        (dt.date(2027, 12, 26), "Tweede Kerstdag", "Boxing Day"),
                        (dt.date(2025, 4, 26), "Koningsdag", "King's Day")):
        hours = holidays.hours_on(day)
        assert hours.span is None, day
        assert (hours.name("nl"), hours.name("en"), hours.name("de")) == (nl, en, en)
    ordinary = holidays.hours_on(dt.date(2026, 12, 23))
    assert ordinary == DayHours(dt.date(2026, 12, 23), (dt.time(8), dt.time(20)))
    assert ordinary.name("nl") is None
    # a holiday on a Sunday is closed anyway; on a Saturday it closes the Saturday
    assert holidays.hours_on(dt.date(2025, 4, 26)).span is None
    assert holidays.hours_on(dt.date(2025, 4, 19)).span == (dt.time(9), dt.time(17))


def test_no_exceptions_and_empty_exceptions_are_the_same() -> None:
    plain = OpeningHours.from_config(DEFAULT_OPENING_HOURS)
    assert plain.exceptions == ()
    assert OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "exceptions": None}) == plain
    assert OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "exceptions": {}}) == plain


def test_is_open_closes_at_and_next_opening_follow_the_exceptions(holidays: OpeningHours) -> None:
    # Thursday 24 December 2026: closes at 16:00 instead of 20:00.
    assert holidays.closes_at(local(2026, 12, 24, 10, 0)) == local(2026, 12, 24, 16, 0)
    assert not holidays.is_open(local(2026, 12, 24, 16, 0))
    # Christmas (Friday) and Boxing Day (Saturday) closed, Sunday closed: Monday 28th at 08:00.
    assert holidays.next_opening(local(2026, 12, 24, 16, 0)) == local(2026, 12, 28, 8, 0)
    assert not holidays.is_open(local(2026, 12, 25, 12, 0))
    assert not holidays.is_open(local(2026, 12, 26, 12, 0))
    # Koningsdag 2026 is Monday 27 April: Sunday evening's next opening is Tuesday.
    assert holidays.next_opening(local(2026, 4, 26, 20, 0)) == local(2026, 4, 28, 8, 0)
    assert holidays.next_opening(utc(2026, 4, 27, 6, 0)) == local(2026, 4, 28, 8, 0)
    # it recurs: in 2025 the 27th is a Sunday, so Saturday the 26th is closed, the 19th is not
    assert not holidays.is_open(local(2025, 4, 26, 12, 0))
    assert holidays.is_open(local(2025, 4, 19, 12, 0))
    # the plain weekly hours are untouched by a date that is not an exception
    assert holidays.closes_at(local(2026, 12, 23, 10, 0)) == local(2026, 12, 23, 20, 0)


def test_an_exception_can_open_a_closed_day() -> None:
    hours = OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "exceptions": {"2026-11-29": "12:00-16:00"}})
    saturday_evening = local(2026, 11, 28, 18, 0)
    assert hours.next_opening(saturday_evening) == local(2026, 11, 29, 12, 0)  # a Sunday
    assert hours.closes_at(local(2026, 11, 29, 13, 0)) == local(2026, 11, 29, 16, 0)


def test_a_dated_exception_beats_the_holiday_and_closed_beats_open_between_holidays() -> None:
    hours = OpeningHours.from_config({
        **DEFAULT_OPENING_HOURS,
        "exceptions": {"koningsdag": "closed", "2027-04-27": "10:00-14:00",
                       "hemelvaartsdag": "10:00-14:00", "bevrijdingsdag": "closed"},
    })
    assert hours.hours_on(dt.date(2027, 4, 27)).span == (dt.time(10), dt.time(14))
    assert hours.hours_on(dt.date(2026, 4, 27)).span is None
    # 2016: Easter on 27 March puts Ascension Day on 5 May, Liberation Day: closed wins.
    both = hours.hours_on(dt.date(2016, 5, 5))
    assert both.span is None and both.name("nl") == "Bevrijdingsdag"


def test_next_opening_looks_past_a_long_closure() -> None:
    closed_for_weeks = {f"2026-12-{day:02d}": "closed" for day in range(1, 32)}
    hours = OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "exceptions": closed_for_weeks})
    assert hours.next_opening(local(2026, 11, 30, 21, 0)) == local(2027, 1, 1, 8, 0)


@pytest.mark.parametrize(
    "exceptions, named",
    [
        ({"2026-13-01": "closed"}, "'2026-13-01' is not a valid date"),
        ({"2026-02-30": "closed"}, "'2026-02-30' is not a valid date"),
        ({"26-12-2026": "closed"}, "'26-12-2026' is neither a date like '2026-12-25' nor a holiday"),
        ({"kerst": "closed"}, "'kerst' is neither a date like '2026-12-25' nor a holiday (nieuwjaarsdag,"),
        ({20261225: "closed"}, "'20261225' is neither a date"),
        ({dt.datetime(2026, 12, 25, 10, 0): "closed"}, "'2026-12-25 10:00:00' has a time of day"),
        ({"2026-12-24": "16:00-08:00"}, "opening_hours.exceptions.2026-12-24: '16:00-08:00' closes before it opens"),
        ({"2026-12-24": "8-16"}, "opening_hours.exceptions.2026-12-24: '8-16' is not like '08:00-20:00' or 'closed'"),
        ({"koningsdag": "open"}, "opening_hours.exceptions.koningsdag: 'open' is not like"),
        ({"koningsdag": False}, "opening_hours.exceptions.koningsdag: False is not like"),
        ({"koningsdag": ["closed"]}, "opening_hours.exceptions.koningsdag: ['closed'] is not like"),
        ({"koningsdag": {"hours": "closed", "reason": "x"}}, "exceptions.koningsdag: unknown key(s) ['reason']"),
        ({"koningsdag": {"name": "Koningsdag"}}, "opening_hours.exceptions.koningsdag: 'hours' is missing"),
        ({"koningsdag": {"hours": "9-17"}}, "opening_hours.exceptions.koningsdag.hours: '9-17' is not like"),
        ({"koningsdag": {"hours": 8}}, "opening_hours.exceptions.koningsdag.hours: 8 is not like"),
        ({"2026-06-12": {"hours": "closed", "name": ""}}, "opening_hours.exceptions.2026-06-12.name: '' must be"),
        ({"2026-06-12": {"hours": "closed", "name": {"fr": "x"}}}, "exceptions.2026-06-12.name: {'fr': 'x'} must be"),
        ({"koningsdag": "closed", "Koningsdag": "closed"}, "'Koningsdag' is given twice (also as 'koningsdag')"),
        ({dt.date(2026, 12, 25): "closed", "2026-12-25": "closed"}, "'2026-12-25' is given twice"),
        ("closed", "opening_hours.exceptions must map dates or holiday names to hours"),
        (["2026-12-25"], "opening_hours.exceptions must map dates or holiday names to hours"),
    ],
)
def test_bad_exceptions_are_explained(exceptions: object, named: str) -> None:
    with pytest.raises(OpeningHoursError) as error:
        OpeningHours.from_config({**DEFAULT_OPENING_HOURS, "exceptions": exceptions})
    assert named in str(error.value)


# --- requested_days: which day a customer asks about -----------------------------------------

THURSDAY = dt.date(2026, 11, 26)
FRIDAY, SATURDAY, SUNDAY, MONDAY = (THURSDAY + dt.timedelta(days=n) for n in range(1, 5))


@pytest.mark.parametrize(
    "text, days",
    [
        # no day: the answer is about right now
        ("wat zijn jullie openingstijden", ()),
        ("when are you open?", ()),
        ("goedemorgen, hoe laat gaan jullie open", ()),  # "goedemorgen" is not "morgen"
        ("kan ik 's morgens bellen", ()),
        ("", ()),
        (None, ()),
        # Dutch
        ("zijn jullie vandaag open?", (THURSDAY,)),
        ("tot hoe laat vanavond?", (THURSDAY,)),
        ("zijn jullie morgen open", (FRIDAY,)),
        ("Morgenochtend bereikbaar?", (FRIDAY,)),
        ("en overmorgen?", (SATURDAY,)),
        ("zijn jullie zaterdag open", (SATURDAY,)),
        ("bellen op zondag?", (SUNDAY,)),
        ("open op maandag", (MONDAY,)),
        ("donderdag open?", (THURSDAY,)),  # today's weekday: today
        ("volgende donderdag?", (THURSDAY + dt.timedelta(days=7),)),
        ("volgende week dinsdag", (dt.date(2026, 12, 1),)),
        ("zijn jullie dit weekend open?", (SATURDAY, SUNDAY)),
        ("in het weekend bereikbaar?", (SATURDAY, SUNDAY)),
        ("zaterdag of zondag?", (SATURDAY, SUNDAY)),
        # English
        ("are you open today", (THURSDAY,)),
        ("what time are you guys open tomorrow?", (FRIDAY,)),
        ("TOMORROW??", (FRIDAY,)),
        ("open tmrw?", (FRIDAY,)),
        ("are you open the day after tomorrow?", (SATURDAY,)),
        ("are you open on saturday?", (SATURDAY,)),
        ("do u work on sundays", (SUNDAY,)),
        ("how late on Monday", (MONDAY,)),
        ("next thursday?", (THURSDAY + dt.timedelta(days=7),)),
        ("next week Tuesday", (dt.date(2026, 12, 1),)),
        ("are you open this weekend?", (SATURDAY, SUNDAY)),
        ("today or tomorrow?", (THURSDAY, FRIDAY)),
    ],
)
def test_requested_days(text: str, days: tuple) -> None:
    assert requested_days(text, THURSDAY) == days


@pytest.mark.parametrize(
    "today, text, days",
    [
        (SATURDAY, "dit weekend", (SATURDAY, SUNDAY)),
        (SUNDAY, "this weekend", (SUNDAY,)),  # what is left of it
        (SATURDAY, "volgend weekend", (SATURDAY + dt.timedelta(days=7), SUNDAY + dt.timedelta(days=7))),
        (SUNDAY, "next weekend", (SATURDAY + dt.timedelta(days=7), SUNDAY + dt.timedelta(days=7))),
        (FRIDAY, "next weekend", (SATURDAY, SUNDAY)),
        (SUNDAY, "morgen", (MONDAY,)),
        (SATURDAY, "zaterdag", (SATURDAY,)),
        (SUNDAY, "zaterdag", (SATURDAY + dt.timedelta(days=7),)),
        (dt.date(2026, 12, 31), "tomorrow", (dt.date(2027, 1, 1),)),
    ],
)
def test_requested_days_from_other_days(today: dt.date, text: str, days: tuple) -> None:
    assert requested_days(text, today) == days


@pytest.mark.parametrize(
    "day, language, preposition, label",
    [
        (THURSDAY, "nl", True, "vandaag"),
        (FRIDAY, "en", True, "tomorrow"),
        (SATURDAY, "nl", True, "zaterdag 28 november"),
        (SATURDAY, "en", True, "on Saturday 28 November"),
        (SATURDAY, "en", False, "Saturday 28 November"),
        (SATURDAY, "de", True, "on Saturday 28 November"),
        (dt.date(2027, 4, 27), "nl", True, "dinsdag 27 april"),
    ],
)
def test_date_label(day: dt.date, language: str, preposition: bool, label: str) -> None:
    assert date_label(day, THURSDAY, language, preposition) == label
