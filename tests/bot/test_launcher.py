"""`webcare run` supervision: real short-lived processes stand in for Rasa, actions and the service."""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List

import pytest

import bot.launcher
from bot.config import Config, load_config
from bot.launcher import Part, run_all

# An HTTP server on the port given as argv[1], quiet; SIGTERM ends it (default action).
SERVER = (
    "import http.server, sys\n"
    "class Quiet(http.server.SimpleHTTPRequestHandler):\n"
    "    def log_message(self, *args): pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Quiet).serve_forever()\n"
)

# Waits until every URL in argv[2:] answers (so the supervisor has seen them ready), lingers
# a second, then ends as argv[1] says: "exit:3" or "signal:9".
DIES = (
    "import os, signal, sys, time, urllib.request\n"
    "for url in sys.argv[2:]:\n"
    "    for _ in range(200):\n"
    "        try:\n"
    "            urllib.request.urlopen(url, timeout=1).close(); break\n"
    "        except OSError:\n"
    "            time.sleep(0.05)\n"
    "time.sleep(1)\n"
    "how, value = sys.argv[1].split(':')\n"
    "if how == 'exit':\n"
    "    sys.exit(int(value))\n"
    "os.kill(os.getpid(), int(value))\n"
    "time.sleep(30)\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_part(name: str) -> Part:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    return Part(name, [sys.executable, "-c", SERVER, str(port)], url, url)


def dying_part(name: str, how: str, waits_for: List[Part]) -> Part:
    nothing = f"http://127.0.0.1:{free_port()}/"  # never answers: the part never becomes ready
    return Part(name, [sys.executable, "-c", DIES, how, *[p.ready_url for p in waits_for]], nothing, nothing)


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)
    return load_config(environ={})


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Part]]:
    """The parts run_all will start (filled in by each test); cleans up whatever survives."""
    started: List[Part] = []
    monkeypatch.setattr(bot.launcher, "parts", lambda config, project: started)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield started
    for sig, handler in handlers.items():  # run_all installs its own handlers
        signal.signal(sig, handler)
    for part in started:
        if part.process is not None and part.process.poll() is None:
            os.killpg(part.process.pid, signal.SIGKILL)
            part.process.wait()


def test_one_part_exiting_stops_the_others(
    system: List[Part], config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = server_part("first server"), server_part("second server")
    failing = dying_part("failing part", "exit:3", [first, second])
    system.extend([first, second, failing])

    assert run_all(config, tmp_path) == 1

    for part in system:
        assert part.process is not None
        assert part.process.poll() is not None, f"{part.name} still runs"
    assert failing.process.returncode == 3
    assert first.process.returncode == -signal.SIGTERM
    assert second.process.returncode == -signal.SIGTERM
    assert not answers(first.ready_url) and not answers(second.ready_url)

    out = capsys.readouterr().out
    for part in system:
        assert f"started {part.name} (pid {part.process.pid})" in out
        assert f"stopped {part.name}" in out
    assert f"first server     ready at {first.shown_url}" in out
    assert f"second server    ready at {second.shown_url}" in out
    assert "failing part exited with code 3: see its output above; stopping the others" in out
    assert "webcare is up" not in out  # the failing part never became ready


def test_a_part_killed_by_a_signal_is_reported(
    system: List[Part], config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_part("web server")
    killed = dying_part("doomed part", f"signal:{int(signal.SIGKILL)}", [server])
    system.extend([server, killed])

    assert run_all(config, tmp_path) == 1

    assert killed.process.returncode == -signal.SIGKILL
    assert server.process.poll() is not None
    out = capsys.readouterr().out
    assert "doomed part exited with code -9: killed by signal SIGKILL; stopping the others" in out
    assert "stopped web server" in out


def test_all_ready_then_sigterm_stops_everything_with_exit_code_0(
    system: List[Part], config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system.extend([server_part("one"), server_part("two"), server_part("three")])

    def terminate_when_all_answer() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(answers(p.ready_url) for p in system):
            time.sleep(0.1)
        time.sleep(1.2)  # give the supervisor a polling round to print "webcare is up"
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_all_answer, daemon=True).start()
    assert run_all(config, tmp_path) == 0

    for part in system:
        assert part.process.poll() is not None
    out = capsys.readouterr().out
    assert "webcare is up. Ctrl-C stops all three." in out
    assert "received SIGTERM; stopping all parts" in out
    assert out.count("stopped ") == 3


def test_the_whole_process_group_is_stopped(
    system: List[Part], config: Config, tmp_path: Path
) -> None:
    """A part's own children (Rasa spawns workers) must not outlive it."""
    pid_file = tmp_path / "grandchild.pid"
    spawner = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    parent = Part("spawner", [sys.executable, "-c", spawner], "http://127.0.0.1:9/", "-")
    server = server_part("web server")
    failing = dying_part("failing part", "exit:2", [server])
    system.extend([parent, server, failing])

    assert run_all(config, tmp_path) == 1

    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.05)
    assert not _alive(grandchild), "the part's child survived the stop"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]


def test_a_part_killed_by_a_real_time_signal_is_reported(
    system: List[Part], config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    realtime = int(signal.SIGRTMIN) + 6
    server = server_part("web server")
    killed = dying_part("doomed part", f"signal:{realtime}", [server])
    system.extend([server, killed])

    assert run_all(config, tmp_path) == 1
    assert killed.process.returncode == -realtime
    assert f"doomed part exited with code -{realtime}: killed by signal" in capsys.readouterr().out
