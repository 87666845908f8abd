"""Browser end to end: the web chat, the agent console and the recurring-issue report in Chromium.

The real service (``create_app``, worker and dispatcher on) serves on a loopback port and talks
to the real Rasa server and action server of the ``rasa`` fixture. Three browser contexts (their
own cookies) play the customer, the agent and the process owner:

1. the customer writes in the web chat; the always-reviewed intent makes the bot's reply a draft,
   so nothing reaches the customer yet;
2. the agent, whose queue page is already open, sees the draft appear in the live queue (no
   reload), opens it, edits the reply and sends it;
3. the customer sees the edited reply arrive in the open page (no reload);
4. a process owner opens Reports, picks a period with seeded contacts and sees the table and the
   bar chart (its bars' colours are found in the rendered image).

Screenshots of each step are kept in ``results/e2e/``.
"""
from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any, Dict

import yaml
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.web.app import create_app
from bot.web.keys import STORE_KEY
from bot.accounts import create_user
from bot.config import load_config
from bot.reporting.charts import CURRENT, PREVIOUS
from bot.store.models import Role
from tests.bot.report_support import seed_contacts

PASSWORD = "correct horse battery"
AGENT, OWNER = "anna", "piet"
# An always-reviewed intent (drafting.always_review: cancel_contract): its reply waits as a draft.
CUSTOMER_TEXT = "ik wil mijn contract opzeggen, ik stap over naar een andere leverancier"
EDITED_TEXT = "Jammer dat je weggaat! Ik heb je opzegging genoteerd; je krijgt binnen 5 dagen je eindafrekening."
REPORT_START, REPORT_END = "2026-03-02", "2026-03-09"  # tests/bot/report_support.py's period
WAIT_MS = 20_000  # every browser wait is bounded; the whole flow is bounded by FLOW_SECONDS
FLOW_SECONDS = 240
VIEWPORT = {"width": 1280, "height": 900}
NO_RELOAD = "window.__webcareE2E"  # set in a page; still there later = the page was never reloaded


def write_config(tmp_path: Path, rasa_url: str, actions_url: str) -> Path:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/webcare.db"},
        "rasa": {"url": rasa_url, "actions_url": actions_url},
        "drafting": {"always_review": ["complaint", "cancel_contract", "payment_arrangement"]},
        "channels": {"webchat": {"type": "webchat", "poll_interval_seconds": 0.2}},
        "reports": {"sinks": [{"type": "file", "directory": str(tmp_path / "digests")}]},
    }))
    return path


def seed(session: Any) -> Dict[str, Any]:
    create_user(session, AGENT, PASSWORD, Role.agent, "Anna Agent")
    create_user(session, OWNER, PASSWORD, Role.process_owner, "Piet Owner")
    return seed_contacts(session)


def colour_pixels(png: bytes, hex_colour: str, tolerance: int = 6) -> int:
    """How many pixels of a PNG have (about) this colour."""
    target = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(count for count, pixel in image.getcolors(maxcolors=1 << 24)
               if all(abs(a - b) <= tolerance for a, b in zip(pixel, target)))


