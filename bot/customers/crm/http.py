"""HTTP CRM adapter: a REST CRM behind a circuit breaker.

Configuration (``webcare.yml``)::

    crm:
      adapter: http
      timeout_seconds: 2.0          # per request
      http:
        base_url: https://crm.example.com/api
        token_env: WEBCARE_CRM_TOKEN   # the bearer token is read from this variable
        failure_threshold: 5           # consecutive failures that open the circuit
        reset_seconds: 30              # cool-down before a trial call (half-open)

The REST contract this adapter expects (all JSON; ``Authorization: Bearer <token>`` is sent
when the token variable is set):

``GET {base_url}/customers/{customer_number}``
    200 with a customer object, 404 when unknown. A customer object has ``customer_number``
    (required) and optionally ``name``, ``email``, ``phone``, ``postcode``, ``house_number``,
    ``segment`` and ``flags`` (a list of strings).
``GET {base_url}/customers?postcode=1234AB&house_number=12A``
    200 with a JSON array of customer objects (empty when nobody lives there); the first
    one is used. Postcode and house number are sent normalised (no spaces, upper case).
``GET {base_url}/customers/{customer_number}/contracts``
    200 with a JSON array of contract objects (free-form; e.g. ``contract_id``, ``product``,
    ``status``, ``start_date``, ``end_date``, ``monthly_amount``).
``GET {base_url}/customers/{customer_number}/recent``
    Optional: 200 with a JSON array of recent orders/cases (free-form, ideally with a
    ``kind``); 404 means the CRM has no such endpoint and the list stays empty.

Network errors, timeouts and 5xx answers raise :class:`CrmUnavailable` and count as failures
of the circuit breaker; while the circuit is open calls fail fast with :class:`CrmUnavailable`.
Other 4xx answers and malformed bodies raise :class:`CrmError`. The token is never logged.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import quote

import aiohttp

from bot.customers.crm.base import CrmAdapter, CrmCustomer, CrmError, CrmProfile, CrmUnavailable, lookup_arguments
from bot.customers.crm.circuit_breaker import CircuitBreaker

logger = logging.getLogger(__name__)

_MISSING = object()


class HttpCrm(CrmAdapter):
    """A REST CRM (see the module docstring for the contract)."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        *,
        token: Optional[str] = None,
        timeout_seconds: float = 2.0,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
    ) -> None:
        if not base_url or "://" not in base_url:
            raise CrmError(f"crm.http.base_url must be a URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.breaker = CircuitBreaker(failure_threshold, reset_seconds, name=f"CRM {self.base_url}")
        self._session: Optional[aiohttp.ClientSession] = None

    def __repr__(self) -> str:  # never show the token
        return f"HttpCrm({self.base_url!r})"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store: Any = None,
                    environ: Optional[Mapping[str, str]] = None) -> "HttpCrm":
        environ = os.environ if environ is None else environ
        http = config.get("http") or {}
        token_env = http.get("token_env")
        return cls(
            str(http.get("base_url") or ""),
            token=environ.get(token_env) if token_env else None,
            timeout_seconds=float(config.get("timeout_seconds", 2.0)),
            failure_threshold=int(http.get("failure_threshold", 5)),
            reset_seconds=float(http.get("reset_seconds", 30)),
        )

    async def start(self) -> None:
        self._client()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._session = aiohttp.ClientSession(headers=headers, timeout=self.timeout)
        return self._session

    async def _get(self, path: str, params: Optional[Dict[str, str]] = None, *,
                   missing_ok: bool = True) -> Any:
        """GET ``path`` as JSON; ``_MISSING`` for a 404 when ``missing_ok``."""
        if not self.breaker.allow():
            raise CrmUnavailable(f"circuit open; next try in {self.breaker.retry_in():.0f} s")
        url = self.base_url + path
        try:
            async with self._client().get(url, params=params) as response:
                if response.status == 404 and missing_ok:
                    self.breaker.record_success()
                    return _MISSING
                if response.status >= 500:
                    raise CrmUnavailable(f"CRM answered HTTP {response.status}")
                if response.status >= 400:
                    self.breaker.record_success()  # it is up; the request or credentials are wrong
                    raise CrmError(f"CRM answered HTTP {response.status} to GET {path.split('?')[0]}")
                try:
                    body = await response.json(content_type=None)
                except ValueError as exc:
                    self.breaker.record_success()
                    raise CrmError(f"CRM sent a body that is not JSON: {exc}") from None
        except CrmUnavailable:
            self.breaker.record_failure()
            raise
        except CrmError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.breaker.record_failure()
            raise CrmUnavailable(f"CRM unreachable: {type(exc).__name__}: {exc}") from None
        except BaseException:  # cancelled (e.g. profile_within's timeout): too slow is a failure
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return body

    async def find_customer(
        self,
        *,
        customer_number: Optional[str] = None,
        postcode: Optional[str] = None,
        house_number: Optional[str] = None,
    ) -> Optional[CrmCustomer]:
        number, address = lookup_arguments(customer_number, postcode, house_number)
        if number is not None:
            body = await self._get(f"/customers/{quote(number, safe='')}")
            return None if body is _MISSING else _customer(body)
        if address is None:
            return None
        body = await self._get("/customers", {"postcode": address[0], "house_number": address[1]})
        if body is _MISSING:
            return None
        if not isinstance(body, list):
            raise CrmError("GET /customers must answer a JSON array")
        if len(body) > 1:
            logger.info("CRM: %d customers at one address; using the first", len(body))
        return _customer(body[0]) if body else None

    async def profile(self, customer_number: str) -> Optional[CrmProfile]:
        customer = await self.find_customer(customer_number=customer_number)
        if customer is None:
            return None
        base = f"/customers/{quote(customer.customer_number, safe='')}"
        contracts, recent = await asyncio.gather(self._get(base + "/contracts"), self._get(base + "/recent"))
        return CrmProfile(customer=customer, contracts=_objects(contracts, "contracts"),
                          recent=_objects(recent, "recent"))


def _customer(body: Any) -> CrmCustomer:
    if not isinstance(body, dict) or not body.get("customer_number"):
        raise CrmError("a CRM customer must be a JSON object with a customer_number")

    def text(key: str) -> Optional[str]:
        value = body.get(key)
        return None if value is None else str(value)

    flags = body.get("flags") or []
    if not isinstance(flags, list):
        raise CrmError("a CRM customer's flags must be a list")
    return CrmCustomer(
        customer_number=str(body["customer_number"]),
        name=text("name"),
        email=text("email"),
        phone=text("phone"),
        postcode=text("postcode"),
        house_number=text("house_number"),
        segment=text("segment"),
        flags=tuple(str(flag) for flag in flags),
    )


def _objects(body: Any, what: str) -> List[Dict[str, Any]]:
    if body is _MISSING:
        return []
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise CrmError(f"GET .../{what} must answer a JSON array of objects")
    return body
