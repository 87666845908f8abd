"""Quality gates for the bilingual training data, the responses and the test stories."""
from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest
import yaml
from tests.data.intents import SERVICE_INTENTS

PROJECT = Path(__file__).resolve().parents[2]
LANGUAGES = ("nl", "en")
EN_CONDITION = [{"type": "slot", "name": "language", "value": "en"}]

# The 15 business intents of docs/intents.md (chitchat intents need fewer examples).
DOMAIN_INTENTS = SERVICE_INTENTS
MIN_EXAMPLES = 25


@dataclass(frozen=True)
class Example:
    intent: str
    lang: str
    text: str
    source: str


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _examples() -> List[Example]:
    files = sorted((PROJECT / "data" / "nlu").glob("*.yml"))
    assert files, "no NLU files in data/nlu/"
    examples: List[Example] = []
    for path in files:
        for block in load_yaml(path).get("nlu") or []:
            assert "intent" in block, f"{path.name}: only intent blocks are expected, got {sorted(block)}"
            lang = (block.get("metadata") or {}).get("lang")
            assert lang in LANGUAGES, f"{path.name}: intent {block['intent']} has metadata lang {lang!r}"
            for line in block["examples"].splitlines():
                if not line.strip():
                    continue
                assert line.startswith("- "), f"{path.name}: {block['intent']}: bad example line {line!r}"
                examples.append(Example(block["intent"], lang, line[2:].strip(), path.name))
    return examples


EXAMPLES = _examples()
DOMAIN = load_yaml(PROJECT / "domain.yml")
STORIES = load_yaml(PROJECT / "tests" / "test_stories.yml")["stories"]
INTENTS = [i for i in DOMAIN["intents"] if i != "nlu_fallback"]


def count_by_intent_and_language() -> Dict[Tuple[str, str], int]:
    counts: Dict[Tuple[str, str], int] = defaultdict(int)
    for example in EXAMPLES:
        counts[(example.intent, example.lang)] += 1
    return counts


def tokens(text: str) -> Set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_the_business_intents_are_the_domain_intents() -> None:
    assert set(DOMAIN_INTENTS) <= set(INTENTS)
    documented = set(re.findall(r"^\| (\w+) \|", (PROJECT / "docs" / "intents.md").read_text(), re.M))
    assert documented - {"intent"} == set(INTENTS)


def test_training_data_has_only_domain_intents() -> None:
    assert {e.intent for e in EXAMPLES} == set(INTENTS)


@pytest.mark.parametrize("intent", INTENTS)
def test_every_intent_has_examples_in_both_languages(intent: str) -> None:
    counts = count_by_intent_and_language()
    for lang in LANGUAGES:
        assert counts[(intent, lang)] > 0, f"{intent} has no {lang} examples"


@pytest.mark.parametrize("intent", DOMAIN_INTENTS)
def test_business_intents_have_enough_examples_per_language(intent: str) -> None:
    counts = count_by_intent_and_language()
    for lang in LANGUAGES:
        assert counts[(intent, lang)] >= MIN_EXAMPLES, (
            f"{intent}: {counts[(intent, lang)]} {lang} examples, need {MIN_EXAMPLES}"
        )


def test_no_empty_examples() -> None:
    assert [e for e in EXAMPLES if not e.text] == []


def test_no_duplicate_texts_anywhere() -> None:
    seen: Dict[str, Example] = {}
    duplicates = []
    for example in EXAMPLES:
        key = example.text.lower()
        if key in seen:
            duplicates.append((seen[key], example))
        seen[key] = example
    assert duplicates == []


def test_no_near_duplicates_within_an_intent() -> None:
    by_intent: Dict[str, List[Example]] = defaultdict(list)
    for example in EXAMPLES:
        by_intent[example.intent].append(example)
    near = []
    for intent, examples in by_intent.items():
        for a, b in itertools.combinations(examples, 2):
            ta, tb = tokens(a.text), tokens(b.text)
            if len(ta) >= 3 and len(tb) >= 3 and len(ta & tb) / len(ta | tb) >= 0.8:
                near.append((intent, a.text, b.text))
    assert near == []


def test_the_near_duplicate_check_itself() -> None:
    assert tokens("Mijn factuur is te HOOG!!") == {"mijn", "factuur", "is", "te", "hoog"}
    a, b = tokens("mijn factuur is te hoog"), tokens("mijn factuur is veel te hoog")
    assert len(a & b) / len(a | b) >= 0.8


# --- responses ---------------------------------------------------------------------------

DUTCH = {"je", "de", "het", "een", "en", "van", "ik", "dat", "dan", "niet", "we", "ons", "met", "zijn", "voor", "nog", "op", "naar"}
ENGLISH = {"you", "the", "a", "and", "of", "i", "that", "your", "we", "us", "with", "is", "for", "to", "on", "it", "are"}


def looks(text: str) -> str:
    words = re.findall(r"[a-z']+", text.lower())
    nl = sum(w in DUTCH for w in words)
    en = sum(w in ENGLISH for w in words)
    return "nl" if nl > en else "en" if en > nl else "?"


@pytest.mark.parametrize("response", sorted(DOMAIN["responses"]))
def test_every_response_has_one_dutch_default_and_an_english_variant(response: str) -> None:
    variants = DOMAIN["responses"][response]
    defaults = [v for v in variants if not v.get("condition")]
    english = [v for v in variants if v.get("condition") == EN_CONDITION]
    assert len(defaults) == 1, f"{response}: {len(defaults)} variants without condition"
    assert english, f"{response}: no variant for language=en"
    assert len(defaults) + len(english) == len(variants), f"{response}: unexpected conditions"
    assert looks(defaults[0]["text"]) == "nl", defaults[0]["text"]
    for variant in english:
        assert looks(variant["text"]) == "en", variant["text"]
        # the same buttons and placeholders in both languages
        assert [b["payload"] for b in variant.get("buttons", [])] == [
            b["payload"] for b in defaults[0].get("buttons", [])
        ]
        assert set(re.findall(r"{(\w+)}", variant["text"])) == set(re.findall(r"{(\w+)}", defaults[0]["text"]))


def test_every_utterance_used_by_stories_and_rules_exists() -> None:
    used: Set[str] = set()
    for name in ("data/stories.yml", "data/rules.yml", "tests/test_stories.yml"):
        data = load_yaml(PROJECT / name)
        for flow in (data.get("stories") or []) + (data.get("rules") or []):
            used |= {s["action"] for s in flow["steps"] if str(s.get("action", "")).startswith("utter_")}
    assert used - set(DOMAIN["responses"]) == set()


# --- test stories ------------------------------------------------------------------------


def test_every_test_story_is_named_by_its_language() -> None:
    assert STORIES
    assert {story["story"].split()[0] for story in STORIES} == set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_intent_is_in_a_test_story_per_language(lang: str) -> None:
    covered: Set[str] = set()
    for story in STORIES:
        if story["story"].split()[0] == lang:
            covered |= {step["intent"] for step in story["steps"] if "intent" in step}
    assert set(INTENTS) - covered == set(), f"intents without a {lang} test story"
    assert covered <= set(DOMAIN["intents"])
