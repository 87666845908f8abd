"""CRM adapters: look up a customer and their contracts (SQL in the store, HTTP, or a plugin).

The extension point is :class:`bot.customers.crm.base.CrmAdapter`; :func:`bot.customers.crm.registry.load_crm`
builds the configured one (``crm.adapter`` in ``webcare.yml``).
"""
from bot.customers.crm.base import (
    CrmAdapter,
    CrmCustomer,
    CrmError,
    CrmProfile,
    CrmUnavailable,
    profile_within,
)

__all__ = ["CrmAdapter", "CrmCustomer", "CrmError", "CrmProfile", "CrmUnavailable", "profile_within"]
