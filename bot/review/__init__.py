"""Agents' decisions on drafts, and their corrections as training data."""
