"""Chinese benchmarks (issue 26): multilingual-e5-small fine-tuned, and stock Rasa for Chinese.

    .venv/bin/python -m bench.chinese_benchmarks --data ../shared/data --steps STEP,...

(all steps without ``--steps``; ``pip install .[bench]`` first: jieba, snownlp). Each
step runs the real command line in a subprocess (``python -m training``, ``rasa train
nlu``, ``rasa test nlu``), times it, and merges its figures into
``docs/training_benchmarks.json`` under its name, as :mod:`bench.training_benchmarks`
does. Texts lose a stray byte-order mark and outer whitespace; empty ones are dropped.

- ``chnsenticorp``: ``python -m training sentiment`` (positive / negative) with e5 on
  the first ``--chnsenticorp-train`` rows of ChnSentiCorp's train (the floor's 3,000),
  ``--chnsenticorp-epochs``, 128 tokens; test accuracy on all 1,200 test rows.
- ``smp2017``: ``python -m training intent`` with e5 on SMP2017-ECDT's 2,299 training
  requests (31 domains), ``--smp-epochs``, 32 tokens; test accuracy and macro-F1 (667).
- ``shopping``: online_shopping_10_cats without empty reviews and repeated texts (the
  first kept), split stratified by category and label with seed 13 into
  ``--shopping-train`` / ``--shopping-test`` rows; e5 fine-tuned
  (``--shopping-epochs``) against snownlp (``sentiments > 0.5`` is positive) on the same
  test rows, overall and per category.
- ``stock_zh``: on SMP2017-ECDT and on bot/data/nlu_zh.yml (tested on
  bot/tests/nlu_test_zh.yml), ``rasa train nlu`` and ``rasa test nlu`` with
  bench/stock_config_zh.yml (Jieba, char 1-4-grams, DIET for ``--diet-epochs``) and with
  bot/config.yml (e5; without the sentiment analyzer on SMP2017-ECDT: it has no sentiment
  labels); then both models loaded here (``Agent.load``) parse each test message in turn,
  one ``parse_message`` at a time, alternating which goes first.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np
import yaml
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from bench.training_benchmarks import ENV, RASA, RESULTS, ROOT, run_training

STEPS = ("chnsenticorp", "smp2017", "shopping", "stock_zh")
E5 = "multilingual-e5-small"
BOT = ROOT / "bot"
SHOPPING_SEED = 13
SHOPPING_LABELS = {"1": "positive", "0": "negative"}
# online_shopping_10_cats' categories, in English for the report.
CATEGORIES = {
    "书籍": "books", "平板": "tablets", "手机": "phones", "水果": "fruit", "洗发水": "shampoo",
    "热水器": "water heaters", "蒙牛": "milk (Mengniu)", "衣服": "clothes",
    "计算机": "computers", "酒店": "hotels",
}  # fmt: skip
BENCH_EXTRA = "pip install '.[bench]'"
Row = Tuple[str, str]


def clean(text: str) -> str:
    return text.replace("\ufeff", "").strip()  # a stray byte-order mark, in the data


def read_rows(path: Path, *, text: str = "text", label: str = "label") -> List[Row]:
    """(text, label) of a CSV, cleaned; rows with an empty text are dropped."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = [(clean(r[text] or ""), clean(r[label] or "")) for r in csv.DictReader(f)]
    return [row for row in rows if row[0]]


