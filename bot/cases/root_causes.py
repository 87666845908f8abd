"""The root-cause taxonomy (``data/root_causes.yml``): why customers contact us.

Every contact gets one root cause: suggested from its intents, confirmed or set by the agent
when a case is closed. The file is validated against the domain at start-up, so a typo in an
intent name or a duplicate code stops ``webcare run`` with a message that says where.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

logger = logging.getLogger(__name__)

LANGUAGES = ("nl", "en")
FALLBACK_CODE = "other"
# Intents that say nothing about why the customer came (never suggest a root cause).
NEUTRAL_INTENTS = frozenset(
    {"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "nlu_fallback"}
)


class RootCauseError(ValueError):
    """The taxonomy file is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class RootCause:
    """One entry of the taxonomy."""

    code: str
    titles: Mapping[str, str]
    owner: str
    intents: Tuple[str, ...] = ()

    def title(self, language: Optional[str] = None) -> str:
        """The title in ``language`` (Dutch when that language has none)."""
        return self.titles.get(language or "nl") or self.titles.get("nl") or self.code


@dataclass(frozen=True)
class Taxonomy:
    """All root causes, by code, and which intent suggests which."""

    causes: Tuple[RootCause, ...]
    by_intent: Mapping[str, str] = field(default_factory=dict)

    @property
    def codes(self) -> List[str]:
        return [c.code for c in self.causes]

    def get(self, code: Optional[str]) -> Optional[RootCause]:
        return next((c for c in self.causes if c.code == code), None)

    def __contains__(self, code: object) -> bool:
        return any(c.code == code for c in self.causes)

    def suggest(self, turns: Iterable[Tuple[Optional[str], float]]) -> Optional[str]:
        """The root cause suggested by a contact's (intent, confidence) turns.

        Each turn votes for its intent's root cause with its confidence; neutral intents
        (greetings, yes/no, fallback) do not vote. ``None`` when no turn says anything.
        """
        votes: Dict[str, float] = {}
        for intent, confidence in turns:
            if not intent or intent in NEUTRAL_INTENTS:
                continue
            code = self.by_intent.get(intent)
            if code is not None:
                votes[code] = votes.get(code, 0.0) + max(float(confidence or 0.0), 0.05)
        if not votes:
            return None
        return max(votes.items(), key=lambda item: (item[1], item[0]))[0]

    def choices(self, language: Optional[str] = None) -> List[Dict[str, str]]:
        """``[{"code", "title", "owner"}]`` for forms and the API."""
        return [{"code": c.code, "title": c.title(language), "owner": c.owner} for c in self.causes]


def parse_taxonomy(data: Any, known_intents: Optional[Sequence[str]] = None,
                   where: str = "root causes") -> Taxonomy:
    """Validate the parsed YAML and build the taxonomy."""
    if not isinstance(data, dict) or not isinstance(data.get("root_causes"), list):
        raise RootCauseError(f"{where}: expected a mapping with a 'root_causes' list")
    known = set(known_intents) if known_intents is not None else None
    causes: List[RootCause] = []
    by_intent: Dict[str, str] = {}
    for index, entry in enumerate(data["root_causes"], start=1):
        label = f"{where}: entry {index}"
        if not isinstance(entry, dict):
            raise RootCauseError(f"{label}: expected a mapping with code, title, owner, intents")
        unknown_keys = set(entry) - {"code", "title", "owner", "intents"}
        if unknown_keys:
            raise RootCauseError(f"{label}: unknown key(s) {sorted(unknown_keys)}")
        code = entry.get("code")
        if not isinstance(code, str) or not code.replace("_", "").isalnum() or code != code.lower():
            raise RootCauseError(f"{label}: code must be lower_snake_case, not {code!r}")
        label = f"{where}: {code}"
        if any(c.code == code for c in causes):
            raise RootCauseError(f"{label}: the code appears twice")
        titles = entry.get("title")
        if not isinstance(titles, dict) or any(not isinstance(titles.get(lang), str) or not titles[lang].strip()
                                               for lang in LANGUAGES):
            raise RootCauseError(f"{label}: title needs non-empty 'nl' and 'en' texts")
        owner = entry.get("owner")
        if not isinstance(owner, str) or not owner.strip():
            raise RootCauseError(f"{label}: owner is required")
        intents = entry.get("intents") or []
        if not isinstance(intents, list) or not all(isinstance(i, str) for i in intents):
            raise RootCauseError(f"{label}: intents must be a list of intent names")
        for intent in intents:
            if known is not None and intent not in known:
                raise RootCauseError(f"{label}: unknown intent {intent!r} (not in the domain)")
            if intent in by_intent:
                raise RootCauseError(
                    f"{label}: intent {intent!r} already suggests root cause {by_intent[intent]!r}")
            by_intent[intent] = code
        causes.append(RootCause(code, dict(titles), owner.strip(), tuple(intents)))
    if not causes:
        raise RootCauseError(f"{where}: the taxonomy is empty")
    if FALLBACK_CODE not in {c.code for c in causes}:
        raise RootCauseError(f"{where}: a root cause with code {FALLBACK_CODE!r} is required "
                             "(for contacts that fit nowhere else)")
    return Taxonomy(tuple(causes), by_intent)


def domain_intents(domain_file: Path) -> List[str]:
    """The intents declared in a Rasa domain file (strings or single-key mappings)."""
    data = yaml.safe_load(domain_file.read_text(encoding="utf-8")) or {}
    intents = []
    for item in data.get("intents") or []:
        intents.append(next(iter(item)) if isinstance(item, dict) else str(item))
    return intents


def load_taxonomy(path: Path, domain_file: Optional[Path] = None) -> Taxonomy:
    """Read and validate the taxonomy file (intents checked against ``domain_file``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RootCauseError(f"root-cause file {path} not found (config: cases.root_causes_file)")
    except yaml.YAMLError as exc:
        raise RootCauseError(f"{path}: not valid YAML: {exc}") from exc
    known = None
    if domain_file is not None and domain_file.exists():
        known = domain_intents(domain_file)
    return parse_taxonomy(data, known, where=str(path))
