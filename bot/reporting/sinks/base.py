"""The report sink base class."""
from __future__ import annotations

from typing import Any, Collection, Dict, Mapping, Optional


class ReportSinkError(ValueError):
    """A sink is misconfigured or could not deliver; the message says which and why."""


class ReportSink:
    """Delivers one owner's digest (a JSON-ready dict, see ``bot/reporting/digest.py``) somewhere.

    Subclasses implement :meth:`deliver` and, when they take options, :meth:`from_config`
    (the sink's mapping from ``reports.sinks`` without ``type``). Secrets come from environment
    variables named in the options, never from the file. A sink that keeps the digests it
    delivered where webcare can reach them implements :meth:`erase_comments` (GDPR erase).
    """

    type_name = "sink"

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> "ReportSink":
        if options:
            raise ReportSinkError(f"{cls.type_name} sink: unknown option(s) {sorted(options)}")
        return cls()

    async def deliver(self, digest: Dict[str, Any]) -> None:
        raise NotImplementedError

    async def erase_comments(self, contact_ids: Collection[int], texts: Collection[str] = ()) -> Optional[int]:
        """GDPR erase: blank these contacts' CSAT comments in the digests this sink keeps
        (``bot.reporting.digest_format.redact_words``); how many digests changed, or None when what was delivered
        cannot be reached any more (sent elsewhere: the default)."""
        return None

    def describe(self) -> str:
        """A short human-readable target (printed by the CLI, stored with the sent digest)."""
        return self.type_name
