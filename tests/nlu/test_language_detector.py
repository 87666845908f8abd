from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.language_detector import LanguageDetector, normalize_language

NL = ["mijn factuur is te hoog", "ik wil mijn meterstand doorgeven", "hoe laat zijn jullie open",
      "ik ga verhuizen volgende maand", "mijn wachtwoord werkt niet meer", "wanneer krijg ik mijn geld terug"]
EN = ["my bill is too high", "i want to submit my meter reading", "when are you open",
      "i am moving next month", "my password does not work anymore", "when do i get my money back"]


def _detector(tmp_path: Path) -> LanguageDetector:
    context = ExecutionContext(GraphSchema({}), "test")
    detector = LanguageDetector.create(
        LanguageDetector.get_default_config(), LocalModelStorage(tmp_path), Resource("lang"), context
    )
    messages = [Message.build(text=t, intent="x", intent_metadata={"lang": "nl"}) for t in NL]
    messages += [Message.build(text=t, intent="x", intent_metadata={"lang": "en"}) for t in EN]
    detector.train(TrainingData(messages))
    return detector


def test_detects_language_of_unseen_text(tmp_path: Path) -> None:
    detector = _detector(tmp_path)
    nl, en = detector.process(
        [Message(data={"text": "mijn rekening is veel te hoog geworden"}),
         Message(data={"text": "my invoice became much too high"})]
    )
    assert nl.get("language")["name"] == "nl" and nl.get("language")["source"] == "detected"
    assert en.get("language")["name"] == "en"


def test_channel_hint_wins(tmp_path: Path) -> None:
    detector = _detector(tmp_path)
    [message] = detector.process(
        [Message(data={"text": "mijn factuur is te hoog", "metadata": {"language": "en-GB"}})]
    )
    assert message.get("language") == {"name": "en", "confidence": 1.0, "source": "hint"}


def test_too_short_to_tell_gives_no_language(tmp_path: Path) -> None:
    detector = _detector(tmp_path)
    [message] = detector.process([Message(data={"text": "ok"})])
    assert message.get("language")["name"] is None


def test_untrained_detector_uses_hints_only(tmp_path: Path) -> None:
    context = ExecutionContext(GraphSchema({}), "test")
    detector = LanguageDetector.create({}, LocalModelStorage(tmp_path), Resource("l"), context)
    detector.train(TrainingData([Message.build(text="hello", intent="greet")]))
    [plain, hinted] = detector.process(
        [Message(data={"text": "hello there"}), Message(data={"text": "hallo", "metadata": {"language": "nl"}})]
    )
    assert plain.get("language")["name"] is None
    assert hinted.get("language")["name"] == "nl"


@pytest.mark.parametrize(
    "code,expected",
    [("nl", "nl"), ("nl-NL", "nl"), ("en_GB", "en"), ("EN", "en"), ("", None), (None, None), (42, None), ("x", None)],
)
def test_normalize_language(code, expected) -> None:
    assert normalize_language(code) == expected
