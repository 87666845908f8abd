"""Child processes that never outlive the process that started them.

Every server webcare starts for itself (``webcare run``, :mod:`bot.rasa.stack`, the benchmarks)
goes through :func:`spawn`:

- the child runs in a process group (session) of its own, so that stopping it stops the
  processes *it* starts too (Rasa's and the action server's sanic workers): :func:`stop` and
  :func:`kill` signal the whole group and wait until no member of it is left;
- it gets the Linux parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``): when this
  process dies in any way (SIGKILL, the OOM killer), the kernel sends it SIGTERM. That signal
  fires when the *thread* that forked the child ends, not the process, so every child is
  forked by one daemon thread that lives as long as the process (never by a caller's thread,
  which may be short-lived);
- its process group is registered with a **watchdog**, a tiny process of this process
  (in a session of its own, deaf to SIGINT/SIGHUP) that reads a pipe from us. When this
  process dies the pipe closes; the watchdog then sends SIGTERM to every group still
  registered, waits :data:`WATCHDOG_GRACE_SECONDS` and sends SIGKILL to whatever is left. This
  takes the grandchildren the parent-death signal does not reach. Groups are unregistered
  when they are stopped here, so a group number is never signalled after it was given back.

Also here: who holds a TCP port (:func:`port_holders`, from ``/proc/net/tcp*`` and
``/proc/*/fd``) and :func:`sigterm_exits`, which turns SIGTERM into :class:`SystemExit` so a
benchmark's ``finally`` blocks stop its servers.
"""
from __future__ import annotations

import ctypes
import errno
import faulthandler
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
WATCHDOG_GRACE_SECONDS = 5.0

# The watchdog: reads "+PGID" / "-PGID" lines on stdin; at EOF (its parent is gone) or on
# SIGTERM it stops every group still registered. Standard library only (runs with -I).
WATCHDOG = r"""
import os, signal, sys, time
GRACE = float(sys.argv[1])
groups = set()

def members(pgid):
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if fields[0] != 'Z' and int(fields[2]) == pgid:
            found.append(int(entry))
    return found

def send(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass

def stop_all(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    alive = [g for g in groups if members(g)]
    for pgid in alive:
        send(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [g for g in alive if members(g)]
    for pgid in alive:
        send(pgid, signal.SIGKILL)
    os._exit(0)

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.signal(signal.SIGTERM, stop_all)
for line in sys.stdin:
    line = line.strip()
    if line[:1] == '+':
        groups.add(int(line[1:]))
    elif line[:1] == '-':
        groups.discard(int(line[1:]))
stop_all()
"""


# ------------------------------------------------------------------ the parent-death signal


