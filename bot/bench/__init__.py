"""Benchmarks behind `webcare bench …` (each prints JSON; targets live here, not in timed tests)."""
