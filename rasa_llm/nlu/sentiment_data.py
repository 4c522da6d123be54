"""Sentiment labels from the bot's own NLU data, with errors that point at the example.

Bot builders label sentiment with Rasa's ``metadata`` in ``data/nlu.yml``: on an intent
block (labels every example in it) or on one example (overrides the block)::

    nlu:
    - intent: order_status
      metadata:
        sentiment: negative
      examples: |
        - where the hell is my order, this is ridiculous

Keeping the labels in the NLU data means Rasa's training cache sees a change to them
and retrains, and one message is one example for both intent and sentiment.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple

from rasa.shared.nlu.constants import INTENT, METADATA, METADATA_EXAMPLE, METADATA_INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from rasa_llm.constants import SENTIMENT_LABELS
from rasa_llm.errors import TrainingDataError

METADATA_KEY = "sentiment"


def sentiment_label(message: Message, component: str) -> str | None:
    """The example's sentiment label, the block's when the example has none, or None."""
    metadata = message.get(METADATA) or {}
    for level in (METADATA_EXAMPLE, METADATA_INTENT):
        value = _lookup(metadata.get(level))
        if value is not None:
            if value not in SENTIMENT_LABELS:
                raise TrainingDataError(
                    component,
                    f"the example {message.get(TEXT)!r} of intent "
                    f"'{message.get(INTENT)}' has sentiment {value!r}",
                    f"use one of {', '.join(SENTIMENT_LABELS)} in its metadata",
                )
            return value
    return None


def labelled_examples(
    messages: Sequence[Message], component: str, min_per_label: int
) -> Tuple[List[Message], List[str]]:
    """The labelled examples, checked to hold enough of every label."""
    examples, labels = [], []
    for message in messages:
        if not message.get(TEXT):
            continue
        label = sentiment_label(message, component)
        if label is not None:
            examples.append(message)
            labels.append(label)
    counts = Counter(labels)
    short = [label for label in SENTIMENT_LABELS if counts[label] < min_per_label]
    if short:
        found = ", ".join(f"{label}: {counts[label]}" for label in SENTIMENT_LABELS)
        raise TrainingDataError(
            component,
            f"the NLU data labels too few examples with sentiment ({found}; at least "
            f"{min_per_label} of each are needed)",
            "add 'metadata: {sentiment: negative|neutral|positive}' to intent blocks "
            "or examples in data/nlu.yml (see the README), or lower "
            "min_examples_per_label",
        )
    return examples, labels


def _lookup(metadata: Any) -> str | None:
    if isinstance(metadata, dict) and METADATA_KEY in metadata:
        value: Dict[str, Any] | Any = metadata[METADATA_KEY]
        return str(value)
    return None