def _load_prctl() -> Optional[Callable[..., int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM when the forking thread (our spawner thread) ends; exit at once
    when the parent died before the signal was armed."""

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class _Spawner:
    """One daemon thread that forks every child (the parent-death signal follows the forking
    thread, and this one lives until the process ends)."""

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="webcare-spawner", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller, raised there
                done.set_exception(exc)

    def run(self, job: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        done: "Future[subprocess.Popen]" = Future()
        self._jobs.put((job, done))
        return done.result()


# ------------------------------------------------------------------ the watchdog


class _Watchdog:
    """The watchdog process and our end of its pipe (a raw descriptor: short writes are
    atomic on a pipe, and nothing is buffered that a fork could duplicate)."""

    def __init__(self, groups: Set[int]) -> None:
        read_end, write_end = os.pipe()  # not inheritable: no other child holds our end
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", WATCHDOG, str(WATCHDOG_GRACE_SECONDS)],
                stdin=read_end, stdout=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            os.close(read_end)
        self.fd: Optional[int] = write_end
        for pgid in groups:  # a replacement for a watchdog that died takes over its groups
            self.tell(f"+{pgid}")

    def tell(self, line: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (line + "\n").encode())
        except OSError:  # the watchdog is gone: the parent-death signal still holds
            logger.warning("the process watchdog (pid %s) is gone", self.process.pid)


_lock = threading.Lock()
_spawner: Optional[_Spawner] = None
_watchdog: Optional[_Watchdog] = None
_groups: Set[int] = set()  # the process groups registered with the watchdog


def _reset_after_fork() -> None:
    """A forked copy of this process (multiprocessing) must not hold the watchdog's pipe open."""
    global _spawner, _watchdog, _lock
    if _watchdog is not None and _watchdog.fd is not None:
        try:
            os.close(_watchdog.fd)
        except OSError:
            pass
        _watchdog.fd = None
    _spawner = None
    _watchdog = None
    _groups.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _machinery() -> Tuple[_Spawner, _Watchdog]:
    global _spawner, _watchdog
    with _lock:
        if _spawner is None:
            _spawner = _Spawner()
        if _watchdog is None or _watchdog.process.poll() is not None:
            _watchdog = _Watchdog(_groups)
        return _spawner, _watchdog


# ------------------------------------------------------------------ starting and stopping


def spawn(command: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Start ``command`` (``subprocess.Popen`` arguments otherwise) in a process group of its
    own that dies with this process: see the module docstring."""
    if "start_new_session" in popen_kwargs or "preexec_fn" in popen_kwargs:
        raise ValueError("spawn() sets start_new_session and preexec_fn itself")
    spawner, watchdog = _machinery()
    parent = os.getpid()
    process = spawner.run(lambda: subprocess.Popen(
        list(command), start_new_session=True, preexec_fn=_die_with_parent(parent), **popen_kwargs))
    with _lock:
        _groups.add(process.pid)  # the group id is the child's pid (a session of its own)
        watchdog.tell(f"+{process.pid}")
    logger.debug("started pid %s: %s", process.pid, " ".join(map(str, command)))
    return process


def group_members(pgid: int) -> List[int]:
    """The live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # the group number was reused by someone else's process: not ours
        logger.warning("process group %s is not ours any more", process.pid)


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM to the child's whole process group (what :func:`stop` starts with)."""
    if process.poll() is None or group_members(process.pid):
        _signal_group(process, signal.SIGTERM)


def reap(process: subprocess.Popen, timeout: float) -> bool:
    """Wait up to ``timeout`` s for the child and every process of its group to end, SIGKILL
    whatever is left, and unregister the group. True when it took SIGKILL."""
    deadline = time.monotonic() + timeout
    killed = False
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.poll() is None or group_members(process.pid):
        killed = True
        _signal_group(process, signal.SIGKILL)
        process.wait()
        limit = time.monotonic() + 5  # SIGKILL cannot be refused: this ends quickly
        while group_members(process.pid) and time.monotonic() < limit:
            time.sleep(0.02)
    _forget(process)
    return killed


def stop(process: subprocess.Popen, timeout: float = 15.0) -> bool:
    """SIGTERM the child's group, then :func:`reap` it. True when it took SIGKILL."""
    terminate(process)
    return reap(process, timeout)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the child's whole group now (what a crash or an OOM kill does) and wait for it."""
    _signal_group(process, signal.SIGKILL)
    reap(process, 5.0)


def _forget(process: subprocess.Popen) -> None:
    with _lock:
        if process.pid in _groups:
            _groups.discard(process.pid)
            if _watchdog is not None:
                _watchdog.tell(f"-{process.pid}")


# ------------------------------------------------------------------ ports


@dataclass(frozen=True)
class PortHolder:
    """A process listening on a TCP port."""

    pid: int
    command: str  # its command line, shortened


def port_in_use(host: str, port: int) -> bool:
    """Whether a server could not listen on ``host:port`` now (as servers do: SO_REUSEADDR)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # not a local name: the server itself will say so
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _listening_inodes(port: int) -> Set[str]:
    inodes: Set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def command_line(pid: int, limit: int = 80) -> str:
    """``/proc/PID/cmdline`` as one line, shortened: "rasa run ..." rather than
    "/path/.venv/bin/python /path/.venv/bin/rasa run ..."."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    args = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if not args:
        return "?"
    if len(args) > 1 and Path(args[0]).name.startswith("python") and not args[1].startswith("-"):
        args = args[1:]  # a script run by an interpreter: name the script
    args[0] = Path(args[0]).name
    text = " ".join(" ".join(args).split())  # one line, even for "python -c '<a script>'"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def port_holders(port: int) -> List[PortHolder]:
    """The processes (that this user may see) listening on TCP ``port``, any address."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return []
    holders: Dict[int, PortHolder] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if target in sockets:
                holders[int(entry)] = PortHolder(int(entry), command_line(int(entry)))
                break
    return sorted(holders.values(), key=lambda h: h.pid)


# ------------------------------------------------------------------ SIGTERM in benchmarks


CLEAN_UP_SECONDS = 60.0  # after SIGTERM, a benchmark's clean-up may take this long


@contextmanager
def sigterm_exits(what: str = "the benchmark") -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP raise ``SystemExit(128 + signal)`` in the main thread,
    once, so that ``finally`` blocks and context managers stop the servers started for
    ``what``. Should the clean-up hang, the process ends anyway after
    :data:`CLEAN_UP_SECONDS` (dumping its threads' stacks first); its children go with it.
    Elsewhere than in the main thread this does nothing (signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = (signal.SIGTERM, signal.SIGHUP)

    def on_signal(signum: int, _frame: object) -> None:
        for sig in caught:  # once: a second signal must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        print(f"webcare: received {signal.Signals(signum).name}; stopping {what}'s servers",
              file=sys.stderr, flush=True)
        deadline = threading.Timer(CLEAN_UP_SECONDS, _give_up, args=(128 + signum,))
        deadline.daemon = True
        deadline.start()
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in caught}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _give_up(code: int) -> None:
    print(f"webcare: the clean-up did not finish within {CLEAN_UP_SECONDS:.0f} s; exiting now "
          "(the servers go with this process)", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(code)
