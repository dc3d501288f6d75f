"""OTB-style success and precision plots of several trackers, one PNG per data set variant.

The figure has two panels: success rate against the overlap threshold (legend ``name [AUC]``) and precision
against the location error threshold in pixels (legend ``name [P@20]``); in each, trackers are sorted best first,
as in the OTB papers. matplotlib (the ``[eval]`` extra) is imported only here, and only when a plot is drawn; the
figure is drawn on an Agg canvas directly, so no GUI backend or pyplot global state is involved.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from edgetrack.errors import InvalidArgumentError, require

_STYLES = ("-", "--", "-.", ":")


def _entries(curves: Mapping[str, dict], curve: str, thresholds: str, score: str) -> list[tuple]:
    """(name, score, x, y) of every tracker with that curve, best first (ties broken by success AUC)."""
    rows = [
        (name, float(m[score]), np.asarray(m[thresholds], float), np.asarray(m[curve], float), m["success_auc"])
        for name, m in curves.items()
        if m and curve in m
    ]
    return [r[:4] for r in sorted(rows, key=lambda r: (-r[1], -r[4]))]


def _panel(ax, rows, styles: dict, *, xlabel: str, ylabel: str, title: str, xlim, legend_loc: str) -> None:
    for name, score, x, y in rows:
        colour, line = styles[name]
        ax.plot(x, y, line, color=colour, lw=2, label=f"{name} [{score:.3f}]")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=xlim, ylim=(0, 1.02))
    ax.grid(True, alpha=0.35)
    if rows:
        ax.legend(loc=legend_loc, fontsize=9, framealpha=0.85)


def plot_curves(curves: Mapping[str, dict], path: str | Path, *, title: str = "") -> Path:
    """Draw the success and precision plots of ``curves`` (tracker name -> OTB summary) into the PNG ``path``.

    Each value is what :func:`edgetrack.metrics.otb_summary` returns (``success_curve``, ``success_thresholds``,
    ``success_auc``, ``precision_curve``, ``precision_thresholds``, ``precision_20``); trackers without curves
    (nothing could be scored) are left out.
    """
    matplotlib = require("matplotlib", feature="evaluation plots", extra="eval")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    success = _entries(curves, "success_curve", "success_thresholds", "success_auc")
    precision = _entries(curves, "precision_curve", "precision_thresholds", "precision_20")
    if not success:
        raise InvalidArgumentError(f"nothing to plot for {title or path}: no tracker has OTB curves")
    # One colour and line style per tracker in both panels, assigned in success order, so the eye can follow it.
    colours = matplotlib.colormaps["tab10"].colors
    styles = {r[0]: (colours[i % len(colours)], _STYLES[(i // len(colours)) % len(_STYLES)])
              for i, r in enumerate(success)}
    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    ax_s, ax_p = fig.subplots(1, 2)
    _panel(ax_s, success, styles, xlabel="Overlap threshold", ylabel="Success rate", title="Success plot of OPE [AUC]",
           xlim=(0, 1), legend_loc="lower left")
    max_err = max(float(r[2][-1]) for r in precision)
    _panel(ax_p, precision, styles, xlabel="Location error threshold (pixels)", ylabel="Precision",
           title="Precision plot of OPE [P@20]", xlim=(0, max_err), legend_loc="lower right")
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_results(results: Iterable, out_dir: str | Path) -> list[Path]:
    """One PNG per data set variant (``<out_dir>/<variant>.png``) comparing every tracker evaluated on it.

    ``results`` are :class:`edgetrack.evaluation.EvalResult`; variants where nothing could be scored are skipped.
    """
    from edgetrack.evaluation import safe_name

    by_dataset: dict[str, dict[str, dict]] = {}
    for r in results:
        if r.otb:
            by_dataset.setdefault(r.dataset, {})[r.tracker] = r.otb
    return [
        plot_curves(curves, Path(out_dir) / f"{safe_name(dataset)}.png", title=dataset)
        for dataset, curves in by_dataset.items()
    ]


def plot_speed(variants: Mapping[str, Mapping[str, dict]], path: str | Path, *, title: str = "") -> Path:
    """Mean milliseconds per frame of every tracker, one panel per data set variant, as horizontal bars split into
    the stages a tracker reports (``rest_ms``, ``gate_ms``, ``deblur_ms``; a tracker without them is one bar of
    ``ms_mean``), fastest at the top; each bar is labelled with its FPS.

    ``variants``: variant name -> tracker name -> timing dict (what ``edgetrack.bench`` measures).
    """
    matplotlib = require("matplotlib", feature="speed plots", extra="eval")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(v, {n: r for n, r in rows.items() if r.get("ms_mean")}) for v, rows in variants.items()]
    panels = [(v, rows) for v, rows in panels if rows]
    if not panels:
        raise InvalidArgumentError(f"nothing to plot for {title or path}: no tracker has a time per frame")
    colours = matplotlib.colormaps["tab10"].colors
    stages = (("rest_ms", "tracking", colours[0]), ("gate_ms", "blur gate", colours[1]),
              ("deblur_ms", "deblurring", colours[3]))
    height = max(2.4, 0.42 * max(len(rows) for _, rows in panels) + 1.4)
    fig = Figure(figsize=(6.2 * len(panels), height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (variant, rows) in zip(axes, panels):
        names = sorted(rows, key=lambda n: rows[n]["ms_mean"], reverse=True)  # barh draws bottom-up
        y = np.arange(len(names))
        left = np.zeros(len(names))
        for key, label, colour in stages:
            widths = np.array([rows[n].get(key) if key in rows[n] else (rows[n]["ms_mean"] if key == "rest_ms"
                                                                        else 0.0) for n in names], float)
            widths = np.nan_to_num(np.clip(widths, 0, None))
            if widths.any():
                ax.barh(y, widths, left=left, color=colour, label=label, height=0.65)
            left += widths
        for yi, n in zip(y, names):
            fps = rows[n].get("fps")
            ax.text(left[yi], yi, f"  {fps:.0f} FPS" if fps else "", va="center", fontsize=8)
        ax.set_yticks(y, names, fontsize=9)
        ax.set(xlabel="milliseconds per frame (mean)", title=variant, xlim=(0, float(left.max()) * 1.3))
        ax.grid(True, axis="x", alpha=0.35)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)  # the fastest (shortest) bars are at the top
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


__all__ = ["plot_curves", "plot_results", "plot_speed"]
