"""GDPR: export and erasure of everything webcare holds about one customer."""
