"""Per-intent auto-send thresholds from agents' verdicts on drafts (no HTTP here).

A *verdict* is a decided draft with an intent and a confidence (``nlu_fallback`` aside: it is
always drafted). It is **right** when the agent sent the bot's answer (approved), or edited the
wording but kept the intent (no corrected intent, or the same one); **wrong** when they picked
an alternative, edited with another intent, or rejected it. Pending and superseded drafts are
no verdicts.

* :func:`bands`: per intent, per confidence band (:data:`BANDS`), the verdicts and the share right.
* :func:`suggest`: per intent, the lowest threshold ``t`` (on a 0.01 grid, from 0.5) such that
  the verdicts at confidence ≥ ``t`` — what would be auto-sent — number at least
  ``min_verdicts`` and their precision's 95 % Wilson lower bound reaches the target
  (``learning.target_precision``). With fewer verdicts than ``min_verdicts`` the intent keeps
  its current threshold. When no ``t`` reaches the target: if the verdicts at the current
  threshold show it misses the target (their upper bound is below it), the suggestion is 1.0
  (review every reply that is not a button press); otherwise the current threshold stays until
  there is more evidence — never a lower one without evidence.
* :func:`approve` / :func:`remove`: an admin sets or removes an intent's threshold
  (:class:`~bot.store.models.IntentThreshold`, audited, :class:`~bot.events.ThresholdsChanged`);
  it replaces ``drafting.intent_thresholds`` for that intent. Lowering the threshold needs the
  evidence to reach the target at the new value; raising it (stricter) is always allowed.

The maths (:func:`wilson`, :func:`band_rows`, :func:`suggest_for`) are pure functions.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts import Actor
from bot.config import DEFAULTS, Config
from bot.errors import InvalidInput, NotFound
from bot.events import ThresholdsChanged, emit
from bot.pipeline.drafting_policy import FALLBACK_INTENT
from bot.review import decisions
from bot.store.audit import record
from bot.store.models import Draft, DraftStatus, IntentThreshold, User, utcnow

logger = logging.getLogger(__name__)

DEFAULT_TARGET: float = DEFAULTS["learning"]["target_precision"]
DEFAULT_MIN_VERDICTS: int = DEFAULTS["learning"]["min_verdicts"]
DEFAULT_THRESHOLD: float = DEFAULTS["drafting"]["threshold"]
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
MIN_THRESHOLD = 0.5  # no threshold below this is suggested or approved
ALWAYS_REVIEW = 1.0  # only a confidence of exactly 1 (a button the bot offered) is auto-sent
# Confidence bands [low, high); the last one includes 1.0. Finer near the top, where the
# auto-send thresholds live.
BANDS: Tuple[Tuple[float, float], ...] = (
    (0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.0))
VERDICT_STATUSES = (DraftStatus.approved, DraftStatus.edited, DraftStatus.picked, DraftStatus.rejected)


# --------------------------------------------------------------------------- the maths


@dataclass(frozen=True)
class Verdict:
    """An agent's verdict on one draft: the bot's intent and confidence, and whether it was right."""

    intent: str
    confidence: float
    right: bool


def is_right(status: DraftStatus, intent: Optional[str], corrected_intent: Optional[str]) -> bool:
    """Approved as drafted, or edited with the intent kept: right; anything else: wrong."""
    status = DraftStatus(status)
    if status == DraftStatus.approved:
        return True
    if status == DraftStatus.edited:
        return corrected_intent is None or corrected_intent == intent
    return False


def wilson(right: int, n: int, z: float = Z_95) -> Tuple[float, float]:
    """The Wilson score interval of ``right`` successes in ``n`` (``(0, 1)`` when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = right / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if right <= 0 else max(0.0, centre - half)
    high = 1.0 if right >= n else min(1.0, centre + half)
    return low, high


def band_of(confidence: float) -> int:
    """The index in :data:`BANDS` of ``confidence`` (clamped to 0–1)."""
    confidence = min(1.0, max(0.0, confidence))
    for index, (_, high) in enumerate(BANDS):
        if confidence < high:
            return index
    return len(BANDS) - 1


def band_rows(verdicts: Iterable[Verdict]) -> List[Dict[str, Any]]:
    """Per band: ``low``, ``high``, ``n``, ``right`` and ``rate`` (right / n; ``None`` when empty)."""
    counts = [[0, 0] for _ in BANDS]
    for verdict in verdicts:
        index = band_of(verdict.confidence)
        counts[index][0] += 1
        counts[index][1] += int(verdict.right)
    return [{"low": low, "high": high, "n": n, "right": right, "rate": (right / n) if n else None}
            for (low, high), (n, right) in zip(BANDS, counts)]


def _grid(confidence: float) -> float:
    """``confidence`` rounded down to 0.01 (tolerating float noise: 0.57 stays 0.57)."""
    return math.floor(min(1.0, max(0.0, confidence)) * 100 + 1e-9) / 100


@dataclass(frozen=True)
class Evidence:
    """The verdicts that a threshold would have auto-sent, and their precision."""

    threshold: float
    n: int  # verdicts at confidence ≥ threshold
    right: int
    low: float  # 95 % Wilson interval of the precision
    high: float
    verdicts: int  # all verdicts of the intent
    target: float

    @property
    def precision(self) -> Optional[float]:
        return self.right / self.n if self.n else None

    @property
    def auto_send_share(self) -> float:
        """The share of the intent's decided drafts this threshold would have auto-sent."""
        return self.n / self.verdicts if self.verdicts else 0.0

    def meets(self, target: float, min_verdicts: int) -> bool:
        return self.n >= min_verdicts and self.low >= target

    def as_dict(self) -> Dict[str, Any]:
        precision = self.precision
        return {"threshold": self.threshold, "n": self.n, "right": self.right,
                "precision": round(precision, 4) if precision is not None else None,
                "interval": [round(self.low, 4), round(self.high, 4)],
                "auto_send_share": round(self.auto_send_share, 4), "verdicts": self.verdicts,
                "target": self.target}


def evidence_at(verdicts: Sequence[Verdict], threshold: float, target: float = DEFAULT_TARGET) -> Evidence:
    """What the ``verdicts`` (of one intent) say about auto-sending at ``threshold``."""
    sent = [v for v in verdicts if v.confidence >= threshold]
    right = sum(1 for v in sent if v.right)
    low, high = wilson(right, len(sent))
    return Evidence(threshold, len(sent), right, low, high, len(verdicts), target)


@dataclass(frozen=True)
class Suggestion:
    """What :func:`suggest_for` advises for one intent.

    ``action``: ``set`` (apply ``threshold``), ``keep`` (the current threshold stays: too few
    verdicts, or not enough evidence for any threshold yet) or ``always_review`` (``threshold``
    1.0: the current one evidently misses the target and no threshold reaches it).
    """

    intent: str
    action: str
    threshold: Optional[float]
    current: float
    reason: str
    verdicts: int
    evidence: Optional[Evidence] = None

    def as_dict(self) -> Dict[str, Any]:
        change = None
        if self.threshold is not None:
            change = ("same" if self.threshold == self.current
                      else "lower" if self.threshold < self.current else "higher")
        return {"intent": self.intent, "action": self.action, "threshold": self.threshold,
                "current": self.current, "change": change, "reason": self.reason, "verdicts": self.verdicts,
                "evidence": self.evidence.as_dict() if self.evidence is not None else None}


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _describe(evidence: Evidence) -> str:
    return (f"{evidence.right} of {evidence.n} right at {evidence.threshold:.2f} or above "
            f"(95 % interval {_pct(evidence.low)}–{_pct(evidence.high)})")


def suggest_for(intent: str, verdicts: Sequence[Verdict], *, target: float = DEFAULT_TARGET,
                min_verdicts: int = DEFAULT_MIN_VERDICTS, current: float = DEFAULT_THRESHOLD,
                current_source: str = "global") -> Suggestion:
    """The threshold to suggest for ``intent`` from its ``verdicts`` (see the module docstring)."""
    total = len(verdicts)
    keep = f"keep the {current_source} threshold {current:.2f}"
    if total < min_verdicts:
        return Suggestion(intent, "keep", None, current,
                          f"only {total} verdict{'s' if total != 1 else ''} ({min_verdicts} needed): {keep}",
                          total)
    candidates = sorted({_grid(v.confidence) for v in verdicts if v.confidence >= MIN_THRESHOLD}, reverse=True)
    ordered = sorted(verdicts, key=lambda v: v.confidence, reverse=True)
    found: List[Evidence] = []
    n = right = 0
    for threshold in candidates:  # descending: each adds the verdicts between it and the last
        while n < len(ordered) and ordered[n].confidence >= threshold:
            right += int(ordered[n].right)
            n += 1
        low, high = wilson(right, n)
        found.append(Evidence(threshold, n, right, low, high, total, target))
    passing = [e for e in found if e.meets(target, min_verdicts)]
    if passing:
        best = min(passing, key=lambda e: e.threshold)
        return Suggestion(intent, "set", best.threshold, current,
                          f"{_describe(best)}: the lower bound reaches the target {_pct(target)}; "
                          f"{_pct(best.auto_send_share)} of its drafts would have been auto-sent",
                          total, best)
    at_current = evidence_at(verdicts, current, target)
    if at_current.n >= min_verdicts and at_current.high < target:
        return Suggestion(intent, "always_review", ALWAYS_REVIEW, current,
                          f"{_describe(at_current)}: the current threshold misses the target {_pct(target)} "
                          f"and no threshold reaches it: review every reply (1.00)", total, at_current)
    best_seen = max(found, key=lambda e: (e.n >= min_verdicts, e.low), default=None)
    detail = f"{_describe(best_seen)} at best" if best_seen is not None else "no verdict at 0.50 or above"
    return Suggestion(intent, "keep", None, current,
                      f"no threshold reaches the target {_pct(target)} yet ({detail}): {keep} until "
                      f"there are more verdicts", total, best_seen)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ThresholdSettings:
    """What suggestions and approvals are measured against: ``learning`` and ``drafting``."""

    target: float = DEFAULT_TARGET
    min_verdicts: int = DEFAULT_MIN_VERDICTS
    global_threshold: float = DEFAULT_THRESHOLD
    configured: Mapping[str, float] = field(default_factory=dict)  # drafting.intent_thresholds
    always_review: FrozenSet[str] = frozenset()

    @classmethod
    def from_config(cls, config: Config) -> "ThresholdSettings":
        return cls(target=config.learning.target_precision, min_verdicts=config.learning.min_verdicts,
                   global_threshold=config.drafting.threshold,
                   configured=dict(config.drafting.intent_thresholds),
                   always_review=frozenset(config.drafting.always_review))

    def current(self, intent: str, approved_thresholds: Mapping[str, float]) -> Tuple[float, str]:
        """The threshold ``intent`` has now (before channel rules), and where it comes from."""
        if intent in approved_thresholds:
            return approved_thresholds[intent], "approved"
        if intent in self.configured:
            return self.configured[intent], "configured"
        return self.global_threshold, "global"


# --------------------------------------------------------------------------- reading


def verdicts(session: Session, intent: Optional[str] = None) -> Dict[str, List[Verdict]]:
    """Every verdict, per intent (of one ``intent`` only, if given)."""
    query = (select(Draft.intent, Draft.confidence, Draft.status, Draft.corrected_intent)
             .where(Draft.status.in_(VERDICT_STATUSES), Draft.intent.is_not(None),
                    Draft.confidence.is_not(None), Draft.intent != FALLBACK_INTENT))
    if intent is not None:
        query = query.where(Draft.intent == intent)
    found: Dict[str, List[Verdict]] = {}
    for name, confidence, status, corrected in session.execute(query):
        found.setdefault(name, []).append(Verdict(name, float(confidence), is_right(status, name, corrected)))
    return found


def bands(session: Session, intent: Optional[str] = None) -> Dict[str, List[Dict[str, Any]]]:
    """Per intent (sorted by name), per band of :data:`BANDS`: n, right and the share right."""
    return {name: band_rows(found) for name, found in sorted(verdicts(session, intent).items())}


def approved(session: Session) -> Dict[str, float]:
    """The approved threshold of every intent that has one."""
    return {intent: float(threshold) for intent, threshold in
            session.execute(select(IntentThreshold.intent, IntentThreshold.threshold))}


def suggest(session: Session, target: float = DEFAULT_TARGET, min_verdicts: int = DEFAULT_MIN_VERDICTS,
            global_threshold: float = DEFAULT_THRESHOLD,
            configured: Optional[Mapping[str, float]] = None) -> List[Suggestion]:
    """A :class:`Suggestion` per intent with verdicts, most verdicts first. An intent's current
    threshold is its approved one, else ``configured`` (``drafting.intent_thresholds``), else
    ``global_threshold``."""
    settings = ThresholdSettings(target, min_verdicts, global_threshold, dict(configured or {}))
    return _suggestions(verdicts(session), approved(session), settings)


def _suggestions(found: Mapping[str, Sequence[Verdict]], approved_thresholds: Mapping[str, float],
                 settings: ThresholdSettings) -> List[Suggestion]:
    suggestions = []
    for name, intent_verdicts in found.items():
        current, source = settings.current(name, approved_thresholds)
        suggestions.append(suggest_for(name, intent_verdicts, target=settings.target,
                                       min_verdicts=settings.min_verdicts, current=current,
                                       current_source=source))
    return sorted(suggestions, key=lambda s: (-s.verdicts, s.intent))


def _approved_rows(session: Session) -> Dict[str, Dict[str, Any]]:
    rows = session.execute(
        select(IntentThreshold, User.display_name).outerjoin(User, User.id == IntentThreshold.approved_by)
    ).all()
    return {row.intent: {"threshold": float(row.threshold), "evidence": dict(row.evidence or {}),
                         "approved_by": ({"id": row.approved_by, "display_name": name}
                                         if row.approved_by is not None else None),
                         "approved_at": row.approved_at.isoformat()}
            for row, name in rows}


def overview(session: Session, settings: ThresholdSettings) -> Dict[str, Any]:
    """Everything the thresholds page shows: per intent its bands, suggestion, approved and
    current threshold (intents with most verdicts first; approved ones without verdicts last)."""
    found = verdicts(session)
    approved_rows = _approved_rows(session)
    approved_thresholds = {intent: row["threshold"] for intent, row in approved_rows.items()}
    suggestions = {s.intent: s for s in _suggestions(found, approved_thresholds, settings)}
    names = list(suggestions) + sorted(set(approved_rows) - set(suggestions))
    intents = []
    for name in names:
        current, source = settings.current(name, approved_thresholds)
        suggestion = suggestions.get(name)
        intent_verdicts = found.get(name, [])
        intents.append({
            "intent": name,
            "verdicts": len(intent_verdicts),
            "right": sum(1 for v in intent_verdicts if v.right),
            "bands": band_rows(intent_verdicts),
            "suggestion": suggestion.as_dict() if suggestion is not None else None,
            "approved": approved_rows.get(name),
            "configured": settings.configured.get(name),
            "current": current,
            "current_source": source,
            "always_review": name in settings.always_review,
        })
    return {"target": settings.target, "min_verdicts": settings.min_verdicts,
            "global_threshold": settings.global_threshold, "min_threshold": MIN_THRESHOLD,
            "bands": [{"low": low, "high": high} for low, high in BANDS],
            "intents": intents, "approved": approved_thresholds}


# --------------------------------------------------------------------------- changing


def clean_intent(intent: Any) -> str:
    """An intent name (the agents' rule: :func:`bot.review.decisions.clean_intent`), not the
    fallback intent, which is always reviewed."""
    name = decisions.clean_intent(intent)
    if name is None:
        raise InvalidInput("the intent must be a non-empty name")
    if name == FALLBACK_INTENT:
        raise InvalidInput(f"'{FALLBACK_INTENT}' is always reviewed; it has no threshold")
    return name


def clean_threshold(threshold: Any) -> float:
    """A threshold between :data:`MIN_THRESHOLD` and 1."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise InvalidInput(f"the threshold must be a number between {MIN_THRESHOLD} and 1, not {threshold!r}",
                           field="threshold")
    if not MIN_THRESHOLD <= float(threshold) <= 1.0:
        raise InvalidInput(f"the threshold must be between {MIN_THRESHOLD} and 1, not {threshold}", field="threshold")
    return round(float(threshold), 4)


def approve(session: Session, admin: Actor, intent: str, threshold: float,
            settings: Optional[ThresholdSettings] = None) -> Dict[str, Any]:
    """Set ``intent``'s auto-send threshold (an admin's approval; the web layer checks the role).

    The evidence stored with it is computed here from the verdicts at ``threshold`` (never
    taken from the caller). A threshold lower than the intent's current one is refused
    (:class:`InvalidInput`) unless that evidence reaches the target; a higher one is always
    accepted: it only sends fewer replies unreviewed.
    """
    settings = settings or ThresholdSettings()
    intent, threshold = clean_intent(intent), clean_threshold(threshold)
    existing = session.get(IntentThreshold, intent, with_for_update=True)
    approved_thresholds = approved(session)
    current, source = settings.current(intent, approved_thresholds)
    evidence = evidence_at(verdicts(session, intent).get(intent, []), threshold, settings.target)
    if threshold < current and not evidence.meets(settings.target, settings.min_verdicts):
        raise InvalidInput(
            f"{threshold:.2f} is below the {source} threshold {current:.2f} and the verdicts do not "
            f"support it: {_describe(evidence)}; {settings.min_verdicts} verdicts with a lower bound of at "
            f"least {_pct(settings.target)} are needed", evidence=evidence.as_dict())
    details = {**evidence.as_dict(), "min_verdicts": settings.min_verdicts, "replaced": {"threshold": current,
                                                                                        "source": source}}
    before = ({"threshold": existing.threshold, "evidence": existing.evidence, "approved_by": existing.approved_by,
               "approved_at": existing.approved_at.isoformat()} if existing is not None else None)
    now = utcnow()
    if existing is None:
        existing = IntentThreshold(intent=intent)
        session.add(existing)
    existing.threshold, existing.evidence = threshold, details
    existing.approved_by, existing.approved_at = admin.id, now
    session.flush()
    after = {"threshold": threshold, "evidence": details, "approved_by": admin.id, "approved_at": now.isoformat()}
    record(session, admin.id, "threshold.approve", "intent_threshold", None,
           {"intent": intent, "before": before, "after": after})
    emit(session, ThresholdsChanged(intent, threshold))
    logger.info("intent %s: auto-send threshold %.2f approved by %s (was %s %.2f)",
                intent, threshold, admin.display_name, source, current)
    return {"intent": intent, "threshold": threshold, "evidence": details,
            "approved_by": {"id": admin.id, "display_name": admin.display_name}, "approved_at": now.isoformat()}


def remove(session: Session, admin: Actor, intent: str) -> Dict[str, Any]:
    """Drop ``intent``'s approved threshold: the configured (or global) one applies again."""
    intent = clean_intent(intent)
    existing = session.get(IntentThreshold, intent, with_for_update=True)
    if existing is None:
        raise NotFound(f"intent {intent!r} has no approved threshold")
    before = {"threshold": existing.threshold, "evidence": existing.evidence, "approved_by": existing.approved_by,
              "approved_at": existing.approved_at.isoformat()}
    session.delete(existing)
    session.flush()
    record(session, admin.id, "threshold.remove", "intent_threshold", None,
           {"intent": intent, "before": before, "after": None})
    emit(session, ThresholdsChanged(intent, None))
    logger.info("intent %s: approved threshold %.2f removed by %s", intent, before["threshold"], admin.display_name)
    return {"intent": intent, "removed": before}
