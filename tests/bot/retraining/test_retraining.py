"""Retrain, evaluate, promote and roll back with real Rasa replicas (bot/retraining).

Two Rasa replicas serve a copy of the starter model from a models folder of the test's own
(``rasa.model_dir``); examples reach the store through the real path (a decided draft,
collected, reviewed); every job trains a real candidate with ``rasa train``.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml
from sqlalchemy import select

from bot.config import Config, load_config
from bot.errors import Conflict
from bot.learning import corrections, registry
from bot.rasa.stack import RasaStack, latest_model
from bot.rasa.training import latest_model as newest_in
from bot.retraining import promotion
from bot.retraining.job import run_job
from bot.review import decisions
from bot.store.database import Store
from bot.store.models import AuditEntry, ModelStatus, Role, TrainedModel
from tests.bot.console_support import seed_draft, seed_users

pytestmark = [pytest.mark.rasa, pytest.mark.servers, pytest.mark.slow]

# A made-up word no training example has: the starter model cannot know what it means.
NEW_WORD_TEXTS = ["hoe werkt de kwispelstaart", "kwispelstaart aanvragen", "ik wil een kwispelstaart",
                  "wat kost een kwispelstaart", "kwispelstaart graag", "heb ik recht op de kwispelstaart",
                  "kwispelstaart aanmelden", "kan ik de kwispelstaart krijgen", "kwispelstaart info pls",
                  "de kwispelstaart, hoe zit dat"]
TAUGHT = "solar_feed_in"  # what the made-up word is taught to mean
PROBE = "kwispelstaart?"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    """Two Rasa replicas on a models folder of this module's own, with the starter model."""
    work = tmp_path_factory.mktemp("retraining")
    models = work / "models"
    models.mkdir()
    model = models / latest_model().name
    shutil.copy2(latest_model(), model)
    stack = RasaStack(work, model=model, replicas=2)
    try:
        stack.start()
        yield {"stack": stack, "models": models, "work": work, "starter": model.name}
    finally:
        stack.stop()


def config_for(replicas: Dict[str, Any], tmp_path: Path, **learning: Any) -> Config:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/store.db"},
        "rasa": {"url": replicas["stack"].urls, "model_dir": str(replicas["models"]),
                 "actions_url": replicas["stack"].actions_url},
        "learning": {"min_holdout": 3, **learning},
    }))
    return load_config(str(path), environ={})


