"""The HTTP CRM adapter against a real fake CRM (aiohttp on 127.0.0.1), and its circuit breaker."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, AsyncIterator, Dict, List

import pytest
from aiohttp import web

from bot.customers.crm.base import CrmError, CrmUnavailable, profile_within
from bot.customers.crm.circuit_breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from bot.customers.crm.http import HttpCrm

TOKEN = "t0ken-never-logged"

ANN = {"customer_number": "C 100", "name": "Ann", "email": "ann@example.org", "postcode": "1234AB",
       "house_number": "12A", "segment": "vip", "flags": ["sensitive"]}


class FakeCrm:
    """A REST CRM following HttpCrm's contract; behaviour switchable per test."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.mode = "ok"  # ok | slow | error | garbage
        self.delay = 2.0
        self.recent = True

    async def _guard(self, request: web.Request) -> None:
        self.requests.append({"path": request.path, "query": dict(request.query),
                              "auth": request.headers.get("Authorization")})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized()
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "error":
            raise web.HTTPServiceUnavailable()

    async def customer(self, request: web.Request) -> web.StreamResponse:
        await self._guard(request)
        if self.mode == "garbage":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        if request.match_info["number"] != ANN["customer_number"]:
            raise web.HTTPNotFound()
        return web.json_response(ANN)

    async def search(self, request: web.Request) -> web.StreamResponse:
        await self._guard(request)
        found = [ANN] if (request.query.get("postcode"), request.query.get("house_number")) == ("1234AB", "12A") else []
        return web.json_response(found)

    async def contracts(self, request: web.Request) -> web.StreamResponse:
        await self._guard(request)
        return web.json_response([{"contract_id": "K-1", "product": "Fibre", "status": "active",
                                   "monthly_amount": "45.00"}])

    async def recent_items(self, request: web.Request) -> web.StreamResponse:
        await self._guard(request)
        if not self.recent:
            raise web.HTTPNotFound()
        return web.json_response([{"kind": "order", "id": "O-9", "status": "shipped"}])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/customers", self.search)
        app.router.add_get("/api/customers/{number}", self.customer)
        app.router.add_get("/api/customers/{number}/contracts", self.contracts)
        app.router.add_get("/api/customers/{number}/recent", self.recent_items)
        return app


