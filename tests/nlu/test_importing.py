from __future__ import annotations

from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from bot.cli import main
from nlu.importing import HEADER_MARK, import_intents, read_intent_csv


def _csv(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """text,intent,lang
mijn factuur is te hoog,bill_too_high,nl
my bill is way too high,bill_too_high,en
"ik wil, als het kan, betalen in termijnen",payment_arrangement,nl
can I pay in instalments?,payment_arrangement,
hallo,greet,nl
"hello there",greet,en
"""


def _examples(path: Path):
    data = load_data(str(path))
    return sorted(
        (m.get("text"), m.get("intent"), (m.get("metadata") or {}).get("intent", {}).get("lang"))
        for m in data.intent_examples
    )


def test_writes_loadable_rasa_yaml_with_languages(tmp_path: Path) -> None:
    out = tmp_path / "nlu" / "imported.yml"
    result = import_intents(_csv(tmp_path, GOOD), out, lang="en")
    assert result.ok, result.report
    assert result.examples == 6 and result.intents == 3
    assert out.read_text(encoding="utf-8").startswith(HEADER_MARK)
    assert _examples(out) == sorted([
        ("mijn factuur is te hoog", "bill_too_high", "nl"),
        ("my bill is way too high", "bill_too_high", "en"),
        ("ik wil, als het kan, betalen in termijnen", "payment_arrangement", "nl"),
        ("can I pay in instalments?", "payment_arrangement", "en"),  # --lang fills the gap
        ("hallo", "greet", "nl"),
        ("hello there", "greet", "en"),
    ])


def test_category_is_an_alias_for_intent_and_intent_wins(tmp_path: Path) -> None:
    alias = _csv(tmp_path, "text,category\nI am still waiting on my card?,card_arrival\n"
                           "how do I top up,top_up\n")
    out = tmp_path / "a.yml"
    assert import_intents(alias, out).ok
    assert {i for _, i, _ in _examples(out)} == {"card_arrival", "top_up"}

    both = _csv(tmp_path, "category,text,intent\nx,hello,greet\ny,bye,goodbye\n", "both.csv")
    assert {e.intent for e in read_intent_csv(both).examples} == {"greet", "goodbye"}


def test_refuses_empty_duplicate_and_conflicting_rows_with_a_report(tmp_path: Path) -> None:
    path = _csv(tmp_path, (
        "text,intent\n"
        "my bill is too high,bill\n"        # line 2
        "   ,bill\n"                         # line 3: empty text
        "My  bill is TOO high,bill\n"        # line 4: duplicate of line 2
        "where is my meter,meter\n"          # line 5
        "where is my meter,bill\n"           # line 6: conflict with line 5
        "hello,\n"                           # line 7: no intent
    ))
    out = tmp_path / "out.yml"
    result = import_intents(path, out)
    assert not result.ok
    assert not out.exists()
    report = result.report
    assert "refused" in report and "nothing was written" in report
    assert "empty texts: 1" in report and "line 3: empty text" in report
    assert "line 4:" in report and "duplicates line 2" in report
    assert "line 6:" in report and "'bill' here but 'meter' on line 5" in report
    assert "line 7: no intent" in report


def test_drop_duplicates_keeps_the_first_but_conflicts_still_refuse(tmp_path: Path) -> None:
    dup = _csv(tmp_path, "text,intent\nhello,greet\nHello,greet\nbye,goodbye\n")
    result = import_intents(dup, tmp_path / "o.yml", drop_duplicates=True)
    assert result.ok and result.examples == 2 and "dropped 1 duplicate" in result.report

    conflict = _csv(tmp_path, "text,intent\nhello,greet\nhello,goodbye\n", "c.csv")
    assert not import_intents(conflict, tmp_path / "p.yml", drop_duplicates=True).ok


def test_refuses_entity_markup_bad_lang_and_missing_columns(tmp_path: Path) -> None:
    markup = _csv(tmp_path, "text,intent\nmove to [Utrecht](city),moving\nhi,greet\n")
    result = import_intents(markup, tmp_path / "m.yml")
    assert not result.ok and "entity" in result.report

    lang = _csv(tmp_path, "text,intent,lang\nhi,greet,123\nbye,goodbye,en\n", "l.csv")
    result = import_intents(lang, tmp_path / "l.yml")
    assert not result.ok and "lang '123'" in result.report

    columns = _csv(tmp_path, "sentence,label\nhi,greet\n", "x.csv")
    result = import_intents(columns, tmp_path / "x.yml")
    assert not result.ok and "no 'text' column" in result.report


def test_does_not_overwrite_files_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "en.yml"
    out.write_text("version: '3.1'\nnlu: []\n", encoding="utf-8")
    path = _csv(tmp_path, GOOD)
    result = import_intents(path, out)
    assert not result.ok and "--force" in result.report
    assert import_intents(path, out, force=True).ok
    assert import_intents(path, out).ok  # now it is ours: re-import replaces it


def test_cli_import_intents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # webcare.yml lives there
    out = tmp_path / "imported.yml"
    assert main(["import-intents", str(_csv(tmp_path, GOOD)), "--out", str(out)]) == 0
    assert "wrote 6 examples of 3 intents" in capsys.readouterr().out
    assert len(load_data(str(out)).intent_examples) == 6

    bad = _csv(tmp_path, "text,intent\n,greet\n", "bad.csv")
    assert main(["import-intents", str(bad), "--out", str(tmp_path / "b.yml")]) == 1
    assert "empty text" in capsys.readouterr().err


def test_awkward_texts_survive_the_round_trip(tmp_path: Path) -> None:
    texts = [
        "what's 50% of €10: a #question?",
        "'quoted' and \"double\" - dashes",
        "- starts with a dash",
        "wtf 600 euro bijbetalen 😡",
        "multi\nline\ttext   with  spaces",
        "key: value, {braces} and [brackets]",
    ]
    rows = "text,intent\n" + "".join(
        '"{}",i{}\n'.format(t.replace('"', '""'), n % 2) for n, t in enumerate(texts))
    out = tmp_path / "o.yml"
    result = import_intents(_csv(tmp_path, rows), out)
    assert result.ok, result.report
    loaded = sorted(m.get("text") for m in load_data(str(out)).intent_examples)
    assert loaded == sorted(" ".join(t.split()) for t in texts)
