"""`webcare run` supervision: real short-lived processes stand in for Rasa, actions and the service
(and one test runs the real three); the endpoints Rasa gets are generated from the config file."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import yaml
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import bot.launcher
from bot import processes
from bot.config import Config, load_config
from bot.launcher import Part, run_all, write_rasa_endpoints
from bot.opening_hours import WEEKDAYS
from tests.bot.process_support import alive
from tests.conftest import fresh_postgres_database

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
    monkeypatch.setattr(bot.launcher, "parts", lambda *args, **kwargs: started)
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
    while time.monotonic() < deadline and alive(grandchild):
        time.sleep(0.05)
    assert not alive(grandchild), "the part's child survived the stop"


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


# ---------------------------------------------------------------- children never outlive the launcher

PROJECT = Path(__file__).resolve().parents[2]

# `webcare run`'s supervisor on stand-in parts given as JSON in argv[1] ([name, command, url]).
LAUNCHER = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "import bot.launcher as launcher\n"
    "from bot.config import load_config\n"
    "system = [launcher.Part(n, c, u, u) for n, c, u in json.loads(sys.argv[1])]\n"
    "launcher.parts = lambda *args, **kwargs: system\n"
    "sys.exit(launcher.run_all(load_config(environ={}), Path.cwd()))\n"
)


def spawner_command(pid_file: Path) -> List[str]:
    """A part that starts a child of its own (as Rasa's sanic workers are) and writes its pid."""
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r} + '.tmp', 'w').write(str(child.pid))\n"
        "import os\n"
        f"os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\n"
        "time.sleep(120)\n"
    )
    return [sys.executable, "-c", code]


class Output:
    """A child's stdout, collected line by line in a thread."""

    def __init__(self, process: "subprocess.Popen[str]") -> None:
        self.lines: List[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: "subprocess.Popen[str]") -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.text):
                return
            time.sleep(0.05)
        raise AssertionError(f"{what} not seen within {timeout:.0f} s; output so far:\n{self.text}")


def started_pids(text: str) -> Dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"started (.+) \(pid (\d+)\)", text)}


def wait_gone(pids: List[int], timeout: float) -> List[int]:
    """Poll until none of ``pids`` runs any more; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if alive(pid)]
    return left


def kill_leftovers(pids: List[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_launcher_takes_every_part_and_its_children_with_it(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a crashed terminal): nothing it started keeps running."""
    grandchild_file = tmp_path / "grandchild.pid"
    first, second = server_part("first server"), server_part("second server")
    spec = [[first.name, first.command, first.ready_url], [second.name, second.command, second.ready_url],
            ["spawner", spawner_command(grandchild_file), "http://127.0.0.1:9/"]]
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(spec)], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(PROJECT)},
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    output = Output(launcher)
    pids: List[int] = []
    try:
        output.wait_for(lambda text: len(started_pids(text)) == 3, 30, "three parts started")
        output.wait_for(lambda text: "second server    ready at" in text and "first server     ready at" in text,
                        30, "both servers ready")
        deadline = time.monotonic() + 30
        while not grandchild_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = list(started_pids(output.text).values()) + [int(grandchild_file.read_text())]
        assert all(alive(pid) for pid in pids)

        launcher.kill()
        launcher.wait()

        assert wait_gone(pids, 15) == [], "processes outlived the SIGKILLed launcher"
        assert not answers(first.ready_url) and not answers(second.ready_url)
    finally:
        if launcher.poll() is None:
            launcher.kill()
        kill_leftovers(pids)