@pytest.fixture
async def fake() -> AsyncIterator[tuple]:
    crm = FakeCrm()
    runner = web.AppRunner(crm.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield crm, f"http://127.0.0.1:{port}/api"
    await runner.cleanup()


def adapter(base_url: str, **kwargs: Any) -> HttpCrm:
    options = {"timeout_seconds": 0.5, "failure_threshold": 3, "reset_seconds": 30.0, "token": TOKEN, **kwargs}
    return HttpCrm(base_url, **options)


async def test_contract_customer_search_and_profile(fake: tuple, caplog: pytest.LogCaptureFixture) -> None:
    server, base = fake
    caplog.set_level(logging.DEBUG)
    crm = HttpCrm.from_config({"timeout_seconds": 1.0, "http": {"base_url": base, "token_env": "CRM_T"}},
                              environ={"CRM_T": TOKEN})
    await crm.start()
    try:
        ann = await crm.find_customer(customer_number="C 100")
        assert ann is not None and ann.name == "Ann" and ann.flags == ("sensitive",)
        assert server.requests[-1]["path"] == "/api/customers/C 100"  # quoted on the wire
        assert server.requests[-1]["auth"] == f"Bearer {TOKEN}"
        assert await crm.find_customer(customer_number="C 999") is None
        by_address = await crm.find_customer(postcode="1234 ab", house_number="12a")
        assert by_address == ann
        assert server.requests[-1]["query"] == {"postcode": "1234AB", "house_number": "12A"}
        assert await crm.find_customer(postcode="9999ZZ", house_number="1") is None

        profile = await crm.profile("C 100")
        assert profile is not None
        data = profile.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["contracts"] == [{"contract_id": "K-1", "product": "Fibre", "status": "active",
                                      "monthly_amount": "45.00"}]
        assert data["recent"] == [{"kind": "order", "id": "O-9", "status": "shipped"}]
        server.recent = False  # the optional endpoint is missing: an empty list, not an error
        profile = await crm.profile("C 100")
        assert profile is not None and profile.recent == []
        assert await crm.profile("nobody") is None
        assert await profile_within(crm, "C 100", 2.0) == ("ok", (await crm.profile("C 100")).to_dict())  # type: ignore[union-attr]
        assert await profile_within(crm, "nobody", 2.0) == ("not_found", None)
    finally:
        await crm.stop()
    assert TOKEN not in caplog.text and TOKEN not in repr(crm)


async def test_wrong_token_and_bad_bodies_are_errors_not_outages(fake: tuple) -> None:
    server, base = fake
    crm = adapter(base, token="wrong")
    with pytest.raises(CrmError, match="HTTP 401") as error:
        await crm.find_customer(customer_number="C 100")
    assert not isinstance(error.value, CrmUnavailable)
    server.mode = "garbage"
    crm2 = adapter(base, failure_threshold=1)
    with pytest.raises(CrmError, match="not JSON"):
        await crm2.find_customer(customer_number="C 100")
    assert crm.breaker.state == CLOSED and crm2.breaker.state == CLOSED  # the CRM is up
    assert await profile_within(crm2, "C 100", 2.0) == ("unavailable", None)  # never raises
    await crm.stop()
    await crm2.stop()


async def test_slow_crm_is_unavailable_within_the_timeout(fake: tuple) -> None:
    server, base = fake
    server.mode = "slow"
    crm = adapter(base, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(CrmUnavailable, match="TimeoutError"):
        await crm.find_customer(customer_number="C 100")
    assert time.monotonic() - started < 1.5
    # profile_within's own deadline is shorter than the adapter's: it still answers in time.
    slow = adapter(base, timeout_seconds=10.0)
    started = time.monotonic()
    assert await profile_within(slow, "C 100", 0.3) == ("unavailable", None)
    assert time.monotonic() - started < 1.5
    await crm.stop()
    await slow.stop()


async def test_circuit_opens_after_failures_fails_fast_and_recovers_half_open(fake: tuple) -> None:
    server, base = fake
    crm = adapter(base, failure_threshold=3, reset_seconds=0.4)
    server.mode = "error"
    for _ in range(3):
        with pytest.raises(CrmUnavailable, match="HTTP 503"):
            await crm.find_customer(customer_number="C 100")
    assert crm.breaker.state == OPEN
    calls = len(server.requests)
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(CrmUnavailable, match="circuit open"):
            await crm.find_customer(customer_number="C 100")
    assert time.monotonic() - started < 0.2 and len(server.requests) == calls  # no network at all
    assert await profile_within(crm, "C 100", 2.0) == ("unavailable", None)

    await asyncio.sleep(0.45)
    assert crm.breaker.state == HALF_OPEN
    with pytest.raises(CrmUnavailable, match="HTTP 503"):  # the trial call fails: open again
        await crm.find_customer(customer_number="C 100")
    assert crm.breaker.state == OPEN and len(server.requests) == calls + 1

    await asyncio.sleep(0.45)
    server.mode = "ok"
    status, data = await profile_within(crm, "C 100", 2.0)  # the trial call succeeds: closed
    assert status == "ok" and data is not None and data["customer"]["name"] == "Ann"
    assert crm.breaker.state == CLOSED
    await crm.stop()


async def test_unreachable_crm_counts_as_failure() -> None:
    crm = adapter("http://127.0.0.1:9/api", failure_threshold=2)  # nothing listens on port 9
    for _ in range(2):
        with pytest.raises(CrmUnavailable, match="unreachable"):
            await crm.find_customer(customer_number="C 100")
    assert crm.breaker.state == OPEN
    await crm.stop()


def test_breaker_states_with_a_clock() -> None:
    now = [100.0]
    breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0])
    assert breaker.allow() and breaker.state == CLOSED
    breaker.record_failure()
    breaker.record_success()  # a success resets the count: failures must be consecutive
    breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow() and breaker.retry_in() == 10.0
    now[0] += 9.9
    assert not breaker.allow()
    now[0] += 0.1
    assert breaker.state == HALF_OPEN
    assert breaker.allow()  # one trial call ...
    assert not breaker.allow()  # ... at a time
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow()
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
