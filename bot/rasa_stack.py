"""Start a Rasa server (with webcare's channel) and an action server on free loopback ports.

Used by the benchmarks and the tests; ``webcare run`` has its own supervisor (bot.launcher).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

from bot.model_training import rasa_executable as rasa_bin

PROJECT = Path(__file__).resolve().parent.parent


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
    """A Rasa server and an action server on free loopback ports."""

    def __init__(self, workdir: Path, model: Optional[Path] = None) -> None:
        self.workdir = workdir
        self.model = model
        self.rasa_port = free_port()
        self.actions_port = free_port()
        self.processes: List[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def start(self) -> None:
        endpoints = self.workdir / "endpoints.yml"
        endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{self.actions_port}/webhook"\n')
        env = dict(os.environ, PYTHONPATH=str(PROJECT))
        log = open(self.workdir / "rasa.log", "ab")
        actions = subprocess.Popen(
            [rasa_bin(), "run", "actions", "--port", str(self.actions_port), "--actions", "actions"],
            cwd=PROJECT, env=env, stdout=log, stderr=log, start_new_session=True,
        )
        self.processes.append(actions)
        self.start_rasa()
        wait_for(f"http://127.0.0.1:{self.actions_port}/health", 120, actions)

    def start_rasa(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(PROJECT))
        log = open(self.workdir / "rasa.log", "ab")
        server = subprocess.Popen(
            [rasa_bin(), "run", "--enable-api", "--interface", "127.0.0.1", "--port", str(self.rasa_port),
             "--model", str(self.model or latest_model()), "--credentials", str(PROJECT / "credentials.yml"),
             "--endpoints", str(self.workdir / "endpoints.yml")],
            cwd=PROJECT, env=env, stdout=log, stderr=log, start_new_session=True,
        )
        self.processes.append(server)
        self.server = server
        wait_for(f"{self.url}/webhooks/webcare/", 180, server)

    def stop_rasa(self) -> None:
        _terminate(self.server)
        self.processes.remove(self.server)

    def stop(self) -> None:
        for process in self.processes:
            _terminate(process)
        self.processes.clear()


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def rasa_stack(workdir: Path, model: Optional[Path] = None) -> Iterator[RasaStack]:
    """A started :class:`RasaStack`, stopped on exit."""
    stack = RasaStack(workdir, model)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
