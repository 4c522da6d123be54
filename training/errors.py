"""Errors of the training tools: each names the file (or flag) and says how to fix it.

The command line prints them as one line, without a traceback, and exits with 2.
"""

from __future__ import annotations

from pathlib import Path


class TrainingInputError(ValueError):
    """An input file or a flag cannot train a model."""

    def __init__(self, source: Path | str, problem: str, fix: str) -> None:
        self.source = str(source)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{source}: {problem}. Fix: {fix}")
