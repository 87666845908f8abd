"""The aiohttp application's keys, in one leaf module (handlers import these, never the app).

Every part is built and owned by :class:`bot.service.Service`; the keys only let handlers
reach the parts they use.
"""
from __future__ import annotations

from typing import Dict

import jinja2
from aiohttp import web

from bot.cases.escalation import CaseSettings
from bot.config import Config
from bot.customers.contacts import ContactCloser
from bot.customers.crm.base import CrmAdapter
from bot.outreach.broadcasts import Broadcaster
from bot.pipeline.dispatcher import Dispatcher
from bot.pipeline.intake import Intake
from bot.pipeline.tracker_sync import TrackerSync
from bot.pipeline.worker import Worker
from bot.reporting.digest import DigestScheduler
from bot.service import Service
from bot.store.database import Store
from connectors.base import Connector

SERVICE_KEY = web.AppKey("service", Service)
CONFIG_KEY = web.AppKey("config", Config)
STORE_KEY = web.AppKey("store", Store)
CONNECTORS_KEY = web.AppKey("connectors", Dict[str, Connector])
INTAKE_KEY = web.AppKey("intake", Intake)
WORKER_KEY = web.AppKey("worker", Worker)
DISPATCHER_KEY = web.AppKey("dispatcher", Dispatcher)
CASES_KEY = web.AppKey("cases", CaseSettings)
CRM_KEY = web.AppKey("crm", CrmAdapter)
TRACKER_SYNC_KEY = web.AppKey("tracker_sync", TrackerSync)
CONTACTS_KEY = web.AppKey("contact_closer", ContactCloser)
DIGEST_KEY = web.AppKey("digest_scheduler", DigestScheduler)
BROADCASTER_KEY = web.AppKey("broadcaster", Broadcaster)
JINJA_KEY = web.AppKey("webcare.console.jinja", jinja2.Environment)
