"""A fast, calibrated intent classifier for Rasa 3.6 (``nlu.intent_classifier.FastIntentClassifier``).

Why: Rasa's DIETClassifier needs minutes to hours on a CPU; webcare retrains whenever agents
correct drafts, so the model must train in seconds. This component

1. learns TF-IDF word and character n-grams from the raw text (English contractions spelled
   out first) -- no tokenizer features and no downloaded weights, any language mix;
2. scores every intent with a one-vs-rest linear SVM (the average of the SVMs of a k-fold
   cross-validation on the training data);
3. stacks: a multinomial logistic regression, trained on out-of-fold SVM scores, learns how
   the intents' scores combine, which separates intents the independent SVMs confuse;
4. calibrates the result with a temperature fitted on out-of-fold predictions,

so the confidence can drive auto-send thresholds and the full ranking can offer agents the
alternatives. ``stacking: false`` gives the earlier model (SVM scores + one temperature).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple, Type

import numpy as np
from sklearn.linear_model import LogisticRegression
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
MODEL_FORMAT = 2


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class FastIntentClassifier(GraphComponent, IntentClassifier):
    """TF-IDF n-grams + linear SVM + stacked combiner + temperature; trains in seconds."""

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
            # Spell out English contractions ("can't", "cant" -> "can not") before n-grams.
            "normalize": True,
            # Learn how intents' SVM scores combine (on out-of-fold scores); False = the
            # SVM scores with one calibration temperature, as before.
            "stacking": True,
            "stacking_C": 0.05,
            # Gibberish examples (share of the training examples) from which the combiner
            # learns "none of the intents", so unintelligible input falls back; 0 = off.
            "noise_examples": 0.05,
            # Folds of the cross-validation giving the out-of-fold scores for stacking and
            # calibration (capped by the smallest intent's example count).
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
            normalize=bool(self.config["normalize"]),
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
            stacking=bool(self.config["stacking"]),
            stacking_C=float(self.config["stacking_C"]),
            normalize=bool(self.config["normalize"]),
            noise_examples=float(self.config["noise_examples"]),
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
    stacking: bool = True,
    stacking_C: float = 0.05,
    normalize: bool = False,
    noise_examples: float = 0.05,
) -> Dict[str, Any]:
    """Train features + linear SVMs, the cross-intent combiner and the calibration.

    1. The TF-IDF vocabulary is learned once from all texts (no labels involved).
    2. ``folds``-fold cross-validation trains one SVM per fold and scores the held-out part:
       every example gets out-of-fold scores from a model that did not see its label. The
       SVM used for prediction is the average of the fold SVMs (bagging: every example
       trained k-1 of them), so it costs no extra training and its scores are distributed
       like the out-of-fold scores everything below is fitted on.
    3. With ``stacking``, a multinomial logistic regression learns from the out-of-fold
       scores which intents' scores speak for or against each intent (the one-vs-rest SVMs
       know nothing of each other; confusable pairs such as "card arrival" vs "card delivery
       estimate" are resolved here). Its own out-of-fold logits (a second, cheap
       cross-validation) fit the calibration temperature.
    4. Without stacking, the temperature is fitted on the out-of-fold SVM scores directly.

    With fewer than 2 examples in some intent there is no cross-validation: one SVM on all
    data, temperature 1. The model is stored as plain arrays (``float32`` weights) plus the
    fitted vectorizers.
    """
    classes = sorted(set(intents))
    if len(classes) < 2:
        return {"format": MODEL_FORMAT, "classes": classes, "featurizer": None, "weights": None}
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[i] for i in intents])

    featurizer = new_featurizer()
    features = featurizer.fit_transform(texts)
    model: Dict[str, Any] = {
        "format": MODEL_FORMAT,
        "classes": classes,
        "featurizer": featurizer.vectorizers,
        "normalize": bool(normalize),
        "weights": None,  # (n_features x n_columns): one sparse product scores all intents
        "bias": None,
        "meta": None,
        "temperature": 1.0,
    }
    smallest_class = int(np.bincount(y).min())
    n_splits = min(folds, smallest_class)
    if n_splits < 2:
        classifier = new_classifier().fit(features, y)
        model["weights"] = np.ascontiguousarray(classifier.coef_.T, dtype=np.float32)
        model["bias"] = np.asarray(classifier.intercept_, dtype=np.float32).ravel()
        return model

    oof = np.zeros((len(texts), len(classes)), dtype=np.float64)
    weights: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
        classifier = new_classifier().fit(features[train_idx], y[train_idx])
        oof[test_idx] = _scores(classifier, features[test_idx], len(classes))
        coef = np.asarray(classifier.coef_, dtype=np.float64).T / n_splits
        intercept = np.asarray(classifier.intercept_, dtype=np.float64).ravel() / n_splits
        weights = coef if weights is None else weights + coef
        bias = intercept if bias is None else bias + intercept
    model["weights"] = np.ascontiguousarray(weights, dtype=np.float32)
    model["bias"] = np.asarray(bias, dtype=np.float32)
    if stacking:
        noise_scores = None
        if noise_examples > 0:
            noise = noise_texts(texts, max(20, int(noise_examples * len(texts))), random_state)
            noise_scores = _raw_scores(model, featurizer.transform(noise), len(classes))
        model["meta"], logits = _fit_combiner(
            oof, y, n_splits, stacking_C, random_state, noise_scores)
    else:
        logits = oof
    model["temperature"] = fit_temperature(logits, y)
    return model


def noise_texts(texts: Sequence[str], count: int, random_state: int) -> List[str]:
    """Gibberish shaped like the training texts: random letters in words of their lengths.

    The combiner learns to call such input "none of the intents"; see :func:`_fit_combiner`.
    """
    rng = np.random.default_rng(random_state)
    lengths = np.array([len(w) for t in texts for w in t.split()] or [5])
    word_counts = np.array([len(t.split()) for t in texts] or [3])
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    noise = []
    for n_words in np.clip(rng.choice(word_counts, size=count), 1, 12):
        sizes = np.clip(rng.choice(lengths, size=int(n_words)), 2, 12)
        chars = rng.choice(letters, size=int(sizes.sum()))
        ends = np.cumsum(sizes)
        noise.append(" ".join("".join(chars[e - k:e]) for e, k in zip(ends, sizes)))
    return noise


def _fit_combiner(
    oof: np.ndarray,
    y: np.ndarray,
    n_splits: int,
    C: float,
    random_state: int,
    noise_scores: Optional[np.ndarray] = None,
) -> Tuple[Dict[str, Any], np.ndarray]:
    """Multinomial logistic regression on standardized out-of-fold scores.

    Returns the combiner and its out-of-fold logits on the training examples (a second
    cross-validation), on which the calibration temperature is fitted.

    With ``noise_scores`` (SVM scores of gibberish, :func:`noise_texts`) the combiner gets one
    extra class, "none of the intents". Without it, input that no intent's SVM claims can come
    out confidently as whichever intent's score is least negative, because the combiner
    works on *relative* scores; with it, such input spreads its probability over all intents
    (:func:`predict_probabilities` shares the extra class's probability out evenly), so the
    fallback threshold catches it.
    """
    n_classes = oof.shape[1]
    mean = oof.mean(axis=0)
    scale = oof.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = (oof - mean) / scale
    if noise_scores is not None:
        z_noise = (noise_scores - mean) / scale
        y_noise = np.full(len(z_noise), n_classes)
    else:
        z_noise = np.zeros((0, n_classes))
        y_noise = np.zeros(0, dtype=int)

    def fit(rows: np.ndarray) -> LogisticRegression:
        combiner = LogisticRegression(C=C, max_iter=500, tol=1e-4)
        return combiner.fit(np.vstack([z[rows], z_noise]), np.concatenate([y[rows], y_noise]))

    logits: Optional[np.ndarray] = None
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state + 1)
    for train_idx, test_idx in splitter.split(z, y):
        combiner = fit(train_idx)
        fold_logits = _combiner_logits(combiner.coef_.T, combiner.intercept_, z[test_idx])
        if logits is None:
            logits = np.zeros((len(z), fold_logits.shape[1]))
        logits[test_idx] = fold_logits
    combiner = fit(np.arange(len(z)))
    meta = {
        "mean": mean.astype(np.float64),
        "scale": scale.astype(np.float64),
        "weights": np.ascontiguousarray(combiner.coef_.T, dtype=np.float64),
        "bias": np.asarray(combiner.intercept_, dtype=np.float64).ravel(),
        "noise_class": noise_scores is not None,
    }
    assert logits is not None
    return meta, logits


def _raw_scores(model: Dict[str, Any], features: Any, n_classes: int) -> np.ndarray:
    raw = np.asarray(features @ model["weights"], dtype=np.float64) + model["bias"]
    if raw.shape[1] == 1 and n_classes == 2:  # binary SVM: one column of scores
        raw = np.column_stack([-raw[:, 0], raw[:, 0]])
    return raw


def predict_probabilities(model: Dict[str, Any], texts: List[str]) -> np.ndarray:
    """Calibrated probabilities (n_texts x n_classes, columns in ``model["classes"]`` order)."""
    classes: List[str] = model["classes"]
    if "classifier" in model:  # format 1 (a fitted LinearSVC object); still loadable
        featurizer = NgramFeaturizer.from_vectorizers(model["featurizer"])
        scores = _scores(model["classifier"], featurizer.transform(texts), len(classes))
        return probabilities(scores, model["temperature"])
    featurizer = NgramFeaturizer.from_vectorizers(model["featurizer"], model.get("normalize", False))
    raw = _raw_scores(model, featurizer.transform(texts), len(classes))
    meta = model.get("meta")
    if meta is None:
        return probabilities(raw, model["temperature"])
    logits = _combiner_logits(meta["weights"], meta["bias"], (raw - meta["mean"]) / meta["scale"])
    probs = probabilities(logits, model["temperature"])
    if meta.get("noise_class"):  # "none of the intents": share its probability out evenly
        probs = probs[:, : len(classes)] + probs[:, len(classes):] / len(classes)
    return probs


def predict_rankings(model: Dict[str, Any], texts: List[str]) -> List[List[Dict[str, Any]]]:
    """Full intent ranking (name, confidence; best first) for each text."""
    classes: List[str] = model["classes"]
    if model.get("weights") is None and model.get("classifier") is None:
        return [[{"name": c, "confidence": 1.0} for c in classes] for _ in texts]
    probs = predict_probabilities(model, texts)
    rankings = []
    for row in probs:
        order = np.argsort(-row, kind="stable")
        rankings.append(
            [{"name": classes[i], "confidence": float(row[i])} for i in order]
        )
    return rankings


def _combiner_logits(weights: np.ndarray, bias: np.ndarray, z: np.ndarray) -> np.ndarray:
    logits = z @ weights + bias
    if logits.shape[1] == 1:  # binary logistic regression: P(class 1) = sigmoid(logit)
        logits = np.column_stack([np.zeros(len(logits)), logits[:, 0]])
    return logits


def _scores(classifier: Any, features: Any, n_classes: int) -> np.ndarray:
    scores = classifier.decision_function(features)
    if scores.ndim == 1:  # binary problem: sklearn returns one column
        scores = np.column_stack([-scores, scores])
    return np.asarray(scores, dtype=np.float64).reshape(-1, n_classes)
