"""The command line: ``python -m training intent|sentiment|generate [flags]``.

Thin on purpose: the flags become one typed dataclass (:mod:`training.arguments`) that
the work in :mod:`training.classification`, :mod:`training.generation` and
:mod:`training.grounded_data` receives, and every input problem is one line on stderr
with exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from training.arguments import (
    DEFAULT_OOS_SCORE,
    DEFAULT_TARGET_OOS_RECALL,
    Arguments,
    ClassifierArguments,
    GenerateArguments,
    GroundedDataArguments,
    from_namespace,
)
from training.errors import TrainingInputError
from training.flag_types import count, positive, share
from training.soup import SOUP_METHODS

EPILOG = """\
examples:
  python -m training intent --train bot/data --test bot/tests/nlu_test.yml --out runs/bot
  python -m training intent --train banking77/train.csv --test banking77/test.csv \\
      --out runs/banking77 --epochs 4
  python -m training intent --train train.csv --test test.csv --out runs/oos \\
      --oos-label out_of_scope --target-oos-recall 0.9
  python -m training sentiment --train tweets_train.csv --test tweets_test.csv --out runs/sent
  python -m training generate --train bitext.csv --out runs/gen --max-steps 30

Point the bot at a trained classifier in bot/config.yml:
  - name: rasa_llm.TransformerIntentClassifier
    classifier_path: runs/banking77/model
"""


def _freeze(value: str) -> str:
    if value in ("none", "embeddings", "encoder") or (value.isdigit() and int(value) > 0):
        return value
    raise argparse.ArgumentTypeError(
        "use none, embeddings, encoder (all but the head) or a number N (embeddings and "
        "the bottom N layers)"
    )


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 0.5:
        raise argparse.ArgumentTypeError("must be between 0 and 0.5")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _recall(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return number


def add_classifier_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    """Flags shared by ``intent`` and ``sentiment``."""
    # Alike in shape to the generate flags and bench.training_benchmarks' own: argparse
    # declares each flag with one add_argument call.
    data = parser.add_argument_group("data")
    data.add_argument(
        "--train",
        required=True,
        help="CSV/JSON/JSONL with text and label columns (Banking77's 'category' "
        "works too), a Rasa NLU .yml file, or a Rasa data/ directory",
    )
    data.add_argument("--test", required=True, help="held-out file in the same formats")
    data.add_argument("--out", required=True, help="directory for model/, report.* and plots")
    data.add_argument("--text-column", default="text", help="text column of CSV/JSON input")
    data.add_argument(
        "--label-column", default=None, help="label column (default: label, category, ...)"
    )
    data.add_argument(
        "--per-class",
        type=positive,
        default=None,
        metavar="N",
        help="few-shot: train on N examples of each label, drawn with --split-seed",
    )
    data.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.1,
        help="share of each label held out of TRAIN for early stopping and calibration "
        "(0 trains on all and stops after --epochs)",
    )
    if task == "intent":
        oos = parser.add_argument_group("out of scope")
        oos.add_argument(
            "--oos-label",
            default=None,
            help="rows with this label are never a class: TRAIN's choose the rejection "
            "threshold, TEST's measure out-of-scope recall",
        )
        oos.add_argument(
            "--hold-out-labels",
            default=None,
            metavar="A,B,...",
            help="treat these labels of TRAIN and TEST as out of scope (benchmarks)",
        )
        oos.add_argument(
            "--target-oos-recall",
            type=_recall,
            default=DEFAULT_TARGET_OOS_RECALL,
            help="out-of-scope recall the threshold reaches on validation data",
        )
        oos.add_argument(
            "--oos-train-fraction",
            type=share,
            default=0.0,
            metavar="F",
            help="share of TRAIN's out-of-scope rows trained on as outliers (taught a low "
            "confidence, never a class); the rest choose the threshold",
        )
        oos.add_argument(
            "--oos-score",
            choices=(DEFAULT_OOS_SCORE, "softmax+neighbour"),
            default=DEFAULT_OOS_SCORE,
            help="what the threshold applies to: the softmax confidence, or its sum with "
            "the cosine to the nearest training example (each standardised on in-scope "
            "validation rows; better on intents never trained on, stores the training "
            "examples' vectors with the model)",
        )
    model = parser.add_argument_group("model and optimisation")
    model.add_argument(
        "--model",
        default=None,
        help="local Hugging Face encoder directory (default: the shipped all-MiniLM-L6-v2)",
    )
    model.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda")
    model.add_argument("--epochs", type=positive, default=5)
    model.add_argument("--batch-size", type=positive, default=32)
    model.add_argument("--grad-accum", type=positive, default=1, help="batches per optimizer step")
    model.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate, encoder")
    model.add_argument("--head-lr", type=float, default=2e-3, help="learning rate, task head")
    model.add_argument("--weight-decay", type=float, default=0.01)
    model.add_argument("--warmup-ratio", type=float, default=0.1, help="share of warm-up steps")
    model.add_argument("--dropout", type=float, default=0.1, help="dropout before the head")
    model.add_argument("--max-length", type=positive, default=64, help="tokens per text")
    model.add_argument(
        "--freeze",
        type=_freeze,
        default="none",
        help="none, embeddings, encoder (train the head only) or N (embeddings and the "
        "bottom N layers)",
    )
    model.add_argument(
        "--length-groups",
        type=count,
        default=50,
        metavar="N",
        help="batch texts of similar length: each epoch's shuffled rows are cut into groups "
        "of N batches, sorted by length within a group, and the batches shuffled (less "
        "padding: about half the CPU time a step on Banking77). 0: plain random batches",
    )
    model.add_argument(
        "--label-smoothing",
        type=share,
        default=0.0,
        metavar="S",
        help="spread this share of each training target evenly over all classes "
        "(0.1 is usual; calibration afterwards restores the confidences). 0: none",
    )
    model.add_argument(
        "--rdrop",
        type=_non_negative,
        default=0.0,
        metavar="A",
        help="R-drop: pass each batch twice (two dropout draws) and add A times the "
        "symmetric KL divergence of the two predictions to the loss (1.0 is usual; "
        "twice the compute a step). 0: none",
    )
    model.add_argument(
        "--patience",
        type=int,
        default=2,
        help="epochs without a better validation accuracy before stopping (0: never)",
    )
    model.add_argument(
        "--seed", type=int, default=42, help="initialisation, dropout and batch order"
    )
    model.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the --per-class sample, the validation part and the out-of-scope "
        "split (default: --seed); give runs to be souped the same one",
    )
    model.add_argument(
        "--ema-decay",
        type=share,
        default=0.0,
        metavar="D",
        help="keep a moving average of the weights with this decay per step (0.998 "
        "averages about the last 500 steps); each validation scores it beside the "
        "trained weights and keeps the better; with no validation part it is the "
        "result. 0: none",
    )
    soup = parser.add_argument_group(
        "soup (average earlier runs instead of training; the optimisation flags are unused)"
    )
    soup.add_argument(
        "--soup",
        nargs="+",
        default=None,
        metavar="DIR",
        help="OUT directories of runs of this task on the same TRAIN, trained with "
        "different --seed and the same --split-seed; their weights are averaged into one "
        "model, then calibrated, tested and exported like a trained one",
    )
    soup.add_argument(
        "--soup-method",
        choices=SOUP_METHODS,
        default="greedy",
        help="greedy: best run first, then each run that does not lower validation "
        "accuracy; uniform: all runs (the only choice without a validation part)",
    )
    model.add_argument(
        "--no-calibrate",
        dest="calibrate",
        action="store_false",
        help="skip temperature scaling on the validation part",
    )
    model.add_argument("--eval-batch-size", type=positive, default=128)
    run = parser.add_argument_group("run")
    run.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint after a stop"
    )
    run.add_argument(
        "--keep-checkpoint", action="store_true", help="keep OUT/checkpoint after success"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m training`` parser with its four commands and their flags."""
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Fine-tune and evaluate the models rasa-llm serves: the intent "
        "classifier, the sentiment classifier and the generative fallback model. "
        "Runs offline, on a GPU when one is present and on the CPU otherwise.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = parser.add_subparsers(
        dest="task", required=True, metavar="{intent,sentiment,generate,grounded-data}"
    )
    defaults = argparse.ArgumentDefaultsHelpFormatter
    intent = sub.add_parser(
        "intent", help="fine-tune an intent classifier", formatter_class=defaults
    )
    add_classifier_arguments(intent, "intent")
    sentiment = sub.add_parser(
        "sentiment",
        help="fine-tune a negative/neutral/positive classifier",
        formatter_class=defaults,
    )
    add_classifier_arguments(sentiment, "sentiment")
    generate = sub.add_parser(
        "generate",
        help="fine-tune the generative fallback model on prompt/response pairs",
        formatter_class=defaults,
    )
    from training.generation import add_generate_arguments

    add_generate_arguments(generate)
    grounded = sub.add_parser(
        "grounded-data",
        help="write the grounded-answer examples (fallback prompts and replies) that "
        "generate --train reads",
        formatter_class=defaults,
    )
    from training.grounded_data import add_grounded_data_arguments

    add_grounded_data_arguments(grounded)
    return parser


