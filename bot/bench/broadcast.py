"""``webcare bench broadcast``: a fix announcement to N subscribers through a rate-limited channel.

A fresh store gets N customers, each subscribed to one open known issue, on a signed-webhook
channel whose platform is a real aiohttp server on loopback (:class:`RateLimitedPlatform`):
it accepts at most R messages in any one-second window and answers 429 with
``Retry-After: 1`` beyond that, deduplicates on the idempotency key as the webhook contract
asks, and records every request per recipient. The real service runs as a subprocess
(``python -m bot service``); the benchmark logs in through the JSON API and resolves the
known issue (the real code path: broadcast, broadcaster, outbox, dispatcher, connector). With
``--kill-after S`` the service is killed with SIGKILL S seconds after the resolve and started
again on the same store, to show that the announcement resumes and nobody gets it twice.

Printed: ``recipients``, ``delivered`` (recipients who got it), ``missing``, ``duplicates``
(recipients who got more than one distinct message), ``same_key_retries`` (requests
repeating an already accepted idempotency key: at-least-once delivery across a kill, absorbed
by the platform's deduplication), ``throttled`` (429 answers), ``seconds`` (first to last
delivery), ``achieved_rate``, ``rate_limit``, ``efficiency`` (achieved rate / limit),
``kills``, ``total_seconds`` (resolve to done).
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional

import aiohttp
import yaml
from aiohttp import web

from bot import processes
from bot.testing.fake_platform import SignedCallbackServer
from bot.rasa.stack import PROJECT, free_port

SECRET = "bench-broadcast-secret"
ROOT_CAUSE = "billing_amount"
ADMIN, PASSWORD = "bench-admin", "bench-admin-password"
CHANNEL = "bench"


class RateLimitedPlatform(SignedCallbackServer):
    """A messaging platform on loopback: at most ``rate`` messages per second, 429 beyond."""

    def __init__(self, secret: str, rate: int, window: float = 1.0) -> None:
        super().__init__(secret)
        self.rate = rate
        self.window = window
        self.accepted: Dict[str, Dict[str, Any]] = {}  # idempotency key -> first accepted delivery
        self.per_recipient: Dict[str, List[str]] = collections.defaultdict(list)  # distinct keys
        self.requests_per_recipient: Dict[str, int] = collections.Counter()
        self.delivery_times: List[float] = []
        self.same_key_retries = 0
        self.throttled = 0
        self._recent: Deque[float] = collections.deque()
        self.refuse: Dict[str, int] = {}  # recipient -> HTTP status to answer instead (tests: 400, 410)

    async def accept(self, data: Dict[str, Any]) -> web.Response:
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= self.window:
            self._recent.popleft()
        if len(self._recent) >= self.rate:
            self.throttled += 1
            return web.json_response({"ok": False, "error_code": 429, "parameters": {"retry_after": 1}},
                                     status=429, headers={"Retry-After": "1"})
        self._recent.append(now)
        key, recipient = data["idempotency_key"], str(data["recipient"])
        self.requests_per_recipient[recipient] += 1
        if recipient in self.refuse:
            return web.json_response({"error": "refused"}, status=self.refuse[recipient])
        if key in self.accepted:  # the same message again (a retry): deduplicated, as the contract asks
            self.same_key_retries += 1
            return web.json_response({"message_id": self.accepted[key]["message_id"]})
        message_id = f"m{len(self.accepted) + 1}"
        self.accepted[key] = {"message_id": message_id, "recipient": recipient, "text": data.get("text")}
        self.per_recipient[recipient].append(key)
        self.delivery_times.append(now)
        return web.json_response({"message_id": message_id})


def _seed(database_url: str, recipients: int) -> int:
    """N customers on the bench channel, all subscribed to one open known issue; an admin."""
    from bot.accounts import create_user
    from bot.store.database import Store
    from bot.store.models import (
        ChannelIdentity, Conversation, Customer, KnownIssue, KnownIssueStatus, KnownIssueSubscription, Mode, Role,
        utcnow,
    )

    store = Store.from_url(database_url)

    def seed(session: Any) -> int:
        create_user(session, ADMIN, PASSWORD, Role.admin, "Bench Admin")
        issue = KnownIssue(root_cause=ROOT_CAUSE, title="Bills too high (bench)", text_nl="We weten ervan.",
                           text_en="We know about it.", status=KnownIssueStatus.open)
        session.add(issue)
        session.flush()
        now = utcnow()
        for index in range(recipients):
            language = "en" if index % 2 else "nl"
            customer = Customer(display_name=f"Customer {index}", language=language, flags=[])
            session.add(customer)
            session.flush()
            identity = ChannelIdentity(customer_id=customer.id, channel=CHANNEL, external_id=f"r{index}")
            session.add(identity)
            session.flush()
            session.add(Conversation(customer_id=customer.id, identity_id=identity.id, channel=CHANNEL,
                                     rasa_sender_id=f"{CHANNEL}:r{index}", mode=Mode.bot, language=language,
                                     last_message_at=now))
            session.add(KnownIssueSubscription(known_issue_id=issue.id, customer_id=customer.id,
                                               identity_id=identity.id, subscribed_at=now))
        return issue.id

    try:
        return store.transaction(seed)
    finally:
        store.close()


class Service:
    """The real webcare service as a subprocess (``python -m bot service``), started with
    :func:`bot.processes.spawn`: it never outlives the benchmark."""

    def __init__(self, config_path: Path, port: int, log_path: Path, secret: str = SECRET) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.secret = secret  # in $WEBCARE_BENCH_SECRET for the service's bench channel
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "WEBCARE_BENCH_SECRET": self.secret}
        env.pop("WEBCARE_DATABASE_URL", None)
        log = open(self.log_path, "ab")
        try:
            self.process = processes.spawn(
                [sys.executable, "-m", "bot", "--config", str(self.config_path), "service"],
                cwd=str(PROJECT), env=env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        try:
            await self._wait_until_up(timeout)
        except BaseException:  # a failed start, a cancel or a SIGTERM: the process goes too
            self.stop()
            raise

    async def _wait_until_up(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the service exited with {self.process.returncode}; see {self.log_path}:\n"
                                       + self.log_path.read_text(errors="replace")[-3000:])
                try:
                    async with http.get(f"{self.url}/version") as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the service did not start within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last commit (what a crash or an OOM kill does)."""
        if self.process is not None:
            processes.kill(self.process)

    def stop(self) -> None:
        """SIGTERM; SIGKILL after 3 s."""
        if self.process is not None:
            processes.stop(self.process, timeout=3)