def test_a_port_held_by_a_stray_process_is_named_and_nothing_starts(
    system: List[Part], config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stray = server_part("stray")
    stray.process = subprocess.Popen(stray.command)
    try:
        deadline = time.monotonic() + 30
        while not answers(stray.ready_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(stray.ready_url.rsplit(":", 1)[1].strip("/"))
        ours = server_part("other part")
        rasa = Part("Rasa server", [sys.executable, "-c", SERVER, str(port)], stray.ready_url, "-",
                    listen=("127.0.0.1", port))
        system.extend([ours, rasa])

        assert run_all(config, tmp_path) == 1

        assert ours.process is None and rasa.process is None, "started something anyway"
        captured = capsys.readouterr()
        assert "started" not in captured.out
        lines = captured.err.splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith(f"webcare: port {port} (Rasa server) is held by pid {stray.process.pid} "
                                   "(python -c import http.server, sys class Quiet(")
        assert lines[0].endswith(f"...) — a webcare run left over? stop it with kill {stray.process.pid}")
        assert stray.process.poll() is None  # not ours to stop
    finally:
        stray.process.kill()
        stray.process.wait()


def test_webcare_run_refuses_a_taken_port_before_training_or_starting(tmp_path: Path) -> None:
    """The real command: one line naming the holder, exit code 1, nothing started."""
    stray = server_part("stray")
    port = int(stray.ready_url.rsplit(":", 1)[1].strip("/"))
    holder = subprocess.Popen(stray.command)
    try:
        deadline = time.monotonic() + 30
        while not answers(stray.ready_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        config_file = tmp_path / "webcare.yml"
        config_file.write_text(yaml.safe_dump({
            "service": {"host": "127.0.0.1", "port": port},
            "database": {"url": f"sqlite:///{tmp_path}/webcare.db"},
            "rasa": {"url": f"http://127.0.0.1:{free_port()}", "actions_url": f"http://127.0.0.1:{free_port()}"},
        }))
        result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config_file), "run"],
                                cwd=PROJECT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        assert "started" not in result.stdout and "model:" not in result.stdout  # no training, no parts
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"webcare: port {port} (webcare service) is held by pid {holder.pid} (python -c")
        assert lines[0].endswith(f"— a webcare run left over? stop it with kill {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------- the config file drives all three


def test_every_part_gets_the_config_file_in_use(
    system: List[Part], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEBCARE_CONFIG", "/nonexistent/elsewhere.yml")  # --config wins, for the children too
    (tmp_path / "custom.yml").write_text("service: {port: 8181}\n")
    config = load_config("custom.yml", environ={})
    reports = [tmp_path / f"env-{n}.txt" for n in range(3)]
    writes_env = ("import os, sys, time\n"
                  "open(sys.argv[1] + '.tmp', 'w').write(os.environ.get('WEBCARE_CONFIG', '<unset>'))\n"
                  "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
                  "time.sleep(60)\n")
    # ends the run (exit 0) once every part has written what it got
    ender = ("import os, sys, time\n"
             "while not all(os.path.exists(path) for path in sys.argv[1:]):\n"
             "    time.sleep(0.05)\n")
    for n, report in enumerate(reports):
        nothing = f"http://127.0.0.1:{free_port()}/"
        system.append(Part(f"part {n}", [sys.executable, "-c", writes_env, str(report)], nothing, nothing))
    nothing = f"http://127.0.0.1:{free_port()}/"
    system.append(Part("ender", [sys.executable, "-c", ender, *map(str, reports)], nothing, nothing))

    assert run_all(config, tmp_path) == 1  # the ender exiting stops the run

    assert [r.read_text() for r in reports] == [str(tmp_path.resolve() / "custom.yml")] * 3


def test_the_real_parts_follow_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "webcare.yml").write_text(yaml.safe_dump({
        "service": {"host": "127.0.0.1", "port": 8181},
        "rasa": {"url": "http://127.0.0.1:6005", "actions_url": "http://127.0.0.2:6055"},
    }))
    config = load_config(environ={})
    rasa, actions, service = bot.launcher.parts(config, PROJECT, tmp_path / "generated.yml", {"X": "1"})
    assert rasa.command[rasa.command.index("--endpoints") + 1] == str(tmp_path / "generated.yml")
    assert rasa.command[rasa.command.index("--port") + 1] == "6005" and rasa.listen == ("127.0.0.1", 6005)
    assert rasa.env == {"X": "1"}
    assert actions.command[actions.command.index("--port") + 1] == "6055"
    assert actions.listen == ("127.0.0.2", 6055) and actions.env == {"SANIC_HOST": "127.0.0.2"}
    assert service.command[service.command.index("--config") + 1] == str(tmp_path.resolve() / "webcare.yml")
    assert service.listen == ("127.0.0.1", 8181)


def _endpoints(tmp_path: Path, database_url: str, actions_url: str = "http://127.0.0.1:6055",
               project: Optional[Path] = None) -> Tuple[Dict[str, Any], Dict[str, str], Path]:
    (tmp_path / "webcare.yml").write_text(yaml.safe_dump({
        "database": {"url": database_url}, "rasa": {"actions_url": actions_url}}))
    config = load_config(str(tmp_path / "webcare.yml"), environ={})
    path = tmp_path / "generated-endpoints.yml"
    env = write_rasa_endpoints(config, project or PROJECT, path)
    return yaml.safe_load(path.read_text()), env, path


def _rasa_reads(path: Path, env: Dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """The endpoints as Rasa itself reads them, with ``env`` in its environment."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return AvailableEndpoints.read_endpoints(str(path))


def test_generated_endpoints_for_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, env, path = _endpoints(tmp_path, "sqlite:///var/other.db", "http://127.0.0.1:6055")
    assert data["action_endpoint"] == {"url": "http://127.0.0.1:6055/webhook"}
    assert data["tracker_store"] == {"type": "SQL", "dialect": "sqlite", "db": str(PROJECT / "var" / "other.db")}
    assert env == {}
    assert "Generated by `webcare run`" in path.read_text()

    read = _rasa_reads(path, env, monkeypatch)
    assert read.action.url == "http://127.0.0.1:6055/webhook"
    store = read.tracker_store
    url = SQLTrackerStore.get_db_url(host=store.url, **store.kwargs)
    assert str(url) == f"sqlite:///{PROJECT / 'var' / 'other.db'}"

    data, _, _ = _endpoints(tmp_path, f"sqlite:///{tmp_path}/abs.db")
    assert data["tracker_store"]["db"] == f"{tmp_path}/abs.db"


def test_generated_endpoints_for_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database_url = "postgresql://care:p%40ss%24w0rd@db.example.com:6543/webcare_prod?sslmode=require"
    data, env, path = _endpoints(tmp_path, database_url, "http://actions.internal:7055")
    assert data["action_endpoint"] == {"url": "http://actions.internal:7055/webhook"}
    assert data["tracker_store"] == {
        "type": "SQL", "dialect": "postgresql", "url": "db.example.com", "port": 6543, "db": "webcare_prod",
        "username": "care", "password": "${WEBCARE_TRACKER_STORE_PASSWORD}", "query": {"sslmode": "require"},
    }
    assert env == {"WEBCARE_TRACKER_STORE_PASSWORD": "p@ss$w0rd"}
    assert "p@ss" not in path.read_text()  # the secret stays out of the file

    store = _rasa_reads(path, env, monkeypatch).tracker_store
    url = SQLTrackerStore.get_db_url(host=store.url, **store.kwargs)
    assert url == make_url(database_url)

    data, env, _ = _endpoints(tmp_path, "postgresql+psycopg2://postgres@127.0.0.1/webcare")
    assert data["tracker_store"] == {"type": "SQL", "dialect": "postgresql+psycopg2", "url": "127.0.0.1",
                                     "db": "webcare", "username": "postgres"}
    assert env == {}


def test_rasa_tracker_store_lands_in_the_configured_postgresql_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasa's own tracker store, built from the generated endpoints, writes into webcare's database."""
    with fresh_postgres_database("webcare_launcher") as database_url:
        _, env, path = _endpoints(tmp_path, database_url)
        store = TrackerStore.create(_rasa_reads(path, env, monkeypatch).tracker_store, Domain.empty())
        tracker = DialogueStateTracker.from_events("launcher-test", [UserUttered("hallo")])
        asyncio.run(store.save(tracker))
        store.engine.dispose()
        engine = create_engine(database_url, future=True)
        try:
            with engine.connect() as connection:
                senders = connection.execute(text("SELECT DISTINCT sender_id FROM events")).scalars().all()
        finally:
            engine.dispose()
    assert senders == ["launcher-test"]


def test_the_projects_endpoints_file_is_the_base(tmp_path: Path) -> None:
    (tmp_path / "endpoints.yml").write_text(
        "action_endpoint:\n  url: http://127.0.0.1:5055/webhook\n  token: abc\n"
        "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: var/webcare.db\n"
        "lock_store:\n  type: redis\n  url: ${REDIS_HOST}\n")
    data, _, _ = _endpoints(tmp_path, f"sqlite:///{tmp_path}/x.db", "http://127.0.0.1:7001", project=tmp_path)
    assert data["action_endpoint"] == {"url": "http://127.0.0.1:7001/webhook", "token": "abc"}
    assert data["tracker_store"]["db"] == f"{tmp_path}/x.db"
    assert data["lock_store"] == {"type": "redis", "url": "${REDIS_HOST}"}


def test_an_in_memory_database_cannot_be_shared_with_rasa(
    system: List[Part], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "webcare.yml").write_text("database: {url: 'sqlite://'}\n")
    config = load_config(str(tmp_path / "webcare.yml"), environ={})
    system.append(server_part("never started"))
    assert run_all(config, tmp_path) == 2
    assert system[0].process is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in-memory SQLite database" in err[0]


# ---------------------------------------------------------------- the real three


def test_webcare_run_follows_the_config_file_end_to_end_and_dies_with_the_launcher(tmp_path: Path) -> None:
    """Non-default ports for all three and a store of its own: Rasa reaches the action server
    on the configured port, the action server answers with the config file's opening hours,
    Rasa's tracker lands in the configured database; then SIGKILL the launcher: all gone."""
    ports = {name: free_port() for name in ("rasa", "actions", "service")}
    database = tmp_path / "store.db"
    config_file = tmp_path / "webcare.yml"
    config_file.write_text(yaml.safe_dump({
        "service": {"host": "127.0.0.1", "port": ports["service"]},
        "database": {"url": f"sqlite:///{database}"},
        "rasa": {"url": f"http://127.0.0.1:{ports['rasa']}", "actions_url": f"http://127.0.0.1:{ports['actions']}"},
        "opening_hours": {"timezone": "Europe/Amsterdam", **{day: "06:17-21:43" for day in WEEKDAYS}},
    }))
    env = {key: value for key, value in os.environ.items() if not key.startswith("WEBCARE_")}
    launcher = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config_file), "run", "--no-train"],
                                cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    output = Output(launcher)
    pids: List[int] = []
    try:
        output.wait_for(lambda text: len(started_pids(text)) == 3, 60, "three parts started")
        pids = list(started_pids(output.text).values())
        output.wait_for(lambda text: "webcare is up" in text or launcher.poll() is not None, 400, "webcare is up")
        assert launcher.poll() is None, output.text
        assert f"action server    ready at http://127.0.0.1:{ports['actions']}/webhook" in output.text

        for pid in pids:  # every part was told which config file is in use
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert f"WEBCARE_CONFIG={config_file.resolve()}".encode() in environ

        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['rasa']}/webhooks/rest/webhook",
            data=json.dumps({"sender": "launcher-e2e", "message": "when are you open?"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            texts = " ".join(m.get("text", "") for m in json.loads(response.read()))
        assert "06:17" in texts and "21:43" in texts, texts  # action_contact_hours, from our config

        with sqlite3.connect(database) as connection:
            senders = {row[0] for row in connection.execute("SELECT DISTINCT sender_id FROM events")}
        assert "launcher-e2e" in senders  # Rasa's tracker store is the configured database

        members = [m for pid in pids for m in processes.group_members(pid)]
        launcher.kill()
        launcher.wait()
        assert wait_gone(sorted(set(pids + members)), 30) == [], "parts outlived the SIGKILLed launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        kill_leftovers(pids)
