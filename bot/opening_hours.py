"""Opening hours of the webcare team: are we open now, when do we close, when do we open.

Weekly hours (one span per weekday, or closed) plus **exceptions**: a date
(``"2026-12-24": "08:00-16:00"``) or a Dutch public holiday that recurs every year
(``koningsdag: closed``). The exceptions are used everywhere the hours are: the bot's
answer to "are you open tomorrow?" and the waiting time told on a handover.

:func:`requested_days` reads which day(s) a customer asks about ("morgen", "this weekend",
"on saturday") from their message.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DAY_NAMES = {
    "nl": ["maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}
MONTH_NAMES = {
    "nl": ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"],
}
RELATIVE_DAYS = {"nl": ("vandaag", "morgen"), "en": ("today", "tomorrow")}
CLOSED_WORD = {"nl": "gesloten", "en": "closed"}
EXCEPTION_KEYS = frozenset({"hours", "name"})
SEARCH_DAYS = 7 + 366  # next_opening looks this far ahead (a year of exceptions, then a week)

Span = Tuple[dt.time, dt.time]


class OpeningHoursError(ValueError):
    """The opening hours in the configuration cannot be understood."""


# ------------------------------------------------------------------ public holidays


@lru_cache(maxsize=64)
def easter_sunday(year: int) -> dt.date:
    """Western Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _fixed(month: int, day: int) -> Callable[[int], dt.date]:
    return lambda year: dt.date(year, month, day)


def _after_easter(days: int) -> Callable[[int], dt.date]:
    return lambda year: easter_sunday(year) + dt.timedelta(days=days)


def _koningsdag(year: int) -> dt.date:
    """27 April, or Saturday 26 April when the 27th is a Sunday."""
    day = dt.date(year, 4, 27)
    return day - dt.timedelta(days=1) if day.weekday() == 6 else day


@dataclass(frozen=True)
class Holiday:
    """A public holiday that recurs every year, by its configuration key."""

    key: str
    names: Mapping[str, str]  # language -> name
    date_in: Callable[[int], dt.date]


HOLIDAYS: Dict[str, Holiday] = {
    holiday.key: holiday
    for holiday in (
        Holiday("nieuwjaarsdag", {"nl": "Nieuwjaarsdag", "en": "New Year's Day"}, _fixed(1, 1)),
        Holiday("goede_vrijdag", {"nl": "Goede Vrijdag", "en": "Good Friday"}, _after_easter(-2)),
        Holiday("eerste_paasdag", {"nl": "Eerste Paasdag", "en": "Easter Sunday"}, _after_easter(0)),
        Holiday("tweede_paasdag", {"nl": "Tweede Paasdag", "en": "Easter Monday"}, _after_easter(1)),
        Holiday("koningsdag", {"nl": "Koningsdag", "en": "King's Day"}, _koningsdag),
        Holiday("bevrijdingsdag", {"nl": "Bevrijdingsdag", "en": "Liberation Day"}, _fixed(5, 5)),
        Holiday("hemelvaartsdag", {"nl": "Hemelvaartsdag", "en": "Ascension Day"}, _after_easter(39)),
        Holiday("eerste_pinksterdag", {"nl": "Eerste Pinksterdag", "en": "Whit Sunday"}, _after_easter(49)),
        Holiday("tweede_pinksterdag", {"nl": "Tweede Pinksterdag", "en": "Whit Monday"}, _after_easter(50)),
        Holiday("kerstavond", {"nl": "Kerstavond", "en": "Christmas Eve"}, _fixed(12, 24)),
        Holiday("eerste_kerstdag", {"nl": "Eerste Kerstdag", "en": "Christmas Day"}, _fixed(12, 25)),
        Holiday("tweede_kerstdag", {"nl": "Tweede Kerstdag", "en": "Boxing Day"}, _fixed(12, 26)),
        Holiday("oudejaarsdag", {"nl": "Oudejaarsdag", "en": "New Year's Eve"}, _fixed(12, 31)),
    )
}


# ------------------------------------------------------------------ exceptions


@dataclass(frozen=True)
class DayException:
    """Different hours (or closed) on one date, or on a public holiday every year."""

    key: str  # as configured: "2026-12-24" or "koningsdag"
    span: Optional[Span]
    names: Tuple[Tuple[str, str], ...] = ()  # (language, name) pairs; empty: no name
    date: Optional[dt.date] = None  # a dated exception ...
    holiday: Optional[str] = None  # ... or a key of HOLIDAYS

    def applies_to(self, day: dt.date) -> bool:
        """Whether this exception is in force on ``day``."""
        if self.date is not None:
            return self.date == day
        return self.holiday is not None and HOLIDAYS[self.holiday].date_in(day.year) == day

    def name(self, language: str) -> Optional[str]:
        """The name to tell customers ("Koningsdag"/"King's Day"), or ``None``."""
        names = dict(self.names)
        return names.get(language) or names.get("en") or names.get("nl")


