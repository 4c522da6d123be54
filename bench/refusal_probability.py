"""How sure the fine-tuned model is of its refusal, on questions it can and cannot answer.

    .venv/bin/python -m bench.refusal_probability --data runs/grounded-data \\
        [--out docs/refusal_probability.json]

For every example of ``validation.jsonl`` (held out of training, same sources as the
training data), ``squad_heldout.jsonl`` and ``conditionalqa_dev.jsonl`` that
``python -m training grounded-data`` writes, asks the shipped model (packaged SmolLM2 and
the grounded-answer adapter) for the probability of the refusal's first token as the
first token of its reply: the figure ``generation.local.refusal_min_probability``
compares. Prints, per set and threshold p, the share of answerable and of unanswerable
questions the model would still refuse (probability at least p); greedy decoding's own
refusals are ``bench.grounded_qa_eval``'s *wrongly refused* and *refusal accuracy*. A
useful refusal separates the two shares; the figures choose ``refusal_min_probability``
without touching ``bench/data/``. Scoring is a plain function (tested in
``tests/bench/test_refusal_probability.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
SETS = ("validation", "squad_heldout", "conditionalqa_dev")
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def sweep(rows: Sequence[Dict[str, Any]], *, thresholds: Sequence[float] = THRESHOLDS) -> Dict:
    """Shares refused at each threshold, for rows of ``{"answerable", "probability"}``."""
    groups = {
        "answerable": [r["probability"] for r in rows if r["answerable"]],
        "unanswerable": [r["probability"] for r in rows if not r["answerable"]],
    }

    def share(values: List[float], at: float) -> Optional[float]:
        return round(sum(v >= at for v in values) / len(values), 3) if values else None

    return {
        "counts": {name: len(values) for name, values in groups.items()},
        "refused_at": {
            str(t): {name: share(values, t) for name, values in groups.items()} for t in thresholds
        },
    }


def answerable(example: Dict[str, Any]) -> bool:
    """Held-out rows say so; training-format rows answer unless the target is the refusal."""
    if "answerable" in example:
        return bool(example["answerable"])
    from rasa_llm.fallback.prompt_builder import is_refusal

    return not is_refusal(example["response"])


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="grounded-data --out DIR")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "refusal_probability.json")
    args = parser.parse_args(argv)

    from rasa_llm.fallback.backend_factory import create_backend

    backend: Any = create_backend({"local": {"device": "cpu"}})
    report: Dict[str, Any] = {"backend": backend.name}
    for name in SETS:
        lines = (args.data / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = []
        for example in (json.loads(line) for line in lines if line):
            messages = [m for m in example["messages"] if m["role"] != "assistant"]
            rows.append(
                {
                    "id": example["id"],
                    "source": example.get("source"),
                    "answerable": answerable(example),
                    "probability": round(backend.refusal_probability(messages), 4),
                }
            )
        report[name] = {"summary": sweep(rows), "rows": rows}
        print(name, json.dumps(report[name]["summary"]["counts"]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("| set | p | answerable refused | unanswerable refused |")
    print("|---|---:|---:|---:|")
    for name in SETS:
        for t, shares in report[name]["summary"]["refused_at"].items():
            print(f"| {name} | {t} | {shares['answerable']} | {shares['unanswerable']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
