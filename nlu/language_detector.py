"""Detects the customer's language per message (``nlu.language_detector.LanguageDetector``).

The channel's language hint wins (UserMessage metadata ``language``, e.g. Telegram's
``from.language_code``); otherwise a character n-gram model trained on the NLU examples
(intent metadata ``lang``) decides. The result is added to the parse data as
``language: {name, confidence, source}``; ``name`` is ``None`` when the text is too short or
ambiguous to tell ("ok", "👍"), so the conversation keeps the language it had.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import numpy as np
from sklearn.linear_model import LogisticRegression

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.model_files import load_model_file, save_model_file
from nlu.text_features import NgramFeaturizer

logger = logging.getLogger(__name__)

MODEL_FILE = "language_detector.skops"
LANGUAGE = "language"


def normalize_language(code: Any) -> Optional[str]:
    """``"nl-NL"`` → ``"nl"``; anything that is not a language code → ``None``."""
    if not isinstance(code, str) or not code.strip():
        return None
    primary = code.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


def training_language(message: Message) -> Optional[str]:
    """The ``lang`` of a training example (intent-level or example-level metadata)."""
    metadata = message.get("metadata") or {}
    for level in ("example", "intent"):
        value = metadata.get(level)
        if isinstance(value, dict) and value.get("lang"):
            return normalize_language(value["lang"])
    return None


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True
)
class LanguageDetector(GraphComponent):
    """Adds ``language`` to each parsed message: from the channel hint or detected."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Defaults; every key may be overridden in config.yml."""
        return {
            "languages": ["nl", "en"],
            "min_confidence": 0.75,
            "min_letters": 4,
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
    ) -> "LanguageDetector":
        """Creates an untrained component."""
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Learns the configured languages from examples whose metadata names one."""
        languages = set(self.config["languages"])
        texts: List[str] = []
        labels: List[str] = []
        for example in training_data.training_examples:
            lang = training_language(example)
            if lang in languages and example.get(TEXT):
                texts.append(example.get(TEXT))
                labels.append(lang)
        if len(set(labels)) < 2:
            logger.info(
                "Language detector: fewer than two languages in the training metadata; "
                "only channel hints will set the language."
            )
            return self._resource
        featurizer = NgramFeaturizer(char_ngrams=(1, 4))
        classifier = LogisticRegression(C=10.0, max_iter=1000)
        classifier.fit(featurizer.fit_transform(texts), labels)
        self.model = {"featurizer": featurizer.vectorizers, "classifier": classifier}
        with self._model_storage.write_to(self._resource) as directory:
            save_model_file(self.model, directory / MODEL_FILE)
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "LanguageDetector":
        """Loads the trained detector (hint-only when none was trained)."""
        try:
            with model_storage.read_from(resource) as directory:
                model = load_model_file(directory / MODEL_FILE)
        except ValueError:
            model = None
        return cls(config, model_storage, resource, model)

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets ``language`` on each message."""
        for message in messages:
            message.set(LANGUAGE, self.detect(message), add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Nothing to add to training data."""
        return training_data

    def detect(self, message: Message) -> Dict[str, Any]:
        """``{"name", "confidence", "source"}`` for one message."""
        metadata = message.get("metadata") or {}
        hint = normalize_language(metadata.get(LANGUAGE)) if isinstance(metadata, dict) else None
        if hint in self.config["languages"]:
            return {"name": hint, "confidence": 1.0, "source": "hint"}
        text = message.get(TEXT) or ""
        if self.model is None or sum(ch.isalpha() for ch in text) < self.config["min_letters"]:
            return {"name": None, "confidence": 0.0, "source": "none"}
        featurizer = NgramFeaturizer.from_vectorizers(self.model["featurizer"])
        classifier = self.model["classifier"]
        probs = classifier.predict_proba(featurizer.transform([text]))[0]
        best = int(np.argmax(probs))
        confidence = float(probs[best])
        name = str(classifier.classes_[best]) if confidence >= self.config["min_confidence"] else None
        return {"name": name, "confidence": confidence, "source": "detected"}