@dataclass(frozen=True)
class DayHours:
    """The hours on one local date, and the exception that set them (if any)."""

    date: dt.date
    span: Optional[Span]
    exception: Optional[DayException] = None

    def name(self, language: str) -> Optional[str]:
        """The exception's name for customers, if an exception with a name applies."""
        return self.exception.name(language) if self.exception else None


# ------------------------------------------------------------------ opening hours


@dataclass(frozen=True)
class OpeningHours:
    """Weekly opening hours in one time zone (one span per day, or closed), with exceptions."""

    timezone: ZoneInfo
    days: Tuple[Optional[Span], ...]  # index 0 = Monday
    exceptions: Tuple[DayException, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> "OpeningHours":
        """Build from ``{"timezone": "Europe/Amsterdam", "monday": "08:00-20:00", "sunday": "closed",
        "exceptions": {"2026-12-24": "08:00-16:00", "koningsdag": "closed"}}``.

        Raises :class:`OpeningHoursError` naming the key that is wrong.
        """
        unknown = set(config) - set(WEEKDAYS) - {"timezone", "exceptions"}
        if unknown:
            raise OpeningHoursError(f"unknown keys in opening_hours: {sorted(unknown)}")
        try:
            zone = ZoneInfo(str(config.get("timezone", "Europe/Amsterdam")))
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError
            raise OpeningHoursError(f"unknown time zone {config.get('timezone')!r}") from exc
        days = tuple(_parse_span(day, config.get(day, "closed")) for day in WEEKDAYS)
        return cls(zone, days, _parse_exceptions(config.get("exceptions")))

    def hours_on(self, day: dt.date) -> DayHours:
        """The hours on the local date ``day``: a dated exception, else a holiday, else the weekday.

        When two holidays fall on one date, closed wins, else the one listed first.
        """
        dated = [e for e in self.exceptions if e.date is not None and e.date == day]
        if dated:
            return DayHours(day, dated[0].span, dated[0])
        holidays = [e for e in self.exceptions if e.holiday is not None and e.applies_to(day)]
        if holidays:
            chosen = next((e for e in holidays if e.span is None), holidays[0])
            return DayHours(day, chosen.span, chosen)
        return DayHours(day, self.days[day.weekday()])

    def is_open(self, now: dt.datetime) -> bool:
        """Whether the team is working at ``now`` (an aware datetime)."""
        return self.closes_at(now) is not None

    def closes_at(self, now: dt.datetime) -> Optional[dt.datetime]:
        """When today's span ends, if ``now`` falls inside it."""
        local = now.astimezone(self.timezone)
        span = self.hours_on(local.date()).span
        if span and span[0] <= local.time() < span[1]:
            return self._at(local.date(), span[1])
        return None

    def next_opening(self, now: dt.datetime) -> Optional[dt.datetime]:
        """The next moment the team opens after ``now`` (``None`` if closed for over a year)."""
        local = now.astimezone(self.timezone)
        for offset in range(SEARCH_DAYS):
            day = local.date() + dt.timedelta(days=offset)
            span = self.hours_on(day).span
            if span is None:
                continue
            start = self._at(day, span[0])
            if start > local:
                return start
        return None

    def describe(self, language: str) -> str:
        """A one-line summary of the weekly hours such as ``"ma–vr 08:00–20:00, za 09:00–17:00"``."""
        names = DAY_NAMES.get(language, DAY_NAMES["en"])
        groups: List[Tuple[int, int, Span]] = []
        for index, span in enumerate(self.days):
            if span is None:
                continue
            if groups and groups[-1][2] == span and groups[-1][1] == index - 1:
                groups[-1] = (groups[-1][0], index, span)
            else:
                groups.append((index, index, span))
        parts = []
        for first, last, (start, end) in groups:
            days = names[first][:2] if first == last else f"{names[first][:2]}–{names[last][:2]}"
            parts.append(f"{days} {start:%H:%M}–{end:%H:%M}")
        return ", ".join(parts)

    def _at(self, day: dt.date, time: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, time, tzinfo=self.timezone)


def day_label(moment: dt.datetime, now: dt.datetime, language: str) -> str:
    """"vandaag"/"morgen"/"maandag" or "today"/"tomorrow"/"on Monday", seen from ``now``."""
    language = language if language in DAY_NAMES else "en"
    delta = (moment.date() - now.astimezone(moment.tzinfo).date()).days
    if delta in (0, 1):
        return RELATIVE_DAYS[language][delta]
    name = DAY_NAMES[language][moment.weekday()]
    return f"on {name}" if language == "en" else name


def date_label(day: dt.date, today: dt.date, language: str, preposition: bool = True) -> str:
    """"vandaag"/"morgen"/"zaterdag 28 november" or "today"/"tomorrow"/"on Saturday 28 November".

    ``preposition=False`` leaves out the English "on" (for lists: "Saturday 28 November 09:00–17:00").
    """
    language = language if language in DAY_NAMES else "en"
    delta = (day - today).days
    if delta in (0, 1):
        return RELATIVE_DAYS[language][delta]
    text = f"{DAY_NAMES[language][day.weekday()]} {day.day} {MONTH_NAMES[language][day.month - 1]}"
    return f"on {text}" if language == "en" and preposition else text


# ------------------------------------------------------------------ which day is asked about

_TODAY = {"vandaag", "vanavond", "vanmiddag", "vanochtend", "vanmorgen", "today", "tonight", "tonite"}
_TOMORROW = {"morgen", "morgenochtend", "morgenvroeg", "morgenmiddag", "morgenavond",
             "tomorrow", "tmrw", "tmr", "tomorow", "tommorow"}
_DAY_AFTER_TOMORROW = {"overmorgen"}
_WEEKEND = {"weekend", "weekends", "weekeinde", "weekenden"}
_NEXT = {"next", "volgende", "volgend"}
_WEEKDAY_WORDS: Dict[str, int] = {}
for _index, (_nl, _en) in enumerate(zip(DAY_NAMES["nl"], DAY_NAMES["en"])):
    _WEEKDAY_WORDS.update({_nl: _index, _nl + "s": _index, _en.lower(): _index, _en.lower() + "s": _index})
_WORD = re.compile(r"[^\W\d_]+")


def requested_days(text: Optional[str], today: dt.date) -> Tuple[dt.date, ...]:
    """The local dates a customer's message asks about, in date order; empty when it names no day.

    Dutch and English: "vandaag"/"today", "morgen"/"tomorrow", "overmorgen"/"the day after
    tomorrow", a weekday ("zaterdag", "on Saturday": its next occurrence, today included;
    "next Monday" on a Monday is a week later, "volgende week dinsdag"/"next week Tuesday" is that
    day of next calendar week) and "dit weekend"/"this weekend" (the coming
    Saturday and Sunday, or what is left of the current weekend; "volgend weekend"/"next weekend"
    during a weekend is the one after).
    """
    words = _WORD.findall((text or "").lower())
    days: Set[dt.date] = set()
    for position, word in enumerate(words):
        previous = words[position - 1] if position else ""
        following = words[position + 1: position + 3]
        if word in _DAY_AFTER_TOMORROW or (word == "day" and following == ["after", "tomorrow"]):
            days.add(today + dt.timedelta(days=2))
        elif word in _TOMORROW:
            if previous == "after" and position >= 2 and words[position - 2] == "day":
                continue  # "the day after tomorrow", counted above
            days.add(today + dt.timedelta(days=1))
        elif word in _TODAY:
            days.add(today)
        elif word in _WEEKDAY_WORDS:
            weekday = _WEEKDAY_WORDS[word]
            if previous == "week" and position >= 2 and words[position - 2] in _NEXT:
                # "volgende week dinsdag", "next week Tuesday": that day of next calendar week
                days.add(today + dt.timedelta(days=7 - today.weekday() + weekday))
                continue
            ahead = (weekday - today.weekday()) % 7
            if ahead == 0 and previous in _NEXT:
                ahead = 7
            days.add(today + dt.timedelta(days=ahead))
        elif word in _WEEKEND:
            saturday = today + dt.timedelta(days=(5 - today.weekday()) % 7)
            if today.weekday() == 6:  # Sunday: what is left of this weekend is today
                saturday = today - dt.timedelta(days=1)
            if previous in _NEXT and today.weekday() >= 5:
                saturday += dt.timedelta(days=7)
            days.update(d for d in (saturday, saturday + dt.timedelta(days=1)) if d >= today)
    return tuple(sorted(days))


# ------------------------------------------------------------------ parsing


def _parse_span(day: str, value: object) -> Optional[Span]:
    text = str(value).strip().lower()
    if value is None or text in ("closed", "gesloten", "", "none"):
        return None
    try:
        start_text, end_text = text.split("-")
        start = dt.time.fromisoformat(start_text.strip())
        end = dt.time.fromisoformat(end_text.strip())
    except ValueError as exc:
        raise OpeningHoursError(
            f"opening_hours.{day}: {value!r} is not like '08:00-20:00' or 'closed'"
        ) from exc
    if start >= end:
        raise OpeningHoursError(f"opening_hours.{day}: {value!r} closes before it opens")
    return (start, end)


def _parse_exceptions(config: object) -> Tuple[DayException, ...]:
    """``{"2026-12-25": "closed", "koningsdag": {"hours": "closed"}, ...}`` -> exceptions."""
    if config is None:  # "exceptions:" with every entry commented out
        return ()
    if not isinstance(config, Mapping):
        raise OpeningHoursError(
            "opening_hours.exceptions must map dates or holiday names to hours, "
            f"like '2026-12-25': closed, not {config!r}"
        )
    exceptions: List[DayException] = []
    seen: Dict[object, str] = {}
    for raw_key, value in config.items():
        date, holiday, label = _parse_exception_key(raw_key)
        identity = date or holiday
        if identity in seen:
            raise OpeningHoursError(
                f"opening_hours.exceptions: {label!r} is given twice (also as {seen[identity]!r})"
            )
        seen[identity] = label
        span, names = _parse_exception_value(label, value)
        if not names and holiday is not None:
            names = tuple(sorted(HOLIDAYS[holiday].names.items()))
        exceptions.append(DayException(label, span, names, date, holiday))
    logger.debug("opening hours: %d exception(s)", len(exceptions))
    return tuple(exceptions)


def _parse_exception_key(key: object) -> Tuple[Optional[dt.date], Optional[str], str]:
    """A date (YAML may already have made it a ``date``) or a holiday name -> (date, holiday, label)."""
    if isinstance(key, dt.datetime):
        raise OpeningHoursError(
            f"opening_hours.exceptions: {str(key)!r} has a time of day; give only the date, like '2026-12-25'"
        )
    if isinstance(key, dt.date):
        return key, None, key.isoformat()
    text = str(key).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return dt.date.fromisoformat(text), None, text
        except ValueError:
            raise OpeningHoursError(f"opening_hours.exceptions: {text!r} is not a valid date") from None
    name = re.sub(r"[\s\-]+", "_", text.lower())
    if name in HOLIDAYS:
        return None, name, text
    raise OpeningHoursError(
        f"opening_hours.exceptions: {text!r} is neither a date like '2026-12-25' nor a holiday "
        f"({', '.join(HOLIDAYS)})"
    )


def _parse_exception_value(label: str, value: object) -> Tuple[Optional[Span], Tuple[Tuple[str, str], ...]]:
    """``"closed"``, ``"08:00-16:00"`` or ``{"hours": ..., "name": "Teamdag" | {"nl": ..., "en": ...}}``."""
    where = f"exceptions.{label}"
    if not isinstance(value, Mapping):
        if isinstance(value, (list, tuple, set, bool, int, float)):
            raise OpeningHoursError(f"opening_hours.{where}: {value!r} is not like '08:00-20:00' or 'closed'")
        return _parse_span(where, value), ()
    unknown = set(value) - EXCEPTION_KEYS
    if unknown:
        raise OpeningHoursError(
            f"opening_hours.{where}: unknown key(s) {sorted(map(str, unknown))}; known: hours, name"
        )
    if "hours" not in value:
        raise OpeningHoursError(f"opening_hours.{where}: 'hours' is missing (like '08:00-16:00' or 'closed')")
    hours = value["hours"]
    if isinstance(hours, (list, tuple, set, bool, int, float, Mapping)):
        raise OpeningHoursError(f"opening_hours.{where}.hours: {hours!r} is not like '08:00-20:00' or 'closed'")
    span = _parse_span(f"{where}.hours", hours)
    name = value.get("name")
    if name is None:
        return span, ()
    if isinstance(name, str) and name.strip():
        return span, (("en", name.strip()), ("nl", name.strip()))
    if isinstance(name, Mapping) and name and set(name) <= set(DAY_NAMES) and all(
        isinstance(n, str) and n.strip() for n in name.values()
    ):
        return span, tuple(sorted((str(lang), str(n).strip()) for lang, n in name.items()))
    raise OpeningHoursError(
        f"opening_hours.{where}.name: {name!r} must be a text, or {{nl: ..., en: ...}}"
    )


DEFAULT_OPENING_HOURS: Dict[str, str] = {
    "timezone": "Europe/Amsterdam",
    "monday": "08:00-20:00",
    "tuesday": "08:00-20:00",
    "wednesday": "08:00-20:00",
    "thursday": "08:00-20:00",
    "friday": "08:00-20:00",
    "saturday": "09:00-17:00",
    "sunday": "closed",
}
