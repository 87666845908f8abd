"""Opening hours of the webcare team: are we open now, when do we close, when do we open."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple
from zoneinfo import ZoneInfo

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DAY_NAMES = {
    "nl": ["maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}
RELATIVE_DAYS = {"nl": ("vandaag", "morgen"), "en": ("today", "tomorrow")}

Span = Tuple[dt.time, dt.time]


class OpeningHoursError(ValueError):
    """The opening hours in the configuration cannot be understood."""


@dataclass(frozen=True)
class OpeningHours:
    """Weekly opening hours in one time zone (one span per day, or closed)."""

    timezone: ZoneInfo
    days: Tuple[Optional[Span], ...]  # index 0 = Monday

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> "OpeningHours":
        """Build from ``{"timezone": "Europe/Amsterdam", "monday": "08:00-20:00", "sunday": "closed"}``."""
        unknown = set(config) - set(WEEKDAYS) - {"timezone"}
        if unknown:
            raise OpeningHoursError(f"unknown keys in opening_hours: {sorted(unknown)}")
        try:
            zone = ZoneInfo(str(config.get("timezone", "Europe/Amsterdam")))
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError
            raise OpeningHoursError(f"unknown time zone {config.get('timezone')!r}") from exc
        return cls(zone, tuple(_parse_span(day, config.get(day, "closed")) for day in WEEKDAYS))

    def is_open(self, now: dt.datetime) -> bool:
        """Whether the team is working at ``now`` (an aware datetime)."""
        return self.closes_at(now) is not None

    def closes_at(self, now: dt.datetime) -> Optional[dt.datetime]:
        """When today's span ends, if ``now`` falls inside it."""
        local = now.astimezone(self.timezone)
        span = self.days[local.weekday()]
        if span and span[0] <= local.time() < span[1]:
            return _at(local, span[1])
        return None

    def next_opening(self, now: dt.datetime) -> Optional[dt.datetime]:
        """The next moment the team opens after ``now`` (``None`` if always closed)."""
        local = now.astimezone(self.timezone)
        for offset in range(8):
            day = local + dt.timedelta(days=offset)
            span = self.days[day.weekday()]
            if span is None:
                continue
            start = _at(day, span[0])
            if start > local:
                return start
        return None

    def describe(self, language: str) -> str:
        """A one-line summary such as ``"ma–vr 08:00–20:00, za 09:00–17:00"``."""
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


def day_label(moment: dt.datetime, now: dt.datetime, language: str) -> str:
    """"vandaag"/"morgen"/"maandag" or "today"/"tomorrow"/"on Monday", seen from ``now``."""
    language = language if language in DAY_NAMES else "en"
    delta = (moment.date() - now.astimezone(moment.tzinfo).date()).days
    if delta in (0, 1):
        return RELATIVE_DAYS[language][delta]
    name = DAY_NAMES[language][moment.weekday()]
    return f"on {name}" if language == "en" else name


def _at(day: dt.datetime, time: dt.time) -> dt.datetime:
    return day.replace(hour=time.hour, minute=time.minute, second=0, microsecond=0)


def _parse_span(day: str, value: object) -> Optional[Span]:
    text = str(value).strip().lower()
    if text in ("closed", "gesloten", "", "none"):
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
