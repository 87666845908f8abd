"""Shared fixtures (the project root, the session's Rasa, fresh PostgreSQL databases) and the
marks that split the suite into `make test-fast` and the rest (at the end of this file)."""
from __future__ import annotations

import inspect
import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest

PROJECT = Path(__file__).resolve().parent.parent

logging.getLogger("rasa").setLevel(logging.WARNING)


@pytest.fixture
def project() -> Path:
    return PROJECT


@pytest.fixture(scope="session")
def rasa(tmp_path_factory: pytest.TempPathFactory):
    """A real Rasa server (trained model, webcare channel) and action server for the session."""
    from bot.rasa.stack import rasa_stack

    with rasa_stack(tmp_path_factory.mktemp("rasa")) as stack:
        yield stack


# ---------------------------------------------------------------- PostgreSQL
# Tests that need PostgreSQL fail (never skip) when the server is down; CI starts it.
POSTGRES_SERVER = os.environ.get("WEBCARE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@contextmanager
def fresh_postgres_database(prefix: str = "webcare_test") -> Iterator[str]:
    """Create a uniquely named, empty database on the test server; yield its URL; drop it.

    Fails a test that is not marked ``postgres`` (it would run in `make test-fast`): name its
    fixture ``pg_…``, parametrize it with "postgresql", or add it to SLOW_PATHS below."""
    from bot.store.database import fresh_postgres_database as fresh

    if _RUNNING and not _RUNNING[0].get_closest_marker("postgres"):
        pytest.fail(f"{_RUNNING[0].nodeid} uses PostgreSQL but is not marked postgres "
                    "(see tests/conftest.py, 'markers: the fast path')", pytrace=False)

    with fresh(POSTGRES_SERVER, prefix) as url:
        yield url


def fresh_store(kind: str, tmp_path: Path, prefix: str) -> Iterator["Store"]:
    """An empty store on ``kind`` ("sqlite": a file in ``tmp_path``; "postgresql": a fresh
    database named after ``prefix``), closed (and dropped) afterwards. For fixtures
    parametrized over both: ``yield from fresh_store(request.param, tmp_path, "webcare_x")``."""
    from bot.store.database import Store

    if kind == "sqlite":
        store = Store.from_url(f"sqlite:///{tmp_path}/{prefix}.db")
        try:
            yield store
        finally:
            store.close()
        return
    with fresh_postgres_database(prefix) as url:
        store = Store.from_url(url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(scope="module")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database shared by the tests of one module."""
    with fresh_postgres_database(f"webcare_{request.module.__name__.rsplit('.', 1)[-1]}") as url:
        yield url


# ---------------------------------------------------------------- markers: the fast path
# `make test-fast` runs `pytest -m "not slow"`: the unit tests, which need no Rasa, no
# PostgreSQL, no browser, no server started as a subprocess and not the whole service, and
# take well under a second each. The marks are given here, from what a test uses, so that a
# new test is classified without anyone remembering to mark it; what the rules cannot see is
# listed in SLOW_PATHS (or marked by hand in the test file). See docs/testing.md.
NEEDS = ("rasa", "postgres", "browser", "servers", "app")  # each also means `slow`
# Names the test function or one of its fixtures refers to.
POSTGRES_NAMES = frozenset({"fresh_postgres_database", "POSTGRES_SERVER", "pg_url"})
# Creating console users hashes their passwords with argon2 (0.2 s a hash, as long again for
# every log-in): slow, though nothing else is needed.
SLOW_NAMES = frozenset({"seed_users", "create_user"})
# Names the test, its fixtures or the tests' own helper functions they call refer to.
DEEP_NAMES = {
    "rasa": frozenset({"rasa_stack"}),
    "servers": frozenset({"Popen", "spawn", "create_subprocess_exec", "create_subprocess_shell"}),
    "app": frozenset({"create_app"}),  # the whole service in-process, spoken to over HTTP
}
# Fixtures: what using them means.
FIXTURES = {"rasa": "rasa", "short_leases": "slow"}  # short_leases: waits for real 2 s leases
# Modules (a path from the project root) and single tests (path::name, every parameter) the
# rules above cannot see through, with what they need; ("slow",): only slow.
SLOW_PATHS = {
    "tests/e2e/": ("browser", "rasa", "servers"),
    "tests/scale/test_scale_mode.py": ("postgres", "rasa", "servers"),
    "tests/test_trained_model.py": ("rasa", "servers"),  # the trained model and an action server
    "tests/bot/test_launcher.py": ("servers",),  # starts and kills process groups
    "tests/bot/outreach/test_broadcasts.py::test_bench_broadcast_prints_the_promised_figures": ("servers",),
    # these train NLU pipelines through Rasa (DIET too)
    "tests/nlu/test_benchmark.py::test_bench_nlu_cross_validation_prints_every_contract_key": ("rasa",),
    "tests/nlu/test_benchmark.py::test_bench_nlu_with_a_test_file": ("rasa",),
    "tests/nlu/test_benchmark.py::test_bench_nlu_baselines_on_tiny_data": ("rasa",),
    "tests/nlu/test_label_review.py::test_nlu_review_finds_a_wrong_label_through_rasa": ("rasa",),
    "tests/bot/cases/test_escalation.py::test_a_human_held_conversation_never_gets_a_bot_reply": ("slow",),
    "tests/bot/outreach/test_broadcasts.py::test_a_broadcast_killed_half_way_and_restarted_": ("slow",),
    "tests/bot/pipeline/test_dispatcher.py::test_an_item_taken_over_while_waiting_for_the_rate_limit_": ("slow",),
    "tests/bot/pipeline/test_dispatcher.py::test_token_bucket_rate": ("slow",),
    "tests/bot/pipeline/test_dispatcher.py::test_dispatcher_honours_the_channel_rate_limit": ("slow",),
}


def _names(code: Any) -> Set[str]:
    """The global and attribute names ``code`` and the functions nested in it refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def _functions(item: pytest.Item) -> List[Any]:
    """The test function and the functions of every fixture it uses."""
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for definitions in (info.name2fixturedefs.values() if info else ()):
        functions.extend(definition.func for definition in definitions)
    # hypothesis's @given keeps the test itself as .hypothesis.inner_test
    functions += [f.hypothesis.inner_test for f in functions
                  if hasattr(getattr(f, "hypothesis", None), "inner_test")]
    return [inspect.unwrap(f) for f in functions if f is not None]


def used_names(item: pytest.Item, deep: bool = False) -> Set[str]:
    """The names ``item``'s test function and fixtures refer to; with ``deep``, also those of
    the helper functions in tests/ they call, and the helpers those call."""
    names: Set[str] = set()
    todo, seen = _functions(item), set()
    while todo:
        function = todo.pop()
        code = getattr(function, "__code__", None)
        if code is None or code in seen:
            continue
        seen.add(code)
        found = _names(code)
        names |= found
        if deep:
            scope = getattr(function, "__globals__", {})
            for helper in (scope.get(name) for name in found):
                if not (inspect.isfunction(helper) or inspect.isclass(helper)):
                    continue
                if not (helper.__module__ or "").startswith("tests"):
                    continue
                if inspect.isclass(helper):  # a harness class: its methods
                    todo.extend(inspect.unwrap(getattr(m, "__func__", m)) for m in vars(helper).values()
                                if inspect.isfunction(getattr(m, "__func__", m)))
                else:
                    todo.append(helper)
    return names


def _where(item: pytest.Item) -> Tuple[str, str]:
    """``(path from the project root, path::name)`` of ``item`` (without parameters)."""
    where = Path(str(item.fspath)).resolve()
    path = where.relative_to(PROJECT).as_posix() if where.is_relative_to(PROJECT) else where.as_posix()
    return path, f"{path}::{getattr(item, 'originalname', item.name)}"


def marks_of(item: pytest.Item) -> Set[str]:
    """What ``item`` needs (a subset of :data:`NEEDS`), plus ``slow`` when it is slow anyway."""
    marks: Set[str] = set()
    fixtures = set(getattr(item, "fixturenames", ()))
    marks.update(mark for fixture, mark in FIXTURES.items() if fixture in fixtures)
    params = getattr(getattr(item, "callspec", None), "params", {})
    names = used_names(item)
    if ("postgresql" in map(str, params.values()) or any(f.startswith("pg_") for f in fixtures)
            or names & POSTGRES_NAMES):
        marks.add("postgres")
    if names & SLOW_NAMES:
        marks.add("slow")
    deep = used_names(item, deep=True)
    marks.update(need for need, called in DEEP_NAMES.items() if deep & called)
    path, test = _where(item)
    for prefix, what in SLOW_PATHS.items():
        if test.startswith(prefix) if "::" in prefix else path.startswith(prefix):
            marks.update(what)
    return marks


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by mark
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Mark each test with what it needs (``rasa``, ``postgres``, ``browser``, ``servers``,
    ``app``) and with ``slow`` when it needs any of them or is slow anyway; a mark of a need
    written by hand implies ``slow`` too."""
    modules: Dict[str, Any] = {}
    for item in items:
        marks = marks_of(item) | {need for need in NEEDS if item.get_closest_marker(need)}
        if marks:
            marks.add("slow")
        for mark in sorted(marks):
            if not item.get_closest_marker(mark):
                item.add_marker(mark)
        modules[_where(item)[0]] = getattr(item, "module", None)
    for entry in SLOW_PATHS:  # a renamed test must not silently join the fast path
        path, _, name = entry.partition("::")
        module = modules.get(path)
        if name and module is not None and not any(attr.startswith(name) for attr in vars(module)):
            warnings.warn(pytest.PytestWarning(f"tests/conftest.py SLOW_PATHS: no test {entry!r}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the running test, for :func:`fresh_postgres_database`'s check."""
    _RUNNING[:] = [item]


_RUNNING: List[pytest.Item] = []
