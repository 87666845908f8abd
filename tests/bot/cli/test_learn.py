"""``webcare learn`` and ``webcare models`` (bot/cli/learn.py): what they print and refuse
without training (training, evaluating and swapping for real: tests/bot/retraining)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from bot.cli import main as cli_main
from bot.learning import registry
from bot.store.database import Store


def config_file(tmp_path: Path) -> str:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path}/store.db"},
                                    "rasa": {"url": "http://127.0.0.1:9", "model_dir": str(tmp_path / "models")}}))
    return str(path)


def test_models_list_prints_the_registry_as_json(tmp_path, capsys):
    config = config_file(tmp_path)
    store = Store.from_url(f"sqlite:///{tmp_path}/store.db")
    try:
        store.transaction(registry.adopt, "starter.tar.gz")
    finally:
        store.close()
    assert cli_main(["--config", config, "models", "list"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["in_use"]["file"] == "starter.tar.gz" and len(listing["models"]) == 1


def test_learn_while_a_job_runs_is_refused(tmp_path, capsys):
    config = config_file(tmp_path)
    store = Store.from_url(f"sqlite:///{tmp_path}/store.db")
    try:
        running = store.transaction(lambda s: registry.start_job(s, None, False).id)
    finally:
        store.close()
    assert cli_main(["--config", config, "learn"]) == 1
    assert f"retraining job {running} is still running" in capsys.readouterr().err


def test_rollback_without_a_previous_model_and_promoting_an_unknown_one_are_refused(tmp_path, capsys):
    config = config_file(tmp_path)
    assert cli_main(["--config", config, "models", "rollback"]) == 1
    assert "no previous model" in capsys.readouterr().err
    assert cli_main(["--config", config, "models", "promote", "42"]) == 1
    assert "no model 42" in capsys.readouterr().err
