"""Retraining and the models in the console (/console/models) and the JSON API
(/api/learning/retrain, /api/learning/jobs, /api/models): who may, what is shown, what is refused.

Training, evaluating and swapping with real Rasa replicas: tests/bot/retraining."""
from __future__ import annotations

from sqlalchemy import select

from bot.learning import registry
from bot.store.models import AuditEntry, JobStatus, LearningJob, ModelStatus, TrainedModel
from tests.bot.console_support import (  # noqa: F401  (app_client is a fixture)
    HOSTILE,
    api_login,
    app_client,
    console_login,
    hidden_field,
    store_of,
)

ROUTES = [("GET", "/console/models"), ("POST", "/console/models/retrain"), ("POST", "/console/models/rollback"),
          ("POST", "/console/models/1/promote"), ("POST", "/api/learning/retrain"), ("GET", "/api/learning/jobs"),
          ("GET", "/api/learning/jobs/1"), ("GET", "/api/models"), ("GET", "/api/models/1"),
          ("POST", "/api/models/1/promote"), ("POST", "/api/models/rollback")]
PROMOTE_ROUTES = [r for r in ROUTES if "promote" in r[1] or "rollback" in r[1]]

EVALUATION = {
    "candidate": {"n": 40, "accuracy": 0.95, "coverage": 0.8, "stories": 44, "stories_failed": 0},
    "in_use": {"n": 40, "accuracy": 0.9, "coverage": 0.7, "stories": 44, "stories_failed": 0, "file": "old.tar.gz"},
    "per_intent": [{"intent": "bill_too_high", "n": 5, "in_use": 3, "candidate": 5, "change": 2}],
    "changed": [{"text": HOSTILE, "truth": "bill_too_high", "language": "nl", "in_use": "complaint",
                 "in_use_confidence": 0.5, "candidate": "bill_too_high", "candidate_confidence": 0.9,
                 "fixed": True, "broken": False}],
    "changed_count": 1, "gate": {"passed": False, "reasons": ["fails 2 test stories (the model in use: 0)"]},
}


def seed_models(client) -> dict:
    """A model in use, a rejected candidate and a finished job, straight in the store."""
    def seed(session):
        in_use = session.get(TrainedModel, registry.adopt(session, "old.tar.gz")[0])
        job = registry.start_job(session, None, auto_promote=False)
        rejected = registry.add_candidate(session, job.id, "candidate-1.tar.gz", 12, 55.0, EVALUATION, False)
        registry.finish_job(session, job.id)
        return {"in_use": in_use.id, "rejected": rejected, "job": job.id}
    return store_of(client).transaction(seed)


async def test_the_page_shows_the_model_in_use_the_jobs_and_the_comparison(app_client):
    ids = seed_models(app_client)
    await console_login(app_client, "piet")
    response = await app_client.get("/console/models")
    assert response.status == 200
    html = await response.text()
    assert 'id="model-in-use">old.tar.gz' in html
    assert f'id="model-{ids["rejected"]}" data-status="rejected"' in html
    assert "Gate failed:</strong> fails 2 test stories" in html
    assert "95.0 %" in html and "90.0 %" in html  # held-out accuracy, side by side
    assert "&lt;script&gt;" in html and HOSTILE not in html  # a customer's text is escaped
    assert 'id="retrain-form"' in html  # no job runs
    assert "promote-form" not in html and "rollback-form" not in html  # a process owner does not promote
    assert f'<tr data-job="{ids["job"]}">' in html


async def test_a_running_job_shows_its_progress_bar_and_reloads(app_client):
    store = store_of(app_client)
    job = store.transaction(lambda s: registry.start_job(s, None, False).id)
    store.transaction(registry.beat, job, "training", 0.4)
    await console_login(app_client, "ada")
    html = await (await app_client.get("/console/models")).text()
    assert '<meta http-equiv="refresh"' in html
    assert f"Job {job}: training" in html and '<progress id="job-progress" max="1" value="0.4"' in html
    assert 'id="retrain-form"' not in html
    data = await (await app_client.get(f"/api/learning/jobs/{job}")).json()
    assert (data["job"]["status"], data["job"]["phase"], data["job"]["progress"]) == ("running", "training", 0.4)
    assert data["job"]["estimate_seconds"] > 0 and data["job"]["remaining_seconds"] is not None


