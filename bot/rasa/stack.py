"""Start a Rasa server (with webcare's channel) and an action server on free loopback ports.

Used by the benchmarks and the tests; ``webcare run`` has its own supervisor (bot.launcher).
Both go through :func:`bot.processes.spawn`: the servers (and the workers they start) never
outlive the process that started them, even when it is killed.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from bot import processes
from bot.rasa.training import rasa_executable as rasa_bin

PROJECT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float, process: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not up after {timeout} s")


def latest_model() -> Path:
    models = sorted((PROJECT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise RuntimeError("no trained model in models/: run `make model` first")
    return models[-1]


class RasaStack:
    """An action server and one or more Rasa servers (replicas) on free loopback ports.

    ``endpoints``: a Rasa endpoints file to use (its ``${VARIABLES}`` filled from ``env`` by
    Rasa itself; ``WEBCARE_ACTIONS_URL`` is set to the action server); by default one is
    written with only the action server.
    """

    def __init__(self, workdir: Path, model: Optional[Path] = None, replicas: int = 1,
                 endpoints: Optional[Path] = None, env: Optional[Dict[str, str]] = None) -> None:
        self.workdir = workdir
        self.model = model
        self.rasa_ports = [free_port() for _ in range(replicas)]
        self.actions_port = free_port()
        self.endpoints = endpoints
        self.env = dict(env or {})
        self.processes: List[subprocess.Popen] = []
        self.servers: Dict[int, subprocess.Popen] = {}  # running Rasa replicas by number

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def urls(self) -> List[str]:
        """Every Rasa replica's URL."""
        return [f"http://127.0.0.1:{port}" for port in self.rasa_ports]

    @property
    def actions_url(self) -> str:
        return f"http://127.0.0.1:{self.actions_port}"

    def _env(self) -> Dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(PROJECT), WEBCARE_ACTIONS_URL=self.actions_url, **self.env)

    def start(self) -> None:
        if self.endpoints is None:
            self.endpoints = self.workdir / "endpoints.yml"
            self.endpoints.write_text(f'action_endpoint:\n  url: "{self.actions_url}/webhook"\n')
        log = open(self.workdir / "rasa.log", "ab")
        try:
            actions = processes.spawn(
                [rasa_bin(), "run", "actions", "--port", str(self.actions_port), "--actions", "actions"],
                cwd=PROJECT, env=self._env(), stdout=log, stderr=log,
            )
        finally:
            log.close()  # the child has its own copy
        self.processes.append(actions)
        self.start_rasa()
        wait_for(f"{self.actions_url}/health", 120, actions)

    def start_rasa(self, replicas: Optional[List[int]] = None) -> None:
        """Start the Rasa replicas (all, or those numbered in ``replicas``) and wait for them."""
        numbers = range(len(self.rasa_ports)) if replicas is None else replicas
        started = []
        for number in numbers:
            port = self.rasa_ports[number]
            log = open(self.workdir / (f"rasa-{number + 1}.log" if number else "rasa.log"), "ab")
            try:
                server = processes.spawn(
                    [rasa_bin(), "run", "--enable-api", "--interface", "127.0.0.1", "--port", str(port),
                     "--model", str(self.model or latest_model()), "--credentials", str(PROJECT / "credentials.yml"),
                     "--endpoints", str(self.endpoints)],
                    cwd=PROJECT, env=self._env(), stdout=log, stderr=log,
                )
            finally:
                log.close()
            self.processes.append(server)
            self.servers[number] = server
            started.append((server, self.urls[number]))
        self.server = self.servers.get(0)
        for server, url in started:
            wait_for(f"{url}/webhooks/webcare/", 240, server)

    def stop_rasa(self, replicas: Optional[List[int]] = None) -> None:
        """Stop the Rasa replicas (all, or those numbered in ``replicas``); the action server keeps running."""
        numbers = range(len(self.rasa_ports)) if replicas is None else replicas
        for number in numbers:
            server = self.servers.get(number)
            if server is not None:
                _terminate(server)
                self.processes.remove(server)
                del self.servers[number]

    def stop(self) -> None:
        """Stop every server: SIGTERM to all of them at once, SIGKILL what is left after 20 s."""
        for process in self.processes:
            processes.terminate(process)
        deadline = time.monotonic() + 20  # one deadline for all: they stop side by side
        for process in self.processes:
            processes.reap(process, timeout=max(0.0, deadline - time.monotonic()))
        self.processes.clear()
        self.servers.clear()


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group; SIGKILL what is left after 20 s."""
    processes.stop(process, timeout=20)


@contextmanager
def rasa_stack(workdir: Path, model: Optional[Path] = None) -> Iterator[RasaStack]:
    """A started :class:`RasaStack`, stopped on exit."""
    stack = RasaStack(workdir, model)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
