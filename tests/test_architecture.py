"""The import layers and the absence of import cycles hold, and the checks catch a violation.

``make lint-imports`` runs the same two checks on the tree; here each is also shown to fail
on a copy of the tree with one deliberately added back-edge.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "connectors", "actions", "nlu")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    # The copy's packages come first on the path (webcare is installed in editable mode).
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the source packages and the contracts."""
    for package in PACKAGES:
        shutil.copytree(PROJECT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "templates", "webchat_assets"))
    shutil.copy(PROJECT / ".importlinter", tmp_path / ".importlinter")
    shutil.copytree(PROJECT / "scripts", tmp_path / "scripts")
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text(encoding="utf-8") + f"\n{statement}\n", encoding="utf-8")


def test_the_contracts_and_the_cycle_check_pass_on_the_tree(tree: Path) -> None:
    lint = run([str(LINT_IMPORTS), "--no-cache"], tree)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 broken" in lint.stdout
    cycles = run([sys.executable, "scripts/check-import-cycles"], tree)
    assert cycles.returncode == 0, cycles.stdout
    assert cycles.stdout.startswith("no import cycles")


def test_a_back_edge_from_the_domain_to_the_web_layer_breaks_the_layers(tree: Path) -> None:
    add_import(tree / "bot" / "pipeline" / "outbox.py", "from bot.web.keys import STORE_KEY  # noqa")
    lint = run([str(LINT_IMPORTS), "--no-cache"], tree)
    assert lint.returncode != 0
    assert "BROKEN" in lint.stdout and "bot.pipeline.outbox -> bot.web.keys" in lint.stdout


def test_an_action_importing_the_service_breaks_its_contract(tree: Path) -> None:
    add_import(tree / "actions" / "handover.py", "import bot.pipeline.worker  # noqa")
    lint = run([str(LINT_IMPORTS), "--no-cache"], tree)
    assert lint.returncode != 0
    assert "Actions import only the payload protocol" in lint.stdout and "BROKEN" in lint.stdout


def test_a_cycle_inside_one_layer_is_found_with_its_chain(tree: Path) -> None:
    # Same layer both ways, so only the cycle check can see it.
    add_import(tree / "bot" / "cases" / "root_causes.py", "from bot.cases import escalation  # noqa")
    cycles = run([sys.executable, "scripts/check-import-cycles"], tree)
    assert cycles.returncode == 1
    assert "import cycle" in cycles.stdout and "bot.cases.root_causes" in cycles.stdout
