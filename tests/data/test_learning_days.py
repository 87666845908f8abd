"""Quality gates for tests/data/learning_days.csv, the labelled customer messages `webcare bench
days` sends (never used for training): its shape, its labels and that it shares no message with
the training data in data/nlu/."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Dict, List, Set

import yaml
from tests.data.intents import SERVICE_INTENTS

PROJECT = Path(__file__).resolve().parents[2]
CSV_PATH = PROJECT / "tests" / "data" / "learning_days.csv"
HEADER = ["text", "intent", "lang"]
LANGUAGES = {"nl", "en"}
# The 15 business intents of docs/intents.md: each needs customers' messages in both languages.
MIN_ROWS = 400


def normalised(text: str) -> str:
    """``text`` lower-cased with its whitespace collapsed: how rows and examples are compared."""
    return " ".join(text.lower().split())


def read_rows() -> List[Dict[str, str]]:
    """The CSV's rows as dicts (csv.DictReader)."""
    with CSV_PATH.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_header() -> List[str]:
    with CSV_PATH.open(encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle))


def training_examples(directory: Path = PROJECT / "data" / "nlu") -> Set[str]:
    """Every training example of ``directory``/*.yml (the ``examples: |`` blocks), normalised."""
    files = sorted(directory.glob("*.yml"))
    assert files, f"no NLU files in {directory}"
    examples: Set[str] = set()
    for path in files:
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or []:
            for line in (block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    examples.add(normalised(line[2:]))
    return examples


ROWS = read_rows()
DOMAIN_INTENTS = set(yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))["intents"])


def test_the_header_is_text_intent_lang() -> None:
    assert read_header() == HEADER


def test_there_are_enough_rows() -> None:
    assert len(ROWS) >= MIN_ROWS


def test_every_row_has_exactly_the_three_fields() -> None:
    # DictReader puts surplus fields under None and fills missing ones with None
    assert [row for row in ROWS if set(row) != set(HEADER) or None in row.values()] == []


def test_every_intent_is_an_intent_of_the_domain() -> None:
    assert {row["intent"] for row in ROWS} - DOMAIN_INTENTS == set()


def test_every_language_is_nl_or_en() -> None:
    assert {row["lang"] for row in ROWS} - LANGUAGES == set()


def test_no_empty_text() -> None:
    assert [row for row in ROWS if not row["text"].strip()] == []


def test_no_duplicate_rows() -> None:
    counts = Counter(normalised(row["text"]) for row in ROWS)
    assert [text for text, count in counts.items() if count > 1] == []


def test_every_service_intent_has_rows_in_both_languages() -> None:
    present = {(row["intent"], row["lang"]) for row in ROWS}
    missing = [(intent, lang) for intent in SERVICE_INTENTS for lang in sorted(LANGUAGES)
               if (intent, lang) not in present]
    assert missing == []


def test_no_row_is_a_training_example() -> None:
    examples = training_examples()
    assert [row["text"] for row in ROWS if normalised(row["text"]) in examples] == []


def test_the_comparison_ignores_case_and_whitespace(tmp_path: Path) -> None:
    (tmp_path / "nl.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: complaint\n  examples: |\n'
        "    - Ik wil  een KLACHT indienen\n    - slechtste service ooit\n", encoding="utf-8")
    assert training_examples(tmp_path) == {"ik wil een klacht indienen", "slechtste service ooit"}
    assert normalised("  ik WIL een\tklacht indienen ") in training_examples(tmp_path)