async def test_the_api_lists_shows_and_refuses_what_must_not_serve(app_client):
    ids = seed_models(app_client)
    csrf = await api_login(app_client, "ada")
    listing = await (await app_client.get("/api/models")).json()
    assert listing["in_use"]["file"] == "old.tar.gz"
    assert [m["status"] for m in listing["models"]] == ["rejected", "in_use"]
    model = await (await app_client.get(f"/api/models/{ids['rejected']}")).json()
    assert model["model"]["evaluation"]["gate"]["passed"] is False and model["model"]["examples"] == 12
    jobs = await (await app_client.get("/api/learning/jobs")).json()
    assert [(j["id"], j["status"], j["candidate_id"]) for j in jobs["jobs"]] == [(ids["job"], "succeeded",
                                                                                 ids["rejected"])]
    headers = {"X-CSRF-Token": csrf}
    response = await app_client.post(f"/api/models/{ids['rejected']}/promote", headers=headers, json={})
    assert response.status == 409 and "did not pass the gate" in (await response.json())["reason"]
    response = await app_client.post(f"/api/models/{ids['in_use']}/promote", headers=headers, json={})
    assert response.status == 409 and "already in use" in (await response.json())["reason"]
    response = await app_client.post("/api/models/rollback", headers=headers, json={})
    assert response.status == 409 and "no previous model" in (await response.json())["reason"]
    assert (await app_client.get("/api/models/999")).status == 404
    assert (await app_client.get("/api/models/x")).status == 400
    assert (await app_client.get("/api/learning/jobs/999")).status == 404
    # nothing changed: the model in use is the same, the refusals left no promotion in the audit log
    statuses = store_of(app_client).transaction(lambda s: sorted(
        (m.file_name, ModelStatus(m.status).value) for m in s.execute(select(TrainedModel)).scalars()))
    assert statuses == [("candidate-1.tar.gz", "rejected"), ("old.tar.gz", "in_use")]
    actions = store_of(app_client).transaction(lambda s: [a.action for a in s.execute(select(AuditEntry)).scalars()])
    assert "model.promote" not in actions and "model.rollback" not in actions


async def test_a_second_retraining_while_one_runs_is_refused(app_client):
    store = store_of(app_client)
    running = store.transaction(lambda s: registry.start_job(s, None, False).id)
    await console_login(app_client, "piet")
    page = await app_client.get("/console/models")
    token = hidden_field(await page.text(), "csrf_token")
    response = await app_client.post("/api/learning/retrain", headers={"X-CSRF-Token": token}, json={})
    assert response.status == 409 and f"job {running} is still running" in (await response.json())["reason"]
    response = await app_client.post("/console/models/retrain", data={"csrf_token": token})
    assert response.status == 409 and "still running" in await response.text()
    count = store.transaction(lambda s: s.execute(select(LearningJob)).scalars().all())
    assert [JobStatus(j.status) for j in count] == [JobStatus.running]  # no second job


async def test_anonymous_users_are_refused_on_every_route(app_client):
    for method, path in ROUTES:
        response = await app_client.request(method, path, allow_redirects=False)
        if path.startswith("/api/"):
            assert response.status == 401, (method, path)
        else:
            assert response.status in (302, 303), (method, path)
            assert response.headers["Location"].startswith("/console/login"), (method, path)


async def test_agents_are_refused_on_every_route_and_process_owners_may_not_promote(app_client):
    seed_models(app_client)
    csrf = await api_login(app_client, "anna")
    for method, path in ROUTES:
        data = {"csrf_token": csrf} if path.startswith("/console") and method == "POST" else None
        json = {} if path.startswith("/api") and method == "POST" else None
        response = await app_client.request(method, path, headers={"X-CSRF-Token": csrf}, data=data, json=json,
                                            allow_redirects=False)
        assert response.status == 403, (method, path, response.status)
    queue = await (await app_client.get("/console/queue")).text()
    assert "/console/models" not in queue
    await app_client.post("/api/logout", headers={"X-CSRF-Token": csrf})
    csrf = await api_login(app_client, "piet")
    for method, path in PROMOTE_ROUTES:
        data = {"csrf_token": csrf} if path.startswith("/console") else None
        json = {} if path.startswith("/api") else None
        response = await app_client.request(method, path, headers={"X-CSRF-Token": csrf}, data=data, json=json,
                                            allow_redirects=False)
        assert response.status == 403, (method, path, response.status)
    jobs = store_of(app_client).transaction(lambda s: s.execute(select(LearningJob)).scalars().all())
    assert len(jobs) == 1  # the seeded one: no refused request started a retraining


async def test_a_decision_taken_on_a_page_that_showed_another_model_in_use_is_refused(app_client):
    store = store_of(app_client)
    in_use, _ = store.transaction(registry.adopt, "old.tar.gz")

    def passed_candidate(session):
        job = registry.start_job(session, None, auto_promote=False)
        evaluation = {**EVALUATION, "in_use": {**EVALUATION["in_use"], "model_id": in_use},
                      "gate": {"passed": True, "reasons": ["not worse"]}}
        model_id = registry.add_candidate(session, job.id, "candidate-2.tar.gz", 3, 50.0, evaluation, True)
        registry.finish_job(session, job.id)
        return model_id
    candidate = store.transaction(passed_candidate)
    await console_login(app_client, "ada")
    page = await app_client.get("/console/models")
    token = hidden_field(await page.text(), "csrf_token")
    response = await app_client.post(f"/console/models/{candidate}/promote",
                                     data={"csrf_token": token, "in_use": str(in_use + 1)})
    assert response.status == 409 and "model in use changed" in await response.text()
    response = await app_client.post("/console/models/%C2%B2/promote", data={"csrf_token": token})
    assert response.status == 400  # not a model id: a clear refusal, no 500
    assert (await app_client.get("/api/models/99999999999999999999")).status == 400
    assert store.transaction(registry.in_use_file) == (in_use, "old.tar.gz")
