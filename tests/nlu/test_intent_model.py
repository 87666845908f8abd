"""The model behind FastIntentClassifier: stacking, calibration, formats, normalization."""
from __future__ import annotations

import random
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from sklearn.svm import LinearSVC

from nlu.intent_classifier import fit_intent_model, predict_probabilities, predict_rankings
from nlu.model_files import load_model_file, save_model_file
from nlu.sparse_mlp import NetworkOptions, train_sparse_mlp
from nlu.text_features import NgramFeaturizer, normalize_text


def _data(seed: int = 0, per_intent: int = 30) -> Tuple[List[str], List[str]]:
    rng = random.Random(seed)
    words = {
        "card": ["card", "pas", "arrive", "delivery", "post", "waiting", "bezorgd"],
        "pin": ["pin", "code", "blocked", "geblokkeerd", "unblock", "wrong", "pincode"],
        "rate": ["rate", "exchange", "koers", "currency", "euro", "pound", "wissel"],
        "fee": ["fee", "charge", "kosten", "extra", "charged", "transfer", "betaald"],
    }
    filler = ["my", "the", "is", "mijn", "de", "why", "waarom", "help", "please", "not", "niet"]
    texts, labels = [], []
    for intent, vocab in words.items():
        for _ in range(per_intent):
            tokens = [rng.choice(vocab)] + rng.sample(filler, 3)
            if rng.random() < 0.6:  # a word of any intent blurs the boundaries
                tokens.append(rng.choice(rng.choice(list(words.values()))))
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(intent)
    return texts, labels


def _fit(texts: List[str], labels: List[str], **kwargs) -> dict:
    return fit_intent_model(
        texts, labels,
        lambda: NgramFeaturizer((1, 2), (2, 5), normalize=True),
        lambda: LinearSVC(C=0.5),
        folds=5, normalize=True, **kwargs,
    )


@pytest.mark.parametrize("stacking", [True, False])
def test_probabilities_are_calibrated_rankings_complete(stacking: bool) -> None:
    texts, labels = _data(0)
    model = _fit(texts, labels, stacking=stacking)
    assert (model["meta"] is not None) == stacking
    assert 0.01 < model["temperature"] < 100
    test_texts, test_labels = _data(1, per_intent=25)
    probs = predict_probabilities(model, test_texts)
    assert probs.shape == (100, 4)
    assert np.allclose(probs.sum(axis=1), 1.0)
    predicted = [model["classes"][i] for i in probs.argmax(axis=1)]
    accuracy = np.mean([p == g for p, g in zip(predicted, test_labels)])
    assert accuracy > 0.65
    # calibrated: the mean confidence is close to the accuracy
    assert abs(probs.max(axis=1).mean() - accuracy) < 0.12
    rankings = predict_rankings(model, test_texts[:3])
    assert all(len(r) == 4 and r[0]["confidence"] >= r[-1]["confidence"] for r in rankings)


def test_two_intents_work_with_stacking(tmp_path: Path) -> None:
    texts, labels = _data(2)
    keep = [i for i, l in enumerate(labels) if l in ("card", "pin")]
    model = _fit([texts[i] for i in keep], [labels[i] for i in keep])
    ranking = predict_rankings(model, ["my pin code is blocked"])[0]
    assert ranking[0]["name"] == "pin" and len(ranking) == 2
    assert ranking[0]["confidence"] + ranking[1]["confidence"] == pytest.approx(1.0)
    save_model_file(model, tmp_path / "m.skops")
    assert predict_rankings(load_model_file(tmp_path / "m.skops"), ["my pin code is blocked"]) == [ranking]


def test_tiny_intents_skip_cross_validation() -> None:
    model = _fit(["hello", "hi there", "bye", "see you"], ["greet", "greet", "bye", "bye"])
    # two examples per intent still allow a 2-fold cross-validation
    assert model["temperature"] != 1.0
    single = _fit(["hello", "hi there", "bye"], ["greet", "greet", "bye"])
    assert single["meta"] is None and single["temperature"] == 1.0
    assert predict_rankings(single, ["hello"])[0][0]["name"] == "greet"


