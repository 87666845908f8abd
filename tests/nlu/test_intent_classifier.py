from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.calibration import fit_temperature, probabilities
from nlu.intent_classifier import FastIntentClassifier

EXAMPLES: List[Tuple[str, str]] = [
    ("mijn factuur is te hoog", "bill"),
    ("waarom is mn jaarafrekening zo duur", "bill"),
    ("my bill is way too high", "bill"),
    ("why do i have to pay so much extra", "bill"),
    ("the annual statement is crazy expensive", "bill"),
    ("ik wil mijn meterstand doorgeven", "meter"),
    ("hoe geef ik de meterstanden door", "meter"),
    ("where do i submit my meter reading", "meter"),
    ("meter reading for this month", "meter"),
    ("meterstand doorgeven lukt niet", "meter"),
    ("hallo", "greet"),
    ("hoi daar", "greet"),
    ("hello there", "greet"),
    ("good morning", "greet"),
    ("hey", "greet"),
]


def _component(tmp_path: Path, **config) -> FastIntentClassifier:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("intent_classifier")
    context = ExecutionContext(GraphSchema({}), "test")
    return FastIntentClassifier.create(
        {**FastIntentClassifier.get_default_config(), **config}, storage, resource, context
    )


def _training_data() -> TrainingData:
    return TrainingData([Message.build(text=t, intent=i) for t, i in EXAMPLES])


def test_trains_predicts_full_ranking_and_reloads(tmp_path: Path) -> None:
    component = _component(tmp_path, calibration_folds=3)
    resource = component.train(_training_data())

    [message] = component.process([Message(data={"text": "mn faktuur is veel te hoog"})])
    assert message.get("intent")["name"] == "bill"
    ranking = message.get("intent_ranking")
    assert [r["name"] for r in ranking][0] == "bill"
    assert sorted(r["name"] for r in ranking) == ["bill", "greet", "meter"]  # full ranking
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)
    assert ranking == sorted(ranking, key=lambda r: -r["confidence"])

    loaded = FastIntentClassifier.load(
        component.config, component._model_storage, resource, ExecutionContext(GraphSchema({}), "t")
    )
    [again] = loaded.process([Message(data={"text": "mn faktuur is veel te hoog"})])
    assert again.get("intent_ranking") == ranking


def test_ranking_length_limits_the_ranking(tmp_path: Path) -> None:
    component = _component(tmp_path, ranking_length=2, calibration_folds=3)
    component.train(_training_data())
    [message] = component.process([Message(data={"text": "meter reading"})])
    assert len(message.get("intent_ranking")) == 2
    assert message.get("intent")["name"] == "meter"


def test_untrained_component_leaves_messages_alone(tmp_path: Path) -> None:
    component = _component(tmp_path)
    [message] = component.process([Message(data={"text": "hallo"})])
    assert message.get("intent") is None


def test_single_intent_predicts_it_with_full_confidence(tmp_path: Path) -> None:
    component = _component(tmp_path)
    component.train(TrainingData([Message.build(text=t, intent="only") for t in ("a b", "c d")]))
    [message] = component.process([Message(data={"text": "x"})])
    assert message.get("intent") == {"name": "only", "confidence": 1.0}


def test_temperature_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    true_t = 0.25
    logits = rng.normal(size=(4000, 5))
    probs = probabilities(logits, true_t)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)


def test_networks_from_enough_examples_on_and_they_reload(tmp_path: Path) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "net").mkdir()
    small = _component(tmp_path / "small", calibration_folds=3)
    small.train(_training_data())
    assert small.model["networks"] == []  # fewer examples than networks_min_examples

    component = _component(tmp_path / "net", calibration_folds=3, networks_min_examples=1,
                           hidden_units=16, epochs=30)
    resource = component.train(_training_data())
    assert len(component.model["networks"]) == 1
    [message] = component.process([Message(data={"text": "mn faktuur is veel te hoog"})])
    assert message.get("intent")["name"] == "bill"
    loaded = FastIntentClassifier.load(
        component.config, component._model_storage, resource, ExecutionContext(GraphSchema({}), "t")
    )
    [again] = loaded.process([Message(data={"text": "mn faktuur is veel te hoog"})])
    assert again.get("intent_ranking") == message.get("intent_ranking")


