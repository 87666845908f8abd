"""The learning loop: agents' verdicts become reviewed training data and per-intent thresholds."""
