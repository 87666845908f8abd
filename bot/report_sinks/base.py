"""The report sink base class."""
from __future__ import annotations

from typing import Any, Dict, Mapping


class ReportSinkError(ValueError):
    """A sink is misconfigured or could not deliver; the message says which and why."""


class ReportSink:
    """Delivers one owner's digest (a JSON-ready dict, see ``bot/digest.py``) somewhere.

    Subclasses implement :meth:`deliver` and, when they take options, :meth:`from_config`
    (the sink's mapping from ``reports.sinks`` without ``type``). Secrets come from environment
    variables named in the options, never from the file.
    """

    type_name = "sink"

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> "ReportSink":
        if options:
            raise ReportSinkError(f"{cls.type_name} sink: unknown option(s) {sorted(options)}")
        return cls()

    async def deliver(self, digest: Dict[str, Any]) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """A short human-readable target (printed by the CLI, stored with the sent digest)."""
        return self.type_name
