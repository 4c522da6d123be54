"""The report of a training run: JSON for machines, Markdown and PNG plots for people.

``write_report`` writes ``report.json``, ``report.md``, ``confusion.png``,
``reliability.png`` and ``curves.png`` into one folder. The plots are drawn on
``matplotlib.figure.Figure`` objects rendered by the Agg canvas, never through pyplot:
nothing opens a window, nothing changes the process-wide backend, and no figure stays
registered after it is saved (pyplot warns after 20 open figures).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Headline figures, in this order, with their names in the Markdown table.
_HEADLINE = {
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "ece": "Expected calibration error",
    "in_scope_accuracy": "In-scope accuracy",
    "oos_recall": "Out-of-scope recall",
    "auroc": "AUROC (out of scope vs in scope)",
    "threshold": "Out-of-scope threshold (out of scope when confidence < threshold)",
    "train_seconds": "Training time",
}
# Keys shown in their own section of the Markdown, not under "Other figures".
_SECTIONS = {
    "held_out_labels",
    "per_class",
    "settings",
    "operating_points",
    "served_int8",
    "soup",
}
# Up to this many labels, the confusion plot writes the share into each cell.
_ANNOTATE_MAX_LABELS = 20
_DPI = 100


def write_report(
    out_dir: Path,
    report: Mapping[str, Any],
    *,
    labels: Sequence[str],
    confusion: np.ndarray,
    reliability: Sequence[Mapping[str, float]],
    history: Sequence[Mapping[str, float]],
    title: str,
) -> Dict[str, Path]:
    """Write the report files into ``out_dir`` (created if missing); return their paths.

    ``report.json`` holds exactly ``report`` (numpy numbers and arrays become plain Python).
    ``report.md`` shows the headline figures, the held-out (out-of-scope) labels, the
    per-class figures worst first, the settings and the plots.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "report.md",
        "confusion": out_dir / "confusion.png",
        "reliability": out_dir / "reliability.png",
        "curves": out_dir / "curves.png",
    }
    plain = to_plain(report)
    paths["json"].write_text(json.dumps(plain, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    paths["markdown"].write_text(_markdown(plain, title), encoding="utf-8")
    plot_confusion(confusion, labels, paths["confusion"], title)
    ece = plain.get("ece")
    plot_reliability(reliability, paths["reliability"], title, ece=ece if _is_number(ece) else None)
    plot_training_curves(history, paths["curves"], title)
    return paths


def to_plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and Paths turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any, *, rate: bool = False) -> str:
    """One Markdown table cell, pipes escaped: rates to 4 decimals, other floats as written."""
    if isinstance(value, float) and rate:
        text = f"{value:.4f}"
    elif isinstance(value, float):
        text = f"{value:.6g}"  # a learning rate of 2e-05 must not become 0.0000
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, first_left: bool = False
) -> List[str]:
    """A Markdown section: heading, then a table of right-aligned figures."""
    align = ["---" if first_left and i == 0 else "---:" for i in range(len(header))]
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _headline_value(key: str, value: float) -> str:
    if key == "train_seconds":
        return f"{value:.0f} s"
    return f"{value:.4f}"


def _rate_or_blank(value: Any) -> str:
    return "" if value is None else _cell(value, rate=True)


def _int8_verdict(int8: Mapping[str, Any]) -> List[str]:
    """Whether a bot's ``quantize: auto`` serves this graph, from its agreement."""
    from rasa_llm.models.serving import DEFAULT_MIN_AGREEMENT, INT8_META, int8_refusal

    if not _is_number(int8.get("agreement")):
        return []
    refusal = int8_refusal({INT8_META: int8}, DEFAULT_MIN_AGREEMENT)
    verdict = (
        f"A bot with `quantize: auto` answers in float32: {refusal}."
        if refusal
        else (
            f"A bot with `quantize: auto` serves this graph: it kept the float32 model's "
            f"top label on {100 * float(int8['agreement']):.2f} % of "
            f"{int8.get('agreement_texts')} {int8.get('agreement_measured_on')} texts "
            f"(`int8_min_agreement` {DEFAULT_MIN_AGREEMENT})."
        )
    )
    return [verdict, ""]


