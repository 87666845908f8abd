"""One configuration file (``webcare.yml``) plus environment variables, validated at start-up.

Lookup: ``--config PATH``, else ``$WEBCARE_CONFIG``, else ``webcare.yml`` in the working
directory, else the built-in defaults. Environment variables override the file:
``WEBCARE_DATABASE_URL``, ``WEBCARE_HOST``, ``WEBCARE_PORT``, ``WEBCARE_RASA_URL``,
``WEBCARE_ACTIONS_URL``. Secrets belong in the environment, never in the file.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml

from bot.opening_hours import DEFAULT_OPENING_HOURS, OpeningHours, OpeningHoursError

DEFAULT_CONFIG_FILE = "webcare.yml"

DEFAULTS: Dict[str, Any] = {
    "service": {"host": "127.0.0.1", "port": 8080},
    "database": {"url": "sqlite:///var/webcare.db"},
    "rasa": {
        "url": "http://127.0.0.1:5005",
        "actions_url": "http://127.0.0.1:5055",
        "model_dir": "models",
    },
    "opening_hours": DEFAULT_OPENING_HOURS,
    "console": {"sla_seconds": 300, "session_hours": 12, "cookie_secure": False},
    "drafting": {
        "threshold": 0.8,
        "intent_thresholds": {},
        "channel_thresholds": {},
        "always_review": ["complaint", "cancel_contract", "payment_arrangement"],
        "review_customer_flags": ["vip", "sensitive"],
    },
    "worker": {"enabled": True, "concurrency": 8, "rasa_timeout_seconds": 30, "rasa_suspect_seconds": 30,
               "max_attempts": 10},
    # Escalations: the root-cause taxonomy (validated against the domain at start-up) and how
    # the waiting time told to customers on handover is estimated.
    "cases": {
        "root_causes_file": "data/root_causes.yml",
        "domain_file": "domain.yml",
        "wait_window_minutes": 60,  # median first response over this window
        "default_wait_minutes": 15,  # told when the window has no first responses yet
    },
    # Channel connectors: {name: {type: <entry point name or dotted path>, <options>}}.
    # A `channels` section in the file replaces this whole mapping.
    "channels": {"webchat": {"type": "webchat"}},
    # CRM adapter: sql (tables in the store) | http (a REST CRM) | entry point | dotted path.
    # The HTTP CRM's token comes from the environment variable named by token_env.
    # Contacts (conversation episodes) and CSAT: an episode ends after this much silence (or
    # when its case closes); then the customer is asked for a 1-5 rating, once per contact.
    "contacts": {"idle_minutes": 30, "csat": True, "csat_comment_minutes": 10},
    # Recurring-issue reports and the weekly digest per root-cause owner (report sinks are
    # plugins: {type: file|webhook|dotted path, <options>}).
    "reports": {
        "default_period_days": 28,
        "repeat_window_days": 7,
        "digest_weekday": "monday",
        "digest_time": "07:00",
        "sinks": [{"type": "file", "directory": "var/digests"}],
    },
    # Fix announcements: how far ahead of delivery the broadcaster fills the outbox.
    "broadcasts": {"enabled": True, "queue_ahead_seconds": 5},
    "crm": {
        "adapter": "sql",
        "timeout_seconds": 2.0,
        "http": {
            "base_url": None,
            "token_env": "WEBCARE_CRM_TOKEN",
            "failure_threshold": 5,
            "reset_seconds": 30,
        },
        "options": {},  # free-form settings for a plugin adapter
    },
}

ENVIRONMENT = {
    "WEBCARE_DATABASE_URL": ("database", "url"),
    "WEBCARE_HOST": ("service", "host"),
    "WEBCARE_PORT": ("service", "port"),
    "WEBCARE_RASA_URL": ("rasa", "url"),
    "WEBCARE_ACTIONS_URL": ("rasa", "actions_url"),
}


class ConfigError(ValueError):
    """The configuration is invalid; the message says what and where."""


@dataclass(frozen=True)
class ServiceConfig:
    host: str
    port: int


@dataclass(frozen=True)
class RasaConfig:
    url: str  # the first (or only) Rasa server
    actions_url: str
    model_dir: str
    urls: Tuple[str, ...] = ()  # every Rasa replica (scale mode), ``url`` first

    @property
    def replicas(self) -> Tuple[str, ...]:
        return self.urls or (self.url,)


@dataclass(frozen=True)
class ConsoleConfig:
    sla_seconds: int
    session_hours: int
    cookie_secure: bool


@dataclass(frozen=True)
class WorkerConfig:
    enabled: bool
    concurrency: int
    rasa_timeout_seconds: float
    rasa_suspect_seconds: float  # a Rasa replica that hung or failed is tried last for this long
    max_attempts: int


@dataclass(frozen=True)
class Config:
    """The validated configuration of one webcare deployment."""

    service: ServiceConfig
    database_url: str
    rasa: RasaConfig
    opening_hours: OpeningHours
    console: ConsoleConfig
    worker: WorkerConfig
    drafting: Dict[str, Any]
    channels: Dict[str, Any]
    source: Optional[Path] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)
    crm: Dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULTS["crm"]))


def config_path(explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The configuration file in use, or ``None`` for the built-in defaults."""
    environ = os.environ if environ is None else environ
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        return path
    if environ.get("WEBCARE_CONFIG"):
        return config_path(environ["WEBCARE_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_config(path: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Config:
    """Read, merge with defaults and the environment, and validate."""
    environ = os.environ if environ is None else environ
    source = config_path(path, environ)
    data: Dict[str, Any] = {}
    if source is not None:
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the top level must be a mapping")
    where = str(source or "defaults")
    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    merged = copy.deepcopy(DEFAULTS)
    for section, values in data.items():
        if values is None:  # a section whose keys are all commented out
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: section '{section}' must be a mapping")
        if section == "channels":
            merged[section] = copy.deepcopy(values)
        elif section != "opening_hours":
            unknown_keys = set(values) - set(DEFAULTS[section])
            if unknown_keys:
                raise ConfigError(f"{where}: unknown key(s) {sorted(unknown_keys)} in '{section}'")
            merged[section].update(values)
        else:
            merged[section] = {**DEFAULTS[section], **values}
    for variable, (section, key) in ENVIRONMENT.items():
        if environ.get(variable):
            merged[section][key] = environ[variable]

    try:
        port = int(merged["service"]["port"])
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: service.port must be a number, not {merged['service']['port']!r}")
    if not 0 < port < 65536:
        raise ConfigError(f"{where}: service.port {port} is out of range")
    rasa_urls = merged["rasa"]["url"]
    if isinstance(rasa_urls, str):  # one URL, or replicas separated by commas (WEBCARE_RASA_URL)
        rasa_urls = [url.strip() for url in rasa_urls.split(",") if url.strip()]
    if not isinstance(rasa_urls, list) or not rasa_urls:
        raise ConfigError(f"{where}: rasa.url must be a URL or a list of URLs (Rasa replicas), "
                          f"not {merged['rasa']['url']!r}")
    for url in rasa_urls:
        if not isinstance(url, str) or "://" not in url:
            raise ConfigError(f"{where}: rasa.url must be a URL or a list of URLs, not {url!r}")
    for section, key in (("database", "url"), ("rasa", "actions_url")):
        if not isinstance(merged[section][key], str) or "://" not in merged[section][key]:
            raise ConfigError(f"{where}: {section}.{key} must be a URL, not {merged[section][key]!r}")
    try:
        hours = OpeningHours.from_config(merged["opening_hours"])
    except OpeningHoursError as exc:
        raise ConfigError(f"{where}: {exc}") from exc

    try:
        console = ConsoleConfig(
            sla_seconds=int(merged["console"]["sla_seconds"]),
            session_hours=int(merged["console"]["session_hours"]),
            cookie_secure=bool(merged["console"]["cookie_secure"]),
        )
        worker = WorkerConfig(
            enabled=bool(merged["worker"]["enabled"]),
            concurrency=int(merged["worker"]["concurrency"]),
            rasa_timeout_seconds=float(merged["worker"]["rasa_timeout_seconds"]),
            rasa_suspect_seconds=float(merged["worker"]["rasa_suspect_seconds"]),
            max_attempts=int(merged["worker"]["max_attempts"]),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: console/worker settings must be numbers: {exc}") from exc
    if worker.rasa_timeout_seconds <= 0 or worker.rasa_suspect_seconds < 0:
        raise ConfigError(f"{where}: worker.rasa_timeout_seconds must be positive and "
                          f"worker.rasa_suspect_seconds 0 or more")
    from bot.pipeline.drafting_policy import DraftingPolicy, DraftingPolicyError

    try:
        DraftingPolicy.from_config(merged["drafting"])
    except DraftingPolicyError as exc:
        raise ConfigError(f"{where}: drafting: {exc}") from exc
    crm = _validate_crm(merged["crm"], where)
    merged["crm"] = crm

    return Config(
        service=ServiceConfig(host=str(merged["service"]["host"]), port=port),
        database_url=merged["database"]["url"],
        rasa=RasaConfig(
            url=rasa_urls[0].rstrip("/"),
            actions_url=merged["rasa"]["actions_url"].rstrip("/"),
            model_dir=str(merged["rasa"]["model_dir"]),
            urls=tuple(url.rstrip("/") for url in rasa_urls),
        ),
        opening_hours=hours,
        console=console,
        worker=worker,
        drafting=merged["drafting"],
        channels=merged["channels"],
        source=source,
        raw=merged,
        crm=crm,
    )


def _validate_crm(section: Dict[str, Any], where: str) -> Dict[str, Any]:
    """The ``crm`` section with ``http`` defaults filled in; the adapter must resolve."""
    from bot.customers.crm.base import CrmError
    from bot.customers.crm.registry import crm_class

    http = section.get("http") or {}
    if not isinstance(http, dict):
        raise ConfigError(f"{where}: crm.http must be a mapping")
    unknown = set(http) - set(DEFAULTS["crm"]["http"])
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} in 'crm.http'")
    http = {**DEFAULTS["crm"]["http"], **http}
    if not isinstance(section.get("options") or {}, dict):
        raise ConfigError(f"{where}: crm.options must be a mapping")
    try:
        timeout = float(section["timeout_seconds"])
        threshold = int(http["failure_threshold"])
        reset = float(http["reset_seconds"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: crm timeouts and thresholds must be numbers: {exc}") from exc
    if timeout <= 0 or threshold < 1 or reset <= 0:
        raise ConfigError(f"{where}: crm.timeout_seconds and crm.http.reset_seconds must be positive, "
                          "crm.http.failure_threshold at least 1")
    adapter = str(section.get("adapter") or "")
    try:
        crm_class(adapter)
    except CrmError as exc:
        raise ConfigError(f"{where}: crm.adapter: {exc}") from exc
    base_url = http["base_url"]
    if base_url is not None and (not isinstance(base_url, str) or "://" not in base_url):
        raise ConfigError(f"{where}: crm.http.base_url must be a URL, not {base_url!r}")
    if adapter == "http" and not base_url:
        raise ConfigError(f"{where}: crm.adapter is http but crm.http.base_url is not set")
    if not isinstance(http["token_env"], str) or not http["token_env"]:
        raise ConfigError(f"{where}: crm.http.token_env must name an environment variable")
    return {**section, "adapter": adapter, "timeout_seconds": timeout, "options": section.get("options") or {},
            "http": {**http, "failure_threshold": threshold, "reset_seconds": reset}}


def load_opening_hours() -> OpeningHours:
    """The configured opening hours (for the action server, which has no CLI options)."""
    return load_config().opening_hours
