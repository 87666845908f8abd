"""The report's charts, drawn by matplotlib (Agg backend, no display) as PNG bytes.

The object-oriented API (``Figure`` + ``FigureCanvasAgg``) is used, never ``pyplot``, so
charts can be drawn in worker threads concurrently.
"""
from __future__ import annotations

import io
from typing import Any, Callable, Dict, Optional

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

CHARTS = ("causes", "weekly")
CURRENT, PREVIOUS = "#1f5fd1", "#b8c4d9"


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": f"matplotlib {matplotlib.__version__}"})
    return buffer.getvalue()


def causes_chart(data: Dict[str, Any], title: Callable[[Optional[str]], str], top: int = 12) -> bytes:
    """Horizontal bars: contacts per root cause, this period vs the previous one."""
    bars = data["bars"][:top][::-1]
    figure = Figure(figsize=(8, max(2.5, 0.42 * len(bars) + 1.2)), layout="constrained")
    axes = figure.add_subplot()
    labels = [title(b["root_cause"]) for b in bars]
    positions = range(len(bars))
    height = 0.4
    axes.barh([p - height / 2 for p in positions], [b["previous_contacts"] for b in bars], height,
              color=PREVIOUS, label="previous period")
    axes.barh([p + height / 2 for p in positions], [b["contacts"] for b in bars], height,
              color=CURRENT, label="this period")
    axes.set_yticks(list(positions), labels)
    axes.set_xlabel("contacts")
    axes.set_title("Contacts per root cause")
    axes.legend(loc="lower right", frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    if not bars:
        axes.text(0.5, 0.5, "no contacts in this period", ha="center", va="center", transform=axes.transAxes)
    return _png(figure)


def weekly_chart(data: Dict[str, Any], title: Callable[[Optional[str]], str]) -> bytes:
    """Lines: contacts per week of the top root causes."""
    weekly = data["weekly"]
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    axes = figure.add_subplot()
    x = list(range(len(weekly["weeks"])))
    for series in weekly["series"]:
        axes.plot(x, series["counts"], marker="o", linewidth=2, label=title(series["root_cause"]))
    labels = [w[5:] if days >= 7 else f"{w[5:]} ({days:g} d)" for w, days in zip(weekly["weeks"], weekly["days"])]
    axes.set_xticks(x, labels, rotation=45 if len(x) > 8 else 0)
    axes.set_xlabel("week starting (MM-DD)")
    axes.set_ylabel("contacts")
    axes.set_title("Contacts per week, top root causes")
    axes.set_ylim(bottom=0)
    axes.spines[["top", "right"]].set_visible(False)
    if weekly["series"]:
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small")
    else:
        axes.text(0.5, 0.5, "no contacts in this period", ha="center", va="center", transform=axes.transAxes)
    return _png(figure)


def render_chart(kind: str, data: Dict[str, Any], title: Callable[[Optional[str]], str]) -> bytes:
    if kind == "causes":
        return causes_chart(data, title)
    if kind == "weekly":
        return weekly_chart(data, title)
    raise ValueError(kind)
