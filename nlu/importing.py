"""Import labelled intent examples from CSV into Rasa NLU YAML (``webcare import-intents``).

The CSV needs a header with a ``text`` column and an ``intent`` column (``category`` is
accepted as an alias, as in BANKING77's ``text,category``; when both exist ``intent`` wins).
An optional ``lang`` column gives each example's language (``nl``, ``en`` …); ``--lang``
fills it in for rows that have none.

Nothing is written when the file has problems; instead a report lists every one of them with
its line number:

* an empty text (or an empty intent),
* a duplicate: the same text twice under the same intent (compared case-insensitively, with
  runs of whitespace collapsed, because the classifier sees them as one example),
* a conflict: the same text under two different intents,
* text that Rasa would read as entity markup (``[text](entity)``), which would silently change
  the example,
* a ``lang`` value that is not a language code.

``drop_duplicates=True`` (``--drop-duplicates``) keeps the first of same-intent duplicates
instead of refusing; conflicts and empty texts are always refused.
"""
from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from nlu.evaluation import Example, write_nlu_yaml

logger = logging.getLogger(__name__)

TEXT_COLUMN = "text"
INTENT_COLUMNS = ("intent", "category")  # first one present wins; "category" is an alias
LANG_COLUMN = "lang"
HEADER_MARK = "# Written by `webcare import-intents`"
MAX_LISTED = 30  # problems listed per kind in a report

_ENTITY_MARKUP = re.compile(
    r"\[(?P<entity_text>[^\]]+?)\](\((?P<entity>[^:)]+?)(?:\:(?P<value>[^)]+))?\)"
    r"|\{(?P<entity_dict>[^}]+?)\}|\[(?P<list_entity_dicts>.*?)\])"
)


@dataclass(frozen=True)
class Problem:
    """One reason to refuse an input file."""

    kind: str  # empty_text | empty_intent | duplicate | conflict | entity_markup | bad_lang
    line: int
    message: str


@dataclass
class CsvData:
    """Examples read from a CSV file, with everything that is wrong with it."""

    path: Path
    examples: List[Example] = field(default_factory=list)
    lines: List[int] = field(default_factory=list)  # CSV line of each example
    problems: List[Problem] = field(default_factory=list)
    dropped_duplicates: int = 0
    intent_column: str = "intent"

    @property
    def ok(self) -> bool:
        return not self.problems


class CsvFormatError(ValueError):
    """The file cannot be read as an intent CSV at all (missing file, columns, encoding)."""


def normalized(text: str) -> str:
    """The form under which two texts count as the same example."""
    return " ".join(text.split()).casefold()


def read_intent_csv(
    path: Path,
    default_lang: Optional[str] = None,
    drop_duplicates: bool = False,
) -> CsvData:
    """Read and check ``path``; problems are collected in the result, not raised.

    Raises :class:`CsvFormatError` when the file is missing, not UTF-8, or lacks the
    ``text`` or ``intent``/``category`` column.
    """
    from nlu.language_detector import normalize_language  # lazy: the detector imports Rasa (seconds)

    path = Path(path)
    if default_lang is not None and normalize_language(default_lang) is None:
        raise CsvFormatError(f"--lang {default_lang!r} is not a language code (e.g. nl, en)")
    default = normalize_language(default_lang) if default_lang else None
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CsvFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    data = CsvData(path)
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CsvFormatError(f"{path} is empty; expected a header line such as text,intent")
            columns = [h.strip().lower() for h in header]
            if TEXT_COLUMN not in columns:
                raise CsvFormatError(
                    f"{path} has no 'text' column (header: {','.join(header)}); "
                    "expected text,intent (or text,category) and optionally lang")
            intent_column = next((c for c in INTENT_COLUMNS if c in columns), None)
            if intent_column is None:
                raise CsvFormatError(
                    f"{path} has no 'intent' column (or its alias 'category'); "
                    f"header: {','.join(header)}")
            data.intent_column = intent_column
            text_at = columns.index(TEXT_COLUMN)
            intent_at = columns.index(intent_column)
            lang_at = columns.index(LANG_COLUMN) if LANG_COLUMN in columns else None

            seen: Dict[str, Tuple[int, str]] = {}  # normalized text -> (line, intent)
            previous_end = reader.line_num
            for row in reader:
                line = previous_end + 1
                previous_end = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                text = _cell(row, text_at).strip()
                intent = _cell(row, intent_at).strip()
                raw_lang = _cell(row, lang_at).strip() if lang_at is not None else ""
                if not text:
                    data.problems.append(Problem(
                        "empty_text", line, f"empty text (intent {intent or '?'!r})"))
                    continue
                if not intent:
                    data.problems.append(Problem("empty_intent", line, f"no intent for {_quote(text)}"))
                    continue
                lang = default
                if raw_lang:
                    lang = normalize_language(raw_lang)
                    if lang is None:
                        data.problems.append(Problem(
                            "bad_lang", line, f"lang {raw_lang!r} is not a language code"))
                        continue
                if _ENTITY_MARKUP.search(text):
                    data.problems.append(Problem(
                        "entity_markup", line,
                        f"{_quote(text)} contains [..](..) or [..]{{..}}, which Rasa would read "
                        "as an entity annotation; rephrase it"))
                    continue
                key = normalized(text)
                if key in seen:
                    first_line, first_intent = seen[key]
                    if first_intent != intent:
                        data.problems.append(Problem(
                            "conflict", line,
                            f"{_quote(text)} is labelled {intent!r} here but {first_intent!r} "
                            f"on line {first_line}"))
                    elif drop_duplicates:
                        data.dropped_duplicates += 1
                    else:
                        data.problems.append(Problem(
                            "duplicate", line,
                            f"{_quote(text)} ({intent}) duplicates line {first_line}"))
                    continue
                seen[key] = (line, intent)
                data.examples.append(Example(" ".join(text.split()), intent, lang, f"{path}:{line}"))
                data.lines.append(line)
        except UnicodeDecodeError as exc:
            raise CsvFormatError(f"{path} is not UTF-8 text: {exc.reason}") from exc
        except csv.Error as exc:
            raise CsvFormatError(f"{path} is not valid CSV (line {reader.line_num}): {exc}") from exc
    if not data.examples and not data.problems:
        raise CsvFormatError(f"{path} has a header but no examples")
    return data


