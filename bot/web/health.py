"""Health and version of the service: ``/health`` (JSON), ``/version``, and the status page ``/``."""
from __future__ import annotations

import asyncio
from typing import Any, Dict

import aiohttp
from aiohttp import web

from bot import __version__
from bot.config import Config
from bot.store.database import ping
from bot.web.keys import CONFIG_KEY, STORE_KEY


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


def setup_health(app: web.Application) -> None:
    """Register ``/``, ``/health`` and ``/version``."""
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