async def log_in(page: Any, base: str, username: str) -> None:
    await page.goto(f"{base}/console/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(lambda url: "/console/login" not in url)


async def test_customer_agent_and_process_owner_in_the_browser(chromium, rasa, tmp_path, browser,
                                                                 screenshots) -> None:
    config = write_config(tmp_path, rasa.url, f"http://127.0.0.1:{rasa.actions_port}")
    app = create_app(load_config(str(config), environ={}))
    app[STORE_KEY].transaction(seed)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    contexts = []
    try:
        base = str(server.make_url("")).rstrip("/")

        async def context(**options: Any) -> Any:
            ctx = await browser.new_context(viewport=VIEWPORT, **options)
            ctx.set_default_timeout(WAIT_MS)
            ctx.set_default_navigation_timeout(WAIT_MS)
            contexts.append(ctx)
            return await ctx.new_page()

        customer = await context(locale="nl-NL")
        agent = await context(locale="en-GB")
        owner = await context(locale="en-GB")
        try:
            await asyncio.wait_for(flow(base, customer, agent, owner, screenshots), FLOW_SECONDS)
        except Exception:  # the pages as they were, next to the error
            for name, page in (("customer", customer), ("agent", agent), ("owner", owner)):
                try:
                    await page.screenshot(path=str(screenshots / f"failed-{name}.png"), full_page=True,
                                          timeout=5_000)
                except Exception:
                    pass
            raise
    finally:
        for ctx in contexts:
            await ctx.close()
        await server.close()


async def flow(base: str, customer: Any, agent: Any, owner: Any, screenshots: Path) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)

    # The agent has the (empty) queue open before the customer writes.
    await log_in(agent, base, AGENT)
    await expect(agent).to_have_url(f"{base}/console/queue")
    await expect(agent.locator("#queue-empty")).to_be_visible()
    await agent.evaluate(f"{NO_RELOAD} = 'queue'")

    # 1. The customer writes in the web chat.
    await customer.goto(f"{base}/chat")
    await expect(customer.locator("#transcript")).to_have_attribute("aria-busy", "false")
    await customer.evaluate(f"{NO_RELOAD} = 'chat'")
    await customer.locator("#message").fill(CUSTOMER_TEXT)
    await customer.locator("#send").click()
    mine = customer.locator("#transcript li.msg--in")
    await expect(mine).to_have_count(1)
    await expect(mine.locator(".msg__text")).to_have_text(CUSTOMER_TEXT)
    await expect(mine).not_to_have_class(re.compile(r"\bmsg--pending\b"))  # the service took it
    await expect(customer.locator("#typing")).to_be_visible()  # the customer is told we're on it

    # 2. The draft appears in the agent's open queue without a reload.
    row = agent.locator("#queue-body tr", has_text=CUSTOMER_TEXT)
    await expect(row).to_have_count(1)
    await expect(agent.locator("#queue-count")).to_have_text("1 waiting")
    await expect(agent.locator("#queue-empty")).to_be_hidden()
    assert await agent.evaluate(NO_RELOAD) == "queue", "the queue page was reloaded"
    await expect(row.locator("code")).to_have_text("cancel_contract")
    await agent.screenshot(path=str(screenshots / "1-agent-queue-live.png"), full_page=True)
    # Nothing was sent to the customer: the reply waits for the agent.
    assert await customer.locator("#transcript li.msg--out").count() == 0
    await customer.screenshot(path=str(screenshots / "2-customer-waiting.png"))

    draft_id = await row.get_attribute("data-id")
    await row.locator("a.open").click()
    await expect(agent).to_have_url(f"{base}/console/drafts/{draft_id}")
    await expect(agent.locator(".draft-layout")).to_have_attribute("data-status", "pending")
    await expect(agent.locator(".chat .bubble.in.current .bubble-text")).to_have_text(CUSTOMER_TEXT)
    await expect(agent.locator(".facts")).to_contain_text("'cancel_contract' is always reviewed")
    reply = agent.get_by_label("Reply to the customer")
    drafted = await reply.input_value()
    assert drafted.strip() and drafted != EDITED_TEXT  # the bot's own answer, to be edited

    # 3. The agent edits the reply and sends it.
    await reply.fill(EDITED_TEXT)
    await agent.screenshot(path=str(screenshots / "3-agent-draft-edited.png"), full_page=True)
    await agent.locator("#edit-button").click()
    await expect(agent).to_have_url(f"{base}/console/queue?done=edited&d={draft_id}")
    await expect(agent.locator(".alert.success")).to_have_text(f"Draft #{draft_id} sent as edited.")
    await expect(agent.locator("#queue-empty")).to_be_visible()

    # 4. The customer's open page shows the edited reply (pushed, no reload).
    answer = customer.locator("#transcript li.msg--out")
    await expect(answer).to_have_count(1)
    await expect(answer.locator(".msg__text")).to_have_text(EDITED_TEXT)
    await expect(customer.locator("#typing")).to_be_hidden()
    assert await customer.evaluate(NO_RELOAD) == "chat", "the chat page was reloaded"
    await customer.screenshot(path=str(screenshots / "4-customer-reply.png"))

    # 5. A process owner opens the recurring-issue report for the seeded period and sees its chart.
    await log_in(owner, base, OWNER)
    await expect(owner.get_by_role("heading", name="Welcome, Piet Owner")).to_be_visible()
    await owner.get_by_role("link", name="Reports").click()
    await expect(owner.get_by_role("heading", name="Recurring issues")).to_be_visible()
    await owner.get_by_label("From").fill(REPORT_START)
    await owner.get_by_label("until (not included)").fill(REPORT_END)
    await owner.get_by_role("button", name="Show").click()
    await expect(owner).to_have_url(f"{base}/console/reports?start={REPORT_START}&end={REPORT_END}")
    billing = owner.locator('#report tr[data-root-cause="billing_amount"]')
    await expect(billing.locator("th")).to_contain_text("Bill amount")
    await expect(billing.locator("td").nth(1)).to_have_text("4")  # contacts
    await expect(owner.locator('#report tr[data-root-cause="outage"] td').nth(1)).to_have_text("2")
    await expect(owner.locator("#report tr.total td").nth(1)).to_have_text("7")

    chart = owner.get_by_role("img", name="Bar chart: contacts per root cause")
    await chart.scroll_into_view_if_needed()
    await expect(chart).to_be_visible()
    await owner.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=await chart.element_handle(), timeout=WAIT_MS)
    weekly = owner.get_by_role("img", name="Line chart: contacts per week")
    await owner.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=await weekly.element_handle(), timeout=WAIT_MS)
    box = await chart.bounding_box()
    assert box and box["width"] >= 700 and box["height"] >= 200, box
    pixels = await chart.screenshot()
    # This period's bars and the previous period's bars, as the browser rendered them.
    assert colour_pixels(pixels, CURRENT) > 2_000, "no bars of this period in the chart"
    assert colour_pixels(pixels, PREVIOUS) > 2_000, "no bars of the previous period in the chart"
    await owner.screenshot(path=str(screenshots / "5-owner-report.png"), full_page=True)
    await chart.screenshot(path=str(screenshots / "6-owner-report-chart.png"))
