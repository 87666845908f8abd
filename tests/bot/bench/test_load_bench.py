"""``webcare bench load``: a small open-loop run against the session's real Rasa prints the
contract's JSON with every message answered once (latencies are never asserted), and the
schedule is fixed in advance: many customers, some writing several messages."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from bot.bench.load import FOLLOW_UPS, schedule
from bot.cli import main

KEYS = {"rate", "seconds", "sent", "ack_p50_ms", "ack_p99_ms", "e2e_p50_ms", "e2e_p95_ms", "lost", "duplicated",
        "acked", "achieved_rate", "answered", "drained", "drain_seconds", "errors"}


def test_schedule_is_open_loop_with_multi_message_conversations() -> None:
    planned = schedule(20, 10)
    assert len(planned) == 200
    assert [m.offset for m in planned] == [i / 20 for i in range(200)]  # fixed send times
    per_sender = Counter(m.sender for m in planned)
    assert len(per_sender) > 150  # mostly new customers
    assert max(per_sender.values()) == 1 + FOLLOW_UPS and sum(1 for n in per_sender.values() if n > 1) >= 10
    assert len({m.message_id for m in planned}) == 200


def test_bench_load_answers_every_message_once(rasa, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "load", "--rate", "20", "--seconds", "2", "--rasa-url", rasa.url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert KEYS <= set(result)
    assert result["sent"] == 40 and result["acked"] == 40 and result["errors"] == {}
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["drained"] is True
    assert result["answered"] == 40
    assert result["ack_p50_ms"] <= result["ack_p99_ms"] and result["e2e_p50_ms"] <= result["e2e_p95_ms"]
