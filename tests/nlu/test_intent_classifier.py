from __future__ import annotations

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
