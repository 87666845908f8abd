"""The console's JSON API under ``/api`` (documented in ``docs/api.md``)."""
