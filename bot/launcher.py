"""``webcare run``: the Rasa server, the action server and the webcare service, together.

Checks that none of their ports is taken (a ``webcare run`` left over is named with its pid),
writes Rasa's endpoints from the configuration, starts the three with the configuration file
in ``$WEBCARE_CONFIG``, waits until each answers, prints where they listen, and stops all of
them on Ctrl-C / SIGTERM / SIGHUP or as soon as one of them dies (saying which, and why).
The children never outlive the launcher, even when it is killed (:mod:`bot.processes`).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlparse

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot import processes
from bot.config import Config
from bot.rasa.training import rasa_executable

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 15.0
# Rasa reads the tracker store's password from its environment, not from the generated file.
TRACKER_PASSWORD_ENV = "WEBCARE_TRACKER_STORE_PASSWORD"


class LauncherError(RuntimeError):
    """``webcare run`` cannot start; the message is one line saying why."""


@dataclass
class Part:
    """One process of the system (``listen``: the address it will listen on, checked first)."""

    name: str
    command: List[str]
    ready_url: str
    shown_url: str
    process: Optional[subprocess.Popen] = None
    listen: Optional[Tuple[str, int]] = None
    env: Dict[str, str] = field(default_factory=dict)  # on top of the launcher's environment


# ------------------------------------------------------------------ Rasa's endpoints


def tracker_store(database_url: str, project: Path) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Rasa's SQL tracker store on webcare's database, and the environment it needs.

    ``sqlite:///path`` gives dialect ``sqlite`` and ``db`` the file (relative paths are taken
    from ``project``, the working directory of every part); any other URL
    (``postgresql://user:pw@host:port/db``) gives its dialect, ``url`` (host), ``port``, ``db``,
    ``username`` and ``query``. A password is not written: the file says
    ``${WEBCARE_TRACKER_STORE_PASSWORD}`` and the returned environment holds it.
    """
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise LauncherError(f"database.url {database_url!r} is not a database URL: {exc}") from exc
    store: Dict[str, Any] = {"type": "SQL", "dialect": url.drivername}
    env: Dict[str, str] = {}
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise LauncherError("database.url is an in-memory SQLite database, which Rasa's tracker store "
                                "cannot share with the service: use a file (sqlite:///var/webcare.db)")
        path = Path(url.database)
        store["db"] = str(path if path.is_absolute() else project / path)
    else:
        if not url.database:
            raise LauncherError(f"database.url {url.render_as_string(hide_password=True)} names no database")
        store.update({"url": url.host, "port": url.port, "db": url.database, "username": url.username})
        if url.password:
            store["password"] = f"${{{TRACKER_PASSWORD_ENV}}}"
            env[TRACKER_PASSWORD_ENV] = str(url.password)
    if url.query:
        store["query"] = {key: value for key, value in url.query.items()}
    return {key: value for key, value in store.items() if value is not None}, env


def rasa_endpoints(config: Config, project: Path) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """The endpoints ``webcare run`` gives Rasa, and the environment they need: the project's
    ``endpoints.yml`` (lock store, event broker, ...) with ``action_endpoint.url`` set to
    ``rasa.actions_url`` + ``/webhook`` and the tracker store on ``database.url``."""
    base = project / "endpoints.yml"
    endpoints: Dict[str, Any] = {}
    if base.is_file():
        try:
            endpoints = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise LauncherError(f"{base}: not valid YAML: {exc}") from exc
        if not isinstance(endpoints, dict):
            raise LauncherError(f"{base}: the top level must be a mapping")
    action = endpoints.get("action_endpoint")
    endpoints["action_endpoint"] = {**(action if isinstance(action, dict) else {}),
                                    "url": f"{config.rasa.actions_url}/webhook"}
    endpoints["tracker_store"], env = tracker_store(config.database_url, project)
    return endpoints, env


