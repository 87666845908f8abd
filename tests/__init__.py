"""Test suite of webcare (a package, so tests/bot, tests/nlu, ... do not shadow the real bot, nlu, actions packages)."""
