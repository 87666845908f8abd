"""The webcare store: SQLAlchemy models and sessions over SQLite or PostgreSQL."""
