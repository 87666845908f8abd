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
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Union

from bot.config import DraftingConfig
from bot.store.models import Mode

FALLBACK_INTENT = "nlu_fallback"


@dataclass(frozen=True)
class Decision:
    """What to do with the bot's reply to one customer message."""

    auto_send: bool
    reason: str
    silent: bool = False  # human mode: no bot reply at all, not even a draft


@dataclass(frozen=True)
class DraftingPolicy(DraftingConfig):
    """The ``drafting`` settings (:class:`bot.config.DraftingConfig`) and the rules above."""

    @classmethod
    def from_config(cls, config: Union[DraftingConfig, Mapping[str, Any]]) -> "DraftingPolicy":
        """Build from the typed ``drafting`` section (a mapping is validated first:
        :class:`bot.config.SettingError` when it is invalid)."""
        settings = config if isinstance(config, DraftingConfig) else DraftingConfig.parse(config)
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(DraftingConfig)})

    def threshold_for(self, intent: Optional[str], channel: str, public: bool = False) -> float:
        """The confidence an ``intent`` on ``channel`` needs to be auto-sent (``public``: in a
        comment thread; never below the private threshold)."""
        base = self.intent_thresholds.get(intent or "", self.threshold)
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
