"""The drafting policy: send a bot reply straight away, or let an agent review it first.

Plain code, configured in ``webcare.yml`` under ``drafting``::

    drafting:
      threshold: 0.8                    # global minimum confidence to auto-send
      intent_thresholds: {tariffs: 0.9} # replaces the global threshold for that intent
      channel_thresholds: {webhook: 0.95}  # a channel may raise the bar, never lower it
      public_thresholds: {facebook: 0.97}  # public replies auto-sent only where named here
      always_review: [complaint, cancel_contract, payment_arrangement]
      review_customer_flags: [vip, sensitive]

Order of the rules: ``human`` mode → the bot stays silent; ``assist`` mode → draft;
a public reply (a comment everyone reads) on a channel without a public threshold → draft;
not understood (``nlu_fallback``) → draft; always-reviewed intent → draft; a flagged
customer → draft; confidence below the effective threshold → draft; else auto-send.

Thresholds an admin approved from agents' verdicts (``intent_thresholds`` rows,
:mod:`bot.learning.thresholds`) replace the configured ``intent_thresholds`` for their intent;
channel and public thresholds still only raise them. The policy keeps them in
:class:`LearnedThresholds`: set at once in the process that approved one (the service applies
:class:`~bot.events.ThresholdsChanged`), re-read from the store every
:data:`REFRESH_SECONDS` by every replica's worker (:meth:`LearnedThresholds.run`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Union

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import DraftingConfig
from bot.store.models import IntentThreshold, Mode

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
REFRESH_SECONDS = 15.0  # approved thresholds reach every replica within this long


class LearnedThresholds:
    """The approved per-intent thresholds, as this process last read or was told them.

    Read by :meth:`DraftingPolicy.threshold_for` in the store's threads; written by the refresh
    task and the :class:`~bot.events.ThresholdsChanged` listener on the event loop. Every write
    swaps in a new dict (readers never see one half-updated); a refresh that read the store
    before a local change does not undo it.
    """

    def __init__(self, values: Optional[Mapping[str, float]] = None) -> None:
        self._values: Dict[str, float] = dict(values or {})
        self._version = 0  # bumped by every local change
        self._lock = threading.Lock()
        self.loaded_at: Optional[float] = None  # time.monotonic() of the last refresh

    def get(self, intent: Optional[str]) -> Optional[float]:
        """The approved threshold of ``intent``, if any."""
        return self._values.get(intent or "")

    def snapshot(self) -> Dict[str, float]:
        return dict(self._values)

    def set(self, intent: str, threshold: Optional[float]) -> None:
        """Apply one approval (``threshold``) or removal (``None``) made in this process."""
        with self._lock:
            values = dict(self._values)
            if threshold is None:
                values.pop(intent, None)
            else:
                values[intent] = float(threshold)
            self._values = values
            self._version += 1

    def load(self, session: Session) -> Dict[str, float]:
        """Re-read every approved threshold from the store (a unit of work for ``Store.run``)."""
        version = self._version
        rows = session.execute(select(IntentThreshold.intent, IntentThreshold.threshold)).all()
        values = {intent: float(threshold) for intent, threshold in rows}
        with self._lock:
            if self._version == version:  # else a local change came meanwhile: the next refresh
                self._values = values
            self.loaded_at = time.monotonic()
        return values

    async def run(self, store: Any, interval: float = REFRESH_SECONDS) -> None:
        """Refresh from ``store`` (a :class:`bot.store.database.Store`) every ``interval``
        seconds; a failed refresh keeps the thresholds last read."""
        while True:
            await asyncio.sleep(interval)
            try:
                await store.run(self.load)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("drafting policy: re-reading the approved thresholds failed; "
                                 "keeping the ones read before")


@dataclass(frozen=True)
class Decision:
    """What to do with the bot's reply to one customer message."""

    auto_send: bool
    reason: str
    silent: bool = False  # human mode: no bot reply at all, not even a draft


@dataclass(frozen=True)
class DraftingPolicy(DraftingConfig):
    """The ``drafting`` settings (:class:`bot.config.DraftingConfig`), the approved per-intent
    thresholds (``learned``) and the rules above."""

    learned: LearnedThresholds = field(default_factory=LearnedThresholds, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Union[DraftingConfig, Mapping[str, Any]],
                    learned: Optional[LearnedThresholds] = None) -> "DraftingPolicy":
        """Build from the typed ``drafting`` section (a mapping is validated first:
        :class:`bot.config.SettingError` when it is invalid)."""
        settings = config if isinstance(config, DraftingConfig) else DraftingConfig.parse(config)
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(DraftingConfig)},
                   learned=learned if learned is not None else LearnedThresholds())

    def base_threshold(self, intent: Optional[str]) -> float:
        """The threshold of ``intent`` before channel rules: approved, else configured, else global."""
        approved = self.learned.get(intent)
        if approved is not None:
            return approved
        return self.intent_thresholds.get(intent or "", self.threshold)

    def threshold_for(self, intent: Optional[str], channel: str, public: bool = False) -> float:
        """The confidence an ``intent`` on ``channel`` needs to be auto-sent (``public``: in a
        comment thread; never below the private threshold)."""
        base = self.base_threshold(intent)
        private = max(base, self.channel_thresholds.get(channel, 0.0))
        return max(private, self.public_thresholds.get(channel, 0.0)) if public else private

    def decide(
        self,
        *,
        intent: Optional[str],
        confidence: float,
        mode: Mode,
        channel: str,
        customer_flags: Iterable[str] = (),
        public: bool = False,
    ) -> Decision:
        """Auto-send or draft, with the reason shown to the agent."""
        if mode == Mode.human:
            return Decision(False, "a human holds this conversation", silent=True)
        if mode == Mode.assist:
            return Decision(False, "assist mode: every reply is reviewed")
        if public and channel not in self.public_thresholds:
            return Decision(False, "a public reply: reviewed before everyone can read it")
        if not intent or intent == FALLBACK_INTENT:
            return Decision(False, "the bot did not understand the message")
        if intent in self.always_review:
            return Decision(False, f"'{intent}' is always reviewed")
        flagged = sorted(set(customer_flags) & self.review_customer_flags)
        if flagged:
            return Decision(False, f"customer flagged {', '.join(flagged)}")
        needed = self.threshold_for(intent, channel, public)
        if confidence < needed:
            return Decision(False, f"confidence {confidence:.2f} below {needed:.2f}")
        return Decision(True, f"confidence {confidence:.2f} ≥ {needed:.2f}")
