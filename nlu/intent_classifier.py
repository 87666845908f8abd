"""A fast, calibrated intent classifier for Rasa 3.6 (``nlu.intent_classifier.FastIntentClassifier``).

Why: Rasa's DIETClassifier needs minutes to hours on a CPU; webcare retrains whenever agents
correct drafts, so the model must train in seconds. This component learns TF-IDF word and
character n-grams and a linear SVM, then calibrates the SVM scores into probabilities with a
temperature fitted on out-of-fold predictions, so the confidence can drive auto-send thresholds
and the full ranking can offer agents the alternatives.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text, Type

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.calibration import fit_temperature, probabilities
from nlu.model_files import load_model_file, save_model_file
from nlu.text_features import NgramFeaturizer

logger = logging.getLogger(__name__)

MODEL_FILE = "fast_intent_classifier.skops"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class FastIntentClassifier(GraphComponent, IntentClassifier):
    """TF-IDF n-grams + linear SVM + temperature calibration; trains in seconds."""

    @classmethod
    def required_components(cls) -> List[Type]:
        """Needs nothing before it: it builds its own features from the raw text."""
        return []

    @staticmethod
    def required_packages() -> List[Text]:
        """Python packages this component imports."""
        return ["sklearn", "scipy", "skops"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Defaults; every key may be overridden in config.yml."""
        return {
            "word_ngrams": [1, 2],
            "char_ngrams": [2, 5],
            "C": 0.5,
            "calibration_folds": 5,
            # 0 = report the full ranking (drafts offer the next-ranked intents).
            "ranking_length": 0,
            "random_state": 42,
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.model = model

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "FastIntentClassifier":
        """Creates an untrained component."""
        return cls(config, model_storage, resource)

    # ----------------------------------------------------------------- training
    def _new_featurizer(self) -> NgramFeaturizer:
        return NgramFeaturizer(
            word_ngrams=tuple(self.config["word_ngrams"]),
            char_ngrams=tuple(self.config["char_ngrams"]),
        )

    def _new_svm(self) -> LinearSVC:
        return LinearSVC(C=self.config["C"], random_state=self.config["random_state"])

    def train(self, training_data: TrainingData) -> Resource:
        """Fits features, SVM and calibration temperature, then persists them."""
        examples = [e for e in training_data.intent_examples if e.get(TEXT)]
        texts = [e.get(TEXT) for e in examples]
        intents = [e.get(INTENT) for e in examples]
        self.model = fit_intent_model(
            texts,
            intents,
            self._new_featurizer,
            self._new_svm,
            folds=int(self.config["calibration_folds"]),
            random_state=int(self.config["random_state"]),
        )
        self.persist()
        return self._resource

    # --------------------------------------------------------------- prediction
    def process(self, messages: List[Message]) -> List[Message]:
        """Sets ``intent`` and ``intent_ranking`` on each message."""
        if not self.model:
            return messages
        texts = [m.get(TEXT) or "" for m in messages]
        ranking_length = int(self.config["ranking_length"])
        for message, ranking in zip(messages, predict_rankings(self.model, texts)):
            if ranking_length > 0:
                ranking = ranking[:ranking_length]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Nothing to add to training data for later components."""
        return training_data

    # -------------------------------------------------------------- persistence
    def persist(self) -> None:
        """Writes the model to Rasa's model storage."""
        if self.model is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            save_model_file(self.model, directory / MODEL_FILE)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "FastIntentClassifier":
        """Loads the trained component; an untrained one when nothing was stored."""
        try:
            with model_storage.read_from(resource) as directory:
                model = load_model_file(directory / MODEL_FILE)
        except ValueError:
            logger.debug("No trained intent model in resource %s.", resource.name)
            model = None
        return cls(config, model_storage, resource, model)


def fit_intent_model(
    texts: List[str],
    intents: List[str],
    new_featurizer: Any,
    new_classifier: Any,
    folds: int = 5,
    random_state: int = 42,
) -> Dict[str, Any]:
    """Train features + classifier and fit a calibration temperature.

    The temperature is fitted on out-of-fold scores (``folds``-fold cross-validation on
    the training data), so confidences mean what they say on unseen messages.
    """
    classes = sorted(set(intents))
    if len(classes) < 2:
        return {"classes": classes, "featurizer": None, "classifier": None, "temperature": 1.0}
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[i] for i in intents])

    temperature = 1.0
    smallest_class = int(np.bincount(y).min())
    n_splits = min(folds, smallest_class)
    if n_splits >= 2:
        oof = np.zeros((len(texts), len(classes)), dtype=np.float64)
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        text_array = np.array(texts, dtype=object)
        for train_idx, test_idx in splitter.split(text_array, y):
            featurizer = new_featurizer()
            classifier = new_classifier()
            classifier.fit(featurizer.fit_transform(text_array[train_idx]), y[train_idx])
            oof[test_idx] = _scores(classifier, featurizer.transform(text_array[test_idx]), len(classes))
        temperature = fit_temperature(oof, y)

    featurizer = new_featurizer()
    classifier = new_classifier()
    classifier.fit(featurizer.fit_transform(texts), y)
    return {
        "classes": classes,
        "featurizer": featurizer.vectorizers,
        "classifier": classifier,
        "temperature": temperature,
    }


def predict_rankings(model: Dict[str, Any], texts: List[str]) -> List[List[Dict[str, Any]]]:
    """Full intent ranking (name, confidence; best first) for each text."""
    classes: List[str] = model["classes"]
    if model["classifier"] is None:
        return [[{"name": c, "confidence": 1.0} for c in classes] for _ in texts]
    featurizer = NgramFeaturizer.from_vectorizers(model["featurizer"])
    probs = probabilities(
        _scores(model["classifier"], featurizer.transform(texts), len(classes)),
        model["temperature"],
    )
    rankings = []
    for row in probs:
        order = np.argsort(-row)
        rankings.append(
            [{"name": classes[i], "confidence": float(row[i])} for i in order]
        )
    return rankings


def _scores(classifier: Any, features: Any, n_classes: int) -> np.ndarray:
    scores = classifier.decision_function(features)
    if scores.ndim == 1:  # binary problem: sklearn returns one column
        scores = np.column_stack([-scores, scores])
    return np.asarray(scores, dtype=np.float64).reshape(-1, n_classes)
