"""The aiohttp application: a :class:`bot.service.Service` behind HTTP.

:func:`create_app` builds the service from the config, puts its parts under the app keys
(:mod:`bot.web.keys`), installs the middleware (errors, then auth), registers the routes
(health, the channels' webhooks, the JSON API, the console) and ties the service's lifecycle
to the app's.
"""
from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from bot.config import Config
from bot.service import Service
from bot.web.api import setup_api
from bot.web.console import setup_console
from bot.web.health import setup_health
from bot.web.keys import (
    BROADCASTER_KEY,
    CASES_KEY,
    CONFIG_KEY,
    CONNECTORS_KEY,
    CONTACTS_KEY,
    CRM_KEY,
    DIGEST_KEY,
    DISPATCHER_KEY,
    INTAKE_KEY,
    SERVICE_KEY,
    STORE_KEY,
    TRACKER_SYNC_KEY,
    WORKER_KEY,
)
from bot.web.middleware import error_middleware

MAX_BODY_BYTES = 1024**2


def create_app(config: Config) -> web.Application:
    """Build the service and its web application (a bad config or plugin fails here)."""
    service = Service(config)
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[SERVICE_KEY] = service
    app[CONFIG_KEY] = config
    app[STORE_KEY] = service.store
    app[CONNECTORS_KEY] = service.connectors
    app[INTAKE_KEY] = service.intake
    app[WORKER_KEY] = service.worker
    app[DISPATCHER_KEY] = service.dispatcher
    app[CASES_KEY] = service.cases
    app[CRM_KEY] = service.crm
    app[TRACKER_SYNC_KEY] = service.tracker_sync
    app[CONTACTS_KEY] = service.contacts
    app[DIGEST_KEY] = service.digest
    app[BROADCASTER_KEY] = service.broadcaster
    setup_health(app)
    for connector in service.connectors.values():
        connector.setup(app, service.intake)  # each channel's webhook hands messages to intake
    setup_api(app)  # JSON API under /api (session cookie + CSRF header)
    setup_console(app)  # agent console under /console
    app.cleanup_ctx.append(_lifecycle)
    # aiohttp waits for running tasks before the cleanup phase, so the background tasks stop
    # on shutdown already: SIGTERM / Ctrl-C end the service at once.
    app.on_shutdown.append(_stop)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE_KEY]
    await service.initialize()
    await service.start()
    yield
    await service.shutdown()


async def _stop(app: web.Application) -> None:
    await app[SERVICE_KEY].stop()
