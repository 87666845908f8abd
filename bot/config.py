"""One configuration file (``webcare.yml``) plus environment variables, validated at start-up.

Lookup: ``--config PATH``, else ``$WEBCARE_CONFIG``, else ``webcare.yml`` in the working
directory, else the built-in defaults. Environment variables override the file:
``WEBCARE_DATABASE_URL``, ``WEBCARE_HOST``, ``WEBCARE_PORT``, ``WEBCARE_RASA_URL``,
``WEBCARE_ACTIONS_URL``. Secrets belong in the environment, never in the file.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple

import yaml

from bot.opening_hours import DEFAULT_OPENING_HOURS, WEEKDAYS, OpeningHours, OpeningHoursError

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
        "public_thresholds": {},
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
    # Per-intent auto-send thresholds suggested from agents' verdicts (bot/learning/thresholds.py):
    # the precision auto-sent replies must keep (95 % Wilson lower bound), and the verdicts an
    # intent needs before anything but its current threshold is suggested for it.
    # Retraining (bot/retraining/job.py): the share of reviewed examples held out of training
    # to compare a candidate model with the one in use; the fewest held-out messages the gate
    # compares on; how much lower (held-out accuracy, auto-send coverage) a candidate may score
    # and still pass the gate; "manual" (a person promotes a candidate that passed) or "auto"
    # (the job promotes it); how long swapping one Rasa replica's model may take.
    "learning": {"target_precision": 0.98, "min_verdicts": 30, "holdout_share": 0.2, "min_holdout": 20,
                 "max_drop": 0.0, "promotion": "manual", "swap_timeout_seconds": 120},
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


class SettingError(ConfigError):
    """One setting is invalid (the caller adds the file it came from)."""


# ------------------------------------------------------------------ typed sections


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
class DraftingConfig:
    """The ``drafting`` section (see :mod:`bot.pipeline.drafting_policy`)."""

    threshold: float
    intent_thresholds: Mapping[str, float]
    channel_thresholds: Mapping[str, float]
    always_review: FrozenSet[str]
    review_customer_flags: FrozenSet[str]
    # Public replies (comments) are reviewed unless the channel is named here; its threshold
    # only ever raises the private one.
    public_thresholds: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, section: Mapping[str, Any]) -> "DraftingConfig":
        """Validate the section; raises :class:`SettingError`. A missing threshold is the
        default one; a missing list or mapping is empty (load_config fills in the defaults)."""
        unknown = set(section) - set(DEFAULTS["drafting"])
        if unknown:
            raise SettingError(f"unknown key(s) {sorted(unknown)}")
        return cls(
            threshold=_probability("threshold", section.get("threshold", DEFAULTS["drafting"]["threshold"])),
            intent_thresholds=_thresholds("intent_thresholds", section.get("intent_thresholds") or {}),
            channel_thresholds=_thresholds("channel_thresholds", section.get("channel_thresholds") or {}),
            always_review=_names("always_review", section.get("always_review") or []),
            review_customer_flags=_names("review_customer_flags", section.get("review_customer_flags") or []),
            public_thresholds=_thresholds("public_thresholds", section.get("public_thresholds") or {}),
        )


@dataclass(frozen=True)
class CasesConfig:
    root_causes_file: str  # relative to the config file's folder, the working directory or the project
    domain_file: str
    wait_window_minutes: int  # the waiting time told on handover: median first response over this window
    default_wait_minutes: int  # ... or this when nobody was answered in the window


@dataclass(frozen=True)
class ContactsConfig:
    idle_minutes: float  # a bot-held episode ends after this much silence
    csat: bool  # ask for a 1-5 rating when a contact ends
    csat_comment_minutes: float  # the next message within this time is the rating's comment


@dataclass(frozen=True)
class ReportsConfig:
    default_period_days: int
    repeat_window_days: float  # a contact within this many days of the previous one is a repeat
    digest_weekday: int  # 0 = Monday
    digest_time: dt.time  # local time (opening_hours.timezone)
    sinks: Tuple[Mapping[str, Any], ...]  # plugin settings: {type: file|webhook|dotted path, ...}

    @property
    def repeat_window(self) -> dt.timedelta:
        return dt.timedelta(days=self.repeat_window_days)


@dataclass(frozen=True)
class BroadcastsConfig:
    enabled: bool
    queue_ahead_seconds: float  # how far ahead of delivery the broadcaster fills the outbox


@dataclass(frozen=True)
class LearningConfig:
    """The ``learning`` section (see :mod:`bot.learning.thresholds`)."""

    target_precision: float  # auto-sent replies' precision to keep: 95 % Wilson lower bound ≥ this
    min_verdicts: int  # an intent with fewer verdicts keeps its current (configured or global) threshold
    holdout_share: float  # of the reviewed examples: never trained on, the candidates' test
    min_holdout: int  # fewer held-out messages: the gate compares on the test stories alone
    max_drop: float  # a candidate may score this much lower than the model in use and pass
    promotion: str  # "manual" or "auto" (the job promotes a candidate that passed)
    swap_timeout_seconds: float  # one Rasa replica's PUT /model

    @classmethod
    def parse(cls, section: Mapping[str, Any]) -> "LearningConfig":
        """Validate the section; raises :class:`SettingError` (a missing key is its default)."""
        unknown = set(section) - set(DEFAULTS["learning"])
        if unknown:
            raise SettingError(f"unknown key(s) {sorted(unknown)}")
        target = _probability("learning.target_precision",
                              section.get("target_precision", DEFAULTS["learning"]["target_precision"]))
        if not 0.5 <= target < 1.0:
            raise SettingError(f"learning.target_precision must be at least 0.5 and below 1 "
                               f"(no number of verdicts proves 100 %), not {target}")
        defaults = DEFAULTS["learning"]
        holdout = _probability("learning.holdout_share", section.get("holdout_share", defaults["holdout_share"]))
        if holdout >= 0.9:
            raise SettingError(f"learning.holdout_share must be below 0.9 (most examples are for training), "
                               f"not {holdout}")
        promotion = section.get("promotion", defaults["promotion"])
        if promotion not in ("manual", "auto"):
            raise SettingError(f"learning.promotion must be 'manual' or 'auto', not {promotion!r}")
        return cls(
            target_precision=target,
            min_verdicts=_integer("learning.min_verdicts", section.get("min_verdicts", defaults["min_verdicts"]), 1),
            holdout_share=holdout,
            min_holdout=_integer("learning.min_holdout", section.get("min_holdout", defaults["min_holdout"]), 1),
            max_drop=_probability("learning.max_drop", section.get("max_drop", defaults["max_drop"])),
            promotion=promotion,
            swap_timeout_seconds=_number("learning.swap_timeout_seconds",
                                         section.get("swap_timeout_seconds", defaults["swap_timeout_seconds"]),
                                         positive=True),
        )


@dataclass(frozen=True)
class CrmHttpConfig:
    base_url: Optional[str]
    token_env: str  # the environment variable holding the token (never the token itself)
    failure_threshold: int
    reset_seconds: float


@dataclass(frozen=True)
class CrmConfig:
    adapter: str  # sql | http | an entry point name | a dotted path
    timeout_seconds: float
    http: CrmHttpConfig
    options: Mapping[str, Any]  # free-form settings for a plugin adapter

    def as_mapping(self) -> Dict[str, Any]:
        """The section as plugin adapters receive it (``CrmAdapter.from_config``)."""
        return {"adapter": self.adapter, "timeout_seconds": self.timeout_seconds,
                "http": dataclasses.asdict(self.http), "options": dict(self.options)}


@dataclass(frozen=True)
class Config:
    """The validated configuration of one webcare deployment: one typed field per setting."""

    service: ServiceConfig
    database_url: str
    rasa: RasaConfig
    opening_hours: OpeningHours
    console: ConsoleConfig
    worker: WorkerConfig
    drafting: DraftingConfig
    channels: Mapping[str, Mapping[str, Any]]  # connector plugins validate their own options
    cases: CasesConfig
    contacts: ContactsConfig
    reports: ReportsConfig
    broadcasts: BroadcastsConfig
    crm: CrmConfig
    learning: LearningConfig
    source: Optional[Path] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)  # the merged file, for display only


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


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.safe_load``, except that a date that does not exist (``2026-02-30``) stays text, so
    its section reports it by key instead of PyYAML raising a bare ``ValueError``."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def load_config(path: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Config:
    """Read, merge with defaults and the environment, and validate."""
    environ = os.environ if environ is None else environ
    source = config_path(path, environ)
    data: Dict[str, Any] = {}
    if source is not None:
        try:
            data = yaml.load(source.read_text(encoding="utf-8"), Loader=_ConfigLoader) or {}
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
            sla_seconds=_integer("console.sla_seconds", merged["console"]["sla_seconds"], 1),
            session_hours=_integer("console.session_hours", merged["console"]["session_hours"], 1),
            cookie_secure=_flag("console.cookie_secure", merged["console"]["cookie_secure"]),
        )
        try:
            worker = WorkerConfig(
                enabled=_flag("worker.enabled", merged["worker"]["enabled"]),
                concurrency=_integer("worker.concurrency", merged["worker"]["concurrency"], 1),
                rasa_timeout_seconds=float(merged["worker"]["rasa_timeout_seconds"]),
                rasa_suspect_seconds=float(merged["worker"]["rasa_suspect_seconds"]),
                max_attempts=_integer("worker.max_attempts", merged["worker"]["max_attempts"], 1),
            )
        except (TypeError, ValueError) as exc:
            raise SettingError(f"console/worker settings must be numbers: {exc}") from exc
        if worker.rasa_timeout_seconds <= 0 or worker.rasa_suspect_seconds < 0:
            raise SettingError("worker.rasa_timeout_seconds must be positive and "
                               "worker.rasa_suspect_seconds 0 or more")
        try:
            drafting = DraftingConfig.parse(merged["drafting"])
        except SettingError as exc:
            raise SettingError(f"drafting: {exc}") from exc
        cases = CasesConfig(
            root_causes_file=_text("cases.root_causes_file", merged["cases"]["root_causes_file"]),
            domain_file=_text("cases.domain_file", merged["cases"]["domain_file"]),
            wait_window_minutes=_integer("cases.wait_window_minutes", merged["cases"]["wait_window_minutes"], 1),
            default_wait_minutes=_integer("cases.default_wait_minutes", merged["cases"]["default_wait_minutes"], 0),
        )
        contacts = ContactsConfig(
            idle_minutes=_number("contacts.idle_minutes", merged["contacts"]["idle_minutes"], positive=True),
            csat=_flag("contacts.csat", merged["contacts"]["csat"]),
            csat_comment_minutes=_number("contacts.csat_comment_minutes",
                                         merged["contacts"]["csat_comment_minutes"]),
        )
        reports = _reports(merged["reports"])
        broadcasts = BroadcastsConfig(
            enabled=_flag("broadcasts.enabled", merged["broadcasts"]["enabled"]),
            queue_ahead_seconds=_number("broadcasts.queue_ahead_seconds",
                                        merged["broadcasts"]["queue_ahead_seconds"], positive=True),
        )
        crm = _validate_crm(merged["crm"])
        learning = LearningConfig.parse(merged["learning"])
        channels = _channels(merged["channels"])
    except SettingError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    merged["crm"] = crm.as_mapping()

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
        drafting=drafting,
        channels=channels,
        cases=cases,
        contacts=contacts,
        reports=reports,
        broadcasts=broadcasts,
        crm=crm,
        learning=learning,
        source=source,
        raw=merged,
    )


# ------------------------------------------------------------------ validators


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise SettingError(f"{name} must be true or false, not {value!r}")


def _integer(name: str, value: Any, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a whole number, not {value!r}") from None
    if isinstance(value, bool) or number < minimum or (isinstance(value, float) and value != number):
        raise SettingError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return number


def _number(name: str, value: Any, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a number, not {value!r}") from None
    if isinstance(value, bool) or number < 0 or (positive and number == 0):
        raise SettingError(f"{name} must be {'positive' if positive else '0 or more'}, not {value!r}")
    return number


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(f"{name} must be a non-empty text, not {value!r}")
    return value


def _probability(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a number between 0 and 1, not {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise SettingError(f"{name} must be between 0 and 1, not {number}")
    return number


def _thresholds(name: str, value: Any) -> Dict[str, float]:
    if not isinstance(value, Mapping):
        raise SettingError(f"{name} must map names to thresholds")
    return {str(k): _probability(f"{name}.{k}", v) for k, v in value.items()}


def _names(name: str, value: Any) -> FrozenSet[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise SettingError(f"{name} must be a list of names")
    return frozenset(str(v) for v in value)


def _reports(section: Mapping[str, Any]) -> ReportsConfig:
    weekday = str(section["digest_weekday"]).strip().lower()
    if weekday not in WEEKDAYS:
        raise SettingError(f"reports.digest_weekday must be one of {', '.join(WEEKDAYS)}, not {weekday!r}")
    try:
        at = dt.time.fromisoformat(str(section["digest_time"]).strip())
    except ValueError:
        raise SettingError(f"reports.digest_time must be HH:MM, not {section['digest_time']!r}") from None
    sinks = section["sinks"] or []
    if not isinstance(sinks, list) or not all(isinstance(sink, Mapping) for sink in sinks):
        raise SettingError("reports.sinks must be a list of mappings, each with a type")
    return ReportsConfig(
        default_period_days=_integer("reports.default_period_days", section["default_period_days"], 1),
        repeat_window_days=_number("reports.repeat_window_days", section["repeat_window_days"], positive=True),
        digest_weekday=WEEKDAYS.index(weekday),
        digest_time=at,
        sinks=tuple(dict(sink) for sink in sinks),
    )


def _channels(section: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    channels: Dict[str, Dict[str, Any]] = {}
    for name, options in section.items():
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise SettingError(f"channels.{name} must be a mapping with a type")
        channels[str(name)] = dict(options)
    return channels


def _validate_crm(section: Dict[str, Any]) -> CrmConfig:
    """The ``crm`` section with ``http`` defaults filled in (the adapter is resolved when the
    service is built: :func:`bot.service.check_plugins`)."""
    http = section.get("http") or {}
    if not isinstance(http, dict):
        raise SettingError("crm.http must be a mapping")
    unknown = set(http) - set(DEFAULTS["crm"]["http"])
    if unknown:
        raise SettingError(f"unknown key(s) {sorted(unknown)} in 'crm.http'")
    http = {**DEFAULTS["crm"]["http"], **http}
    if not isinstance(section.get("options") or {}, dict):
        raise SettingError("crm.options must be a mapping")
    try:
        timeout = float(section["timeout_seconds"])
        threshold = int(http["failure_threshold"])
        reset = float(http["reset_seconds"])
    except (TypeError, ValueError) as exc:
        raise SettingError(f"crm timeouts and thresholds must be numbers: {exc}") from exc
    if timeout <= 0 or threshold < 1 or reset <= 0:
        raise SettingError("crm.timeout_seconds and crm.http.reset_seconds must be positive, "
                           "crm.http.failure_threshold at least 1")
    adapter = str(section.get("adapter") or "").strip()
    if not adapter:
        raise SettingError("crm.adapter: crm.adapter is empty: use sql, http or a dotted path like "
                           "'package.module:Class'")
    base_url = http["base_url"]
    if base_url is not None and (not isinstance(base_url, str) or "://" not in base_url):
        raise SettingError(f"crm.http.base_url must be a URL, not {base_url!r}")
    if adapter == "http" and not base_url:
        raise SettingError("crm.adapter is http but crm.http.base_url is not set")
    if not isinstance(http["token_env"], str) or not http["token_env"]:
        raise SettingError("crm.http.token_env must name an environment variable")
    return CrmConfig(adapter=adapter, timeout_seconds=timeout,
                     http=CrmHttpConfig(base_url=base_url, token_env=http["token_env"],
                                        failure_threshold=threshold, reset_seconds=reset),
                     options=dict(section.get("options") or {}))


def load_opening_hours() -> OpeningHours:
    """The configured opening hours (for the action server, which has no CLI options)."""
    return load_config().opening_hours
