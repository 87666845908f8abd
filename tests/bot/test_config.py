"""webcare.yml + environment variables -> a validated Config, or a ConfigError saying what is wrong."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.config import DEFAULTS, ConfigError, load_config
from bot.opening_hours import DEFAULT_OPENING_HOURS, OpeningHours

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No webcare.yml in the working directory and no $WEBCARE_* of the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for variable in ("WEBCARE_CONFIG", "WEBCARE_DATABASE_URL", "WEBCARE_HOST", "WEBCARE_PORT",
                     "WEBCARE_RASA_URL", "WEBCARE_ACTIONS_URL"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def write(tmp_path: Path, text: str, name: str = "webcare.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(environ={})
    assert config.source is None
    assert (config.service.host, config.service.port) == ("127.0.0.1", 8080)
    assert config.database_url == "sqlite:///var/webcare.db"
    assert config.rasa.url == "http://127.0.0.1:5005"
    assert config.rasa.actions_url == "http://127.0.0.1:5055"
    assert config.rasa.model_dir == "models"
    assert config.opening_hours == OpeningHours.from_config(DEFAULT_OPENING_HOURS)


def test_the_shipped_webcare_yml_is_valid_and_equals_the_defaults() -> None:
    shipped = load_config(str(PROJECT / "webcare.yml"), environ={})
    defaults = load_config(environ={})
    assert shipped.source == PROJECT / "webcare.yml"
    assert shipped.raw == defaults.raw == DEFAULTS
    assert (shipped.service, shipped.database_url, shipped.rasa, shipped.opening_hours) == (
        defaults.service, defaults.database_url, defaults.rasa, defaults.opening_hours)


def test_webcare_yml_in_the_working_directory_is_found(tmp_path: Path) -> None:
    write(tmp_path, "service:\n  port: 9090\n")
    config = load_config(environ={})
    assert config.source == Path("webcare.yml")
    assert config.service.port == 9090
    assert config.service.host == "127.0.0.1"  # the rest stays default


def test_explicit_path_and_partial_sections(tmp_path: Path) -> None:
    path = write(tmp_path, "rasa:\n  url: http://rasa:5005/\nopening_hours:\n  sunday: '12:00-16:00'\n", "other.yml")
    config = load_config(str(path), environ={})
    assert config.source == path
    assert config.rasa.url == "http://rasa:5005"  # trailing slash stripped
    assert config.rasa.actions_url == "http://127.0.0.1:5055"
    assert config.opening_hours.describe("en") == "Mo–Fr 08:00–20:00, Sa 09:00–17:00, Su 12:00–16:00"


def test_opening_hours_exceptions_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "opening_hours:\n"
        "  exceptions:\n"
        "    2026-12-24: '08:00-16:00'\n"  # unquoted: YAML reads a date
        "    '2026-12-31': {hours: '08:00-12:00', name: Oudejaarsdag}\n"
        "    koningsdag: closed\n"
    ))
    hours = load_config(str(path), environ={}).opening_hours
    assert hours.days == OpeningHours.from_config(DEFAULT_OPENING_HOURS).days  # the weekdays stay default
    assert [e.key for e in hours.exceptions] == ["2026-12-24", "2026-12-31", "koningsdag"]
    assert hours.hours_on(dt.date(2026, 12, 24)).span == (dt.time(8), dt.time(16))
    assert hours.hours_on(dt.date(2026, 4, 27)).name("en") == "King's Day"


def test_webcare_config_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "service:\n  port: 8181\n", "elsewhere.yml")
    monkeypatch.setenv("WEBCARE_CONFIG", str(path))
    assert load_config().service.port == 8181  # from the process environment
    assert load_config(environ={"WEBCARE_CONFIG": str(path)}).service.port == 8181


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    write(tmp_path, "# nothing configured\n")
    assert load_config(environ={}).raw == DEFAULTS


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as error:
        load_config(str(tmp_path / "nope.yml"), environ={})
    assert "nope.yml" in str(error.value)


def test_unknown_section_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "service:\n  port: 8080\ntelegramm:\n  token: x\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path), environ={})
    message = str(error.value)
    assert str(path) in message
    assert "unknown section" in message and "telegramm" in message
    assert "database" in message  # lists the known sections


def test_unknown_key_is_named_with_its_section(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  ur1: sqlite:///x.db\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path), environ={})
    message = str(error.value)
    assert "unknown key" in message and "ur1" in message and "'database'" in message


@pytest.mark.parametrize("port", ["abc", "''", "[8080]", "0", "70000", "-1"])
def test_bad_port(tmp_path: Path, port: str) -> None:
    path = write(tmp_path, f"service:\n  port: {port}\n")
    with pytest.raises(ConfigError, match=r"service\.port") as error:
        load_config(str(path), environ={})
    assert str(path) in str(error.value)


def test_bad_port_from_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"service\.port must be a number, not 'eighty'"):
        load_config(environ={"WEBCARE_PORT": "eighty"})


@pytest.mark.parametrize(
    "yaml_text, name",
    [
        ("database:\n  url: var/webcare.db\n", "database.url"),
        ("database:\n  url: 42\n", "database.url"),
        ("rasa:\n  url: localhost:5005\n", "rasa.url"),
        ("rasa:\n  actions_url: ''\n", "rasa.actions_url"),
    ],
)
def test_urls_must_be_urls(tmp_path: Path, yaml_text: str, name: str) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError, match=rf"{name} must be a URL"):
        load_config(str(path), environ={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: sqlite:///from-file.db\nservice:\n  port: 8000\n  host: 0.0.0.0\n")
    environ = {
        "WEBCARE_DATABASE_URL": "postgresql://webcare@db/webcare",
        "WEBCARE_PORT": "9999",
        "WEBCARE_RASA_URL": "http://rasa.internal:5005/",
        "WEBCARE_ACTIONS_URL": "http://actions.internal:5055",
        "UNRELATED": "x",
    }
    config = load_config(str(path), environ=environ)
    assert config.database_url == "postgresql://webcare@db/webcare"
    assert config.service.port == 9999
    assert config.service.host == "0.0.0.0"  # not overridden
    assert config.rasa.url == "http://rasa.internal:5005"
    assert config.rasa.actions_url == "http://actions.internal:5055"


def test_empty_environment_variables_do_not_override(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: sqlite:///from-file.db\n")
    assert load_config(str(path), environ={"WEBCARE_DATABASE_URL": ""}).database_url == "sqlite:///from-file.db"


def test_environment_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="database.url must be a URL"):
        load_config(environ={"WEBCARE_DATABASE_URL": "webcare.db"})


def test_os_environ_is_the_default_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBCARE_DATABASE_URL", "sqlite:////tmp/from-env.db")
    assert load_config().database_url == "sqlite:////tmp/from-env.db"
    assert load_config(environ={}).database_url == "sqlite:///var/webcare.db"


@pytest.mark.parametrize("text", ["service: [port: 1\n", "service:\n  port: 8080\n bad indent: 1\n", "a: 'unterminated\n"])
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        load_config(str(path), environ={})
    assert str(path) in str(error.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- service\n- database\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(str(path), environ={})


def test_section_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "service: 8080\n")
    with pytest.raises(ConfigError, match="section 'service' must be a mapping"):
        load_config(str(path), environ={})


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("opening_hours:\n  monday: 8-20\n", "opening_hours.monday"),
        ("opening_hours:\n  friday: '20:00-08:00'\n", "closes before it opens"),
        ("opening_hours:\n  timezone: Europe/Amsterdm\n", "unknown time zone"),
        ("opening_hours:\n  weekend: closed\n", "weekend"),
        ("opening_hours:\n  exceptions:\n    2026-02-30: closed\n", "opening_hours.exceptions: '2026-02-30' is not a valid date"),
        ("opening_hours:\n  exceptions:\n    2026-12-24: '16:00-08:00'\n", "opening_hours.exceptions.2026-12-24: '16:00-08:00' closes before it opens"),
        ("opening_hours:\n  exceptions:\n    kerst: closed\n", "'kerst' is neither a date"),
    ],
)
def test_opening_hours_errors_become_config_errors(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as error:
        load_config(str(path), environ={})
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_webcare_config_is_taken_from_the_given_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "service:\n  port: 8282\n", "chosen.yml")
    config = load_config(environ={"WEBCARE_CONFIG": str(path)})
    assert config.source == path
    assert config.service.port == 8282


def test_a_section_with_everything_commented_out_means_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  # telegram:\n  #   type: telegram\nconsole:\n")
    config = load_config(str(path), environ={})
    assert config.channels == DEFAULTS["channels"]
    assert config.console.sla_seconds == 300


def test_rasa_replicas_as_a_list_or_comma_separated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, "rasa:\n  url: [http://rasa-1:5005/, http://rasa-2:5005]\n"))
    assert config.rasa.replicas == ("http://rasa-1:5005", "http://rasa-2:5005")
    assert config.rasa.url == "http://rasa-1:5005"
    monkeypatch.setenv("WEBCARE_RASA_URL", "http://a:5005, http://b:5005")
    assert load_config(write(tmp_path, "{}\n")).rasa.replicas == ("http://a:5005", "http://b:5005")
    monkeypatch.delenv("WEBCARE_RASA_URL")
    assert load_config(write(tmp_path, "{}\n")).rasa.replicas == ("http://127.0.0.1:5005",)


@pytest.mark.parametrize("value", ["[]", "[http://ok:5005, not-a-url]", "{a: 1}"])
def test_bad_rasa_replicas_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="rasa.url must be a URL or a list of URLs"):
        load_config(write(tmp_path, f"rasa:\n  url: {value}\n"))


def test_worker_rasa_settings(tmp_path: Path) -> None:
    config = load_config(environ={})
    assert (config.worker.rasa_timeout_seconds, config.worker.rasa_suspect_seconds) == (30.0, 30.0)
    config = load_config(write(tmp_path, "worker:\n  rasa_timeout_seconds: 10\n  rasa_suspect_seconds: 0\n"))
    assert (config.worker.rasa_timeout_seconds, config.worker.rasa_suspect_seconds) == (10.0, 0.0)


@pytest.mark.parametrize("settings", ["rasa_suspect_seconds: -1", "rasa_timeout_seconds: 0"])
def test_bad_worker_rasa_settings_are_refused(tmp_path: Path, settings: str) -> None:
    with pytest.raises(ConfigError, match="worker.rasa_timeout_seconds must be positive"):
        load_config(write(tmp_path, f"worker:\n  {settings}\n"))
