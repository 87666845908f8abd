"""``webcare run``: the Rasa server, the action server and the webcare service, together.

Starts the three, waits until each answers, prints where they listen, and stops all of them
on Ctrl-C / SIGTERM or as soon as one of them dies (saying which, and why).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlparse

from bot.config import Config
from bot.rasa.training import rasa_executable

READY_TIMEOUT_SECONDS = 180.0


@dataclass
class Part:
    """One process of the system."""

    name: str
    command: List[str]
    ready_url: str
    shown_url: str
    process: Optional[subprocess.Popen] = None


def parts(config: Config, project: Path) -> List[Part]:
    """The three processes, configured from ``config``."""
    rasa = urlparse(config.rasa.url)
    actions = urlparse(config.rasa.actions_url)
    service = f"http://{config.service.host}:{config.service.port}"
    rasa_bin = rasa_executable()
    return [
        Part(
            "Rasa server",
            [rasa_bin, "run", "--enable-api", "--interface", rasa.hostname or "127.0.0.1",
             "--port", str(rasa.port or 5005), "--model", str(project / config.rasa.model_dir),
             "--endpoints", str(project / "endpoints.yml"),
             "--credentials", str(project / "credentials.yml")],
            f"{config.rasa.url}/status",
            f"{config.rasa.url}  (REST API; parse: POST {config.rasa.url}/model/parse)",
        ),
        Part(
            "action server",
            [rasa_bin, "run", "actions", "--port", str(actions.port or 5055), "--actions", "actions"],
            f"{config.rasa.actions_url}/health",
            f"{config.rasa.actions_url}/webhook",
        ),
        Part(
            "webcare service",
            [sys.executable, "-m", "bot"]
            + (["--config", str(config.source)] if config.source else [])
            + ["service"],
            f"{service}/health",
            f"{service}/  (health: {service}/health)",
        ),
    ]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def run_all(config: Config, project: Path) -> int:
    """Run until interrupted or until one part dies; returns the exit code."""
    system = parts(config, project)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    stopping = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["signal"] = signum

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    for part in system:
        part.process = subprocess.Popen(part.command, cwd=project, env=env, start_new_session=True)
        print(f"started {part.name} (pid {part.process.pid})", flush=True)

    exit_code = 0
    try:
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
    for part in system:
        if part.process and part.process.poll() is None:
            try:
                os.killpg(part.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    for part in system:
        if not part.process:
            continue
        try:
            part.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(part.process.pid, signal.SIGKILL)
            part.process.wait()
        print(f"stopped {part.name}", flush=True)