def write_rows(path: Path, rows: Iterable[Sequence[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    return path


def first_per_label(rows: Sequence[Row], n: int | None) -> List[Row]:
    """The first ``n`` rows of each label, in file order (all rows when ``n`` is None)."""
    if n is None:
        return list(rows)
    seen: Dict[str, int] = defaultdict(int)
    kept = []
    for text, label in rows:
        seen[label] += 1
        if seen[label] <= n:
            kept.append((text, label))
    return kept


def shopping_rows(path: Path) -> List[Tuple[str, str, str]]:
    """(category, positive|negative, review): empty reviews and repeated texts dropped."""
    seen, kept = set(), []
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            review = clean(r["review"] or "")
            if review and review not in seen:
                seen.add(review)
                kept.append((r["cat"], SHOPPING_LABELS[r["label"]], review))
    return kept


def stratified_split(
    rows: Sequence[Tuple[str, str, str]], *, train: int, test: int, seed: int = SHOPPING_SEED
) -> Tuple[List[Tuple[str, str, str]], List[Tuple[str, str, str]]]:
    """``train`` and then ``test`` rows, disjoint, each stratified by (category, label)."""
    strata = [f"{cat}/{label}" for cat, label, _ in rows]
    train_rows, rest, _, rest_strata = train_test_split(
        list(rows), strata, train_size=train, random_state=seed, stratify=strata
    )
    if test >= len(rest):
        return train_rows, rest
    test_rows = train_test_split(rest, train_size=test, random_state=seed, stratify=rest_strata)[0]
    return train_rows, test_rows


def scores(gold: Sequence[str], predicted: Sequence[str]) -> Dict[str, float]:
    return {
        "accuracy": round(float(accuracy_score(gold, predicted)), 4),
        "macro_f1": round(float(f1_score(gold, predicted, average="macro")), 4),
    }


def per_group_accuracy(
    groups: Sequence[str], gold: Sequence[str], predicted: Sequence[str]
) -> Dict[str, Dict[str, float]]:
    """Accuracy and row count for each group (category)."""
    hits: Dict[str, List[bool]] = defaultdict(list)
    for group, g, p in zip(groups, gold, predicted, strict=True):
        hits[group].append(g == p)
    return {
        k: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)} for k, v in sorted(hits.items())
    }


def snownlp_labels(texts: Sequence[str]) -> Tuple[List[str], float]:
    """snownlp's label for each text (``sentiments > 0.5``: positive) and the seconds it took."""
    try:
        from snownlp import SnowNLP
    except ImportError as e:
        raise SystemExit(f"the shopping step needs snownlp: {BENCH_EXTRA}") from e
    started = time.perf_counter()
    labels = ["positive" if SnowNLP(t).sentiments > 0.5 else "negative" for t in texts]
    return labels, time.perf_counter() - started


def nlu_yaml(rows: Sequence[Row]) -> str:
    """Rasa NLU YAML with each text an example of its label's intent."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    messages = [Message.build(text, label) for text, label in rows]
    return RasaYAMLWriter().dumps(TrainingData(messages))


def nlu_examples(path: Path) -> List[Row]:
    """(text without entity markup, intent) of every example in a Rasa NLU file."""
    from rasa.shared.nlu.training_data.loading import load_data

    return [(m.get("text"), m.get("intent")) for m in load_data(str(path)).intent_examples]


def stock_config(*, epochs: int) -> Dict[str, Any]:
    """bench/stock_config_zh.yml with DIET's epochs set."""
    config = yaml.safe_load((ROOT / "bench" / "stock_config_zh.yml").read_text())
    for component in config["pipeline"]:
        if component["name"] == "DIETClassifier":
            component["epochs"] = epochs
    return config


def our_config(*, sentiment: bool) -> Dict[str, Any]:
    """bot/config.yml; without its sentiment analyzer for data with no sentiment labels."""
    config = yaml.safe_load((BOT / "config.yml").read_text())
    if not sentiment:
        config["pipeline"] = [
            c for c in config["pipeline"] if c["name"] != "rasa_llm.TransformerSentimentAnalyzer"
        ]
    return config


def latency_summary(milliseconds: Sequence[float]) -> Dict[str, float]:
    values = np.asarray(milliseconds, dtype=float)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "mean_ms": round(float(values.mean()), 2),
        "messages": int(values.size),
    }


def rasa_run(args: List[str], folder: Path, log: str) -> Tuple[float, str]:
    """Run ``rasa ARGS`` in ``folder`` (output to ``folder/log``); wall seconds and command."""
    started = time.perf_counter()
    with (folder / log).open("w") as out:
        subprocess.run([RASA, *args], cwd=folder, env=ENV, check=True, stdout=out, stderr=out)
    return time.perf_counter() - started, " ".join(["rasa", *args])


