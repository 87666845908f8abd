"""Find and build the configured report sinks (entry point name or dotted path)."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, List, Mapping, Sequence, Type

from bot.report_sinks.base import ReportSink, ReportSinkError

ENTRY_POINT_GROUP = "webcare.report_sinks"

# The built-in sinks, also registered as entry points in pyproject.toml; listed here too so
# that a checkout whose package metadata predates them still finds them.
BUILT_IN = {
    "file": "bot.report_sinks.file:FileSink",
    "webhook": "bot.report_sinks.webhook:WebhookSink",
}


def sink_class(type_name: str) -> Type[ReportSink]:
    """Resolve ``type_name``: an entry point of ``webcare.report_sinks`` (``file``, ``webhook``,
    ...) or a dotted path ``package.module:Class`` / ``package.module.Class``."""
    name = str(type_name or "").strip()
    if not name:
        raise ReportSinkError("a report sink needs a 'type': file, webhook or a dotted path")
    for entry_point in entry_points().select(group=ENTRY_POINT_GROUP):
        if entry_point.name == name:
            cls = entry_point.load()  # a broken plugin fails here with its real error
            break
    else:
        target = BUILT_IN.get(name, name)
        module_name, _, class_name = target.partition(":") if ":" in target else target.rpartition(".")
        if not module_name or not class_name:
            raise ReportSinkError(
                f"unknown report sink {name!r}: not an entry point of '{ENTRY_POINT_GROUP}' "
                f"(built in: {', '.join(sorted(BUILT_IN))}) and not a dotted path like 'package.module:Class'")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise ReportSinkError(f"unknown report sink {name!r}: no module {module_name!r}") from None
            raise
        try:
            cls = getattr(module, class_name)
        except AttributeError:
            raise ReportSinkError(f"unknown report sink {name!r}: {module_name} has no class {class_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, ReportSink)):
        raise ReportSinkError(f"report sink {name!r} is not a webcare ReportSink subclass")
    return cls


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
