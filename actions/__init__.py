"""Custom Rasa actions of the webcare starter assistant (auto-discovered by `rasa run actions`).

Actions stay thin: they decide, and tell the webcare service what to carry out through a
structured custom payload (``{"webcare": {...}}``) in their messages.
"""
