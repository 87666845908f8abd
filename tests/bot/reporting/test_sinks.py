"""The weekly digest per owner, the report sinks (file, webhook, plugins), the scheduler that
sends once per week across replicas, and ``webcare reports digest``."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from aiohttp import web

from bot.reporting.digest import DigestScheduler, build_digests, latest_due, sent_weeks
from bot.reporting.digest_format import digest_markdown
from bot.reporting.sinks import ReportSink, ReportSinkError, build_sinks, sink_class
from bot.reporting.sinks.file import FileSink
from bot.reporting.sinks.webhook import WebhookSink
from bot.cases.root_causes import load_taxonomy
from bot.store.database import Store
from connectors.signing import SIGNATURE_HEADER, verify
from tests.bot.report_support import DIGEST_DAY, ZONE, seed_contacts
from tests.conftest import PROJECT

TAXONOMY = load_taxonomy(PROJECT / "data" / "root_causes.yml")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/d.db")
    yield store
    store.close()


def digests_by_owner(store: Store) -> Dict[str, Dict[str, Any]]:
    return {d["owner"]: d for d in store.transaction(build_digests, TAXONOMY, DIGEST_DAY, ZONE)}


# --------------------------------------------------------------------------- digest content


def test_one_digest_per_owner_with_their_root_causes(store: Store) -> None:
    ids = store.transaction(seed_contacts)
    digests = digests_by_owner(store)
    assert set(digests) == {c.owner for c in TAXONOMY.causes}
    billing = digests["billing"]
    assert billing["date"] == "2026-03-09"
    assert billing["period"]["start"].startswith("2026-03-02T00:00:00+01:00")
    assert billing["previous_period"]["start"].startswith("2026-02-23T00:00:00+01:00")
    assert {r["root_cause"] for r in billing["root_causes"]} == {
        c.code for c in TAXONOMY.causes if c.owner == "billing"}
    first = billing["root_causes"][0]
    assert first["root_cause"] == "billing_amount" and first["title"] == "Bill amount"
    assert (first["contacts"], first["previous_contacts"], first["change_pct"], first["trend"]) == (4, 2, 100.0, "up")
    assert (first["customers"], first["repeated"], first["repeat_rate"]) == (3, 2, 0.5)
    assert (first["csat_asked"], first["csat_answered"], first["csat_mean"]) == (3, 2, 3.0)
    # each quote names its contact, so that a GDPR erase can find it again (tests/bot/privacy/test_gdpr.py)
    assert first["customer_words"] == [{"text": "Weer een te hoge rekening", "score": 2, "contact_id": ids["c1"]}]
    quiet = [r for r in billing["root_causes"] if r["root_cause"] == "refund_delay"][0]
    assert (quiet["contacts"], quiet["trend"], quiet["repeat_rate"], quiet["customer_words"]) == (0, "none", None, [])
    assert billing["totals"] == {"contacts": 4, "previous_contacts": 2, "change_pct": 100.0, "trend": "up",
                                 "repeated": 2, "repeat_rate": 0.5, "csat_asked": 3, "csat_answered": 2,
                                 "csat_response_rate": 0.6667, "csat_mean": 3.0}
    grid = digests["grid_operations"]
    assert grid["totals"]["contacts"] == 2 and grid["totals"]["trend"] == "down"
    assert grid["root_causes"][0]["customer_words"] == [{"text": "Snel verholpen", "score": 5, "contact_id": ids["o1"]}]
    lifecycle = digests["customer_lifecycle"]  # moving: 1 contact the week before, none now
    assert lifecycle["totals"]["contacts"] == 0 and lifecycle["totals"]["previous_contacts"] == 1
    assert billing["report_path"] == "/console/reports?start=2026-03-02&end=2026-03-09"


def test_markdown_digest(store: Store) -> None:
    store.transaction(seed_contacts)
    text = digest_markdown(digests_by_owner(store)["billing"])
    assert text.startswith("# Recurring issues for billing — week until 2026-03-09")
    assert "| Bill amount (`billing_amount`) | 4 | 2 | ▲ +100% | 50% | 3.0 | 67% |" in text
    assert "“Weer een te hoge rekening” (2/5)" in text


# --------------------------------------------------------------------------- sinks


async def test_file_sink_writes_json_and_markdown_atomically(store: Store, tmp_path: Path) -> None:
    store.transaction(seed_contacts)
    digests = digests_by_owner(store)
    sink = build_sinks([{"type": "file", "directory": str(tmp_path / "digests")}])[0]
    assert isinstance(sink, FileSink)
    for digest in digests.values():
        await sink.deliver(digest)
    folder = tmp_path / "digests"
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 * len(digests) and not [n for n in names if n.startswith(".")]
    written = json.loads((folder / "2026-03-09-billing.json").read_text(encoding="utf-8"))
    assert written == digests["billing"]
    assert (folder / "2026-03-09-billing.md").read_text(encoding="utf-8") == digest_markdown(digests["billing"])
    await sink.deliver(digests["billing"])  # again: replaced, not duplicated
    assert len(list(folder.iterdir())) == 2 * len(digests)


def test_sink_registry() -> None:
    assert sink_class("file") is FileSink and sink_class("webhook") is WebhookSink
    assert sink_class("bot.reporting.sinks.file:FileSink") is FileSink
    assert sink_class("tests.bot.reporting.test_sinks.MemorySink") is MemorySink
    with pytest.raises(ReportSinkError, match="unknown report sink 'carrier_pigeon'"):
        sink_class("carrier_pigeon")
    with pytest.raises(ReportSinkError, match="not a webcare ReportSink"):
        sink_class("bot.reporting.digest:DigestScheduler")
    with pytest.raises(ReportSinkError, match="entry 1: needs a 'type'"):
        build_sinks([{"directory": "x"}])
    with pytest.raises(ReportSinkError, match="unknown option"):
        build_sinks([{"type": "file", "folder": "x"}])
    with pytest.raises(ReportSinkError, match="'url' must be an http"):
        build_sinks([{"type": "webhook", "url": "ftp://x"}])
    with pytest.raises(ReportSinkError, match="WEBCARE_NO_SUCH_SECRET is not set"):
        build_sinks([{"type": "webhook", "url": "http://127.0.0.1:9/", "secret_env": "WEBCARE_NO_SUCH_SECRET"}])


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers with queued statuses."""

    def __init__(self, statuses: List[int]) -> None:
        self.statuses = statuses
        self.requests: List[Dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")


@pytest.fixture
async def receiver() -> Any:
    target = Receiver([])
    app = web.Application()
    app.router.add_post("/digest", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target.url = f"http://127.0.0.1:{port}/digest"  # type: ignore[attr-defined]
    yield target
    await runner.cleanup()


async def test_webhook_sink_posts_signed_json_and_retries(store: Store, receiver: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store.transaction(seed_contacts)
    digest = digests_by_owner(store)["billing"]
    monkeypatch.setenv("WEBCARE_TEST_DIGEST_SECRET", "s3cret")
    sink = build_sinks([{"type": "webhook", "url": receiver.url, "secret_env": "WEBCARE_TEST_DIGEST_SECRET",
                         "retries": 2, "backoff_seconds": 0.01, "timeout_seconds": 5}])[0]
    receiver.statuses[:] = [503]
    await sink.deliver(digest)
    assert len(receiver.requests) == 2  # a 503, then delivered
    request = receiver.requests[-1]
    assert verify("s3cret", request["body"], request["headers"][SIGNATURE_HEADER])
    assert not verify("other", request["body"], request["headers"][SIGNATURE_HEADER])
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-Webcare-Event"] == "report.digest"
    assert json.loads(request["body"]) == digest


async def test_webhook_sink_gives_up_with_a_reason(receiver: Any) -> None:
    sink = WebhookSink(receiver.url, None, timeout_seconds=5, retries=3, backoff_seconds=0.01)
    receiver.statuses[:] = [400]
    with pytest.raises(ReportSinkError, match="HTTP 400"):
        await sink.deliver({"owner": "x"})
    assert len(receiver.requests) == 1  # a refusal is not retried
    assert SIGNATURE_HEADER not in receiver.requests[0]["headers"]
    receiver.statuses[:] = [500, 502, 503, 504]
    with pytest.raises(ReportSinkError, match="HTTP 504"):
        await sink.deliver({"owner": "x"})
    assert len(receiver.requests) == 5
    down = WebhookSink("http://127.0.0.1:9/digest", None, timeout_seconds=2, retries=1, backoff_seconds=0.01)
    with pytest.raises(ReportSinkError, match="delivery failed"):
        await down.deliver({"owner": "x"})


# --------------------------------------------------------------------------- scheduling


class MemorySink(ReportSink):
    """A plugin by dotted path: keeps what it got (or fails while ``fail`` is set)."""

    type_name = "memory"

    def __init__(self) -> None:
        self.delivered: List[Dict[str, Any]] = []
        self.fail = False

    async def deliver(self, digest: Dict[str, Any]) -> None:
        if self.fail:
            raise ReportSinkError("memory sink is down")
        self.delivered.append(digest)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_latest_due_in_the_local_time_zone() -> None:
    monday_7 = dt.time(7, 0)
    # Monday 2026-03-09 06:59 local (05:59 UTC): last week's Monday 07:00
    assert latest_due(dt.datetime(2026, 3, 9, 5, 59, tzinfo=dt.timezone.utc), ZONE, 0, monday_7) == \
        dt.datetime(2026, 3, 2, 7, tzinfo=ZONE)
    assert latest_due(dt.datetime(2026, 3, 9, 6, 0, tzinfo=dt.timezone.utc), ZONE, 0, monday_7) == \
        dt.datetime(2026, 3, 9, 7, tzinfo=ZONE)
    assert latest_due(dt.datetime(2026, 3, 12, 5, 0, tzinfo=dt.timezone.utc), ZONE, 3, dt.time(6, 30)) == \
        dt.datetime(2026, 3, 5, 6, 30, tzinfo=ZONE)


async def test_scheduler_sends_once_per_week_across_replicas(store: Store) -> None:
    store.transaction(seed_contacts)
    clock = Clock(dt.datetime(2026, 3, 9, 5, 30, tzinfo=dt.timezone.utc))  # 06:30 local: not yet
    sinks = [MemorySink(), MemorySink()]
    replicas = [DigestScheduler(store, TAXONOMY, [sink], ZONE, 0, dt.time(7, 0), clock=clock) for sink in sinks]

    async def tick_all() -> list:
        return list(await asyncio.gather(*(r.tick() for r in replicas)))

    assert await tick_all() == [None, None] and sinks[0].delivered == sinks[1].delivered == []
    clock.now = dt.datetime(2026, 3, 9, 6, 0, 5, tzinfo=dt.timezone.utc)  # 07:00:05 local
    results = await tick_all()
    assert sorted(results, key=str) == [None, DIGEST_DAY] or sorted(results, key=str) == [DIGEST_DAY, None]
    delivered = sinks[0].delivered + sinks[1].delivered
    assert len(delivered) == len({c.owner for c in TAXONOMY.causes})
    assert {d["date"] for d in delivered} == {"2026-03-09"}
    for minutes in (1, 60, 60 * 24 * 3):  # the same week: never again, even after a "restart"
        clock.now += dt.timedelta(minutes=minutes)
        assert await tick_all() == [None, None]
    restarted = DigestScheduler(store, TAXONOMY, [MemorySink()], ZONE, 0, dt.time(7, 0), clock=clock)
    assert await restarted.tick() is None
    assert len(sinks[0].delivered + sinks[1].delivered) == len(delivered)
    clock.now = dt.datetime(2026, 3, 16, 6, 1, tzinfo=dt.timezone.utc)  # next Monday
    assert DIGEST_DAY + dt.timedelta(days=7) in await tick_all()
    weeks = store.transaction(sent_weeks)
    assert [w["week"] for w in weeks] == ["2026-03-09", "2026-03-16"] and all(w["sent_at"] for w in weeks)
    assert weeks[0]["details"]["deliveries"][0]["sink"] == "memory"


async def test_a_failed_delivery_is_tried_again_and_a_stale_claim_taken_over(store: Store) -> None:
    clock = Clock(dt.datetime(2026, 3, 9, 6, 5, tzinfo=dt.timezone.utc))
    sink = MemorySink()
    sink.fail = True
    scheduler = DigestScheduler(store, TAXONOMY, [sink], ZONE, 0, dt.time(7, 0), clock=clock)
    assert await scheduler.tick() is None  # claim released, nothing sent
    assert [w["sent_at"] for w in store.transaction(sent_weeks)] == [None]
    sink.fail = False
    clock.now += dt.timedelta(minutes=1)
    assert await scheduler.tick() == DIGEST_DAY and sink.delivered

    # a replica that claimed the week and died: another takes over after 15 minutes
    from bot.reporting.digest import _insert_claim

    later = dt.datetime(2026, 3, 16, 6, 1, tzinfo=dt.timezone.utc)
    store.transaction(_insert_claim, dt.date(2026, 3, 16), later)
    clock.now = later + dt.timedelta(minutes=5)
    assert await scheduler.tick() is None
    clock.now = later + dt.timedelta(minutes=16)
    assert await scheduler.tick() == dt.date(2026, 3, 16)


async def test_a_retry_after_one_sink_failed_sends_only_what_is_missing(store: Store) -> None:
    store.transaction(seed_contacts)
    clock = Clock(dt.datetime(2026, 3, 9, 6, 5, tzinfo=dt.timezone.utc))
    working, failing = MemorySink(), MemorySink()
    failing.describe = lambda: "memory:failing"  # type: ignore[method-assign]  # two sinks, two names
    failing.fail = True
    scheduler = DigestScheduler(store, TAXONOMY, [working, failing], ZONE, 0, dt.time(7, 0), clock=clock)
    assert await scheduler.tick() is None
    assert len(working.delivered) == 1 and failing.delivered == []  # stopped at the first failure
    failing.fail = False
    clock.now += dt.timedelta(minutes=1)
    assert await scheduler.tick() == DIGEST_DAY
    owners = len({c.owner for c in TAXONOMY.causes})
    assert len(working.delivered) == owners  # the first owner's digest was not sent again
    assert len({d["owner"] for d in working.delivered}) == owners
    assert len(failing.delivered) == owners
    [week] = store.transaction(sent_weeks)
    assert len(week["details"]["deliveries"]) == 2 * owners


async def test_a_service_that_starts_days_late_does_not_send_an_old_digest(store: Store) -> None:
    clock = Clock(dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.timezone.utc))  # Wednesday
    sink = MemorySink()
    assert await DigestScheduler(store, TAXONOMY, [sink], ZONE, 0, dt.time(7, 0), clock=clock).tick() is None
    assert sink.delivered == []


def test_the_service_builds_its_scheduler_from_the_configuration(tmp_path: Path) -> None:
    from bot.web.app import create_app
    from bot.web.keys import DIGEST_KEY
    from tests.bot.console_support import make_config

    app = create_app(make_config(tmp_path))
    scheduler = app[DIGEST_KEY]
    assert isinstance(scheduler, DigestScheduler)
    assert (scheduler.weekday, scheduler.at, str(scheduler.zone)) == (0, dt.time(7, 0), "Europe/Amsterdam")
    assert [s.describe() for s in scheduler.sinks] == ["file:var/digests"]


# --------------------------------------------------------------------------- CLI


def _cli_setup(tmp_path: Path) -> Tuple[str, Path]:
    """A SQLite store with the seeded contacts and a configuration with a file sink in out/."""
    url = f"sqlite:///{tmp_path}/cli.db"
    seeding = Store.from_url(url)
    seeding.transaction(seed_contacts)
    seeding.close()
    config = tmp_path / "webcare.yml"
    config.write_text(json.dumps({
        "database": {"url": url},
        "cases": {"root_causes_file": str(PROJECT / "data" / "root_causes.yml"),
                  "domain_file": str(PROJECT / "domain.yml")},
        "reports": {"sinks": [{"type": "file", "directory": str(tmp_path / "out")}]},
    }), encoding="utf-8")
    return url, config


def test_cli_reports_digest_writes_to_the_sinks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bot.cli import main

    _, config = _cli_setup(tmp_path)
    assert main(["--config", str(config), "reports", "digest", "--date", "2026-03-09"]) == 0
    out = capsys.readouterr().out
    assert "weekly digest 2026-03-02 – 2026-03-08" in out
    assert f"billing: 4 contacts (before: 2) -> file:{tmp_path / 'out'}" in out
    saved = json.loads((tmp_path / "out" / "2026-03-09-billing.json").read_text(encoding="utf-8"))
    assert saved["totals"]["contacts"] == 4
    assert main(["--config", str(config), "reports", "digest", "--date", "09-03-2026"]) == 2


def test_cli_reports_digest_sends_a_week_once_and_the_service_does_not_repeat_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from bot.cli import main

    url, config = _cli_setup(tmp_path)
    saved = tmp_path / "out" / "2026-03-09-billing.json"
    assert main(["--config", str(config), "reports", "digest", "--date", "2026-03-09"]) == 0
    capsys.readouterr()
    saved.unlink()

    # by hand a second time: refused, nothing delivered
    assert main(["--config", str(config), "reports", "digest", "--date", "2026-03-09"]) == 1
    assert "was already sent at" in capsys.readouterr().err and not saved.exists()
    # the service's scheduler at that Monday's due time: already sent, not again
    store = Store.from_url(url)
    sink = MemorySink()
    clock = Clock(dt.datetime(2026, 3, 9, 6, 5, tzinfo=dt.timezone.utc))
    assert asyncio.run(DigestScheduler(store, TAXONOMY, [sink], ZONE, 0, dt.time(7, 0), clock=clock).tick()) is None
    assert sink.delivered == []
    [week] = store.transaction(sent_weeks)
    assert week["week"] == "2026-03-09" and week["sent_at"]
    assert {d["owner"] for d in week["details"]["deliveries"]} >= {"billing"}
    store.close()
    # --again: sent anyway
    assert main(["--config", str(config), "reports", "digest", "--date", "2026-03-09", "--again"]) == 0
    assert saved.exists() and "billing: 4 contacts" in capsys.readouterr().out
