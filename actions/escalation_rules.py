"""When does a conversation go to a human without the customer asking? Plain, testable rules.

Works on the event dicts of a ``rasa_sdk.Tracker`` (as the action server receives them).
Only the part of the conversation after the latest ``resume``, ``restart`` or
``session_started`` counts: once an agent hands the conversation back to the bot, counting
starts again. A reason that already fired in that part does not fire again.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set

import yaml

from actions.sentiment import score_message

PROFANITY = "profanity"
NEGATIVE_SENTIMENT = "negative_sentiment"
LOW_CONFIDENCE = "low_confidence"
REPEATED_QUESTION = "repeated_question"
REASONS = (PROFANITY, NEGATIVE_SENTIMENT, REPEATED_QUESTION, LOW_CONFIDENCE)

SLOT = "escalation_reason"
DETAILS_SLOT = "escalation_details"
RESET_EVENTS = {"resume", "restart", "session_started"}
FALLBACK_INTENT = "nlu_fallback"
# Intents the bot answers with information: asking one of these again means the answer
# did not help. Chitchat (greet, thank, affirm, ...) repeats naturally.
INFORMATIONAL_INTENTS = frozenset({
    "bill_too_high", "change_advance_payment", "payment_arrangement", "refund_status",
    "submit_meter_reading", "report_outage", "moving_house", "cancel_contract", "tariffs",
    "change_bank_details", "login_problem", "solar_feed_in", "contact_hours",
})
CHITCHAT_INTENTS = frozenset({"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge"})
# The dialogue hands these over itself (action_handover, with its own visible text).
HANDED_OVER_BY_DIALOGUE = frozenset({"complaint", "request_human"})
NEAR_IDENTICAL = 0.8          # token Jaccard similarity of two customer messages
MIN_TOKENS = 3
DEFAULT_FALLBACK_THRESHOLD = 0.35


def fallback_threshold(config: Optional[Path] = None) -> float:
    """The FallbackClassifier threshold of config.yml (the same notion of "low confidence")."""
    path = config or Path(__file__).resolve().parents[1] / "config.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return DEFAULT_FALLBACK_THRESHOLD
    for component in data.get("pipeline") or []:
        if isinstance(component, dict) and component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", DEFAULT_FALLBACK_THRESHOLD))
    return DEFAULT_FALLBACK_THRESHOLD


@dataclass(frozen=True)
class Turn:
    """One customer message, with what the conversation looked like around it."""

    text: str
    intent: Optional[str]
    confidence: float
    in_loop: bool = False        # a form was active (the message answered its question)
    answered: bool = False       # the bot said something (visible) after it

    @property
    def is_button(self) -> bool:
        return self.text.startswith("/")


@dataclass(frozen=True)
class Escalation:
    reason: str
    details: Dict[str, Any] = field(default_factory=dict)


def _reset_index(events: Sequence[Mapping[str, Any]]) -> int:
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") in RESET_EVENTS:
            return index + 1
    return 0


def turns_since_reset(events: Sequence[Mapping[str, Any]]) -> List[Turn]:
    """The customer turns after the latest resume/restart/session start, oldest first."""
    start = _reset_index(events)
    loop: Optional[str] = None
    turns: List[Dict[str, Any]] = []
    for index, event in enumerate(events):
        kind = event.get("event")
        if kind == "active_loop":
            loop = event.get("name") or None
        elif kind in ("restart", "session_started"):
            loop = None
        if index < start:
            continue
        if kind == "user":
            parse = event.get("parse_data") or {}
            intent = parse.get("intent") or {}
            turns.append({
                "text": event.get("text") or "",
                "intent": intent.get("name"),
                "confidence": float(intent.get("confidence") or 0.0),
                "in_loop": loop is not None,
                "answered": False,
            })
        elif kind == "bot" and turns and (event.get("text") or "").strip():
            turns[-1]["answered"] = True
    return [Turn(**turn) for turn in turns]


def reasons_fired_since_reset(events: Sequence[Mapping[str, Any]]) -> Set[str]:
    return {
        e.get("value") for e in events[_reset_index(events):]
        if e.get("event") == "slot" and e.get("name") == SLOT and e.get("value")
    }


def escalated_this_turn(events: Sequence[Mapping[str, Any]]) -> bool:
    """Whether this customer message already escalated (slot mappings re-run at form activation)."""
    for event in reversed(events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "slot" and event.get("name") == SLOT and event.get("value"):
            return True
    return False


def is_low_confidence(turn: Turn, threshold: float) -> bool:
    return turn.intent in (None, FALLBACK_INTENT) or turn.confidence < threshold


def normalised_tokens(text: str) -> Set[str]:
    return set(re.findall(r"\w+", text.lower()))


def similarity(a: str, b: str) -> float:
    ta, tb = normalised_tokens(a), normalised_tokens(b)
    if len(ta) < MIN_TOKENS or len(tb) < MIN_TOKENS:
        return 0.0
    return len(ta & tb) / len(ta | tb)


def sentiment_escalation(text: str) -> Optional[Escalation]:
    result = score_message(text)
    if result.profanity:
        return Escalation(PROFANITY, {"matched": list(result.profane_words), "score": result.score})
    if result.strong_negative:
        return Escalation(NEGATIVE_SENTIMENT, {"matched": list(result.matched), "score": result.score})
    return None


def low_confidence_escalation(turns: Sequence[Turn], threshold: float) -> Optional[Escalation]:
    """This turn and the customer's previous turn were both not understood."""
    if len(turns) < 2:
        return None
    previous, current = turns[-2], turns[-1]
    if previous.in_loop or previous.is_button:
        return None
    if is_low_confidence(previous, threshold) and is_low_confidence(current, threshold):
        return Escalation(LOW_CONFIDENCE, {
            "intents": [previous.intent, current.intent],
            "confidences": [round(previous.confidence, 3), round(current.confidence, 3)],
            "threshold": threshold,
        })
    return None


