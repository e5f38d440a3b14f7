"""Dashboards: a live ipywidgets panel that refreshes while a load runs, and static matplotlib plots of the
same history for a saved notebook, where widgets do not render (notebook 20).

A snapshot is a dict of numbers (latency p95, tokens/s, queue, errors ...) read from Prometheus or from a
direct scrape; the dashboard only shows what it is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any


class LiveDashboard:
    """An HTML table in an ipywidgets `HTML` that `refresh()` rewrites; every snapshot is kept in `history`."""

    def __init__(self, read: Callable[[], dict[str, float]], title: str = "edge-slm live") -> None:
        self.read = read
        self.title = title
        self.history: list[dict[str, float]] = []
        self.t0 = time.perf_counter()
        self.widget = None
        try:
            import ipywidgets as widgets

            self.widget = widgets.HTML(value=f"<b>{title}</b>: waiting for the first refresh")
        except ImportError:  # ipywidgets is a dependency; without it the history still fills
            pass

    def refresh(self, *_: Any) -> dict[str, float]:
        """Read a snapshot, append it to the history, redraw the widget; returns the snapshot."""
        snap = {"t": time.perf_counter() - self.t0, **self.read()}
        self.history.append(snap)
        if self.widget is not None:
            rows = "".join(f"<tr><td>{k}</td><td style='text-align:right'>{_fmt(v)}</td></tr>"
                           for k, v in snap.items() if k != "t")
            self.widget.value = (f"<b>{self.title}</b> at t={snap['t']:.1f} s<table>{rows}</table>")
        return snap


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:,.3f}"
    return str(v)


def plot_history(history: list[dict[str, float]], keys: list[str] | None = None, title: str = ""):
    """One small plot per key against time (seconds); returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    keys = keys or [k for k in (history[0] if history else {}) if k != "t"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
    ts = [h["t"] for h in history]
    for ax, k in zip(axes[0], keys):
        ax.plot(ts, [h.get(k, math.nan) for h in history], marker=".")
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("s")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

