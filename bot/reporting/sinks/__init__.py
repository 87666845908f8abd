"""Report sinks: where the weekly recurring-issue digest goes (plugins, like channel connectors).

Configured under ``reports.sinks`` as ``[{type: file|webhook|<entry point>|<dotted path>, ...}]``;
third-party packages register theirs in the ``webcare.report_sinks`` entry point group.
"""
from bot.reporting.sinks.base import ReportSink, ReportSinkError
from bot.reporting.sinks.registry import build_sinks, sink_class

__all__ = ["ReportSink", "ReportSinkError", "build_sinks", "sink_class"]
