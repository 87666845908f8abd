"""The webcare service's aiohttp application."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from typing import Any, AsyncIterator, Dict

import aiohttp
from aiohttp import web

from bot import __version__
from bot.cases.enrichment import enrich, pending_cases
from bot.cases.escalation import CaseSettings
from bot.config import Config
from bot.customers import contacts as contact_module
from bot.customers.contacts import ContactCloser
from bot.customers.crm.base import CrmAdapter
from bot.customers.crm.registry import load_crm
from bot.customers.identification import identify
from bot.outreach.broadcasts import Broadcaster
from bot.pipeline.dispatcher import Dispatcher
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import Intake
from bot.pipeline.rasa_client import RasaClient
from bot.pipeline.tracker_sync import TrackerSync
from bot.pipeline.worker import Job, Worker
from connectors.registry import build_connectors
from bot.errors import error_middleware
from bot.store.database import Store, ping

logger = logging.getLogger(__name__)

CONFIG_KEY = web.AppKey("config", Config)
STORE_KEY = web.AppKey("store", Store)
CONNECTORS_KEY = web.AppKey("connectors", dict)
INTAKE_KEY = web.AppKey("intake", Intake)
WORKER_KEY = web.AppKey("worker", Worker)
DISPATCHER_KEY = web.AppKey("dispatcher", Dispatcher)
CASES_KEY = web.AppKey("cases", CaseSettings)
CRM_KEY = web.AppKey("crm", CrmAdapter)
TRACKER_SYNC_KEY = web.AppKey("tracker_sync", TrackerSync)
ENRICHMENT_KEY = web.AppKey("enrichment_tasks", set)
CONTACTS_KEY = web.AppKey("contact_closer", ContactCloser)
BACKGROUND_KEY = web.AppKey("background_tasks", list)
DIGEST_KEY = web.AppKey("digest_scheduler", object)  # bot.reporting.digest.DigestScheduler
BROADCASTER_KEY = web.AppKey("broadcaster", Broadcaster)


def create_app(config: Config) -> web.Application:
    """Build the service: health and version for now; every other part registers here."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024**2)
    app[CONFIG_KEY] = config
    # Fails fast on a bad URL; creates the SQLite file and the schema on first run.
    store = Store.from_url(config.database_url)
    app[STORE_KEY] = store
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)

    # Channels → intake → worker (Rasa, drafting policy) → outbox → dispatcher → channels.
    connectors = build_connectors(config.channels)  # a broken plugin fails start-up here
    app[CONNECTORS_KEY] = connectors
    # Escalations: the root-cause taxonomy (a bad file stops start-up), the CRM adapter,
    # and the events (pause, resume, agents' replies) the service writes into Rasa trackers.
    cases = CaseSettings.from_config(config)
    app[CASES_KEY] = cases
    from bot.reporting.digest import DigestScheduler

    app[DIGEST_KEY] = DigestScheduler.from_config(config, store, cases.taxonomy)  # a bad sink stops start-up
    crm = load_crm(config.crm, store)
    app[CRM_KEY] = crm
    tracker_sync = TrackerSync(store, config.rasa.replicas)
    app[TRACKER_SYNC_KEY] = tracker_sync
    app[ENRICHMENT_KEY] = set()
    worker = Worker(
        store,
        RasaClient(config.rasa.replicas, config.worker.rasa_timeout_seconds,
                   suspect_seconds=config.worker.rasa_suspect_seconds),
        DraftingPolicy.from_config(config.drafting),
        concurrency=config.worker.concurrency,
        cases=cases,
        tracker_sync=tracker_sync,
        max_attempts=config.worker.max_attempts,
    )
    worker.on_case = lambda case_id: case_opened(app, case_id)
    crm_timeout = float(config.crm.get("timeout_seconds", 2.0))

    async def on_identify(job: Job, request: Dict[str, Any]) -> None:
        await identify(store, crm, job, request, crm_timeout)
        dispatcher.wake()

    worker.on_identify = on_identify
    # A stable name per replica (host and port): after a crash, the restarted dispatcher
    # takes back the outbox items it held instead of waiting for their leases to expire.
    dispatcher = Dispatcher(store, connectors, max_attempts=config.worker.max_attempts,
                            owner=f"dispatcher@{socket.gethostname()}:{config.service.port}")
    broadcasts = config.raw.get("broadcasts") or {}
    app[BROADCASTER_KEY] = Broadcaster(
        store, {name: c.capabilities.rate_limit_per_second for name, c in connectors.items()},
        float(broadcasts.get("queue_ahead_seconds", 5)), on_outbox=dispatcher.wake)
    contacts = config.raw.get("contacts") or {}
    contact_module.CSAT_COMMENT_MINUTES = float(contacts.get("csat_comment_minutes", 10))
    contact_module.REPEAT_WINDOW = dt.timedelta(
        days=float((config.raw.get("reports") or {}).get("repeat_window_days", 7)))
    app[CONTACTS_KEY] = ContactCloser(store, cases.taxonomy, float(contacts.get("idle_minutes", 30)),
                                      bool(contacts.get("csat", True)), on_outbox=dispatcher.wake)
    worker.on_outbox = dispatcher.wake
    tracker_sync.on_release = worker.wake
    app[WORKER_KEY] = worker
    app[DISPATCHER_KEY] = dispatcher
    intake = Intake(store, worker if config.worker.enabled else None)
    app[INTAKE_KEY] = intake
    for connector in connectors.values():
        connector.setup(app, intake)
    from bot.web.api.drafts import setup_api
    from bot.web.console import setup_console

    setup_api(app)  # JSON API under /api (session cookie + CSRF header)
    setup_console(app)  # agent console under /console
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_stop_background)
    app.on_cleanup.append(_close_store)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Start the connectors, the worker and the dispatcher; stop them in reverse order."""
    connectors = app[CONNECTORS_KEY]
    await app[CRM_KEY].start()
    for connector in connectors.values():
        await connector.start()
    tasks: list = app.setdefault(BACKGROUND_KEY, [])
    if app[CONFIG_KEY].worker.enabled:
        tasks += [
            asyncio.create_task(app[WORKER_KEY].run(), name="worker"),
            asyncio.create_task(app[DISPATCHER_KEY].run(), name="dispatcher"),
            asyncio.create_task(app[TRACKER_SYNC_KEY].run(), name="tracker-sync"),
            asyncio.create_task(app[CONTACTS_KEY].run(), name="contact-closer"),
            asyncio.create_task(app[DIGEST_KEY].run(), name="weekly-digest"),  # type: ignore[attr-defined]
        ]
        if (app[CONFIG_KEY].raw.get("broadcasts") or {}).get("enabled", True):
            tasks.append(asyncio.create_task(app[BROADCASTER_KEY].run(), name="broadcaster"))
        try:  # cases whose CRM profile was never fetched (the service stopped meanwhile)
            for case_id in await app[STORE_KEY].run(pending_cases):
                case_opened(app, case_id)
        except Exception:
            logger.exception("could not look for cases waiting for their CRM profile")
    yield
    await _stop_background(app)  # already done on shutdown; again in case startup failed later
    await app[TRACKER_SYNC_KEY].close()
    await app[CRM_KEY].stop()
    await app[WORKER_KEY].rasa.close()
    for connector in connectors.values():
        await connector.stop()


async def _stop_background(app: web.Application) -> None:
    """Cancel the background tasks and the worker's conversations (unfinished work stays in
    the store). Runs on shutdown: aiohttp waits for running tasks before the cleanup phase,
    so they must stop here for SIGTERM/Ctrl-C to end the service at once."""
    tasks = list(app.get(BACKGROUND_KEY, [])) + list(app[ENRICHMENT_KEY])
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    app[BACKGROUND_KEY] = []
    await app[WORKER_KEY].stop()


def case_opened(app: web.Application, case_id: int) -> None:
    """A case was committed: fetch its CRM profile and Rasa slots in the background."""
    config: Config = app[CONFIG_KEY]
    task = asyncio.get_running_loop().create_task(
        _enrich_quietly(app, case_id, float(config.crm.get("timeout_seconds", 2.0))),
        name=f"enrich-case-{case_id}")
    app[ENRICHMENT_KEY].add(task)
    task.add_done_callback(app[ENRICHMENT_KEY].discard)


async def _enrich_quietly(app: web.Application, case_id: int, timeout: float) -> None:
    try:
        await enrich(app[STORE_KEY], case_id, app[CRM_KEY], app[CONFIG_KEY].rasa.url, timeout)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("case %s: fetching the CRM profile and slots failed", case_id)


async def _close_store(app: web.Application) -> None:
    app[STORE_KEY].close()


async def version(request: web.Request) -> web.Response:
    """``{"name": "webcare", "version": ...}``."""
    return web.json_response({"name": "webcare", "version": __version__})


async def health(request: web.Request) -> web.Response:
    """Health of the service and what it depends on; 503 when the store is down."""
    report = await health_report(request.app)
    status = 200 if report["database"]["ok"] else 503
    return web.json_response(report, status=status)


async def health_report(app: web.Application) -> Dict[str, Any]:
    """The service, the store, the Rasa server and the action server, each ok or not."""
    config: Config = app[CONFIG_KEY]
    try:
        await asyncio.get_running_loop().run_in_executor(None, ping, app[STORE_KEY].engine)
        database: Dict[str, Any] = {"ok": True}
    except Exception as exc:  # any driver error means "down"
        database = {"ok": False, "error": str(exc).splitlines()[0]}
    actions, *replicas = await asyncio.gather(
        _probe(f"{config.rasa.actions_url}/health"), *(_probe(f"{url}/status") for url in config.rasa.replicas)
    )
    # Rasa is ok when one replica answers (the others' conversations fail over to it).
    rasa = next((replica for replica in replicas if replica["ok"]), replicas[0])
    report = {
        "status": "ok" if database["ok"] else "degraded",
        "version": __version__,
        "database": database,
        "rasa": rasa,
        "action_server": actions,
    }
    if len(replicas) > 1:
        report["rasa_replicas"] = replicas
    return report


async def _probe(url: str) -> Dict[str, Any]:
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                return {"ok": response.status == 200, "url": url, "status": response.status}
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return {"ok": False, "url": url, "error": type(exc).__name__}


INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>webcare</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
.ok{{color:#137333}}.bad{{color:#b3261e}}</style></head>
<body><h1>webcare {version}</h1>
<p>Social customer service: a Rasa assistant drafts answers, agents approve them.</p>
<ul>{rows}</ul>
<p><a href="/chat">Web chat</a> (what customers see) · <a href="/console">Agent console</a> ·
<a href="/health">/health</a> (JSON)</p></body></html>"""


async def index(request: web.Request) -> web.Response:
    """A small human-readable status page."""
    report = await health_report(request.app)
    rows = "".join(
        f'<li>{name}: <span class="{"ok" if report[key]["ok"] else "bad"}">'
        f'{"up" if report[key]["ok"] else "down"}</span></li>'
        for name, key in (("store", "database"), ("Rasa server", "rasa"), ("action server", "action_server"))
    )
    return web.Response(
        text=INDEX_HTML.format(version=__version__, rows=rows), content_type="text/html"
    )
