"""The built-in SQL CRM: customers and contracts in the store's own tables.

Filled with ``webcare crm import customers.csv [--contracts contracts.csv]``
(:mod:`bot.customers.crm.importing`). A profile's ``recent`` list holds the customer's latest webcare
cases (every webcare customer linked to the customer number, see ``bot/customers/identity_linking.py``).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.customers.crm.base import CrmAdapter, CrmCustomer, CrmProfile, CrmUnavailable, lookup_arguments
from bot.store.database import Store
from bot.store.models import Case, CrmContract, CrmCustomerRecord, Customer

logger = logging.getLogger(__name__)

RECENT_CASES = 5


class SqlCrm(CrmAdapter):
    """Reads ``crm_customers`` and ``crm_contracts`` through the store."""

    name = "sql"

    def __init__(self, store: Store, recent_cases: int = RECENT_CASES) -> None:
        self.store = store
        self.recent_cases = recent_cases

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store: Store) -> "SqlCrm":
        return cls(store)

    async def find_customer(
        self,
        *,
        customer_number: Optional[str] = None,
        postcode: Optional[str] = None,
        house_number: Optional[str] = None,
    ) -> Optional[CrmCustomer]:
        number, address = lookup_arguments(customer_number, postcode, house_number)
        if number is None and address is None:
            return None
        try:
            return await self.store.run(_find, number, address)
        except OperationalError as exc:
            raise CrmUnavailable(f"store unavailable: {exc.orig}") from None

    async def profile(self, customer_number: str) -> Optional[CrmProfile]:
        try:
            return await self.store.run(_profile, customer_number.strip(), self.recent_cases)
        except OperationalError as exc:
            raise CrmUnavailable(f"store unavailable: {exc.orig}") from None


def _to_customer(record: CrmCustomerRecord) -> CrmCustomer:
    return CrmCustomer(
        customer_number=record.customer_number,
        name=record.name,
        email=record.email,
        phone=record.phone,
        postcode=record.postcode,
        house_number=record.house_number,
        segment=record.segment,
    )


def _find(session: Session, number: Optional[str], address: Optional[tuple]) -> Optional[CrmCustomer]:
    query = select(CrmCustomerRecord)
    if number is not None:
        query = query.where(CrmCustomerRecord.customer_number == number)
    else:
        postcode, house_number = address  # type: ignore[misc]
        query = query.where(CrmCustomerRecord.postcode == postcode,
                            CrmCustomerRecord.house_number == house_number)
    record = session.execute(query.order_by(CrmCustomerRecord.customer_number).limit(1)).scalars().first()
    return None if record is None else _to_customer(record)


def contract_dict(contract: CrmContract) -> Dict[str, Any]:
    """A contract as a JSON-ready dict (amount as a decimal string, dates ISO)."""
    cents = contract.monthly_amount_cents
    return {
        "contract_id": contract.contract_id,
        "product": contract.product,
        "status": contract.status,
        "start_date": contract.start_date.isoformat() if contract.start_date else None,
        "end_date": contract.end_date.isoformat() if contract.end_date else None,
        "monthly_amount": None if cents is None else f"{cents // 100}.{cents % 100:02d}",
    }


def _profile(session: Session, number: str, recent_cases: int) -> Optional[CrmProfile]:
    record = session.execute(
        select(CrmCustomerRecord).where(CrmCustomerRecord.customer_number == number)
    ).scalars().first()
    if record is None:
        return None
    contracts = session.execute(
        select(CrmContract).where(CrmContract.customer_number == number)
        .order_by(CrmContract.start_date.desc().nullslast(), CrmContract.contract_id)
    ).scalars().all()
    cases = session.execute(
        select(Case).join(Customer, Customer.id == Case.customer_id)
        .where(Customer.crm_ref == number)
        .order_by(Case.opened_at.desc(), Case.id.desc()).limit(recent_cases)
    ).scalars().all()
    recent: List[Dict[str, Any]] = [
        {
            "kind": "case",
            "id": case.id,
            "trigger": case.trigger,
            "status": case.status.value,
            "root_cause": case.root_cause,
            "opened_at": case.opened_at.isoformat(),
            "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        }
        for case in cases
    ]
    return CrmProfile(customer=_to_customer(record), contracts=[contract_dict(c) for c in contracts],
                      recent=recent)
