"""The report of a training run: JSON for machines, Markdown and PNG plots for people.

``write_report`` writes ``report.json``, ``report.md``, ``confusion.png``,
``reliability.png`` and ``curves.png`` into one folder; :mod:`training.report_plots`
draws the plots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from training.plain import is_number, to_plain
from training.report_plots import plot_confusion, plot_reliability, plot_training_curves

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


def start_report(
    out_dir: Path, report: Mapping[str, Any], plots: Sequence[str]
) -> Tuple[Dict[str, Path], Any]:
    """Create ``out_dir`` and write ``report.json`` (``report`` as plain values) into it.

    Returns the paths of the report's files (``json``, ``markdown``, then ``<name>.png``
    for each of ``plots``) and the plain report the other files are written from.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    paths.update({name: out_dir / f"{name}.png" for name in plots})
    plain = to_plain(report)
    paths["json"].write_text(json.dumps(plain, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return paths, plain


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
    paths, plain = start_report(Path(out_dir), report, ("confusion", "reliability", "curves"))
    paths["markdown"].write_text(_markdown(plain, title), encoding="utf-8")
    plot_confusion(confusion, labels, paths["confusion"], title)
    ece = plain.get("ece")
    plot_reliability(reliability, paths["reliability"], title, ece=ece if is_number(ece) else None)
    plot_training_curves(history, paths["curves"], title)
    return paths


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

    if not is_number(int8.get("agreement")):
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
    headline = [(k, report[k]) for k in _HEADLINE if is_number(report.get(k))]
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
            [[_HEADLINE.get(k, f"`{k}`"), _cell(v)] for k, v in int8.items() if is_number(v)],
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
