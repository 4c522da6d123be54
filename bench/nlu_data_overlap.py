"""Is any of the bot's NLU data copied from a public benchmark? Counts exact matches.

    .venv/bin/python -m bench.nlu_data_overlap [--data ../shared/data]

Compares every example of bot/data/nlu.yml and bot/tests/nlu_test.yml (lower-cased,
whitespace collapsed, entity markup removed) with every text cell of every CSV file
under --data and every line of its `*_text.txt` files (Banking77, Bitext, airline and
TweetEval, all splits), exactly and again with punctuation dropped. Exits 1 if any
example matches, printing it; also reports held-out examples equal to training ones.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import List, Set, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "bot"
_MARKUP = re.compile(r"\[([^\]]+)\]\([^)]+\)|\[([^\]]+)\]\{[^}]*\}")


def normalised(text: str) -> str:
    text = _MARKUP.sub(lambda m: m.group(1) or m.group(2), text)
    return " ".join(text.lower().split())


def loose(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", normalised(text)).split())


def benchmark_texts(data: Path) -> Set[str]:
    texts: Set[str] = set()
    csv.field_size_limit(10**9)
    for path in sorted(data.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                texts.update(v for v in row.values() if isinstance(v, str) and v.strip())
    for path in sorted(data.rglob("*_text.txt")):
        texts.update(line for line in path.read_text(encoding="utf-8").splitlines() if line)
    return texts


def examples(path: Path) -> List[Tuple[str, str]]:
    """(intent, text) of every example in a Rasa NLU YAML file."""
    found = []
    for block in yaml.safe_load(path.read_text())["nlu"]:
        if "intent" in block:
            for line in block["examples"].splitlines():
                line = line.strip()
                if line.startswith("- "):
                    found.append((block["intent"], line[2:].strip()))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no benchmark data at {args.data}; pass --data <folder>", file=sys.stderr)
        return 2
    bench = benchmark_texts(args.data)
    exact = {normalised(t) for t in bench}
    no_punctuation = {loose(t) for t in bench}
    print(f"{len(bench)} benchmark texts under {args.data}")
    copied = 0
    files = {"train": BOT / "data" / "nlu.yml", "held out": BOT / "tests" / "nlu_test.yml"}
    for name, path in files.items():
        mine = examples(path)
        same = [e for e in mine if normalised(e[1]) in exact]
        similar = [e for e in mine if loose(e[1]) in no_punctuation]
        print(
            f"{name}: {len(mine)} examples; equal to a benchmark text: {len(same)}; "
            f"equal ignoring punctuation: {len(similar)}"
        )
        for intent, text in similar:
            print(f"    {intent}: {text}")
        copied += len(similar)
    train = {normalised(t) for _, t in examples(files["train"])}
    leaked = [t for _, t in examples(files["held out"]) if normalised(t) in train]
    print(f"held-out examples equal to a training example: {len(leaked)} {leaked}")
    return 1 if copied or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
