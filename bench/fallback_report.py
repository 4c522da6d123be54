"""The fallback benchmark's totals over its per-item rows, and their Markdown tables."""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

from bench.fallback_data import KINDS, LEAK_TYPES


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Linear-interpolated percentile (like numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(
    question_rows: Sequence[Mapping[str, Any]],
    attack_rows: Sequence[Mapping[str, Any]],
    *,
    backend: Optional[str] = None,
) -> Dict[str, Any]:
    """Totals over the per-item rows written by :func:`evaluate`."""

    def by_kind(rows: Sequence[Mapping[str, Any]]) -> Dict[str, int]:
        return {k: sum(r["kind"] == k for r in rows) for k in KINDS}

    def outcomes(rows: Sequence[Mapping[str, Any]], name: str) -> int:
        return sum(r["outcome"] == name for r in rows)

    answerable = [r for r in question_rows if r["answerable"]]
    other = [r for r in question_rows if not r["answerable"]]
    seconds = [r["seconds"] for r in (*question_rows, *attack_rows)]
    leaks = {t: sum(bool(r["leaks"][t]) for r in attack_rows) for t in LEAK_TYPES}
    categories = sorted({r["category"] for r in attack_rows})
    return {
        "backend": backend,
        "questions": {
            "total": len(question_rows),
            "by_kind": by_kind(question_rows),
            "answerable": {
                "total": len(answerable),
                "by_kind": by_kind(answerable),
                "correct": outcomes(answerable, "correct"),
                "incorrect": outcomes(answerable, "incorrect"),
                "refused": outcomes(answerable, "refused"),
                "correct_rate": _rate(outcomes(answerable, "correct"), len(answerable)),
                # Correct answers the model wrote (not a passage sent verbatim).
                "correct_generated": sum(
                    r["outcome"] == "correct" and r["kind"] == "generated" for r in answerable
                ),
            },
            "not_answerable": {
                "total": len(other),
                "by_kind": by_kind(other),
                "refused_correctly": outcomes(other, "refused_correctly"),
                "answered_anyway": outcomes(other, "answered_anyway"),
                "off_topic_passage": outcomes(other, "off_topic_passage"),
                "refused_rate": _rate(outcomes(other, "refused_correctly"), len(other)),
            },
            "unsupported_claims": sum(bool(r["unsupported_claim"]) for r in question_rows),
        },
        "adversarial": {
            "total": len(attack_rows),
            "by_kind": by_kind(attack_rows),
            "with_any_leak": sum(any(r["leaks"].values()) for r in attack_rows),
            "leaks": leaks,
            "leaks_by_category": {
                c: sum(any(r["leaks"].values()) for r in attack_rows if r["category"] == c)
                for c in categories
            },
            "generated_with_unsupported_facts": sum(bool(r["unsupported"]) for r in attack_rows),
        },
        "latency_s": {
            "p50": _round(percentile(seconds, 50)),
            "p95": _round(percentile(seconds, 95)),
            "max": _round(max(seconds) if seconds else None),
        },
    }


def _rate(count: int, total: int) -> Optional[float]:
    return round(count / total, 3) if total else None


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


def markdown(report: Mapping[str, Any]) -> str:
    """The summary as Markdown tables, then the items that need a look."""
    s = report["summary"]
    q, a, lat = s["questions"], s["adversarial"], s["latency_s"]
    ans, other = q["answerable"], q["not_answerable"]

    def kinds(counts: Mapping[str, int]) -> str:
        return " / ".join(str(counts[k]) for k in KINDS)

    lines = [
        f"Generative fallback evaluation (backend: {s.get('backend') or 'unknown'})",
        "",
        "| Set | Items | generated / passage / scripted | Result |",
        "|---|---:|---|---|",
        f"| Answerable | {ans['total']} | {kinds(ans['by_kind'])} | correct {ans['correct']} "
        f"({ans.get('correct_generated', 0)} generated), incorrect {ans['incorrect']}, "
        f"refused {ans['refused']} |",
        f"| Not answerable | {other['total']} | {kinds(other['by_kind'])} | refused correctly "
        f"{other['refused_correctly']}, answered anyway {other['answered_anyway']}, "
        f"off-topic passage {other['off_topic_passage']} |",
        f"| Adversarial | {a['total']} | {kinds(a['by_kind'])} "
        f"| with a leak {a['with_any_leak']} |",
        "",
        "| Measure | Value |",
        "|---|---:|",
        f"| Unsupported claims sent (target 0) | {q['unsupported_claims']} |",
    ]
    lines += [f"| Leaks: {t.replace('_', ' ')} | {a['leaks'][t]} |" for t in LEAK_TYPES]
    lines += [
        f"| Latency p50 / p95 (s) | {lat['p50']} / {lat['p95']} |",
    ]
    flagged = [
        (r["id"], r["kind"], r["outcome"], ", ".join(r["unsupported"] + r["wrong"]))
        for r in report["questions"]
        if r["outcome"] in ("incorrect", "answered_anyway") or r["unsupported_claim"]
    ] + [
        (r["id"], r["kind"], r["category"], "; ".join(t for t in LEAK_TYPES if r["leaks"][t]))
        for r in report["attacks"]
        if any(r["leaks"].values())
    ]
    if flagged:
        lines += ["", "| Item | Kind | Outcome | Why |", "|---|---|---|---|"]
        lines += [f"| {i} | {k} | {o} | {w} |" for i, k, o, w in flagged]
    return "\n".join(lines)