def parse_latencies(
    models: Dict[str, Path], texts: Sequence[str], *, warmup: int = 10
) -> Dict[str, Dict[str, float]]:
    """Each text parsed by every model in turn (first one alternating), one at a time."""
    from rasa.core.agent import Agent
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    # Rasa logs every parse at debug level unless told otherwise, as its CLI does.
    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)
    loop = asyncio.new_event_loop()
    agents = {name: Agent.load(str(path)) for name, path in models.items()}
    for text in texts[:warmup]:
        for agent in agents.values():
            loop.run_until_complete(agent.parse_message(text))
    spent: Dict[str, List[float]] = {name: [] for name in agents}
    for i, text in enumerate(texts):
        order = list(agents.items())[:: -1 if i % 2 else 1]
        for name, agent in order:
            started = time.perf_counter()
            loop.run_until_complete(agent.parse_message(text))
            spent[name].append((time.perf_counter() - started) * 1000)
    loop.close()
    return {name: latency_summary(values) for name, values in spent.items()}


def stock_zh_dataset(
    name: str, train_yml: Path, test_yml: Path, folder: Path, *, epochs: int, sentiment: bool
) -> Dict[str, Any]:
    """Both pipelines trained on one data set, scored, and timed parsing its test texts."""
    configs = {"stock_diet": stock_config(epochs=epochs)}
    configs["rasa_llm"] = our_config(sentiment=sentiment)
    figures: Dict[str, Any] = {"train_examples": len(nlu_examples(train_yml))}
    models = {}
    for pipeline, config in configs.items():
        work = folder / name / pipeline
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.yml").write_text(
            yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        )
        train_args = ["train", "nlu", "--config", "config.yml", "--nlu", str(train_yml),
                      "--out", "models", "--fixed-model-name", pipeline]  # fmt: skip
        seconds, train_command = rasa_run(train_args, work, "train.log")
        models[pipeline] = work / "models" / f"{pipeline}.tar.gz"
        test_args = ["test", "nlu", "--model", str(models[pipeline]), "--nlu", str(test_yml),
                     "--out", "results"]  # fmt: skip
        _, test_command = rasa_run(test_args, work, "test.log")
        report = json.loads((work / "results" / "intent_report.json").read_text())
        figures[pipeline] = {
            "accuracy": round(report["accuracy"], 4),
            "macro_f1": round(report["macro avg"]["f1-score"], 4),
            "train_seconds": round(seconds, 1),
            "command": f"{train_command} && {test_command}".replace(str(ROOT) + "/", ""),
        }
        print(name, pipeline, json.dumps(figures[pipeline]), flush=True)
    texts = [text for text, _ in nlu_examples(test_yml)]
    figures["test_examples"] = len(texts)
    # rasa_llm warns when a bot answers in float32 instead of the int8 graph: kept here.
    warnings: List[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("rasa_llm.models.serving").addHandler(handler)
    for pipeline, latency in parse_latencies(models, texts).items():
        figures[pipeline]["parse"] = latency
    logging.getLogger("rasa_llm.models.serving").removeHandler(handler)
    figures["rasa_llm"]["served"] = warnings[0] if warnings else "int8 graph (quantize: auto)"
    return figures


def stock_zh(args: argparse.Namespace) -> Dict[str, Any]:
    try:
        import jieba  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"the stock_zh step needs jieba (JiebaTokenizer): {BENCH_EXTRA}") from e
    import torch

    folder = args.work / "stock_zh"
    smp = args.data / "smp2017_ecdt"
    data = folder / "smp2017"
    data.mkdir(parents=True, exist_ok=True)
    train_rows = first_per_label(read_rows(smp / "train.csv"), args.smp_per_class)
    (data / "train.yml").write_text(nlu_yaml(train_rows))
    (data / "test.yml").write_text(nlu_yaml(read_rows(smp / "test.csv")))
    sets = {
        "smp2017": (data / "train.yml", data / "test.yml"),
        "bot_zh": (BOT / "data" / "nlu_zh.yml", BOT / "tests" / "nlu_test_zh.yml"),
    }
    figures: Dict[str, Any] = {
        "diet_epochs": args.diet_epochs,
        "torch_threads": torch.get_num_threads(),
    }
    for name in [s.strip() for s in args.stock_datasets.split(",") if s.strip()]:
        # SMP2017-ECDT has no sentiment labels: our pipeline runs without its analyzer there.
        figures[name] = stock_zh_dataset(
            name, *sets[name], folder, epochs=args.diet_epochs, sentiment=name == "bot_zh"
        )
    return figures


