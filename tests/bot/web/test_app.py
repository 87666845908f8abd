"""The aiohttp service, served for real: /version, /health, the status page."""
from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import AsyncIterator, Dict

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot import __version__
from bot.web.app import create_app
from bot.config import Config, load_config

NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: connection refused


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)


def config_for(database: Path, rasa: str = NOTHING_LISTENS, actions: str = NOTHING_LISTENS) -> Config:
    return load_config(
        environ={
            "WEBCARE_DATABASE_URL": f"sqlite:///{database}",
            "WEBCARE_RASA_URL": rasa,
            "WEBCARE_ACTIONS_URL": actions,
        }
    )


async def serve(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    client = await serve(create_app(config_for(tmp_path / "store" / "x.db")))
    yield client
    await client.close()


def test_the_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    database = tmp_path / "var" / "nested" / "webcare.db"
    assert not database.parent.exists()
    create_app(config_for(database))
    assert database.is_file()


async def test_version(client: TestClient) -> None:
    response = await client.get("/version")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {"name": "webcare", "version": __version__}
    assert __version__ == importlib.metadata.version("webcare")  # same as pyproject.toml


async def test_health_with_nothing_else_running(client: TestClient, tmp_path: Path) -> None:
    response = await client.get("/health")
    assert response.status == 200
    report = await response.json()
    assert report["status"] == "ok"
    assert report["version"] == __version__
    assert report["database"] == {"ok": True}
    assert report["rasa"]["ok"] is False
    assert report["rasa"]["url"] == f"{NOTHING_LISTENS}/status"
    assert report["rasa"]["error"]  # the exception's name, e.g. ClientConnectorError
    assert report["action_server"]["ok"] is False
    assert report["action_server"]["url"] == f"{NOTHING_LISTENS}/health"
    assert (tmp_path / "store" / "x.db").is_file()


async def test_index_page(client: TestClient) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert html.startswith("<!doctype html>")
    assert f"<h1>webcare {__version__}</h1>" in html
    assert 'store: <span class="ok">up</span>' in html
    assert 'Rasa server: <span class="bad">down</span>' in html
    assert 'action server: <span class="bad">down</span>' in html
    assert '<a href="/health">' in html


async def test_unknown_path_is_404(client: TestClient) -> None:
    assert (await client.get("/nope")).status == 404


async def test_health_sees_running_rasa_and_action_servers(tmp_path: Path) -> None:
    """Real stand-ins for the Rasa server (/status) and the action server (/health)."""
    seen: Dict[str, int] = {}

    async def ok(request: web.Request) -> web.Response:
        seen[request.path] = seen.get(request.path, 0) + 1
        return web.json_response({"status": "ok"})

    stand_in = web.Application()
    stand_in.router.add_get("/status", ok)
    stand_in.router.add_get("/health", ok)
    rasa_like = await serve(stand_in)
    base = str(rasa_like.make_url("")).rstrip("/")
    client = await serve(create_app(config_for(tmp_path / "x.db", rasa=base + "/", actions=base)))
    try:
        report = await (await client.get("/health")).json()
        assert report["rasa"] == {"ok": True, "url": f"{base}/status", "status": 200}
        assert report["action_server"] == {"ok": True, "url": f"{base}/health", "status": 200}
        assert seen == {"/status": 1, "/health": 1}
        html = await (await client.get("/")).text()
        assert 'Rasa server: <span class="ok">up</span>' in html
    finally:
        await client.close()
        await rasa_like.close()


async def test_health_reports_a_non_200_dependency_as_not_ok(tmp_path: Path) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    stand_in = web.Application()
    stand_in.router.add_get("/status", broken)
    rasa_like = await serve(stand_in)
    base = str(rasa_like.make_url("")).rstrip("/")
    client = await serve(create_app(config_for(tmp_path / "x.db", rasa=base, actions=base)))
    try:
        report = await (await client.get("/health")).json()
        assert report["rasa"] == {"ok": False, "url": f"{base}/status", "status": 500}
        assert report["action_server"] == {"ok": False, "url": f"{base}/health", "status": 404}
    finally:
        await client.close()
        await rasa_like.close()


async def test_health_is_503_when_the_store_goes_away(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    client = await serve(create_app(config_for(folder / "x.db")))
    try:
        assert (await client.get("/health")).status == 200
        shutil.rmtree(folder)
        folder.write_text("a file where the database folder was")  # SQLite cannot open x.db now
        response = await client.get("/health")
        assert response.status == 503
        report = await response.json()
        assert report["status"] == "degraded"
        assert report["database"]["ok"] is False
        assert report["database"]["error"]
        assert "\n" not in report["database"]["error"]
        html = await (await client.get("/")).text()
        assert 'store: <span class="bad">down</span>' in html
    finally:
        await client.close()


def test_a_store_that_cannot_be_created_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file, not a folder")
    with pytest.raises(Exception):
        create_app(config_for(tmp_path / "blocked" / "x.db"))


def test_the_service_gives_its_rasa_client_the_configured_suspect_time(tmp_path: Path) -> None:
    import dataclasses

    from bot.web.app import create_app
    from bot.web.keys import WORKER_KEY
    from tests.bot.console_support import make_config

    config = make_config(tmp_path)
    config = dataclasses.replace(config, worker=dataclasses.replace(config.worker, rasa_suspect_seconds=7.5))
    assert create_app(config)[WORKER_KEY].rasa.replicas.suspect_seconds == 7.5
