"""Customers: identity linking, identification, contacts, opt-ins, CRM adapters."""
