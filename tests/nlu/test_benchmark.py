from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest

from bot.cli import main
from nlu.benchmark import choose_threshold, coverage_at
from tests.nlu.csv_support import synthetic_rows, write_csv

PROJECT = Path(__file__).resolve().parents[2]
CONTRACT_KEYS = {
    "accuracy", "macro_f1", "top3", "coverage_at_95", "coverage_at_98", "train_seconds", "predict_ms",
}

# --------------------------------------------------------------- threshold selection
def test_choose_threshold_takes_the_lowest_threshold_reaching_the_precision() -> None:
    # confidence, correct (sorted high to low for readability)
    rows = [
        (0.99, True), (0.97, True), (0.95, True), (0.90, True), (0.85, False),
        (0.80, True), (0.70, True), (0.60, False), (0.50, False), (0.40, True),
    ]
    conf = [c for c, _ in rows]
    ok = [o for _, o in rows]
    # precision of "conf >= t": 1, 1, 1, 1, 4/5, 5/6, 6/7, 6/8, 6/9, 7/10
    assert choose_threshold(conf, ok, 1.0) == 0.90
    assert choose_threshold(conf, ok, 0.85) == 0.70   # 6/7 = 0.857; 6/8 below
    assert choose_threshold(conf, ok, 0.80) == 0.70   # 0.85 (0.80) and 0.80 (0.833) qualify too
    assert choose_threshold(conf, ok, 0.70) == 0.40   # everything: 7/10
    assert choose_threshold([0.9, 0.8], [False, False], 0.5) is None
    assert choose_threshold([], [], 0.9) is None


def test_choose_threshold_treats_equal_confidences_as_one_group() -> None:
    # at 0.9 the group holds one wrong answer: precision 2/3, never 1.0
    assert choose_threshold([0.9, 0.9, 0.9, 0.5], [True, True, False, True], 1.0) is None
    assert choose_threshold([0.9, 0.9, 0.9, 0.5], [True, True, False, True], 0.6) == 0.5


def test_coverage_applies_the_threshold_and_reports_precision() -> None:
    conf = np.array([0.99, 0.96, 0.91, 0.7, 0.3])
    ok = np.array([True, True, False, True, False])
    assert coverage_at(conf, ok, 0.9) == (0.6, pytest.approx(2 / 3), 3)
    assert coverage_at(conf, ok, None) == (0.0, None, 0)
    assert coverage_at(conf, ok, 0.995) == (0.0, None, 0)


# -------------------------------------------------------------------- `bench nlu`
def _bench(args: List[str], monkeypatch: pytest.MonkeyPatch, capsys) -> dict:
    monkeypatch.chdir(PROJECT)
    assert main(["bench", "nlu", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # stdout is JSON only


def test_bench_nlu_cross_validation_prints_every_contract_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    train = write_csv(tmp_path / "train.csv", synthetic_rows(25, seed=1))
    report = _bench(["--train", str(train), "--folds", "3", "--no-baselines"], monkeypatch, capsys)
    assert CONTRACT_KEYS <= set(report)
    assert report["folds"] == 3 and report["train_examples"] == 100
    assert 0.8 <= report["accuracy"] <= 1.0
    assert 0 <= report["coverage_at_98"] <= report["coverage_at_95"] <= 1
    assert report["train_seconds"] > 0 and report["predict_ms"] > 0
    assert "baselines" not in report


def test_bench_nlu_with_a_test_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    train = write_csv(tmp_path / "train.csv", synthetic_rows(20, seed=2), column="intent")
    test = write_csv(tmp_path / "test.csv", synthetic_rows(6, seed=3)[::2], column="intent")
    report = _bench(["--train", str(train), "--test", str(test), "--folds", "3", "--no-baselines"],
                    monkeypatch, capsys)
    assert CONTRACT_KEYS <= set(report)
    assert report["evaluation"] == "train/test" and report["test_examples"] == 12
    assert report["threshold_95"] is None or 0 < report["threshold_95"] <= 1


def test_bench_nlu_refuses_bad_input_with_the_import_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(PROJECT)
    bad = write_csv(tmp_path / "bad.csv", [("hello", "greet"), ("hello", "bye"), ("", "greet")])
    assert main(["bench", "nlu", "--train", str(bad), "--no-baselines"]) == 2
    err = capsys.readouterr().err
    assert "empty text" in err and "'bye' here but 'greet'" in err


def test_bench_nlu_baselines_on_tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Rasa's LogisticRegressionClassifier and a 1-epoch DIET in the same run (~30 s)."""
    train = write_csv(tmp_path / "train.csv", synthetic_rows(8, seed=4))
    report = _bench(["--train", str(train), "--folds", "2", "--diet-epochs", "1"], monkeypatch, capsys)
    assert report["baseline_folds"] == 1
    baselines = report["baselines"]
    for name in ("logistic_regression", "diet"):
        assert CONTRACT_KEYS <= set(baselines[name]), baselines[name]
    assert baselines["diet"]["epochs"] == 1
    assert baselines["diet"]["train_seconds_extrapolated"] > baselines["diet"]["train_seconds"]
    assert CONTRACT_KEYS <= set(baselines["project_same_fold"])
