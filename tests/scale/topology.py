"""Scale mode on this machine's own services: a private PostgreSQL cluster (so a test may
restart it), Redis, RabbitMQ, several Rasa replicas and several webcare service replicas.

The same topology as ``docker-compose.yml``: the store and Rasa's tracker store in one
PostgreSQL database, Rasa's lock store on Redis, Rasa's event broker on RabbitMQ, Rasa
configured by ``deploy/endpoints.scale.yml``.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from bot.rasa.stack import PROJECT, RasaStack, free_port, wait_for

REDIS_URL = os.environ.get("WEBCARE_TEST_REDIS", "redis://127.0.0.1:6379/1")
RABBITMQ_HOST = os.environ.get("WEBCARE_TEST_RABBITMQ_HOST", "127.0.0.1")
SCALE_ENDPOINTS = PROJECT / "deploy" / "endpoints.scale.yml"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/N/bin)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL server programs not found under /usr/lib/postgresql "
                           "(Debian: apt-get install postgresql)")
    return versions[-1]


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port, which a test may stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="webcare-pg-"))
        self.data = self.dir / "data"
        self.bin = postgres_bin()
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, *command: str) -> None:
        argv = list(command)
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}")

    def init(self) -> None:
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> str:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"{self.server_url}/{name}"

    def destroy(self) -> None:
        try:
            self.stop()
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class ServiceReplica:
    """One ``webcare service`` process with its own port and config file."""

    def __init__(self, name: str, workdir: Path, config: Dict) -> None:
        self.name = name
        self.port = free_port()
        self.config_path = workdir / f"{name}.yml"
        self.config_path.write_text(yaml.safe_dump({**config, "service": {"host": "127.0.0.1", "port": self.port}}))
        self.log = workdir / f"{name}.log"
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: Dict[str, str]) -> None:
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(self.config_path), "service"],
            cwd=PROJECT, env=dict(os.environ, PYTHONPATH=str(PROJECT), **env),
            stdout=log, stderr=log, start_new_session=True,
        )
        wait_for(f"{self.url}/version", 90, self.process)

    def kill(self) -> None:
        """kill -9: no shutdown handler runs."""
        assert self.process is not None
        if self.process.poll() is not None:
            return  # already dead
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class ScaleTopology:
    """PostgreSQL + Redis + RabbitMQ, ``rasa_replicas`` Rasa servers, ``service_replicas`` services."""

    def __init__(self, workdir: Path, callback_url: str, secret_env: Dict[str, str],
                 rasa_replicas: int = 2, service_replicas: int = 2) -> None:
        self.workdir = workdir
        self.tag = uuid.uuid4().hex[:10]
        self.postgres = PrivatePostgres()
        self.callback_url = callback_url
        self.secret_env = secret_env
        self.rasa_replicas = rasa_replicas
        self.service_count = service_replicas
        self.queue = f"webcare_events_{self.tag}"
        self.services: List[ServiceReplica] = []
        self.rasa: Optional[RasaStack] = None
        self.database_url = ""

    def rasa_env(self) -> Dict[str, str]:
        from urllib.parse import urlparse

        redis = urlparse(REDIS_URL)
        return {
            "RASA_DB_HOST": "127.0.0.1", "RASA_DB_PORT": str(self.postgres.port),
            "RASA_DB_NAME": "webcare", "RASA_DB_USER": "postgres",
            "RASA_DB_PASSWORD": "", "RASA_DB_LOGIN_DB": "postgres",
            "RASA_REDIS_HOST": redis.hostname or "127.0.0.1", "RASA_REDIS_DB": (redis.path or "/1").strip("/") or "1",
            "RASA_LOCK_PREFIX": f"webcare{self.tag}",
            "RASA_RABBITMQ_HOST": RABBITMQ_HOST, "RASA_RABBITMQ_USER": "guest", "RASA_RABBITMQ_PASSWORD": "guest",
            "RASA_EVENT_QUEUE": self.queue,
        }

    def start(self) -> None:
        self.postgres.init()
        self.database_url = self.postgres.create_database("webcare")
        # Rasa's tracker store: the same database as the store, on the private cluster.
        self.rasa = RasaStack(self.workdir, replicas=self.rasa_replicas, endpoints=SCALE_ENDPOINTS,
                              env=self.rasa_env())
        self.rasa.start()
        config = {
            "database": {"url": self.database_url},
            "rasa": {"url": self.rasa.urls, "actions_url": self.rasa.actions_url},
            # Rasa is restarted on purpose here (two replicas take a minute to load on 2 cores):
            # hand a message to a person only after ~10 minutes of trying, not ~3.
            "worker": {"concurrency": 8, "max_attempts": 30},
            "channels": {"hook": {"type": "webhook", "callback_url": self.callback_url,
                                  "secret_env": next(iter(self.secret_env))}},
        }
        self.services = [ServiceReplica(f"service-{n + 1}", self.workdir, config) for n in range(self.service_count)]
        for service in self.services:
            service.start(self.secret_env)

    def stop(self) -> None:
        for service in self.services:
            service.stop()
        if self.rasa is not None:
            self.rasa.stop()
        self.postgres.destroy()


def wait_until(condition, timeout: float, interval: float = 0.5, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")