# The dataclass each command's flags become.
COMMANDS = {
    "intent": ClassifierArguments,
    "sentiment": ClassifierArguments,
    "generate": GenerateArguments,
    "grounded-data": GroundedDataArguments,
}


def arguments_of(namespace: argparse.Namespace) -> Arguments:
    """The typed arguments of a parsed command line (``namespace.task`` is the command)."""
    return from_namespace(COMMANDS[namespace.task], namespace)


def parse_arguments(argv: Sequence[str]) -> Arguments:
    """Parse a command line such as ``["intent", "--train", ...]`` into its arguments."""
    return arguments_of(build_parser().parse_args(list(argv)))


def main(argv: Sequence[str]) -> int:
    """Run the command line ``argv`` (without the program name); the exit status.

    Returns 2, with one line on stderr, when an input is wrong.
    """
    # Nothing is downloaded, and Rasa sends nothing out, whatever the caller's shell says.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    namespace = build_parser().parse_args(list(argv))
    logging.basicConfig(
        level=logging.DEBUG if namespace.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = arguments_of(namespace)
    try:
        if isinstance(args, GroundedDataArguments):
            from training.grounded_data import run_grounded_data

            return run_grounded_data(args)
        if isinstance(args, GenerateArguments):
            from training.generation import run_generate

            return run_generate(args)
        from training.classification import run_classifier

        return run_classifier(args)
    except TrainingInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from rasa_llm.errors import RasaLLMError

        if not isinstance(e, RasaLLMError):
            raise
        print(f"error: {e}", file=sys.stderr)  # e.g. a --model directory that is not one
        return 2