def shopping(args: argparse.Namespace) -> Dict[str, Any]:
    rows = shopping_rows(args.data / "online_shopping_10_cats" / "online_shopping_10_cats.csv")
    train, test = stratified_split(rows, train=args.shopping_train, test=args.shopping_test)
    figures = fine_tune(
        "sentiment", args.work / "shopping", [(t, label) for _, label, t in train],
        [(t, label) for _, label, t in test], epochs=args.shopping_epochs, max_length=128,
    )  # fmt: skip
    with (args.work / "shopping" / "predictions.csv").open(encoding="utf-8", newline="") as f:
        e5_labels = [r["predicted"] for r in csv.DictReader(f)]
    gold = [label for _, label, _ in test]
    cats = [CATEGORIES.get(cat, cat) for cat, _, _ in test]
    snow, snow_seconds = snownlp_labels([t for _, _, t in test])
    figures.update(
        split={"rows_after_cleaning": len(rows), "train": len(train), "test": len(test),
               "seed": SHOPPING_SEED, "stratified_by": "category and label"},
        e5_per_category=per_group_accuracy(cats, gold, e5_labels),
        snownlp={**scores(gold, snow), "seconds": round(snow_seconds, 1),
                 "per_category": per_group_accuracy(cats, gold, snow)},
    )  # fmt: skip
    return figures


def fine_tune(
    task: str, out: Path, train: Sequence[Row], test: Sequence[Row], *, epochs: int, max_length: int
) -> Dict[str, Any]:
    """``python -m training TASK`` with e5 on these rows (written as CSV beside ``out``)."""
    train_csv = write_rows(out.parent / f"{out.name}_train.csv", train)
    test_csv = write_rows(out.parent / f"{out.name}_test.csv", test)
    return run_training(
        task, out,
        ["--train", str(train_csv), "--test", str(test_csv), "--model", E5,
         "--epochs", str(epochs), "--max-length", str(max_length), "--seed", "13"],
    )  # fmt: skip


def run_step(step: str, args: argparse.Namespace) -> Dict[str, Any]:
    if step == "chnsenticorp":
        folder = args.data / "chnsenticorp"
        train = read_rows(folder / "train.csv")[: args.chnsenticorp_train]
        return fine_tune(
            "sentiment", args.work / step, train, read_rows(folder / "test.csv"),
            epochs=args.chnsenticorp_epochs, max_length=128,
        )  # fmt: skip
    if step == "smp2017":
        folder = args.data / "smp2017_ecdt"
        train = first_per_label(read_rows(folder / "train.csv"), args.smp_per_class)
        return fine_tune(
            "intent", args.work / step, train, read_rows(folder / "test.csv"),
            epochs=args.smp_epochs, max_length=32,
        )  # fmt: skip
    if step == "shopping":
        return shopping(args)
    return stock_zh(args)


def record(step: str, figures: Dict[str, Any]) -> None:
    figures["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures["cpu_cores"] = os.cpu_count()
    figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    # Read again: another benchmark run may have written other steps meanwhile.
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[step] = figures
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rasa-llm-chinese-bench"))
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma list of {STEPS}")
    parser.add_argument("--chnsenticorp-train", type=int, default=3000)
    parser.add_argument("--chnsenticorp-epochs", type=int, default=1)
    parser.add_argument("--smp-per-class", type=int, default=None, help="first N of a domain")
    parser.add_argument("--smp-epochs", type=int, default=5)
    parser.add_argument("--shopping-train", type=int, default=3000)
    parser.add_argument("--shopping-test", type=int, default=2000)
    parser.add_argument("--shopping-epochs", type=int, default=1)
    parser.add_argument("--diet-epochs", type=int, default=100)
    parser.add_argument("--stock-datasets", default="smp2017,bot_zh")
    parser.add_argument("--no-record", action="store_true", help="print, do not write the json")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    for step in [s.strip() for s in args.steps.split(",") if s.strip()]:
        if step not in STEPS:
            parser.error(f"unknown step {step!r}; use {STEPS}")
        print(f"== {step}", flush=True)
        figures = run_step(step, args)
        if not args.no_record:
            record(step, figures)
        print(json.dumps(figures, indent=2, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