async def _resolve(http: aiohttp.ClientSession, service: Service, issue_id: int) -> Dict[str, Any]:
    """Log in as a process owner would and resolve the known issue through the JSON API."""
    async with http.post(f"{service.url}/api/login", json={"username": ADMIN, "password": PASSWORD}) as response:
        assert response.status == 200, await response.text()
        csrf = (await response.json())["csrf_token"]
    body = {"fix_text_nl": "Opgelost: je rekening klopt weer.", "fix_text_en": "Fixed: your bill is right again.",
            "include_contacted": False}
    async with http.post(f"{service.url}/api/known-issues/{issue_id}/resolve", json=body,
                         headers={"X-CSRF-Token": csrf}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _progress(http: aiohttp.ClientSession, service: Service, issue_id: int) -> Optional[Dict[str, Any]]:
    """The console's progress endpoint (None while the service is down)."""
    try:
        async with http.get(f"{service.url}/api/known-issues/{issue_id}/progress") as response:
            return await response.json() if response.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None


async def _run(recipients: int, rate: int, kill_after: Optional[float], workdir: Path,
               database_url: Optional[str]) -> Dict[str, Any]:
    database_url = database_url or f"sqlite:///{workdir}/bench.db"
    issue_id = _seed(database_url, recipients)
    async with RateLimitedPlatform(SECRET, rate) as platform:
        port = free_port()
        config_path = workdir / "webcare.yml"
        config_path.write_text(yaml.safe_dump({
            "service": {"host": "127.0.0.1", "port": port},
            "database": {"url": database_url},
            "rasa": {"url": "http://127.0.0.1:9", "actions_url": "http://127.0.0.1:9"},
            "channels": {CHANNEL: {"type": "webhook", "callback_url": platform.url,
                                   "secret_env": "WEBCARE_BENCH_SECRET", "rate_limit_per_second": rate}},
        }))
        service = Service(config_path, port, workdir / "service.log")
        kills = 0
        restart_seconds = 0.0
        await service.start()
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1
                                     timeout=aiohttp.ClientTimeout(total=5))
        progress: Optional[Dict[str, Any]] = None
        try:
            started = time.monotonic()
            resolved = await _resolve(http, service, issue_id)
            if kill_after is not None:
                await asyncio.sleep(kill_after)
                delivered_before_kill = len(platform.accepted)
                service.kill()
                kills += 1
                down = time.monotonic()
                await service.start()
                restart_seconds = time.monotonic() - down
            else:
                delivered_before_kill = None
            deadline = time.monotonic() + recipients / rate * 4 + 120
            while time.monotonic() < deadline:
                progress = await _progress(http, service, issue_id)
                if progress is not None and progress["status"] == "done":
                    break
                await asyncio.sleep(0.5)
            total_seconds = time.monotonic() - started
            await asyncio.sleep(0.5)  # a late same-key retry would show up here
        finally:
            await http.close()
            service.stop()
    expected = {f"r{i}" for i in range(recipients)}
    delivered = sum(1 for r in expected if platform.per_recipient.get(r))
    duplicates = sum(max(0, len(keys) - 1) for keys in platform.per_recipient.values())
    times = platform.delivery_times
    seconds = (times[-1] - times[0]) if len(times) > 1 else 0.0
    achieved = len(times) / seconds if seconds > 0 else 0.0
    report: Dict[str, Any] = {
        "recipients": recipients,
        "delivered": delivered,
        "missing": len(expected) - delivered,
        "duplicates": duplicates,
        "same_key_retries": platform.same_key_retries,
        "throttled": platform.throttled,
        "seconds": round(seconds, 2),
        "achieved_rate": round(achieved, 2),
        "rate_limit": rate,
        "efficiency": round(achieved / rate, 3) if rate else 0.0,
        "kills": kills,
        "total_seconds": round(total_seconds, 2),
        "resolved": {k: resolved[k] for k in ("recipients", "subscribers", "skipped")},
        "progress": {k: progress[k] for k in ("status", "total", "sent", "failed", "skipped")} if progress else None,
        "database": database_url.split(":")[0],
    }
    if kill_after is not None:
        gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
        report.update({"kill_after": kill_after, "delivered_before_kill": delivered_before_kill,
                       "restart_seconds": round(restart_seconds, 2), "longest_gap_seconds": round(gap, 2),
                       "efficiency_without_longest_gap": round(
                           len(times) / (seconds - gap) / rate, 3) if seconds > gap else 0.0})
    return report


def run_broadcast_bench(recipients: int, rate: int = 30, kill_after: Optional[float] = None,
                        database_url: Optional[str] = None) -> Dict[str, Any]:
    """Run the benchmark in a fresh temporary folder; return the figures."""
    if recipients < 1 or rate < 1:
        raise ValueError("--recipients and --rate must be at least 1")
    import logging

    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with processes.sigterm_exits("the broadcast benchmark"), \
            tempfile.TemporaryDirectory(prefix="webcare-bench-broadcast-") as tmp:
        return asyncio.run(_run(recipients, rate, kill_after, Path(tmp), database_url))
