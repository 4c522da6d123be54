"""What the channel benchmarks (``bench.channel_*``) share.

Each benchmark keeps its own channel set-up (fakes, signing, payloads, servers); this
module holds the rest: the common command-line options, the per-level summary of
latencies, the alternation of channels between levels, the results document, the
Markdown table with ratio rows, and writing the results to ``--out``.

It imports nothing from the tests nor numpy at import time: the Rasa server imports
the benchmarks' stock channel classes, and with them this module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def make_parser(
    doc: Optional[str],
    *,
    model: Path,
    text_help: str,
    warmup: Optional[int] = None,
    warmup_help: str = "unmeasured messages per channel",
    switches: Optional[Mapping[str, str]] = None,
) -> argparse.ArgumentParser:
    """A parser described by the first line of `doc`, with :func:`add_common_arguments`."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    add_common_arguments(
        parser,
        model=model,
        text_help=text_help,
        warmup=warmup,
        warmup_help=warmup_help,
        switches=switches,
    )
    return parser


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    model: Path,
    text_help: str,
    warmup: Optional[int] = None,
    warmup_help: str = "unmeasured messages per channel",
    switches: Optional[Mapping[str, str]] = None,
) -> None:
    """Add the options every channel benchmark takes, in this order.

    ``--messages`` (per conversation, default 20), ``--concurrency`` (levels, default
    1 10 50), ``--text`` (help `text_help`, default "hello"), ``--warmup`` (only when
    `warmup`, its default, is given), one ``store_true`` flag per entry of `switches`
    (flag -> help), ``--model`` (default `model`) and ``--out`` (default
    bench/results).
    """
    parser.add_argument("--messages", type=int, default=20, help="per conversation")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--text", default="hello", help=text_help)
    if warmup is not None:
        parser.add_argument("--warmup", type=int, default=warmup, help=warmup_help)
    for flag, help_text in (switches or {}).items():
        parser.add_argument(flag, action="store_true", help=help_text)
    parser.add_argument("--model", type=Path, default=model)
    parser.add_argument("--out", type=Path, default=RESULTS)


def summarize(latencies: List[float], wall_seconds: float) -> Dict[str, float]:
    """One level's figures from its latencies (seconds) and its wall time (seconds).

    Keys: ``messages``, ``messages_per_second`` (all messages / wall time), ``p50_ms``,
    ``p95_ms`` and ``mean_ms``.
    """
    import numpy as np

    return {
        "messages": len(latencies),
        "messages_per_second": len(latencies) / wall_seconds,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


async def measure(conversations: Iterable[Awaitable[List[float]]]) -> Dict[str, float]:
    """Run the conversations at once and :func:`summarize` all their latencies.

    The wall time runs from just before the conversations are started to the end of
    the last one; pass a generator so that none starts before the clock does.
    """
    started = time.perf_counter()
    results = await asyncio.gather(*conversations)
    wall = time.perf_counter() - started
    return summarize([value for result in results for value in result], wall)


def take_turns(
    names: Sequence[str],
    concurrencies: Sequence[int],
    run_level: Callable[[str, int], Dict[str, float]],
) -> List[Dict[str, Any]]:
    """Measure every channel at every level, the channels taking turns going first.

    At the first level the channels run in the order of `names`, at the second in the
    reverse order, and so on. ``run_level(name, concurrency)`` measures one channel at
    one level. Each row: ``concurrency``, ``first`` (the channel that went first) and
    each channel's figures under its name.
    """
    levels = []
    for index, concurrency in enumerate(concurrencies):
        order = list(names) if index % 2 == 0 else list(reversed(names))
        row: Dict[str, Any] = {"concurrency": concurrency, "first": order[0]}
        for name in order:
            row[name] = run_level(name, concurrency)
        levels.append(row)
    return levels


def machine() -> Dict[str, str]:
    """The Python version and platform the benchmark ran on."""
    return {"python": platform.python_version(), "platform": platform.platform()}


def results_document(
    benchmark: str, args: argparse.Namespace, levels: List[Dict[str, Any]], **extra: Any
) -> Dict[str, Any]:
    """The results as written to JSON, keys in this order.

    ``benchmark``, ``text``, ``messages_per_conversation``, ``warmup_messages`` (when
    the benchmark has ``--warmup``), ``model``, the `extra` keys, ``machine`` and
    ``levels``.
    """
    results: Dict[str, Any] = {
        "benchmark": benchmark,
        "text": args.text,
        "messages_per_conversation": args.messages,
    }
    if "warmup" in vars(args):
        results["warmup_messages"] = args.warmup
    results["model"] = str(args.model)
    results.update(extra)
    results["machine"] = machine()
    results["levels"] = levels
    return results


def markdown_table(
    levels: Iterable[Mapping[str, Any]],
    ours: Mapping[str, Tuple[str, str]],
    stock_key: str,
    stock_label: str,
) -> str:
    """A Markdown table of the levels with a ratio row per channel of ours.

    `ours` maps each of our channels' keys in a level to its label in the table and
    its name in the ratio row ("ratio NAME/stock"); a key missing from a level is left
    out of that level. Per level: a row per channel of ours, the stock row, then a
    ratio row (ours / stock) per channel of ours for msg/s, p50 and p95.
    """
    lines = [
        "| conversations | channel | msg/s | p50 ms | p95 ms |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for row in levels:
        present = [key for key in ours if key in row]
        stock = row[stock_key]
        for label, values in [(ours[key][0], row[key]) for key in present] + [(stock_label, stock)]:
            lines.append(
                f"| {row['concurrency']} | {label} | {values['messages_per_second']:.1f} "
                f"| {values['p50_ms']:.0f} | {values['p95_ms']:.0f} |"
            )
        for key in present:
            values = row[key]
            lines.append(
                f"| {row['concurrency']} | ratio {ours[key][1]}/stock "
                f"| {values['messages_per_second'] / stock['messages_per_second']:.2f}x "
                f"| {values['p50_ms'] / stock['p50_ms']:.2f}x "
                f"| {values['p95_ms'] / stock['p95_ms']:.2f}x |"
            )
    return "\n".join(lines)


def write_results(out_dir: Path, name: str, results: Mapping[str, Any]) -> Path:
    """Write `results` as indented JSON to ``out_dir/name.json`` (folders made as needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def report(out_dir: Path, results: Mapping[str, Any], table: str) -> Path:
    """Write the results (named after their ``benchmark``), print the table and where."""
    path = write_results(out_dir, str(results["benchmark"]), results)
    print(table)
    print(f"\nwritten to {path}")
    return path