def test_models_of_the_previous_format_still_predict(tmp_path: Path) -> None:
    texts, labels = _data(3)
    featurizer = NgramFeaturizer((1, 2), (2, 5))
    classes = sorted(set(labels))
    y = np.array([classes.index(l) for l in labels])
    svm = LinearSVC(C=0.5).fit(featurizer.fit_transform(texts), y)
    old = {"classes": classes, "featurizer": featurizer.vectorizers, "classifier": svm, "temperature": 0.2}
    save_model_file(old, tmp_path / "old.skops")
    ranking = predict_rankings(load_model_file(tmp_path / "old.skops"), ["pin code blocked"])[0]
    assert ranking[0]["name"] == "pin"


@pytest.mark.parametrize("text, expected", [
    ("I can’t log in", "i can not log in"),
    ("i cant", "i can not"),
    ("I cannot", "i can not"),
    ("It didnt work and I haven't got it", "it did not work and i have not got it"),
    ("won't arrive, I've waited", "will not arrive, i have waited"),
    ("Ik kan m'n pas niet vinden", "ik kan m'n pas niet vinden"),
])
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_gibberish_spreads_its_probability_over_the_intents() -> None:
    texts, labels = _data(6)
    with_noise = _fit(texts, labels)
    assert with_noise["meta"]["noise_class"]
    gibberish = ["asdkj qwpeoi zxcmn", "qqqq wwww"]
    assert predict_probabilities(with_noise, gibberish).max(axis=1).max() < 0.5
    # in-domain input stays confident
    assert predict_probabilities(with_noise, ["pin code blocked pincode"]).max() > 0.6
    without = _fit(texts, labels, noise_examples=0)
    assert not without["meta"]["noise_class"]
    assert predict_probabilities(without, ["x"]).shape == (1, 4)


def test_neural_networks_are_stacked_beside_the_svms(tmp_path: Path) -> None:
    texts, labels = _data(7)
    model = _fit(texts, labels, network=NetworkOptions(count=2, hidden=16, epochs=20))
    assert len(model["networks"]) == 2
    assert model["networks"][0]["w1"].dtype == np.float16  # half the size on disk
    # the combiner reads the SVM's 4 intent scores and the networks' 4
    assert model["meta"]["weights"].shape[0] == 8
    test_texts, test_labels = _data(8, per_intent=25)
    probs = predict_probabilities(model, test_texts)
    assert np.allclose(probs.sum(axis=1), 1.0)
    predicted = [model["classes"][i] for i in probs.argmax(axis=1)]
    accuracy = np.mean([p == g for p, g in zip(predicted, test_labels)])
    assert accuracy > 0.65
    assert abs(probs.max(axis=1).mean() - accuracy) < 0.12
    save_model_file(model, tmp_path / "m.skops")
    assert np.allclose(predict_probabilities(load_model_file(tmp_path / "m.skops"), test_texts), probs)


def test_networks_need_stacking() -> None:
    texts, labels = _data(9)
    model = _fit(texts, labels, stacking=False, network=NetworkOptions(count=1, hidden=8, epochs=2))
    assert model["networks"] == [] and model["meta"] is None


def test_sparse_mlp_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(0)
    x = csr_matrix((rng.random((300, 50)) < 0.1).astype(np.float32))
    y = (np.asarray(x[:, :25].sum(axis=1)).ravel() > np.asarray(x[:, 25:].sum(axis=1)).ravel()).astype(int)
    network = train_sparse_mlp(x, y, 2, hidden=16, epochs=40, dropout=0.0, seed=1)
    assert (network.scores(x).argmax(axis=1) == y).mean() > 0.95
    # deterministic for a seed
    again = train_sparse_mlp(x, y, 2, hidden=16, epochs=40, dropout=0.0, seed=1)
    assert np.array_equal(network.w1, again.w1)
