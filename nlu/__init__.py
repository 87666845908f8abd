"""Rasa NLU components shipped by webcare (fast intent classifier, language detector)."""
