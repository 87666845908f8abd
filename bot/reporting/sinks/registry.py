"""Find and build the configured report sinks (entry point name or dotted path)."""
from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Type

from bot.plugins import plugin_class
from bot.reporting.sinks.base import ReportSink, ReportSinkError

ENTRY_POINT_GROUP = "webcare.report_sinks"

# The built-in sinks, also registered as entry points in pyproject.toml; listed here too so
# that a checkout whose package metadata predates them still finds them.
BUILT_IN = {
    "file": "bot.reporting.sinks.file:FileSink",
    "webhook": "bot.reporting.sinks.webhook:WebhookSink",
}


def sink_class(type_name: str) -> Type[ReportSink]:
    """Resolve ``type_name``: an entry point of ``webcare.report_sinks`` (``file``, ``webhook``,
    ...) or a dotted path ``package.module:Class`` / ``package.module.Class``."""
    name = str(type_name or "").strip()
    if not name:
        raise ReportSinkError("a report sink needs a 'type': file, webhook or a dotted path")
    return plugin_class(name, group=ENTRY_POINT_GROUP, base=ReportSink, built_in=BUILT_IN,
                        kind="report sink", error=ReportSinkError)


def build_sinks(configured: Sequence[Mapping[str, Any]]) -> List[ReportSink]:
    """Instantiate ``reports.sinks``: ``[{type: ..., <options>}, ...]``."""
    if not isinstance(configured, (list, tuple)):
        raise ReportSinkError("reports.sinks must be a list of {type: ..., <options>}")
    sinks = []
    for index, options in enumerate(configured, start=1):
        if not isinstance(options, Mapping) or not options.get("type"):
            raise ReportSinkError(f"reports.sinks entry {index}: needs a 'type' (file, webhook or a dotted path)")
        cls = sink_class(str(options["type"]))
        try:
            sinks.append(cls.from_config({k: v for k, v in options.items() if k != "type"}))
        except ReportSinkError as exc:
            raise ReportSinkError(f"reports.sinks entry {index}: {exc}") from None
    return sinks
