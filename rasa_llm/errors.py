"""Every error rasa-llm raises, with texts that name the component, the key and the fix.

Kept in one module so that messages stay consistent and are easy to find from a log
line (the pattern of ``spacy/errors.py``).
"""

from __future__ import annotations

from pathlib import Path

from rasa.shared.exceptions import InvalidConfigException, RasaException


class RasaLLMError(RasaException):
    """Base class of all rasa-llm errors; Rasa shows these to users without a traceback."""


class InvalidComponentConfigError(InvalidConfigException, RasaLLMError):
    """A key in ``config.yml`` is unknown, mistyped or out of range."""

    def __init__(self, component: str, key: str, problem: str, fix: str) -> None:
        self.component = component
        self.key = key
        super().__init__(
            f"{component}: config key '{key}' {problem}. Fix: {fix} "
            f"(see the configuration reference in README.md)."
        )


class TrainingDataError(RasaLLMError):
    """The bot's training data cannot train the component."""

    def __init__(self, component: str, problem: str, fix: str) -> None:
        self.component = component
        super().__init__(f"{component}: {problem}. Fix: {fix}")


class ModelLoadError(RasaLLMError):
    """A model directory is missing, empty, corrupt or from another format version."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        self.path = Path(path)
        super().__init__(f"Cannot load the model at '{path}': {problem}. Fix: {fix}")


class PipelineOrderError(RasaLLMError):
    """A component did not find what an earlier component of the pipeline should add."""

    def __init__(self, component: str, needed: str) -> None:
        super().__init__(
            f"{component} found no sentence encoding on the message. Fix: put "
            f"'{needed}' before '{component}' in the pipeline of config.yml, then "
            f"run 'rasa train' again."
        )
