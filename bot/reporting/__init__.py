"""Recurring-issue reports, the weekly digest, its charts and its sinks."""
