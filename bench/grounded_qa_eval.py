"""Held-out grounded answering: SQuAD 2.0 and ConditionalQA questions the model never saw.

    .venv/bin/python -m bench.grounded_qa_eval --data runs/grounded-data \\
        [--per-set 50] [--out docs/grounded_qa_eval.json]

Reads ``squad_heldout.jsonl`` (whole Wikipedia articles held out of training) and
``conditionalqa_dev.jsonl`` (ConditionalQA's dev split; training used train) that
``python -m training grounded-data`` writes, each example the fallback's own prompt.
Asks the packaged SmolLM2 with the shipped grounded-answer adapter and without it
(``local.adapter: null``), greedily, up to 60 new tokens, and reports per set:

* answerable: *exact match* and *token F1* of the reply against the gold answers (SQuAD's
  normalisation: lower case, no punctuation or articles; the best gold), the share whose
  reply *contains* a gold answer (the model answers in a sentence, so exact match
  undercounts), and the share wrongly refused;
* unanswerable: *refusal accuracy* (the reply is the refusal form).

Scoring is plain functions (tested in ``tests/bench/test_grounded_qa_eval.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import string
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
SETS = ("squad_heldout", "conditionalqa_dev")


def normalise(text: str) -> str:
    """SQuAD's answer normalisation."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    ours, theirs = normalise(prediction).split(), normalise(gold).split()
    common = collections.Counter(ours) & collections.Counter(theirs)
    same = sum(common.values())
    if not ours or not theirs or same == 0:
        return 0.0
    precision, recall = same / len(ours), same / len(theirs)
    return 2 * precision * recall / (precision + recall)


def score(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Figures for rows of ``{"answerable", "answers", "reply", "refused"}``."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def best(r: Dict[str, Any], f: Any) -> float:
        return max((f(r["reply"], g) for g in r["answers"]), default=0.0)

    def share(values: List[float]) -> Optional[float]:
        return round(sum(values) / len(values), 3) if values else None

    return {
        "answerable": len(answerable),
        "exact_match": share(
            [best(r, lambda p, g: float(normalise(p) == normalise(g))) for r in answerable]
        ),
        "token_f1": share([best(r, token_f1) for r in answerable]),
        "contains_answer": share(
            [best(r, lambda p, g: float(normalise(g) in normalise(p))) for r in answerable]
        ),
        "wrongly_refused": share([float(r["refused"]) for r in answerable]),
        "unanswerable": len(unanswerable),
        "refusal_accuracy": share([float(r["refused"]) for r in unanswerable]),
    }


def read(path: Path, per_set: int) -> List[Dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if r["answerable"]][:per_set] + [
        r for r in rows if not r["answerable"]
    ][:per_set]


async def _replies(adapter: Optional[str], examples: List[Dict[str, Any]]) -> List[Dict]:
    from rasa_llm.fallback.backend_factory import create_backend
    from rasa_llm.fallback.prompt_builder import is_refusal

    backend = create_backend({"local": {"adapter": adapter}})
    rows = []
    try:
        for example in examples:
            started = time.monotonic()
            reply = await backend.generate(example["messages"], max_new_tokens=60, deadline_s=60)
            rows.append(
                {
                    "id": example["id"],
                    "answerable": example["answerable"],
                    "answers": example["answers"],
                    "reply": reply,
                    "refused": is_refusal(reply),
                    "seconds": round(time.monotonic() - started, 2),
                }
            )
    finally:
        await backend.close()
    return rows


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="grounded-data --out DIR")
    parser.add_argument("--per-set", type=int, default=50, help="answerable and unanswerable")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "grounded_qa_eval.json")
    args = parser.parse_args(argv)
    report: Dict[str, Any] = {}
    for model, adapter in (("fine-tuned", "auto"), ("un-tuned", None)):
        for name in SETS:
            rows = asyncio.run(_replies(adapter, read(args.data / f"{name}.jsonl", args.per_set)))
            report.setdefault(model, {})[name] = {"summary": score(rows), "rows": rows}
            print(model, name, json.dumps(report[model][name]["summary"]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("| model | set | EM | token F1 | contains answer | wrongly refused | refusal acc. |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model, sets in report.items():
        for name, result in sets.items():
            s = result["summary"]
            print(
                f"| {model} | {name} | {s['exact_match']} | {s['token_f1']} | "
                f"{s['contains_answer']} | {s['wrongly_refused']} | {s['refusal_accuracy']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
