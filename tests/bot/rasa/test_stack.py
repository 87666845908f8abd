"""Servers started by rasa_stack and the benchmarks (bot.processes.spawn) never outlive the process
that started them: not when it is SIGKILLed, not when it gets SIGTERM, not their own children.
Cheap stand-in children, and one benchmark on the real Rasa server and action server."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest

from tests.bot.process_support import alive

from bot import processes

PROJECT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(PROJECT)}

# A child that starts a child of its own (as sanic workers are) and writes both pids.
SPAWNER = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "open(sys.argv[1] + '.tmp', 'w').write(f'{os.getpid()} {child.pid}')\n"
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "time.sleep(120)\n"
)

# A process that spawns two SPAWNERs through bot.processes, prints "ready", then waits.
PARENT = (
    "import sys, time\n"
    "from bot import processes\n"
    "for path in sys.argv[1:]:\n"
    f"    processes.spawn([sys.executable, '-c', {SPAWNER!r}, path])\n"
    "print('ready', processes._watchdog.process.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


def still_running(pids: List[int], timeout: float) -> List[int]:
    """Poll until none of ``pids`` runs; those still running at the deadline."""
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if alive(pid)]
    return left


def read_pids(path: Path, timeout: float = 30) -> List[int]:
    wait_until(path.exists, timeout, f"{path.name} written")
    return [int(pid) for pid in path.read_text().split()]


def kill_all(pids: List[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def descendants(root: int) -> Dict[int, str]:
    """Every live descendant of ``root``: pid -> command line."""
    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found: Dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = processes.command_line(pid, limit=400)
                frontier.append(pid)
    return found


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_children_and_their_children_die_with_the_process_that_spawned_them(tmp_path: Path, how: int) -> None:
    files = [tmp_path / "one.pids", tmp_path / "two.pids"]
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *map(str, files)], env=ENV,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    pids: List[int] = []
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.startswith("ready"), line
        watchdog = int(line.split()[1])
        pids = [pid for path in files for pid in read_pids(path)]
        assert all(alive(pid) for pid in pids)

        parent.send_signal(how)  # SIGTERM: Python's default action, no clean-up code runs
        parent.wait()

        assert still_running(pids, 15) == [], "children outlived their parent"
        assert still_running([watchdog], 15) == []  # and the watchdog is done too
    finally:
        parent.kill()
        parent.wait()
        kill_all(pids)


def test_a_child_spawned_from_a_thread_that_ended_keeps_running(tmp_path: Path) -> None:
    """The parent-death signal follows the forking *thread*: a caller's short-lived thread must
    not take the child with it when it ends."""
    started: Dict[str, subprocess.Popen] = {}
    native: Dict[str, int] = {}
    echo = "import sys\nfor line in sys.stdin:\n    print('alive', flush=True)\n"

    def start() -> None:
        native["id"] = threading.get_native_id()
        started["child"] = processes.spawn([sys.executable, "-c", echo], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    child = started["child"]
    try:
        # join() returns before the OS thread is gone: wait until the kernel has let it go
        wait_until(lambda: not Path(f"/proc/self/task/{native['id']}").exists(), 10, "the thread's end")
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("still there?\n")
        child.stdin.flush()
        assert child.stdout.readline() == "alive\n"
        assert child.poll() is None
    finally:
        processes.stop(child, timeout=5)
    assert child.returncode == -signal.SIGTERM


def test_stop_takes_the_whole_group_even_when_the_leader_goes_first(tmp_path: Path) -> None:
    """A grandchild that ignores SIGTERM is SIGKILLed once the grace time is over."""
    pid_file = tmp_path / "stubborn.pids"
    ignores_sigterm = (  # writes its pid once SIGTERM no longer ends it
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
        "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "time.sleep(120)\n"
    )
    stubborn = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {ignores_sigterm!r}, sys.argv[1]])\n"
        "time.sleep(120)\n"
    )
    leader = processes.spawn([sys.executable, "-c", stubborn, str(pid_file)])
    grandchild = read_pids(pid_file)[0]
    try:
        assert processes.stop(leader, timeout=1) is True  # it took SIGKILL
        assert not alive(grandchild) and processes.group_members(leader.pid) == []
        assert leader.returncode == -signal.SIGTERM
    finally:
        kill_all([grandchild])


def test_sigterm_to_a_benchmark_stops_its_rasa_and_action_servers(tmp_path: Path) -> None:
    """The real ``webcare bench load``: its Rasa server, action server (rasa_stack) and service go."""
    env = {key: value for key, value in ENV.items() if not key.startswith("WEBCARE_")}
    bench = subprocess.Popen(
        [sys.executable, "-m", "bot", "bench", "load", "--rate", "1", "--seconds", "600", "--json"],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    children: Dict[int, str] = {}
    try:
        def servers_up() -> bool:
            children.update(descendants(bench.pid))
            assert bench.poll() is None, bench.communicate()[1][-3000:]
            # the service starts once rasa_stack has both servers answering
            return any(re.search(r"-m bot --config \S+ service", cmd) for cmd in children.values())

        wait_until(servers_up, 400, "the benchmark's service")
        commands = " | ".join(children.values())
        assert "rasa run --enable-api" in commands and "rasa run actions" in commands, commands
        config_dir = Path(re.search(r"--config (\S+)/webcare.yml", commands).group(1))

        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=120)

        assert still_running(list(children), 30) == [], {p: c for p, c in children.items() if alive(p)}
        assert bench.returncode == 128 + signal.SIGTERM, err[-3000:]
        assert "received SIGTERM; stopping the load benchmark's servers" in err
        assert "did not finish within" not in err, err[-3000:]  # the clean-up ended by itself
        assert not config_dir.exists(), err[-3000:]  # its temporary folder was cleaned up too
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        kill_all(list(children))
