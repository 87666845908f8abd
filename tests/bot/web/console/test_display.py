"""The console's display helpers (bot/web/console/display.py): labels, in words."""
from __future__ import annotations

from bot.web.console.display import channel_label, delivery_label, duration, safe_url, visibility_label


def test_channel_and_visibility_labels():
    assert channel_label("facebook", "public") == "facebook · public comment"
    assert channel_label("whatsapp", "private") == "whatsapp · private"
    assert visibility_label(None) == "private"  # a snapshot from before visibility existed


def test_delivery_labels():
    assert delivery_label({"status": "read"}) == "read"
    assert delivery_label({"status": "delivered", "sent_as": "webcare_reply"}) == \
        "delivered · sent as template webcare_reply"
    assert delivery_label({"status": "sent", "sent_as": "tag"}) == "sent · with HUMAN_AGENT tag"
    assert delivery_label({"status": "failed", "error": "recipient unreachable"}) == "failed: recipient unreachable"
    assert delivery_label({"status": "needs_template", "error": "needs a template: outside the window"}) == \
        "needs a template: outside the window"
    assert delivery_label({"status": "queued", "error": "HTTP 502"}) == "queued · retrying after: HTTP 502"


def test_only_web_links_are_shown_and_durations_read_short():
    assert safe_url("https://facebook.com/p/1") == "https://facebook.com/p/1"
    assert safe_url("javascript:alert(1)") is None and safe_url(None) is None
    assert duration(3 * 3600 + 10 * 60) == "3h 10m"
