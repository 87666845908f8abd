"""The CRM adapter extension point: find a customer, fetch their profile.

An adapter is chosen with ``crm.adapter`` in ``webcare.yml`` (``sql``, ``http``, an entry point
of the group ``webcare.crm`` or a dotted path) and built by :func:`bot.customers.crm.registry.load_crm`.
Adapters raise :class:`CrmUnavailable` when the CRM cannot answer (network, timeout, circuit
open) and :class:`CrmError` when it answers wrongly; :func:`profile_within` turns both into a
status so that opening a case never waits on, or fails because of, the CRM.
"""
from __future__ import annotations

import abc
import asyncio
import datetime as dt
import decimal
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

if TYPE_CHECKING:
    from bot.store.database import Store

logger = logging.getLogger(__name__)

_POSTCODE = re.compile(r"^([1-9][0-9]{3})\s*([A-Za-z]{2})$")
_HOUSE_NUMBER = re.compile(r"^([1-9][0-9]{0,5})\s*[-/]?\s*([A-Za-z0-9]{0,6})$")


class CrmError(Exception):
    """The CRM answered, but not usefully (bad request, bad data, misconfiguration)."""


class CrmUnavailable(CrmError):
    """The CRM could not answer: network error, timeout, server error or circuit open."""


def normalize_postcode(value: str) -> str:
    """``"1234 ab"`` -> ``"1234AB"``; ``ValueError`` for anything else than a Dutch postcode."""
    match = _POSTCODE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a postcode like 1234AB")
    return match.group(1) + match.group(2).upper()


def normalize_house_number(value: str) -> str:
    """``"12 a"``, ``"12-A"`` -> ``"12A"``; ``ValueError`` when there is no house number."""
    match = _HOUSE_NUMBER.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a house number like 12 or 12A")
    return match.group(1) + match.group(2).upper()


def jsonable(value: Any) -> Any:
    """``value`` with dates as ISO strings and decimals as strings (for JSON columns)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


@dataclass(frozen=True)
class CrmCustomer:
    """A customer as the CRM knows them."""

    customer_number: str
    name: Optional[str] = None
    email: Optional[str] = None
    phone: Optional[str] = None
    postcode: Optional[str] = None
    house_number: Optional[str] = None
    segment: Optional[str] = None
    flags: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["flags"] = list(self.flags)
        return data


@dataclass(frozen=True)
class CrmProfile:
    """A customer with their contracts and recent orders/cases (plain, JSON-ready dicts)."""

    customer: CrmCustomer
    contracts: List[Dict[str, Any]] = field(default_factory=list)
    recent: List[Dict[str, Any]] = field(default_factory=list)  # each has a "kind": order | case | ...

    def to_dict(self) -> Dict[str, Any]:
        return {
            "customer": self.customer.to_dict(),
            "contracts": jsonable(self.contracts),
            "recent": jsonable(self.recent),
        }


class CrmAdapter(abc.ABC):
    """Base class of every CRM adapter.

    Subclasses implement :meth:`find_customer` and :meth:`profile` (both may raise
    :class:`CrmUnavailable` / :class:`CrmError`) and usually :meth:`from_config`.
    """

    name = "crm"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store: "Store") -> "CrmAdapter":
        """Build the adapter from the whole ``crm`` section (plugins read ``crm.options``)."""
        return cls()

    async def start(self) -> None:
        """Open connections; called once when the service starts."""

    async def stop(self) -> None:
        """Release connections; called once when the service stops."""

    @abc.abstractmethod
    async def find_customer(
        self,
        *,
        customer_number: Optional[str] = None,
        postcode: Optional[str] = None,
        house_number: Optional[str] = None,
    ) -> Optional[CrmCustomer]:
        """The customer with this number, else the one at this address; ``None`` if unknown."""

    @abc.abstractmethod
    async def profile(self, customer_number: str) -> Optional[CrmProfile]:
        """The customer's profile; ``None`` if the CRM does not know the number."""


def lookup_arguments(
    customer_number: Optional[str], postcode: Optional[str], house_number: Optional[str]
) -> Tuple[Optional[str], Optional[Tuple[str, str]]]:
    """Validate :meth:`CrmAdapter.find_customer` arguments: ``(number, (postcode, house))``.

    The address is ``None`` when it cannot be a valid one (nothing can match it).
    """
    number = (customer_number or "").strip() or None
    if number is None and not (postcode and house_number):
        raise ValueError("find_customer needs customer_number, or postcode and house_number")
    if number is not None:
        return number, None
    try:
        return None, (normalize_postcode(postcode or ""), normalize_house_number(house_number or ""))
    except ValueError:
        return None, None


async def profile_within(
    adapter: CrmAdapter, customer_number: Optional[str], timeout_seconds: float
) -> Tuple[str, Optional[Dict[str, Any]]]:
    """``(status, profile dict)`` within ``timeout_seconds``; never raises (except cancellation).

    status: ``ok`` | ``not_found`` | ``unavailable`` (timeout, CRM down or misbehaving).
    """
    if not customer_number:
        return "not_found", None
    try:
        found = await asyncio.wait_for(adapter.profile(customer_number), timeout=timeout_seconds)
    except asyncio.TimeoutError:
        logger.warning("CRM %s: no profile within %.1f s", adapter.name, timeout_seconds)
        return "unavailable", None
    except CrmUnavailable as exc:
        logger.warning("CRM %s unavailable: %s", adapter.name, exc)
        return "unavailable", None
    except asyncio.CancelledError:
        raise
    except Exception:  # a broken adapter must not stop a case from opening
        logger.exception("CRM %s failed to fetch a profile", adapter.name)
        return "unavailable", None
    if found is None:
        return "not_found", None
    try:
        return "ok", found.to_dict()
    except Exception:
        logger.exception("CRM %s returned a profile that cannot be serialised", adapter.name)
        return "unavailable", None
