"""docker-compose.yml, deploy/endpoints.scale.yml and deploy/webcare.scale.yml agree with each
other and with the code (no Docker engine runs here; tests/scale/test_scale_mode.py runs the
same topology on the machine's own services)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.config import load_config

PROJECT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())
ENDPOINTS_TEXT = (PROJECT / "deploy" / "endpoints.scale.yml").read_text()


def compose_value(value: str) -> str:
    """``${NAME:?message}`` as docker compose would fill it in a test environment."""
    return re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", lambda m: f"<{m.group(1)}>", value)


def test_every_rasa_replica_gets_every_variable_the_endpoints_file_uses() -> None:
    used = set(re.findall(r"\$\{(\w+)\}", ENDPOINTS_TEXT))
    assert {"RASA_DB_HOST", "RASA_REDIS_HOST", "RASA_RABBITMQ_HOST", "WEBCARE_ACTIONS_URL"} <= used
    rasa_services = [name for name in COMPOSE["services"] if name.startswith("rasa-")]
    assert len(rasa_services) >= 2
    for name in rasa_services:
        service = COMPOSE["services"][name]
        assert "deploy/endpoints.scale.yml" in service["command"]
        assert used <= set(service["environment"]), f"{name} misses {used - set(service['environment'])}"


def test_endpoints_file_configures_postgres_redis_and_rabbitmq() -> None:
    endpoints = yaml.safe_load(re.sub(r"\$\{(\w+)\}", r"\1", ENDPOINTS_TEXT))
    assert endpoints["tracker_store"]["type"] == "SQL" and endpoints["tracker_store"]["dialect"] == "postgresql"
    assert endpoints["lock_store"]["type"] == "redis"
    assert endpoints["event_broker"]["type"] == "pika"


def test_service_replicas_know_every_rasa_replica_and_share_one_database(monkeypatch: pytest.MonkeyPatch) -> None:
    rasa_services = sorted(name for name in COMPOSE["services"] if name.startswith("rasa-"))
    replicas = [name for name in COMPOSE["services"] if name.startswith("webcare-")]
    assert len(replicas) >= 2
    databases = set()
    for name in replicas:
        service = COMPOSE["services"][name]
        environment = {key: compose_value(str(value)) for key, value in service["environment"].items()}
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        config = load_config(str(PROJECT / "deploy" / "webcare.scale.yml"))
        assert config.rasa.replicas == tuple(f"http://{rasa}:5005" for rasa in rasa_services)
        assert config.database_url.startswith("postgresql://")
        assert config.service.host == "0.0.0.0" and config.console.cookie_secure
        databases.add(config.database_url)
    assert len(databases) == 1
    # Rasa's tracker store is that same database
    rasa_env = COMPOSE["services"][rasa_services[0]]["environment"]
    assert rasa_env["RASA_DB_NAME"] == databases.pop().rsplit("/", 1)[-1]
