"""The webcare service's aiohttp application."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Dict

import aiohttp
from aiohttp import web

from bot import __version__
from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.drafting import DraftingPolicy
from bot.intake import Intake
from bot.rasa_client import RasaClient
from bot.worker import Worker
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
    worker = Worker(
        store,
        RasaClient(config.rasa.url, config.worker.rasa_timeout_seconds),
        DraftingPolicy.from_config(config.drafting),
        concurrency=config.worker.concurrency,
    )
    dispatcher = Dispatcher(store, connectors, max_attempts=config.worker.max_attempts)
    worker.on_outbox = dispatcher.wake
    app[WORKER_KEY] = worker
    app[DISPATCHER_KEY] = dispatcher
    intake = Intake(store, worker if config.worker.enabled else None)
    app[INTAKE_KEY] = intake
    for connector in connectors.values():
        connector.setup(app, intake)
    from bot.api import setup_api
    from bot.console import setup_console

    setup_api(app)  # JSON API under /api (session cookie + CSRF header)
    setup_console(app)  # agent console under /console
    app.cleanup_ctx.append(_background)
    app.on_cleanup.append(_close_store)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Start the connectors, the worker and the dispatcher; stop them in reverse order."""
    connectors = app[CONNECTORS_KEY]
    for connector in connectors.values():
        await connector.start()
    tasks = []
    if app[CONFIG_KEY].worker.enabled:
        tasks = [
            asyncio.create_task(app[WORKER_KEY].run(), name="worker"),
            asyncio.create_task(app[DISPATCHER_KEY].run(), name="dispatcher"),
        ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await app[WORKER_KEY].stop()
    await app[WORKER_KEY].rasa.close()
    for connector in connectors.values():
        await connector.stop()


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
    rasa, actions = await asyncio.gather(
        _probe(f"{config.rasa.url}/status"), _probe(f"{config.rasa.actions_url}/health")
    )
    return {
        "status": "ok" if database["ok"] else "degraded",
        "version": __version__,
        "database": database,
        "rasa": rasa,
        "action_server": actions,
    }


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
