"""The encoder benchmark's figures: latency, paired accuracy tests, calibration, the table.

Plain functions over the predictions and timings the measuring loop collects; the
adoption rule is issue 7's (lose at most 0.3 points of accuracy).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from bench.encoder_variants import REFERENCE


def latency_summary(ms: Sequence[float]) -> Dict[str, float]:
    values = np.asarray(ms, dtype=np.float64)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
        # A process stopped or starved mid-call shows here (and in the mean), not at p95.
        "max_ms": float(values.max()),
    }


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    Paired, because both variants answer the same messages: only the messages on which
    they disagree carry information about which is more accurate.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference_ci(b: int, c: int, n: int, *, z: float = 1.96) -> Tuple[float, float]:
    """95 % interval, in points, of accuracy(variant) − accuracy(reference) on ``n`` pairs.

    ``b``: reference right, variant wrong; ``c``: reference wrong, variant right. The
    usual normal interval for a difference of paired proportions.
    """
    if n == 0:
        return (0.0, 0.0)
    diff = (c - b) / n
    var = ((b + c) / n - diff**2) / n
    half = z * math.sqrt(max(var, 0.0))
    return (100 * (diff - half), 100 * (diff + half))


def compare_predictions(
    gold: Sequence[str], predictions: Mapping[str, Sequence[str]], *, reference: str = REFERENCE
) -> Dict[str, Dict[str, Any]]:
    """Accuracy, its change in points against ``reference``, and agreement with it."""
    truth = np.asarray(gold)
    ref = np.asarray(predictions[reference])
    ref_right = ref == truth
    rows: Dict[str, Dict[str, Any]] = {}
    for name, predicted in predictions.items():
        pred = np.asarray(predicted)
        right = pred == truth
        b = int(np.sum(ref_right & ~right))
        c = int(np.sum(~ref_right & right))
        low, high = paired_difference_ci(b, c, len(truth))
        rows[name] = {
            "accuracy": float(right.mean()),
            "delta_points": float(100 * (right.mean() - ref_right.mean())),
            "delta_points_ci95": [low, high],
            "agreement_with_reference": float(np.mean(pred == ref)),
            "reference_right_variant_wrong": b,
            "reference_wrong_variant_right": c,
            "mcnemar_p": mcnemar_exact_p(b, c),
        }
    return rows


def ratios(
    rows: Dict[str, Dict[str, Any]], keys: Sequence[str], *, reference: str = REFERENCE
) -> None:
    """Add ``<key>_ratio`` (variant ÷ reference) to every row, in place."""
    for row in rows.values():
        for key in keys:
            base = rows[reference].get(key)
            if base and key in row:
                row[f"{key}_ratio"] = row[key] / base


def adopt(delta_points: float, *, max_drop_points: float = 0.3) -> bool:
    """Issue 7's rule: adopt by default if accuracy drops by no more than 0.3 points."""
    return delta_points >= -max_drop_points - 1e-9


def markdown_table(result: Dict[str, Any]) -> str:
    """The table docs/benchmarks.md shows for one data set."""
    rows = result["variants"]
    lines = [
        "| variant | p50 ms | p95 ms | p50 ratio | p95 ratio | load s | size MB | "
        "RSS growth MiB | accuracy | Δ points (95 % CI) | agreement | ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, row in rows.items():
        low, high = row["delta_points_ci95"]
        ece = f"{row['ece']:.4f}" if "ece" in row else ""
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} "
            f"| {row.get('p50_ms_ratio', 1.0):.2f} | {row.get('p95_ms_ratio', 1.0):.2f} "
            f"| {row['load_seconds']:.2f} | {row['size_bytes'] / 1e6:.1f} "
            f"| {row['rss_growth_mib']:.0f} | {100 * row['accuracy']:.2f} "
            f"| {row['delta_points']:+.2f} ({low:+.2f}, {high:+.2f}) "
            f"| {100 * row['agreement_with_reference']:.2f} % | {ece} |"
        )
    return "\n".join(lines)


def calibration_figures(
    gold: Sequence[str],
    labels: Sequence[str],
    logits: Mapping[str, np.ndarray],
    temperature: float,
    *,
    own: Optional[Mapping[str, float]] = None,
) -> Dict[str, Dict[str, float]]:
    """Expected calibration error of each variant with the model's stored temperature
    (``own[variant]`` where the model stores one for it, as the int8 graph's; else the
    one fitted at training on float32 logits), and with the temperature that would be
    best for its own logits on these messages (fitted on them: a bound, not a deployable
    figure). Close figures mean the stored temperature serves the variant as well."""
    from rasa_llm.models.calibration import expected_calibration_error, fit_temperature, softmax

    truth = np.asarray([list(labels).index(label) for label in gold])
    figures: Dict[str, Dict[str, float]] = {}
    for name, rows in logits.items():
        best = fit_temperature(rows, truth)
        stored = (own or {}).get(name, temperature)
        figures[name] = {
            "stored_temperature": stored,
            "ece": expected_calibration_error(softmax(rows, temperature=stored), truth),
            "best_temperature": best,
            "ece_best_temperature": expected_calibration_error(
                softmax(rows, temperature=best), truth
            ),
        }
    return figures
