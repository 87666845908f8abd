"""The composition root: every part of one webcare service, built from the config.

:class:`Service` builds the store, the channel connectors, the message path (intake → worker
→ Rasa → drafting policy → outbox → dispatcher), cases, CRM, contacts, the digest and the
broadcaster, subscribes the listeners to the store's events, and owns their lifecycle::

    service = Service(config)      # builds everything; a bad plugin or file fails here
    await service.initialize()     # opens clients: the CRM adapter, the connectors
    await service.start()          # background tasks: worker, dispatcher, tracker sync, ...
    await service.stop()           # cancels them; unfinished work stays in the store
    await service.shutdown()       # closes clients and the store

The web layer (:func:`bot.web.app.create_app`) puts a service behind aiohttp; nothing here
knows about HTTP.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Dict, List, Optional, Set

from bot.cases.enrichment import enrich, pending_cases
from bot.cases.escalation import CaseSettings
from bot.config import Config, ConfigError
from bot.customers.contacts import ContactCloser
from bot.customers.crm.base import CrmError
from bot.customers.crm.registry import crm_class, load_crm
from bot.customers.identification import identify
from bot.events import (
    CaseOpened,
    ConversationReleased,
    KnownIssuesChanged,
    OutboxQueued,
    ThresholdsChanged,
    TrackerEventsQueued,
)
from bot.outreach import known_issues
from bot.outreach.broadcasts import Broadcaster
from bot.pipeline.dispatcher import Dispatcher
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import Intake
from bot.pipeline.rasa_client import RasaClient
from bot.pipeline.tracker_sync import TrackerSync
from bot.pipeline.worker import Job, Worker
from bot.reporting.digest import DigestScheduler
from bot.store.database import Store
from connectors.base import Connector
from connectors.registry import build_connectors

logger = logging.getLogger(__name__)


def check_crm_adapter(config: Config) -> None:
    """Resolve the configured CRM adapter before anything is built (connectors and report
    sinks are checked as they are built); :class:`ConfigError` names the setting."""
    try:
        crm_class(config.crm.adapter)
    except CrmError as exc:
        raise ConfigError(f"{config.source or 'defaults'}: crm.adapter: {exc}") from exc


class Service:
    """One webcare service process: its parts and their lifecycle (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        check_crm_adapter(config)
        self.config = config
        # Fails fast on a bad URL; creates the SQLite file and the schema on first run.
        self.store = Store.from_url(config.database_url)
        events = self.store.events
        # Channels → intake → worker (Rasa, drafting policy) → outbox → dispatcher → channels.
        self.connectors: Dict[str, Connector] = build_connectors(config.channels)
        # Escalations: the root-cause taxonomy (a bad file stops start-up), the CRM adapter,
        # and the events (pause, resume, agents' replies) the service writes into Rasa trackers.
        self.cases = CaseSettings.from_config(config)
        self.digest = DigestScheduler.from_config(config, self.store, self.cases.taxonomy)
        self.crm = load_crm(config.crm, self.store)
        self.tracker_sync = TrackerSync(self.store, config.rasa.replicas)
        # The drafting policy with the thresholds admins approved from agents' verdicts: read
        # at start, re-read every few seconds, and changed at once when approved here.
        self.policy = DraftingPolicy.from_config(config.drafting)
        self.worker = Worker(
            self.store,
            RasaClient(config.rasa.replicas, config.worker.rasa_timeout_seconds,
                       suspect_seconds=config.worker.rasa_suspect_seconds),
            self.policy,
            concurrency=config.worker.concurrency,
            cases=self.cases,
            tracker_sync=self.tracker_sync,
            max_attempts=config.worker.max_attempts,
            identify=self._identify,
        )
        # A stable name per replica (host and port): after a crash, the restarted dispatcher
        # takes back the outbox items it held instead of waiting for their leases to expire.
        self.dispatcher = Dispatcher(self.store, self.connectors, max_attempts=config.worker.max_attempts,
                                     owner=f"dispatcher@{socket.gethostname()}:{config.service.port}")
        self.broadcaster = Broadcaster(
            self.store, {name: c.capabilities.rate_limit_per_second for name, c in self.connectors.items()},
            config.broadcasts.queue_ahead_seconds)
        self.contacts = ContactCloser(self.store, self.cases.taxonomy, config.contacts.idle_minutes,
                                      config.contacts.csat, repeat_window_days=config.reports.repeat_window_days)
        self.intake = Intake(self.store, self.worker if config.worker.enabled else None)

        # What a committed unit of work causes, done once here instead of by every caller.
        events.subscribe(OutboxQueued, lambda _: self.dispatcher.wake())
        events.subscribe(TrackerEventsQueued, lambda _: self.tracker_sync.wake())
        events.subscribe(ConversationReleased, lambda _: self.worker.wake())
        events.subscribe(CaseOpened, lambda event: self.enrich_case(event.case_id))
        events.subscribe(KnownIssuesChanged, self._known_issues_changed)
        events.subscribe(ThresholdsChanged, lambda event: self.policy.learned.set(event.intent, event.threshold))

        self._tasks: List["asyncio.Task[Any]"] = []
        self._enrichment: Set["asyncio.Task[Any]"] = set()

    # ------------------------------------------------------------------ lifecycle

    async def initialize(self) -> None:
        """Open the clients (CRM adapter, connectors)."""
        await self.crm.start()
        for connector in self.connectors.values():
            await connector.start()

    async def start(self) -> None:
        """Start the background tasks (when ``worker.enabled``)."""
        if not self.config.worker.enabled:
            return
        try:  # the approved thresholds before the first message is answered
            await self.store.run(self.policy.learned.load)
        except Exception:
            logger.exception("could not read the approved thresholds; the configured ones apply until they are")
        self._tasks += [
            asyncio.create_task(self.policy.learned.run(self.store), name="thresholds-refresh"),
            asyncio.create_task(self.worker.run(), name="worker"),
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(self.tracker_sync.run(), name="tracker-sync"),
            asyncio.create_task(self.contacts.run(), name="contact-closer"),
            asyncio.create_task(self.digest.run(), name="weekly-digest"),
        ]
        if self.config.broadcasts.enabled:
            self._tasks.append(asyncio.create_task(self.broadcaster.run(), name="broadcaster"))
        try:  # cases whose CRM profile was never fetched (the service stopped meanwhile)
            for case_id in await self.store.run(pending_cases):
                self.enrich_case(case_id)
        except Exception:
            logger.exception("could not look for cases waiting for their CRM profile")

    async def stop(self) -> None:
        """Cancel the background tasks and the worker's conversations (unfinished work stays
        in the store). Safe to call twice."""
        tasks = self._tasks + list(self._enrichment)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        await self.worker.stop()

    async def shutdown(self) -> None:
        """Close every client and the store (after :meth:`stop`)."""
        await self.stop()
        await self.tracker_sync.close()
        await self.crm.stop()
        await self.worker.rasa.close()
        for connector in self.connectors.values():
            await connector.stop()
        self.store.close()

    # ------------------------------------------------------------------ listeners

    def enrich_case(self, case_id: int) -> None:
        """Fetch a case's CRM profile and Rasa slots in the background."""
        task = asyncio.get_running_loop().create_task(self._enrich_quietly(case_id), name=f"enrich-case-{case_id}")
        self._enrichment.add(task)
        task.add_done_callback(self._enrichment.discard)

    async def _enrich_quietly(self, case_id: int) -> None:
        try:
            await enrich(self.store, case_id, self.crm, self.config.rasa.url, self.config.crm.timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("case %s: fetching the CRM profile and slots failed", case_id)

    async def _identify(self, job: Job, request: Dict[str, Any]) -> Optional[str]:
        return await identify(self.store, self.crm, job, request, self.config.crm.timeout_seconds)

    def _known_issues_changed(self, _: KnownIssuesChanged) -> None:
        known_issues.forget_cache()  # the bot's answers change now, in this replica
        self.broadcaster.wake()  # a fix announcement may have started
