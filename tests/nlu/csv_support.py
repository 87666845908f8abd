"""Labelled-example CSVs for the NLU command tests: four intents, English and Dutch."""
from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import List, Tuple

INTENTS = {
    "card_arrival": (["when will my card arrive", "my new card has not come yet", "where is my card",
                      "card still not delivered", "waar blijft mijn nieuwe pas"],
                     ["please", "help", "today", "still", "urgent", "thanks", "", "again"]),
    "top_up": (["how do i top up my account", "add money to my balance", "can i top up by card",
                "ik wil geld storten", "top up failed"],
               ["please", "quickly", "now", "today", "", "thanks", "via the app", "again"]),
    "exchange_rate": (["what is your exchange rate", "rate for euro to pound", "why was the rate so bad",
                       "wisselkoers klopt niet", "which currencies can i exchange"],
                      ["today", "please", "", "thanks", "for dollars", "exactly", "now", "again"]),
    "lost_card": (["i lost my card", "my card was stolen", "block my card please",
                   "ik ben mijn pas kwijt", "someone took my wallet with my card"],
                  ["asap", "help", "", "today", "urgent", "yesterday", "please", "again"]),
}


def write_csv(path: Path, rows: List[Tuple[str, str]], column: str = "category") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", column])
        writer.writerows(rows)
    return path


def synthetic_rows(per_intent: int, seed: int) -> List[Tuple[str, str]]:
    rng = random.Random(seed)
    rows, seen = [], set()
    for intent, (stems, extras) in INTENTS.items():
        made = 0
        while made < per_intent:
            text = f"{rng.choice(stems)} {rng.choice(extras)} {rng.choice(extras)}".strip()
            text = " ".join(text.split()) + f" #{made}"  # unique texts
            if text in seen:
                continue
            seen.add(text)
            rows.append((text, intent))
            made += 1
    return rows
