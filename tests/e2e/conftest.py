"""Browser end-to-end fixtures: Debian's Chromium driven by Playwright, and where screenshots go.

Playwright never downloads a browser of its own here: it drives ``/usr/bin/chromium``, which
``make browser`` (``scripts/install-chromium``) installs from Debian. When the browser or the
``playwright`` package is missing the tests FAIL with what to install; they never skip.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import AsyncIterator

import pytest

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT / "results" / "e2e"
# The flags Chromium needs on a machine without a display or network (no first-run dialogs,
# no background connections to Google, no GPU, no sandbox as root).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """``results/e2e/``, emptied of the previous run's screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, or a failure saying how to install it (checked before Rasa starts:
    request this fixture before ``rasa``)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: the browser end-to-end test needs Debian's Chromium. "
                    "Run `make browser` (scripts/install-chromium; as root: apt-get install -y chromium)",
                    pytrace=False)
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as error:  # pragma: no cover - the test extra installs it
        pytest.fail(f"the Python package playwright is missing ({error}): run `make setup`", pytrace=False)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator["object"]:
    """A headless Debian Chromium (a fresh temporary profile per launch), closed afterwards."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS,
                                                   timeout=60_000)
        try:
            yield browser
        finally:
            await browser.close()
