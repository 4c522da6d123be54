"""rasa-llm: transformer NLU components, a hand-off policy, a grounded generative
fallback and server protections for Rasa 3.6.

Use them from a bot's ``config.yml``::

    pipeline:
      - name: rasa_llm.MessageLanguageDetector
      - name: rasa_llm.TransformerIntentClassifier
      - name: rasa_llm.TransformerSentimentAnalyzer
      - name: FallbackClassifier

    policies:
      - name: rasa_llm.HumanHandoffPolicy

from its ``endpoints.yml`` (``type: rasa_llm.ResilientSQLTrackerStore``,
``rasa_llm.ConcurrentRedisLockStore``, ``rasa_llm.MetricsEventBroker``) and from its
``actions`` package (``from rasa_llm import ActionGenerativeFallback, ActionHandoff``).

The package by job: :mod:`rasa_llm.nlu` (the components), :mod:`rasa_llm.models` (their
network, directory format, inference, serving and training), :mod:`rasa_llm.fallback`,
:mod:`rasa_llm.handoff`, :mod:`rasa_llm.language` (the bot's languages) and
:mod:`rasa_llm.server` (what it adds to Rasa's servers).
Module paths of rasa-llm 0.1 (``rasa_llm.transformer_intent_classifier`` and the like,
which models trained before the move name) still import (:mod:`rasa_llm._moved`).

Importing this package registers the components with Rasa's default recipe and
protects every Rasa server and action server of the process, however it was started
(:mod:`rasa_llm.server.server_guards`): customers' messages stay out of the logs, a
customer whose action failed is answered, the HTTP API needs its token, customers'
``/...`` messages are read as text, the action server answers only the Rasa server, and
Rasa's telemetry stays off.
"""

from typing import Any

from rasa_llm._moved import install_moved_module_finder

install_moved_module_finder()

from rasa_llm.handoff.human_handoff_policy import HumanHandoffPolicy  # noqa: E402
from rasa_llm.language.message_language_detector import MessageLanguageDetector  # noqa: E402
from rasa_llm.nlu.transformer_intent_classifier import TransformerIntentClassifier  # noqa: E402
from rasa_llm.nlu.transformer_sentiment_analyzer import (  # noqa: E402
    TransformerSentimentAnalyzer,
)
from rasa_llm.server.server_guards import install_server_guards  # noqa: E402

# Imported on first use: a Rasa server needs no action SDK, an action server no stores.
_LAZY = {
    "ActionGenerativeFallback": "rasa_llm.fallback.action_generative_fallback",
    "ActionHandoff": "rasa_llm.handoff.action_handoff",
    "ConcurrentRedisLockStore": "rasa_llm.server.concurrent_redis_lock_store",
    "MetricsEventBroker": "rasa_llm.server.metrics_event_broker",
    "ResilientSQLTrackerStore": "rasa_llm.server.resilient_sql_tracker_store",
}

__all__ = [
    "HumanHandoffPolicy",
    "MessageLanguageDetector",
    "TransformerIntentClassifier",
    "TransformerSentimentAnalyzer",
    *_LAZY,
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The public names in ``_LAZY``, imported from their modules on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rasa_llm' has no attribute {name!r}")


install_server_guards()
