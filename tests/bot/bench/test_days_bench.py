"""``webcare bench days``: the simulated agent decides a draft as a careful agent would (the CSV's
label is the truth), the daily draws are fixed by the seed, each message is classified by how it
was answered, and a small real run (Rasa, the service, a retrain and a swap) prints the contract's
JSON with consistent figures (never timed: the targets belong to the benchmark)."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from bot.bench.days import CORRECTION_TEXT, Labelled, StoreView, agent_decision, draw, outcome, settled
from bot.cli import main

DAY_KEYS = {"day", "messages", "auto_share", "auto_precision", "agent_actions", "drafts", "accuracy",
            "retrain_seconds", "swap_lost", "swap_duplicated", "promoted"}
TOP_KEYS = {"days", "seed", "per_day", "messages_csv"}

# Customers' own words (not the training data); the last ones are hard for the starter model.
TINY_CSV = """text,intent,lang
waarom moet ik zoveel bijbetalen op mijn jaarnota,bill_too_high,nl
my yearly statement is much higher than i expected,bill_too_high,en
graag mijn voorschot wat lager zetten,change_advance_payment,nl
kan ik het bedrag in delen betalen,payment_arrangement,nl
waar blijft mijn teruggave,refund_status,nl
hoe kan ik mijn standen doorgeven,submit_meter_reading,nl
no electricity in our street since an hour,report_outage,en
ik ga samenwonen en verhuis in mei,moving_house,nl
i would like to stop my contract,cancel_contract,en
wat betaal ik per kuub gas,tariffs,nl
nieuw bankrekeningnummer doorgeven,change_bank_details,nl
inloggen lukt niet meer sinds de update,login_problem,nl
wat krijg ik terug voor mijn panelen op het dak,solar_feed_in,nl
wanneer is de klantenservice open op zaterdag,contact_hours,nl
ik wil iemand aan de lijn,request_human,nl
hallo daar,greet,nl
super bedankt voor de hulp,thank,nl
ben jij een echt mens,bot_challenge,nl
mijn termijnbedrag klopt niet met mijn verbruik,change_advance_payment,nl
the app keeps saying my password is wrong,login_problem,en
mijn contract loopt bijna af wat bieden jullie me voor een nieuw jaar,tariffs,nl
ik wil mijn stand doorgeven maar de app laat me er niet in,login_problem,nl
scheelt het als ik de wasmachine 's nachts laat draaien,tariffs,nl
kan ik 50 euro per maand aflossen op wat nog openstaat,payment_arrangement,nl
we gaan helemaal elektrisch dus de gasaansluiting mag weg,cancel_contract,nl
"""


def _draft(intent: str, alternatives: list, messages: list | None = None) -> dict:
    return {"id": 3, "intent": intent, "messages": [{"text": "..."}] if messages is None else messages,
            "alternatives": alternatives, "conversation": {"language": "nl"}}


def test_the_agent_approves_a_right_draft_picks_a_right_alternative_else_corrects() -> None:
    truth = Labelled("kan ik in termijnen betalen", "payment_arrangement", "nl")
    alternatives = [{"index": 0, "intent": "bill_too_high", "messages": [{"text": "a"}]},
                    {"index": 1, "intent": "payment_arrangement", "messages": [{"text": "b"}]}]
    assert agent_decision(_draft("payment_arrangement", alternatives), truth) == ("approve", {})
    assert agent_decision(_draft("tariffs", alternatives), truth) == ("pick", {"index": 1})
    # the right alternative has nothing to send: the agent writes the reply and names the intent
    alternatives[1]["messages"] = []
    assert agent_decision(_draft("tariffs", alternatives), truth) == (
        "edit", {"text": CORRECTION_TEXT["nl"], "intent": "payment_arrangement"})
    # the right intent but nothing drafted (the bot had no answer): an edited reply, labelled
    english = Labelled("can i pay in parts", "payment_arrangement", "en")
    assert agent_decision(_draft("payment_arrangement", [], messages=[]), english) == (
        "edit", {"text": CORRECTION_TEXT["en"], "intent": "payment_arrangement"})


def test_a_day_draws_each_message_once_while_the_pool_lasts_and_the_seed_fixes_the_draw() -> None:
    pool = [Labelled(f"text {i}", "greet") for i in range(10)]
    day = draw(pool, 25, random.Random(7))
    counts = Counter(m.text for m in day)
    assert len(day) == 25 and set(counts.values()) <= {2, 3} and len(counts) == 10
    assert Counter(m.text for m in day[:10]) == Counter(m.text for m in pool)  # all once before any twice
    assert draw(pool, 25, random.Random(7)) == day and draw(pool, 25, random.Random(8)) != day


def test_each_message_is_answered_automatically_drafted_handed_over_or_unanswered() -> None:
    view = StoreView(status={1: "processed", 2: "processed", 3: "processed", 4: "received", 5: "processed"},
                     intent={1: "greet", 2: "tariffs", 3: "complaint", 5: "thank"},
                     drafts={2: (70, "approved")}, handed={3}, unsent=0)
    arrivals = [("reply:1:0", "c1", 0.0), ("reply:1:1", "c1", 0.1),  # one answer in two messages
                ("draft:70:0", "c2", 0.2), ("case:9:handover", "c3", 0.3),
                ("reply:5:0", "c5", 0.4), ("reply:5:0", "c5", 0.5),  # delivered twice
                ("reply:99:0", "other", 0.6)]  # not one of these messages
    result = outcome([1, 2, 3, 4, 5], view, arrivals)
    assert (result.auto, result.drafted, result.handed, result.unanswered) == ([1, 5], [2], [3], [4])
    assert result.duplicated == 1
    assert not settled(view, [1, 2, 3, 4, 5]) and settled(view, [1, 2, 3, 5])
    assert not settled(StoreView(status={2: "processed"}, drafts={2: (70, "pending")}), [2])


@pytest.mark.rasa
@pytest.mark.servers
def test_bench_days_runs_two_days_with_a_retrain_and_a_swap_in_between(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv_path = tmp_path / "days.csv"
    csv_path.write_text(TINY_CSV, encoding="utf-8")
    # a high threshold, so that the agents have drafts to decide on both days
    assert main(["bench", "days", "--days", "2", "--per-day", "15", "--messages", str(csv_path),
                 "--seed", "5", "--threshold", "0.97", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert TOP_KEYS <= set(result) and result["seed"] == 5 and result["per_day"] == 15
    assert result["messages_csv"] == str(csv_path)
    first, second = result["days"]
    for day in (first, second):
        assert DAY_KEYS <= set(day)
        assert day["messages"] == day["acked"] == 15 and day["unanswered"] == 0 and day["duplicated"] == 0
        assert 0 <= day["auto_share"] <= 1 and 0 <= day["accuracy"] <= 1
        assert day["auto_precision"] is None or 0 <= day["auto_precision"] <= 1
        decided = sum(day["decisions"].values())
        assert decided == day["drafts"] and day["agent_actions"] >= decided  # every draft decided
        assert day["auto"] + day["drafts"] + day["handed_over"] == day["messages"]
    assert first["drafts"] > 0
    assert first["corrections"]["accepted"] >= first["drafts"]  # every decision became an example
    assert first["retrain_status"] == "succeeded" and first["retrain_seconds"] > 0
    assert isinstance(first["promoted"], bool) and first["gate"]["passed"] in (True, False)
    if first["promoted"]:
        assert first["swap_messages"] > 0 and first["swap_lost"] == 0 and first["swap_duplicated"] == 0
        assert second["model_file"] == Path(first["candidate_file"]).name != first["model_file"]
    else:
        assert second["model_file"] == first["model_file"]
    assert second["retrain_seconds"] is None and second["swap_lost"] is None and second["swap_duplicated"] is None
