"""How long a generative fallback reply takes, and what makes it faster.

    .venv/bin/python -m bench.fallback_latency [--questions 20] [--bot-dir bot]
        [--data-dir bench/data]

Sends the first N answerable questions of ``fallback_eval.yml`` through
``GenerativeFallback`` (bot/fallback.yml) once per variant, with a deadline long
enough (60 s) that every reply is measured to its end rather than cut off, and prints
p50/p95 of the whole reply (mask, retrieve, prompt, generate, guard) and how often the
reply would have met the configured deadline. Variants change one setting each against
the default: fewer passages in the prompt (shorter prefill), fewer new tokens, int8
weights, more CPU threads. Run it on a quiet machine: other load changes CPU figures
several times over.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import yaml

from bench.fallback_data import load_questions
from bench.fallback_eval import apply_overrides
from bench.fallback_report import percentile

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: List[Tuple[str, List[str]]] = [
    ("default (2 passages, 60 tokens, float32, 1 thread)", []),
    ("3 passages", ["top_k=3"]),
    ("1 passage", ["top_k=1"]),
    ("30 new tokens", ["max_new_tokens=30", "max_sentences=2"]),
    ("int8 weights", ["generation.local.quantize=int8"]),
    ("1 passage + int8", ["top_k=1", "generation.local.quantize=int8"]),
    (f"{os.cpu_count()} CPU threads", [f"generation.local.cpu_threads={os.cpu_count()}"]),
]


async def measure(config: Dict[str, Any], bot_dir: Path, texts: Sequence[str]) -> Dict[str, Any]:
    from rasa_llm.fallback.generative_fallback import FallbackRequest, GenerativeFallback

    fallback = GenerativeFallback.from_config(config, bot_dir=bot_dir)
    await asyncio.to_thread(fallback.backend.warm_up)  # type: ignore[attr-defined]
    # The first generation after a load is slower (allocations, caches): not counted.
    await fallback.answer(FallbackRequest(texts[0], (), "rest"))
    seconds: List[float] = []
    kinds: Dict[str, int] = {}
    for text in texts:
        reply = await fallback.answer(FallbackRequest(text, (), "rest"))
        if reply.reason != "low_relevance":  # those never reach the model
            seconds.append(reply.seconds)
        kinds[reply.kind] = kinds.get(reply.kind, 0) + 1
    await fallback.close()
    return {"seconds": seconds, "kinds": kinds, "backend": fallback.backend.name}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--bot-dir", type=Path, default=ROOT / "bot")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--variant", action="append", help="only variants whose name has this")
    args = parser.parse_args(argv)
    base = yaml.safe_load((args.bot_dir / "fallback.yml").read_text()) or {}
    from rasa_llm.fallback.generative_fallback import get_default_config

    deadline = float(base.get("deadline_s", get_default_config()["deadline_s"]))
    questions = [q for q in load_questions(args.data_dir / "fallback_eval.yml") if q.answerable]
    texts = [q.text for q in questions[: args.questions]]
    print(f"{len(texts)} answerable questions, {os.cpu_count()} CPUs, deadline {deadline} s")
    print("| variant | replies timed | p50 s | p95 s | mean s | within deadline |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, overrides in VARIANTS:
        if args.variant and not any(v in name for v in args.variant):
            continue
        config = apply_overrides(base, [*overrides, "deadline_s=60"])
        started = time.monotonic()
        result = asyncio.run(measure(config, args.bot_dir, texts))
        times = result["seconds"]
        within = sum(t <= deadline for t in times)
        p50, p95 = percentile(times, 50) or 0.0, percentile(times, 95) or 0.0
        print(
            f"| {name} | {len(times)} | {p50:.2f} | {p95:.2f}"
            f" | {statistics.fmean(times) if times else 0:.2f} | {within}/{len(times)} |",
            flush=True,
        )
        print(f"  ({result['backend']}, {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
