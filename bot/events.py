"""Events: what a committed unit of work caused, published once to the listeners that care.

A domain function emits an event on its session (:func:`emit`); the store publishes the
session's events after the transaction committed (a rolled-back unit of work publishes
nothing). The composition root (:mod:`bot.service`) subscribes the listeners: the outbox
dispatcher wakes when something was queued, the tracker sync when Rasa events were queued,
the CRM enrichment runs when a case opened, and so on. No handler has to remember any of it.

This module is a leaf: it imports nothing of webcare's, so every layer may use it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Type, TypeVar

logger = logging.getLogger(__name__)

SESSION_KEY = "webcare.events"  # where a session keeps the events of its unit of work


class Event:
    """Base class of webcare's events (frozen dataclasses)."""


@dataclass(frozen=True)
class OutboxQueued(Event):
    """An outbound message was committed to the outbox."""

    channel: str


@dataclass(frozen=True)
class TrackerEventsQueued(Event):
    """Events for a Rasa tracker (pause, resume, an agent's reply) were queued."""

    rasa_sender_id: str


@dataclass(frozen=True)
class CaseOpened(Event):
    """A case was opened, or its customer changed: its CRM profile and Rasa slots are due."""

    case_id: int


@dataclass(frozen=True)
class ConversationReleased(Event):
    """A conversation's lease was given back: messages that arrived meanwhile can be claimed."""

    conversation_id: int


@dataclass(frozen=True)
class IdentifyRequested(Event):
    """An action asked to find the customer in the CRM (``request``: customer number, or
    postcode + house number) for the conversation's latest message."""

    conversation_id: int
    message_id: int
    request: Mapping[str, Any]


@dataclass(frozen=True)
class KnownIssuesChanged(Event):
    """A known issue was opened or resolved (its fix announcement started): the bot's
    answers change, and the broadcaster may have deliveries to fill."""

    known_issue_id: int


@dataclass(frozen=True)
class ThresholdsChanged(Event):
    """An admin approved (``threshold``) or removed (``None``) an intent's auto-send threshold:
    the drafting policy of this process applies it at once (other replicas within seconds)."""

    intent: str
    threshold: Optional[float]


E = TypeVar("E", bound=Event)
Listener = Callable[[Any], None]


def emit(session: Any, event: Event) -> None:
    """Remember ``event`` on ``session``: published once its transaction has committed."""
    session.info.setdefault(SESSION_KEY, []).append(event)


def take(session: Any) -> List[Event]:
    """The events recorded on ``session`` (and forget them)."""
    return session.info.pop(SESSION_KEY, [])


class EventBus:
    """Delivers events to the listeners subscribed to their type.

    The store publishes in the thread that awaited the unit of work (:meth:`Store.run`: the
    service's event loop), so listeners may touch asyncio objects. A listener that fails is
    logged; the others still get the event.
    """

    def __init__(self) -> None:
        self._listeners: Dict[Type[Event], List[Listener]] = {}

    def subscribe(self, kind: Type[E], listener: Callable[[E], None]) -> None:
        """Call ``listener(event)`` for every published event of type ``kind``."""
        self._listeners.setdefault(kind, []).append(listener)

    def publish(self, events: List[Event]) -> None:
        """Deliver ``events``, in order, to their listeners."""
        for event in events:
            for listener in self._listeners.get(type(event), ()):
                try:
                    listener(event)
                except Exception:
                    logger.exception("listener %r failed on %r", listener, event)
