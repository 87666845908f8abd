"""The webcare service: store, intake, drafting, outbox, cases, reports, console."""

__version__ = "0.1.0"