def repeated_question_escalation(turns: Sequence[Turn], threshold: float) -> Optional[Escalation]:
    """The customer asks again what the bot already answered."""
    current = turns[-1]
    earlier = [t for t in turns[:-1] if t.answered and not t.in_loop and not t.is_button]
    understood = not is_low_confidence(current, threshold)
    if understood and current.intent in INFORMATIONAL_INTENTS:
        for turn in earlier:
            if turn.intent == current.intent and not is_low_confidence(turn, threshold):
                return Escalation(REPEATED_QUESTION, {"intent": current.intent, "previous_text": turn.text})
    if understood and current.intent in CHITCHAT_INTENTS:
        return None  # "ja, dank je" twice is not a repeated question
    for turn in earlier:
        score = similarity(turn.text, current.text)
        if score >= NEAR_IDENTICAL:
            return Escalation(REPEATED_QUESTION, {
                "intent": current.intent, "previous_text": turn.text, "similarity": round(score, 2),
            })
    return None


def detect_escalation(
    events: Sequence[Mapping[str, Any]],
    threshold: float = DEFAULT_FALLBACK_THRESHOLD,
) -> Optional[Escalation]:
    """The escalation the latest customer message calls for, if any.

    ``events`` are the conversation's events up to and including that message. The caller
    skips paused conversations; button payloads ("/affirm") never escalate.
    """
    turns = turns_since_reset(events)
    if not turns:
        return None
    current = turns[-1]
    if current.is_button or current.intent in HANDED_OVER_BY_DIALOGUE:
        return None
    fired = reasons_fired_since_reset(events)
    candidates: Iterable[Optional[Escalation]] = (
        sentiment_escalation(current.text),
        None if current.in_loop else repeated_question_escalation(turns, threshold),
        None if current.in_loop else low_confidence_escalation(turns, threshold),
    )
    for escalation in candidates:
        if escalation is not None and escalation.reason not in fired:
            return escalation
    return None
