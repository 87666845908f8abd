"""When does `webcare train` retrain? When the model is missing or older than an input."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bot.rasa.training import latest_model, rasa_executable, staleness

T0 = 1_700_000_000  # inputs written
T1 = T0 + 100  # model trained
T2 = T0 + 200  # an input changed afterwards


def set_mtime(path: Path, when: float) -> None:
    os.utime(path, (when, when))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small Rasa project whose every input was last written at T0."""
    root = tmp_path / "project"
    (root / "data" / "nlu").mkdir(parents=True)
    files = {
        "config.yml": "recipe: default.v1\nlanguage: nl\n",
        "domain.yml": 'version: "3.1"\nintents: [greet]\n',
        "data/rules.yml": 'version: "3.1"\nrules: []\n',
        "data/x.yml": 'version: "3.1"\nstories: []\n',
        "data/nlu/nl.yml": 'version: "3.1"\nnlu: []\n',
        "webcare.yml": "service: {}\n",  # not a training input
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
        set_mtime(root / name, T0)
    (root / "models").mkdir()
    return root


def add_model(project: Path, name: str, when: float) -> Path:
    model = project / "models" / name
    model.write_bytes(b"not really a model")
    set_mtime(model, when)
    return model


def test_no_model_directory_is_stale(project: Path) -> None:
    stale, why = staleness(project, project / "missing")
    assert stale
    assert "no model" in why and "missing" in why


def test_empty_model_directory_is_stale(project: Path) -> None:
    (project / "models" / "notes.txt").write_text("not a model")
    stale, why = staleness(project, project / "models")
    assert stale
    assert why.startswith("no model in")


def test_model_newer_than_every_input_is_fresh(project: Path) -> None:
    model = add_model(project, "20260101-000000-fresh.tar.gz", T1)
    assert staleness(project, project / "models") == (False, f"{model.name} is up to date")


def test_touching_a_data_file_afterwards_makes_it_stale(project: Path) -> None:
    model = add_model(project, "20260101-000000-fresh.tar.gz", T1)
    set_mtime(project / "data" / "x.yml", T2)
    stale, why = staleness(project, project / "models")
    assert stale
    assert "data/x.yml" in why
    assert model.name in why
    assert "domain.yml" not in why and "nl.yml" not in why


@pytest.mark.parametrize("name", ["config.yml", "domain.yml", "data/nlu/nl.yml"])
def test_every_input_counts(project: Path, name: str) -> None:
    add_model(project, "m.tar.gz", T1)
    set_mtime(project / name, T2)
    stale, why = staleness(project, project / "models")
    assert stale and name in why


def test_a_new_data_file_makes_it_stale(project: Path) -> None:
    add_model(project, "m.tar.gz", T1)
    new = project / "data" / "nlu" / "en.yml"
    new.write_text('version: "3.1"\nnlu: []\n')
    set_mtime(new, T2)
    stale, why = staleness(project, project / "models")
    assert stale and "data/nlu/en.yml" in why


def test_files_outside_the_inputs_do_not_count(project: Path) -> None:
    add_model(project, "m.tar.gz", T1)
    set_mtime(project / "webcare.yml", T2)
    assert staleness(project, project / "models")[0] is False


def test_many_changes_are_abbreviated(project: Path) -> None:
    add_model(project, "m.tar.gz", T1)
    for name in ("config.yml", "domain.yml", "data/rules.yml", "data/x.yml", "data/nlu/nl.yml"):
        set_mtime(project / name, T2)
    stale, why = staleness(project, project / "models")
    assert stale
    assert why.count(",") == 2 and "…" in why  # three names, then an ellipsis


def test_the_newest_model_is_the_one_that_counts(project: Path) -> None:
    add_model(project, "b-old.tar.gz", T0 - 50)
    newest = add_model(project, "a-new.tar.gz", T1)  # sorts first by name, newest by mtime
    assert latest_model(project / "models") == newest
    assert staleness(project, project / "models") == (False, f"{newest.name} is up to date")
    set_mtime(newest, T0 - 10)
    stale, why = staleness(project, project / "models")
    assert stale and newest.name in why


def test_rasa_executable_is_next_to_the_interpreter() -> None:
    expected = Path(sys.executable).with_name("rasa")
    assert rasa_executable() == (str(expected) if expected.exists() else "rasa")