def write_rasa_endpoints(config: Config, project: Path, path: Path) -> Dict[str, str]:
    """Write :func:`rasa_endpoints` to ``path``; returns the environment Rasa needs for it."""
    endpoints, env = rasa_endpoints(config, project)
    source = config.source.resolve() if config.source else "the built-in defaults"
    path.write_text(
        f"# Generated by `webcare run` from {source} and {project / 'endpoints.yml'}; rewritten\n"
        "# at every start. Change webcare.yml (rasa.actions_url, database.url) instead.\n"
        + yaml.safe_dump(endpoints, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return env


# ------------------------------------------------------------------ the parts


def parts(config: Config, project: Path, endpoints: Optional[Path] = None,
          rasa_env: Optional[Dict[str, str]] = None) -> List[Part]:
    """The three processes, configured from ``config``: Rasa with the ``endpoints`` file
    (default: the project's endpoints.yml) and ``rasa_env`` in its environment."""
    rasa = urlparse(config.rasa.url)
    actions = urlparse(config.rasa.actions_url)
    service = f"http://{config.service.host}:{config.service.port}"
    rasa_bin = rasa_executable()
    rasa_host, rasa_port = rasa.hostname or "127.0.0.1", rasa.port or 5005
    actions_host, actions_port = actions.hostname or "127.0.0.1", actions.port or 5055
    return [
        Part(
            "Rasa server",
            [rasa_bin, "run", "--enable-api", "--interface", rasa_host,
             "--port", str(rasa_port), "--model", str(project / config.rasa.model_dir),
             "--endpoints", str(endpoints or project / "endpoints.yml"),
             "--credentials", str(project / "credentials.yml")],
            f"{config.rasa.url}/status",
            f"{config.rasa.url}  (REST API; parse: POST {config.rasa.url}/model/parse)",
            listen=(rasa_host, rasa_port),
            env=dict(rasa_env or {}),
        ),
        Part(
            "action server",
            [rasa_bin, "run", "actions", "--port", str(actions_port), "--actions", "actions"],
            f"{config.rasa.actions_url}/health",
            f"{config.rasa.actions_url}/webhook",
            listen=(actions_host, actions_port),
            env={"SANIC_HOST": actions_host},  # the action server's listen address (default 0.0.0.0)
        ),
        Part(
            "webcare service",
            [sys.executable, "-m", "bot"]
            + (["--config", str(config.source.resolve())] if config.source else [])
            + ["service"],
            f"{service}/health",
            f"{service}/  (health: {service}/health)",
            listen=(config.service.host, config.service.port),
        ),
    ]


def port_conflicts(system: List[Part]) -> List[str]:
    """One line per part whose port is already taken, naming the process that holds it."""
    problems = []
    for part in system:
        if part.listen is None:
            continue
        host, port = part.listen
        if not processes.port_in_use(host, port):
            continue
        holders = processes.port_holders(port)
        if holders:
            holder = holders[0]
            problems.append(
                f"port {port} ({part.name}) is held by pid {holder.pid} ({holder.command}) — "
                f"a webcare run left over? stop it with kill {holder.pid}")
        else:
            problems.append(f"port {port} ({part.name}) is in use by a process this user cannot see "
                            f"(`sudo ss -ltnp 'sport = :{port}'` names it)")
    return problems


def check_ports(config: Config, project: Path) -> List[str]:
    """:func:`port_conflicts` of the three parts (``webcare run`` asks before training)."""
    return port_conflicts(parts(config, project))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def _child_environment(config: Config, project: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    if config.source is not None:  # the action server reads it through bot.config.load_config()
        env["WEBCARE_CONFIG"] = str(config.source.resolve())
    else:
        env.pop("WEBCARE_CONFIG", None)
    return env


def run_all(config: Config, project: Path) -> int:
    """Check the ports, write Rasa's endpoints (in a temporary folder, removed at the end),
    then run the parts until interrupted or until one dies; returns the exit code (1: a port
    is taken or a part failed, 2: the configuration cannot drive Rasa)."""
    workdir = Path(tempfile.mkdtemp(prefix="webcare-run-"))
    try:
        endpoints = workdir / "endpoints.yml"
        try:
            rasa_env = write_rasa_endpoints(config, project, endpoints)
        except LauncherError as exc:
            print(f"webcare: {exc}", file=sys.stderr, flush=True)
            return 2
        system = parts(config, project, endpoints, rasa_env)
        problems = port_conflicts(system)
        for problem in problems:
            print(f"webcare: {problem}", file=sys.stderr, flush=True)
        if problems:
            return 1
        return _supervise(system, _child_environment(config, project), project)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _supervise(system: List[Part], env: Dict[str, str], project: Path) -> int:
    stopping = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["signal"] = signum

    caught = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal went away
    previous = {sig: signal.signal(sig, on_signal) for sig in caught}
    exit_code = 0
    try:
        for part in system:
            if stopping["signal"] is not None:
                break
            part.process = processes.spawn(part.command, cwd=project, env={**env, **part.env})
            print(f"started {part.name} (pid {part.process.pid})", flush=True)

        pending: Dict[str, Part] = {p.name: p for p in system}
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if stopping["signal"] is not None:
                print(f"\nreceived {signal.Signals(stopping['signal']).name}; stopping all parts", flush=True)
                break
            dead = next((p for p in system if p.process and p.process.poll() is not None), None)
            if dead is not None:
                print(f"{dead.name} exited with code {dead.process.returncode}: "
                      f"{_exit_reason(dead.process.returncode)}; stopping the others", flush=True)
                exit_code = 1
                break
            for name, part in list(pending.items()):
                if _answers(part.ready_url):
                    print(f"{part.name:16} ready at {part.shown_url}", flush=True)
                    del pending[name]
                    if not pending:
                        print("webcare is up. Ctrl-C stops all three.", flush=True)
            if pending and time.monotonic() > deadline:
                print(f"not ready after {READY_TIMEOUT_SECONDS:.0f} s: {', '.join(pending)}; stopping", flush=True)
                exit_code = 1
                break
            time.sleep(0.5)
    finally:
        _stop(system)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return exit_code


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return "see its output above"


def _stop(system: List[Part]) -> None:
    """SIGTERM every part's process group at once, then wait for each (SIGKILL after
    :data:`STOP_TIMEOUT_SECONDS`)."""
    started = [part for part in system if part.process is not None]
    for part in started:
        processes.terminate(part.process)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for part in started:
        if processes.reap(part.process, max(0.1, deadline - time.monotonic())):
            logger.warning("%s did not stop on SIGTERM; killed", part.name)
        print(f"stopped {part.name}", flush=True)
