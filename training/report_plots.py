"""The plots of a training run's report: confusion matrix, reliability diagram, curves.

Drawn on ``matplotlib.figure.Figure`` objects rendered by the Agg canvas, never through
pyplot: nothing opens a window, nothing changes the process-wide backend, and no figure
stays registered after it is saved (pyplot warns after 20 open figures).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from training.metrics import square_confusion
from training.plain import is_number, to_plain

_ANNOTATE_MAX_LABELS = 20
_DPI = 100


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)  # attaches itself to the figure; no pyplot, no window
    figure.savefig(path, dpi=_DPI)
    # Without pyplot the figure is not registered anywhere; dropping its artists frees
    # the memory at once instead of at the next garbage collection.
    figure.clear()


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix; shares written in the cells up to 20 labels."""
    counts = square_confusion(confusion, labels, np.float64)
    n = len(labels)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    # About a quarter inch per label, between a readable minimum and a sane maximum.
    side = float(np.clip(3.0 + 0.22 * n, 6.0, 22.0))
    font = float(np.clip(460.0 / max(n, 1), 6.0, 10.0))
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02, label="share of the true label")
    axes.set_xticks(range(n), [str(label) for label in labels], rotation=90, fontsize=font)
    axes.set_yticks(range(n), [str(label) for label in labels], fontsize=font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{title}: confusion matrix (rows sum to 1)")
    if n <= _ANNOTATE_MAX_LABELS:
        for row in range(n):
            for col in range(n):
                share = shares[row, col]
                axes.text(
                    col,
                    row,
                    f"{share:.2f}",
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if share > 0.5 else "black",
                )
    _save(figure, path)


def plot_reliability(
    bins: Sequence[Mapping[str, float]], path: Path, title: str, *, ece: float | None = None
) -> None:
    """Reliability diagram: accuracy per confidence bin against the diagonal.

    ``ece`` goes into the title; without it, the count-weighted mean gap of the bins (which
    is the expected calibration error of ``rasa_llm.models.calibration``) is shown.
    """
    total = sum(int(b["count"]) for b in bins)
    if ece is None:
        ece = sum(b["count"] * abs(b["confidence"] - b["accuracy"]) for b in bins) / max(total, 1)
    figure = Figure(figsize=(6.5, 6.0), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="perfect calibration")
    filled = [b for b in bins if b["count"] > 0]
    if filled:
        centres = [(b["lower"] + b["upper"]) / 2.0 for b in filled]
        widths = [b["upper"] - b["lower"] for b in filled]
        accuracy = [b["accuracy"] for b in filled]
        axes.bar(
            centres,
            accuracy,
            width=widths,
            edgecolor="black",
            color="tab:blue",
            alpha=0.8,
            label="accuracy in bin",
        )
        axes.plot(
            centres,
            [b["confidence"] for b in filled],
            "o",
            color="tab:red",
            markersize=4,
            label="mean confidence in bin",
        )
        for centre, height, b in zip(centres, accuracy, filled, strict=True):
            axes.annotate(
                f"n={int(b['count'])}",
                (centre, height),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.08)
    axes.set_xlabel("top-class confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{title}: reliability (ECE {ece:.4f}, {total} examples)")
    axes.legend(loc="upper left", fontsize=8)
    _save(figure, path)


def _series(
    history: Sequence[Mapping[str, Any]], x_key: str | None, key: str
) -> Tuple[List[float], List[float]]:
    """The (x, y) points of one key, skipping records without a finite value for it."""
    xs: List[float] = []
    ys: List[float] = []
    for index, record in enumerate(history):
        value: Any = record.get(key)
        if is_number(value) and math.isfinite(value):
            x: Any = record.get(x_key) if x_key else None
            xs.append(float(x) if is_number(x) else float(index + 1))
            ys.append(float(value))
    return xs, ys


def plot_training_curves(history: Sequence[Mapping[str, float]], path: Path, title: str) -> None:
    """Training and validation loss (left axis) and validation accuracy (right axis).

    The x axis is ``step`` when the records have it, else ``epoch``, else the record number.
    Keys that are missing are skipped; an empty history gives a plot that says so.
    """
    records: List[Dict[str, Any]] = [to_plain(record) for record in history]
    if any("step" in record for record in records):
        x_key: str | None = "step"
    elif any("epoch" in record for record in records):
        x_key = "epoch"
    else:
        x_key = None
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    loss_axes = figure.add_subplot()
    handles = []
    plotted_x: List[float] = []
    for key, colour in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
        xs, ys = _series(records, x_key, key)
        plotted_x += xs
        if xs:
            handles += loss_axes.plot(xs, ys, "o-", color=colour, markersize=3, label=key)
    xs, ys = _series(records, x_key, "val_accuracy")
    plotted_x += xs
    if xs:
        accuracy_axes = loss_axes.twinx()
        handles += accuracy_axes.plot(
            xs, ys, "s--", color="tab:green", markersize=3, label="val_accuracy"
        )
        accuracy_axes.set_ylabel("validation accuracy")
    if handles:
        # Below the plot: inside it, the legend would hide the start of the curves.
        loss_axes.legend(
            handles=handles,
            labels=[h.get_label() for h in handles],
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=len(handles),
            frameon=False,
        )
    else:
        loss_axes.text(0.5, 0.5, "no losses recorded", ha="center", va="center")
    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(set(plotted_x)) == 1:  # one point: x +- 1, not matplotlib's +- 5 %
        loss_axes.set_xlim(plotted_x[0] - 1, plotted_x[0] + 1)
    loss_axes.set_xlabel(x_key or "record")
    loss_axes.set_ylabel("loss")
    loss_axes.set_title(f"{title}: training curves")
    _save(figure, path)
