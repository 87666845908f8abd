"""Browser end to end: a public comment under the Page's post, moved to private by an agent.

The real service (worker and dispatcher on) with a Messenger channel whose Graph API is the
fake on loopback, and the real Rasa server of the ``rasa`` fixture:

1. Meta posts the recorded feed webhook (a comment under the Page's post, signed);
2. the bot drafts a public reply, which waits for review (public replies always do);
3. the agent sees the row marked "facebook · public comment", opens the thread, and moves
   the conversation to private with the prefilled texts;
4. the Graph API receives the private reply to the comment and the short public answer;
5. the customer answers the DM from the PSID Meta gave back: the agent's new case shows it.
"""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from bot.accounts import create_user
from bot.config import load_config
from bot.store.models import Role
from bot.testing.fake_graph import APP_SECRET, TOKEN, VERIFY_TOKEN, FakeGraph, signed_headers
from bot.web.app import create_app
from bot.web.keys import STORE_KEY
from tests.connectors.meta.conftest import recorded
from tests.e2e.test_browser import PASSWORD, VIEWPORT, WAIT_MS, log_in

AGENT = "anna"
PAGE = "104857600123456"
COMMENT = "122187654321098765_1098765432109876"
PSID = "7412589630147258"
COMMENT_TEXT = "Wanneer wordt mijn pakket bezorgd? Ik wacht al een week."
FLOW_SECONDS = 180


def write_config(tmp_path: Path, rasa_url: str, actions_url: str, graph_url: str) -> Path:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/webcare.db"},
        "rasa": {"url": rasa_url, "actions_url": actions_url},
        "channels": {"facebook": {"type": "messenger", "page_id": PAGE, "graph_base_url": graph_url,
                                  "rate_limit_per_second": 100}},
    }))
    return path


async def test_an_agent_moves_a_public_comment_to_private(chromium, rasa, tmp_path, browser, screenshots,
                                                           monkeypatch) -> None:
    for name, value in (("WEBCARE_MESSENGER_VERIFY_TOKEN", VERIFY_TOKEN), ("WEBCARE_MESSENGER_APP_SECRET", APP_SECRET),
                        ("WEBCARE_MESSENGER_ACCESS_TOKEN", TOKEN)):
        monkeypatch.setenv(name, value)
    async with FakeGraph() as graph:
        graph.psid_of_comment[COMMENT] = PSID
        config = write_config(tmp_path, rasa.url, f"http://127.0.0.1:{rasa.actions_port}", graph.url)
        app = create_app(load_config(str(config), environ={}))
        app[STORE_KEY].transaction(lambda s: create_user(s, AGENT, PASSWORD, Role.agent, "Anna Agent"))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        context = await browser.new_context(viewport=VIEWPORT, locale="en-GB")
        context.set_default_timeout(WAIT_MS)
        page = await context.new_page()
        try:
            base = str(server.make_url("")).rstrip("/")
            await asyncio.wait_for(flow(base, page, graph, screenshots), FLOW_SECONDS)
        except Exception:
            await page.screenshot(path=str(screenshots / "failed-public-comment.png"), full_page=True, timeout=5_000)
            raise
        finally:
            await context.close()
            await server.close()


async def meta_posts(base: str, body: Any) -> None:
    data = json.dumps(body).encode()
    async with ClientSession() as http:
        async with http.post(f"{base}/webhooks/facebook", data=data, headers=signed_headers(data)) as response:
            assert response.status == 200, await response.text()


async def flow(base: str, page: Any, graph: FakeGraph, screenshots: Path) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    await log_in(page, base, AGENT)
    await expect(page).to_have_url(f"{base}/console/queue")

    # 1-2. The comment arrives; the bot's public reply waits for review in the live queue.
    await meta_posts(base, recorded("messenger", "feed_comment_add"))
    row = page.locator("#queue-body tr", has_text=COMMENT_TEXT)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("facebook · public comment")
    await page.screenshot(path=str(screenshots / "public-1-queue.png"), full_page=True)
    assert graph.calls == []  # nothing was published by the bot

    # 3. The agent opens the draft, then the thread, and moves the conversation to private.
    await row.locator("a.open").click()
    await expect(page.locator(".facts")).to_contain_text("public")
    await page.get_by_role("link", name="Comment thread: reply in public, hide, move to private").click()
    await expect(page.locator("#post")).to_contain_text("104857600123456_122187654321098765")
    await expect(page.locator(".comments .bubble.in .bubble-text")).to_have_text(COMMENT_TEXT)
    await expect(page.get_by_label("Public answer under the comment")).to_have_value(
        "We sturen je een DM, dan kijken we er samen naar.")
    await page.screenshot(path=str(screenshots / "public-2-thread.png"), full_page=True)
    await page.get_by_role("button", name="Move to private").click()
    await expect(page).to_have_url(re.compile(r"/console/cases/\d+\?done=moved"))
    await expect(page.locator(".alert.success")).to_contain_text("Moved to private")
    case_url = page.url.split("?")[0]

    # 4. Meta's Graph API got the private reply to the comment and the public answer under it.
    [private] = await graph.wait_for(f"{PAGE}/messages")
    assert private.body["recipient"] == {"comment_id": COMMENT}
    assert private.body["message"]["text"].startswith("Hoi! Je reageerde onder ons bericht.")
    [public] = await graph.wait_for(f"{COMMENT}/comments")
    assert public.body == {"message": "We sturen je een DM, dan kijken we er samen naar."}

    # 5. The customer answers in Messenger: the answer is in the agent's private case.
    await asyncio.sleep(0.5)  # the dispatcher records the PSID Meta answered with
    dm = recorded("messenger", "text")
    dm["entry"][0]["messaging"][0]["message"]["text"] = "Het gaat om bestelling 48213"
    await meta_posts(base, dm)
    await page.goto(case_url)
    this_conversation = page.locator("section.conversation > ol.chat").first
    await expect(this_conversation.locator(".bubble.in .bubble-text")).to_have_text(["Het gaat om bestelling 48213"])
    await expect(page.locator(".page-head")).to_contain_text("facebook · private")
    await page.screenshot(path=str(screenshots / "public-3-private-case.png"), full_page=True)