# ------------------------------------------------------------ sentence-embedding view
# These load the real encoder (nlu/sentence_embeddings.py; the pinned package's 30 MB of
# weights, ~2 s once per process), hence slow.
def _load(component: FastIntentClassifier, resource: Resource) -> FastIntentClassifier:
    return FastIntentClassifier.load(
        component.config, component._model_storage, resource, ExecutionContext(GraphSchema({}), "t"))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stack", "concat", "both"])
def test_the_embedding_view_trains_predicts_and_reloads(tmp_path: Path, mode: str) -> None:
    component = _component(tmp_path, calibration_folds=3, embeddings=mode)
    resource = component.train(_training_data())
    embedding = component.model["embedding"]
    assert embedding["source"] == "use-multilingual-v3" and embedding["mode"] == mode
    assert (embedding["weights"] is not None) == (mode != "concat")
    texts = ["mn faktuur is veel te hoog", "goedemiddag", "I want to give my meter reading"]
    predicted = [m.get("intent")["name"] for m in component.process([Message(data={"text": t}) for t in texts])]
    assert predicted == ["bill", "greet", "meter"]
    again = _load(component, resource).process([Message(data={"text": t}) for t in texts])
    assert [m.get("intent")["name"] for m in again] == predicted


@pytest.mark.slow
def test_the_embedding_view_knows_words_the_training_data_lacks(tmp_path: Path) -> None:
    """Neither "invoice" nor "expensive charges" is an n-gram of the bill examples' words
    the greeting and meter examples lack; the pretrained encoder knows what they mean."""
    plain = _component(tmp_path / "plain", calibration_folds=3, embeddings=False)
    with_view = _component(tmp_path / "view", calibration_folds=3)
    (tmp_path / "plain").mkdir(), (tmp_path / "view").mkdir()
    plain.train(_training_data())
    with_view.train(_training_data())
    text = "this invoice charges me far too much"
    [a] = plain.process([Message(data={"text": text})])
    [b] = with_view.process([Message(data={"text": text})])
    assert b.get("intent")["name"] == "bill"
    assert b.get("intent")["confidence"] > a.get("intent")["confidence"] or a.get("intent")["name"] != "bill"


def test_embeddings_off_trains_without_them_and_older_models_still_load(tmp_path: Path) -> None:
    component = _component(tmp_path, calibration_folds=3, embeddings=False)
    resource = component.train(_training_data())
    assert component.model["embedding"] is None
    [message] = component.process([Message(data={"text": "mn faktuur is veel te hoog"})])
    # a format-3 model (before the embedding view) has no "embedding" key at all
    component.model.pop("embedding")
    component.model["format"] = 3
    component.persist()
    loaded = _load(component, resource)
    assert loaded._encoder is None
    [again] = loaded.process([Message(data={"text": "mn faktuur is veel te hoog"})])
    assert again.get("intent_ranking") == message.get("intent_ranking")


def test_missing_embedding_files_warn_in_one_line_and_train_without(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    component = _component(tmp_path, calibration_folds=3, embeddings_path=str(tmp_path / "nowhere"))
    with caplog.at_level(logging.WARNING, logger="nlu.intent_classifier"):
        component.train(_training_data())
    warnings = [r for r in caplog.records if r.name == "nlu.intent_classifier"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    text = warnings[0].getMessage()
    assert "\n" not in text and "Sentence embeddings unavailable" in text and "nowhere" in text
    assert "without them" in text
    assert component.model["embedding"] is None
    [message] = component.process([Message(data={"text": "meter reading"})])
    assert message.get("intent")["name"] == "meter"


@pytest.mark.slow
def test_a_model_with_the_view_still_predicts_when_the_files_are_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    component = _component(tmp_path, calibration_folds=3)
    resource = component.train(_training_data())
    component.config["embeddings_path"] = str(tmp_path / "gone")
    with caplog.at_level(logging.ERROR, logger="nlu.intent_classifier"):
        loaded = _load(component, resource)
    assert loaded._encoder is None
    assert any("cannot be loaded" in r.getMessage() for r in caplog.records)
    [message] = loaded.process([Message(data={"text": "ik wil mijn meterstand doorgeven"})])
    assert message.get("intent")["name"] == "meter"