def _cell(row: Sequence[str], index: Optional[int]) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index]


def _quote(text: str, limit: int = 70) -> str:
    one_line = " ".join(text.split())
    return repr(one_line if len(one_line) <= limit else one_line[: limit - 1] + "…")


_KIND_TITLES = {
    "empty_text": "empty texts",
    "empty_intent": "rows without an intent",
    "duplicate": "duplicates (same text, same intent; --drop-duplicates keeps the first)",
    "conflict": "the same text under two intents",
    "entity_markup": "texts Rasa would read as entity markup",
    "bad_lang": "invalid lang values",
}


def read_training_examples(path: Path) -> List[Example]:
    """The examples of a labelled CSV for training or evaluation: duplicates dropped (and logged),
    anything else wrong refused with :func:`problem_report` as the :class:`CsvFormatError`'s text."""
    data = read_intent_csv(path, drop_duplicates=True)
    if not data.ok:
        raise CsvFormatError(problem_report(data))
    if data.dropped_duplicates:
        logger.info("%s: dropped %d duplicate example(s)", path, data.dropped_duplicates)
    return data.examples


def problem_report(data: CsvData) -> str:
    """A human-readable list of everything wrong with ``data``, grouped by kind."""
    counts = Counter(p.kind for p in data.problems)
    lines = [
        f"{data.path}: refused, {len(data.problems)} problem(s) "
        f"({', '.join(f'{n} {k}' for k, n in counts.items())}); nothing was written."
    ]
    for kind, title in _KIND_TITLES.items():
        found = [p for p in data.problems if p.kind == kind]
        if not found:
            continue
        lines.append(f"{title}: {len(found)}")
        for problem in found[:MAX_LISTED]:
            lines.append(f"  line {problem.line}: {problem.message}")
        if len(found) > MAX_LISTED:
            lines.append(f"  … and {len(found) - MAX_LISTED} more")
    return "\n".join(lines)


@dataclass
class ImportResult:
    """What ``import_intents`` wrote (or why it refused)."""

    ok: bool
    report: str
    out: Optional[Path] = None
    examples: int = 0
    intents: int = 0
    languages: Dict[str, int] = field(default_factory=dict)
    intent_names: List[str] = field(default_factory=list)


def import_intents(
    csv_path: Path,
    out: Path,
    lang: Optional[str] = None,
    drop_duplicates: bool = False,
    force: bool = False,
) -> ImportResult:
    """Check ``csv_path`` and write it to ``out`` as Rasa NLU YAML; refuse on any problem.

    An existing ``out`` is only replaced when an earlier import wrote it, or with ``force``.
    """
    try:
        data = read_intent_csv(csv_path, default_lang=lang, drop_duplicates=drop_duplicates)
    except CsvFormatError as exc:
        return ImportResult(False, f"{exc}; nothing was written.")
    if not data.ok:
        return ImportResult(False, problem_report(data))
    out = Path(out)
    if out.exists() and not force and not _written_by_us(out):
        return ImportResult(
            False,
            f"{out} exists and was not written by webcare import-intents; "
            "choose another --out or pass --force to replace it. Nothing was written.")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_nlu_yaml(
        data.examples, out,
        header=f"{HEADER_MARK} from {Path(csv_path).name}; edit the CSV and re-import.")
    intents = Counter(e.intent for e in data.examples)
    languages = Counter(e.lang or "unspecified" for e in data.examples)
    report = (
        f"wrote {len(data.examples)} examples of {len(intents)} intents to {out}"
        + (f" (dropped {data.dropped_duplicates} duplicate(s))" if data.dropped_duplicates else "")
        + "; languages: " + ", ".join(f"{k} {v}" for k, v in sorted(languages.items()))
    )
    if data.intent_column != "intent":
        report += f"\n(read intents from the {data.intent_column!r} column)"
    return ImportResult(
        True, report, out, len(data.examples), len(intents), dict(languages), sorted(intents))


def _written_by_us(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().startswith(HEADER_MARK)
    except (OSError, UnicodeDecodeError):
        return False


def intents_missing_from_domain(intents: Sequence[str], domain: Path) -> List[str]:
    """Intents that ``domain`` (a Rasa domain file) does not declare; empty if unreadable."""
    import yaml

    try:
        declared = yaml.safe_load(domain.read_text(encoding="utf-8")).get("intents") or []
    except (OSError, AttributeError, yaml.YAMLError):
        return []
    names = set()
    for item in declared:
        names.update(item.keys() if isinstance(item, dict) else [str(item)])
    return sorted(set(intents) - names)
