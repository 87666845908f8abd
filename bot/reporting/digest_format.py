"""The weekly digest as a document: its kind, its Markdown rendering, and redacting quotes.

Shared by the digest's scheduler (:mod:`bot.reporting.digest`) and the report sinks that
store or rewrite digests (:mod:`bot.reporting.sinks`).
"""
from __future__ import annotations

from typing import Any, Collection, Dict, Optional

DIGEST_KIND = "webcare.recurring_issue_digest"


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


ARROWS = {"up": "▲", "down": "▼", "flat": "►", "new": "new", "none": ""}


def digest_markdown(digest: Dict[str, Any]) -> str:
    """The digest as Markdown (for e-mail or a chat channel)."""
    period = digest["period"]
    totals = digest["totals"]
    lines = [
        f"# Recurring issues for {digest['owner']} — week until {digest['date']}",
        "",
        f"Period {period['start'][:10]} – {digest['date']} (end excluded), compared with the 7 days before.",
        "",
        f"**{totals['contacts']} contacts** ({_change(totals)}), repeat-contact rate {_pct(totals['repeat_rate'])}, "
        f"CSAT {totals['csat_mean'] if totals['csat_mean'] is not None else '–'} "
        f"({_pct(totals['csat_response_rate'])} answered).",
        "",
        "| root cause | contacts | before | trend | repeat rate | CSAT | answered |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in digest["root_causes"]:
        lines.append(f"| {_md(row['title'])} (`{row['root_cause']}`) | {row['contacts']} | {row['previous_contacts']} | "
                     f"{ARROWS.get(row['trend'], '')} {_change(row)} | {_pct(row['repeat_rate'])} | "
                     f"{row['csat_mean'] if row['csat_mean'] is not None else '–'} | {_pct(row['csat_response_rate'])} |")
    quoted = [(row["title"], w) for row in digest["root_causes"] for w in row["customer_words"]
              if w.get("text") is not None]
    if quoted:
        lines += ["", "## In the customers' words", ""]
        lines += [f"- {_md(title)}: “{_md(w['text'])}” ({w['score']}/5)" for title, w in quoted]
    lines += ["", f"Full report: {digest['report_path']}", ""]
    return "\n".join(lines)


def _change(row: Dict[str, Any]) -> str:
    if row.get("change_pct") is None:
        return "new" if row.get("contacts") else "no contacts"
    return f"{row['change_pct']:+.0f}%"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def redact_words(digest: Dict[str, Any], contact_ids: Collection[int], texts: Collection[str] = ()) -> int:
    """Blank, in place, the quotes of these contacts' CSAT comments, as a GDPR erase blanks the
    comment itself (the score stays); how many. A quote without ``contact_id`` (a digest written
    before quotes carried it) is matched on its exact text among ``texts``."""
    redacted = 0
    for row in digest.get("root_causes") or []:
        for word in row.get("customer_words") or []:
            if not isinstance(word, dict) or word.get("text") is None:
                continue
            contact_id = word.get("contact_id")
            if (contact_id in contact_ids) if contact_id is not None else (word["text"] in texts):
                word["text"], word["erased"] = None, True
                redacted += 1
    return redacted