def parse(url: str, text: str) -> str:
    request = urllib.request.Request(f"{url}/model/parse", data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["intent"]["name"]


def status(url: str) -> str:
    with urllib.request.urlopen(f"{url}/status", timeout=10) as response:
        return Path(json.loads(response.read())["model_file"]).name


def teach(store: Store, users: Dict[Role, Any], pairs: List[tuple], relabel: Dict[str, str] = {}) -> None:
    """Agents label drafts (edit with an intent), a process owner accepts them (or relabels)."""
    agent, owner = users[Role.agent], users[Role.process_owner]
    for text, intent in pairs:
        draft = store.transaction(seed_draft, customer_text=text, intent="greet", confidence=0.3)
        store.transaction(decisions.edit, draft, agent, "Antwoord", intent)
    store.transaction(corrections.collect)
    pending = store.transaction(corrections.examples, "pending", 500, 0)
    intents = corrections.known_intents(Path(__file__).resolve().parents[3] / "domain.yml")
    ids = [e["id"] for e in pending]
    store.transaction(corrections.review, owner, ids, "accept", None, intents)


def start(store: Store, auto: bool) -> int:
    return store.transaction(lambda s: registry.start_job(s, None, auto).id)


def reset_to_starter(replicas: Dict[str, Any]) -> None:
    starter = replicas["models"] / replicas["starter"]
    for url in replicas["stack"].urls:
        if status(url) != starter.name:
            request = urllib.request.Request(f"{url}/model", method="PUT", data=json.dumps(
                {"model_file": str(starter)}).encode(), headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=120).close()


def test_a_candidate_is_evaluated_promoted_into_every_replica_and_rolled_back(replicas, tmp_path: Path) -> None:
    reset_to_starter(replicas)
    config = config_for(replicas, tmp_path, holdout_share=0.4)
    trained = [t for t in NEW_WORD_TEXTS if not corrections.held_out(t, 0.4)]
    assert 0 < len(trained) < len(NEW_WORD_TEXTS)  # some are trained on, the others held out
    store = Store.from_url(config.database_url)
    try:
        users = store.transaction(seed_users)
        urls = replicas["stack"].urls
        before = [parse(url, PROBE) for url in urls]
        assert before[0] != TAUGHT and before[0] == before[1]
        teach(store, users, [(text, TAUGHT) for text in NEW_WORD_TEXTS])

        job = run_job(config, start(store, auto=False), store)
        assert job["status"] == "succeeded", job["error"]
        assert job["phase"] == "done" and job["progress"] == 1.0 and job["training_seconds"] > 0
        model = store.transaction(registry.model, job["candidate_id"])
        evaluation = model["evaluation"]
        assert model["status"] == "candidate" and model["gate_passed"] is True, evaluation["gate"]
        assert model["examples"] == len(trained)
        # both sides scored on the same held-out messages and the same test stories
        assert evaluation["candidate"]["n"] == evaluation["in_use"]["n"] == len(NEW_WORD_TEXTS) - model["examples"]
        assert evaluation["candidate"]["stories"] == evaluation["in_use"]["stories"] > 0
        assert evaluation["in_use"]["file"] == replicas["starter"]
        assert evaluation["candidate"]["accuracy"] > evaluation["in_use"]["accuracy"]  # it learnt the word
        assert any(row["fixed"] and row["candidate"] == TAUGHT for row in evaluation["changed"])
        assert {"intent": TAUGHT, "n": evaluation["candidate"]["n"]}.items() <= evaluation["per_intent"][0].items()
        assert [parse(url, PROBE) for url in urls] == before  # evaluated, not served yet
        assert (replicas["models"] / "candidates" / model["file"]).is_file()

        result = asyncio.run(promotion.promote(store, config, model["id"], users[Role.admin]))
        assert [r["ok"] for r in result["swap"]["replicas"]] == [True, True]
        assert [status(url) for url in urls] == [model["file"], model["file"]]
        assert [parse(url, PROBE) for url in urls] == [TAUGHT, TAUGHT]
        assert newest_in(replicas["models"]).name == model["file"]  # a restart starts on it
        listing = store.transaction(registry.models)
        assert listing["in_use"]["id"] == model["id"]
        assert listing["in_use"]["promoted_by"] == users[Role.admin].display_name
        with pytest.raises(Conflict):
            asyncio.run(promotion.promote(store, config, model["id"], users[Role.admin]))  # already in use

        back = asyncio.run(promotion.promote(store, config, None, users[Role.admin], rollback=True))
        assert back["model"]["file"] == replicas["starter"]
        assert [status(url) for url in urls] == [replicas["starter"]] * 2
        assert [parse(url, PROBE) for url in urls] == before  # the previous model's answers
        statuses = store.transaction(lambda s: {m.file_name: ModelStatus(m.status).value
                                                for m in s.execute(select(TrainedModel)).scalars()})
        assert statuses == {replicas["starter"]: "in_use", model["file"]: "retired"}
        actions = store.transaction(lambda s: [a.action for a in s.execute(
            select(AuditEntry).where(AuditEntry.target_type == "model").order_by(AuditEntry.id)).scalars()])
        assert actions == ["model.adopt", "model.evaluated", "model.promote", "model.rollback"]
    finally:
        store.close()
        reset_to_starter(replicas)


def test_a_candidate_worse_than_the_model_in_use_is_not_promoted_automatically(replicas, tmp_path: Path) -> None:
    """A careless review teaches "my bill is too high" as a greeting: the gate stops it."""
    reset_to_starter(replicas)
    config = config_for(replicas, tmp_path, promotion="auto", holdout_share=0.3)
    store = Store.from_url(config.database_url)
    try:
        users = store.transaction(seed_users)
        wrong = [(f"{text}{suffix}", "greet") for suffix in ("", "!", "??", " hoor", " echt", " pff") for text in (
            "mijn jaarafrekening is veel te hoog", "de eindafrekening klopt niet, veel te hoog",
            "waarom moet ik zoveel bijbetalen", "mijn rekening is veel hoger dan normaal",
            "jaarafrekening is ruim 500 euro hoger dan vorig jaar", "my bill is way too high",
            "why is my annual statement so high")]
        teach(store, users, wrong)
        job = run_job(config, start(store, auto=True), store)
        assert job["status"] == "succeeded", job["error"]
        model = store.transaction(registry.model, job["candidate_id"])
        gate = model["evaluation"]["gate"]
        assert model["status"] == "rejected" and gate["passed"] is False
        assert any("fails" in reason and "test stor" in reason for reason in gate["reasons"]), gate
        assert model["evaluation"]["candidate"]["stories_failed"] > model["evaluation"]["in_use"]["stories_failed"]
        assert job["phase"] == "done"  # it never got to swapping
        assert [status(url) for url in replicas["stack"].urls] == [replicas["starter"]] * 2  # never served
        with pytest.raises(Conflict, match="did not pass the gate"):
            asyncio.run(promotion.promote(store, config, model["id"], users[Role.admin]))
    finally:
        store.close()
