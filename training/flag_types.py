"""Argparse types that the commands' flags share: each converts a value or refuses it."""

from __future__ import annotations

import argparse


def positive(value: str) -> int:
    """An int of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def count(value: str) -> int:
    """An int of 0 or more."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def share(value: str) -> float:
    """A float in [0, 1): a dropout or a share of the rows."""
    number = float(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError("must be in [0, 1)")
    return number
