"""Each command line becomes its typed arguments, field for flag, with nothing left over."""

from __future__ import annotations

from dataclasses import fields
from typing import List, Type

import pytest

from rasa_llm.fallback.adapter import PACKAGED_ADAPTER, read_settings
from training.arguments import (
    Arguments,
    ClassifierArguments,
    GenerateArguments,
    GroundedDataArguments,
)
from training.cli import build_parser, parse_arguments

COMMANDS = [
    (["intent", "--train", "t.csv", "--test", "v.csv", "--out", "o"], ClassifierArguments),
    (["sentiment", "--train", "t.csv", "--test", "v.csv", "--out", "o"], ClassifierArguments),
    (["generate", "--train", "t.csv", "--out", "o"], GenerateArguments),
    (["grounded-data", "--out", "o"], GroundedDataArguments),
]


@pytest.mark.parametrize(("argv", "kind"), COMMANDS)
def test_every_flag_is_a_field_and_every_field_a_flag(
    argv: List[str], kind: Type[Arguments]
) -> None:
    flags = set(vars(build_parser().parse_args(argv))) - {"task", "verbose"}
    names = {f.name for f in fields(kind)} - {"task"}
    if argv[0] == "sentiment":  # the out-of-scope flags are intent's alone
        names -= {"oos_label", "hold_out_labels", "target_oos_recall"}
        names -= {"oos_train_fraction", "oos_score"}
    assert flags == names
    assert isinstance(parse_arguments(argv), kind)


def test_a_sentiment_run_has_no_out_of_scope_rows() -> None:
    intent = parse_arguments(COMMANDS[0][0])
    sentiment = parse_arguments(COMMANDS[1][0])
    assert isinstance(intent, ClassifierArguments) and intent.task == "intent"
    assert isinstance(sentiment, ClassifierArguments) and sentiment.task == "sentiment"
    for name in ("oos_label", "hold_out_labels", "target_oos_recall", "oos_train_fraction"):
        assert getattr(sentiment, name) == getattr(intent, name)
    assert sentiment.oos_score == intent.oos_score == "softmax"


def test_generate_records_the_settings_the_packaged_adapter_was_made_with() -> None:
    from training.generation import _settings

    args = parse_arguments(COMMANDS[2][0])
    assert isinstance(args, GenerateArguments)
    recorded = _settings(args, args.learning_rate, args.targets)
    shipped = read_settings(PACKAGED_ADAPTER)["settings"]
    # The adapter leaves out the paths; every other key, in the same order.
    assert [k for k in recorded if k not in ("train", "test", "out")] == list(shipped)