def _soup_table(soup: Mapping[str, Any]) -> List[str]:
    """The runs a soup averaged: each one's figures, whether it was kept, the result."""
    rows = [
        [
            f"`{entry['path']}`",
            _rate_or_blank(entry.get("validation_accuracy")),
            _rate_or_blank(entry.get("test_accuracy")),
            "yes" if entry.get("kept") else "no",
        ]
        for entry in soup.get("ingredients", [])
    ]
    rows.append(["the soup", _rate_or_blank(soup.get("validation_accuracy")), "above", ""])
    rows.append(
        [
            "ensemble of the kept runs (one pass per run)",
            "",
            _rate_or_blank(soup.get("ensemble_test_accuracy")),
            "",
        ]
    )
    return _table(
        f"Soup ({soup.get('method')}: runs averaged into one model)",
        ["Run", "Validation accuracy", "Test accuracy", "Kept"],
        rows,
        first_left=True,
    )


def _markdown(report: Mapping[str, Any], title: str) -> str:
    lines: List[str] = [f"# {title}", ""]
    headline = [(k, report[k]) for k in _HEADLINE if _is_number(report.get(k))]
    names = dict(_HEADLINE)
    if report.get("oos_score") == "softmax+neighbour":
        # The threshold is in z-units of the neighbour score, not a confidence.
        names["threshold"] = (
            "Out-of-scope threshold (out of scope when the softmax+neighbour score "
            "< threshold; `oos_score` in predictions.csv)"
        )
    if headline:
        lines += ["| Figure | Value |", "|---|---:|"]
        lines += [f"| {names[k]} | {_headline_value(k, v)} |" for k, v in headline]
        lines.append("")
    held_out = report.get("held_out_labels")
    if held_out:
        lines += [f"## Out-of-scope intents (held out of training, {len(held_out)})", ""]
        lines += [", ".join(f"`{label}`" for label in held_out), ""]
    points = report.get("operating_points")
    if isinstance(points, Sequence) and points:
        lines += _table(
            "Other thresholds (each chosen on validation for its target recall)",
            ["Target recall", "Threshold", "In-scope accuracy", "Out-of-scope recall"],
            [
                [
                    _cell(point["target_oos_recall"]),
                    _cell(point["threshold"]),
                    _cell(point["in_scope_accuracy"], rate=True),
                    _cell(point["oos_recall"], rate=True),
                ]
                for point in points
            ],
        )
    int8 = report.get("served_int8")
    if isinstance(int8, Mapping) and int8:
        lines += _table(
            "As a bot on a CPU serves it (int8 ONNX Runtime graph, stored with the model)",
            ["Figure", "Value"],
            [[_HEADLINE.get(k, f"`{k}`"), _cell(v)] for k, v in int8.items() if _is_number(v)],
            first_left=True,
        )
        lines += _int8_verdict(int8)
    soup = report.get("soup")
    if isinstance(soup, Mapping) and soup:
        lines += _soup_table(soup)
    others = {
        k: v
        for k, v in report.items()
        if k not in _HEADLINE and k not in _SECTIONS and isinstance(v, (int, float, str, bool))
    }
    if others:
        lines += ["## Other figures", "", "| Key | Value |", "|---|---:|"]
        lines += [f"| `{k}` | {_cell(others[k])} |" for k in sorted(others)]
        lines.append("")
    per_class = report.get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        ranked = sorted(per_class.items(), key=lambda item: (item[1].get("f1", 0.0), item[0]))
        lines += _table(
            "Per class (worst F1 first)",
            ["Label", "Precision", "Recall", "F1", "Support"],
            [
                [f"`{label}`"]
                + [
                    _cell(figures.get(k, ""), rate=True)
                    for k in ("precision", "recall", "f1", "support")
                ]
                for label, figures in ranked
            ],
            first_left=True,
        )
    settings = report.get("settings")
    if isinstance(settings, Mapping) and settings:
        lines += ["## Settings", "", "| Setting | Value |", "|---|---|"]
        lines += [f"| `{k}` | {_cell(settings[k])} |" for k in sorted(settings)]
        lines.append("")
    lines += [
        "## Plots",
        "",
        "![Confusion matrix](confusion.png)",
        "",
        "![Reliability diagram](reliability.png)",
        "",
        "![Training curves](curves.png)",
        "",
    ]
    return "\n".join(lines)


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)  # attaches itself to the figure; no pyplot, no window
    figure.savefig(path, dpi=_DPI)
    # Without pyplot the figure is not registered anywhere; dropping its artists frees
    # the memory at once instead of at the next garbage collection.
    figure.clear()


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix; shares written in the cells up to 20 labels."""
    counts = np.asarray(confusion, dtype=np.float64)
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(
            f"confusion matrix has shape {counts.shape} but there are {n} labels: "
            "pass the labels in label-id order"
        )
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
        if _is_number(value) and math.isfinite(value):
            x: Any = record.get(x_key) if x_key else None
            xs.append(float(x) if _is_number(x) else float(index + 1))
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
