"""The package by job: old module paths still import, public names come from
``rasa_llm``, and serving a model never imports the training loop."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
from rasa.shared.utils.common import class_from_module_path

import rasa_llm
from rasa_llm._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_is_the_moved_module(old: str) -> None:
    new_module = importlib.import_module(MOVED[old])
    assert importlib.import_module(old) is new_module
    # The moved module keeps its own identity: its spec is not the alias's.
    assert new_module.__spec__ is not None and new_module.__spec__.name == MOVED[old]
    assert new_module.__name__ == MOVED[old]


@pytest.mark.parametrize(
    "stored_path",
    [
        # What a model trained before the move names its components and policy by.
        "rasa_llm.transformer_intent_classifier.TransformerIntentClassifier",
        "rasa_llm.transformer_sentiment_analyzer.TransformerSentimentAnalyzer",
        "rasa_llm.human_handoff_policy.HumanHandoffPolicy",
        # What endpoints.yml files written before the move name.
        "rasa_llm.resilient_sql_tracker_store.ResilientSQLTrackerStore",
        "rasa_llm.concurrent_redis_lock_store.ConcurrentRedisLockStore",
        "rasa_llm.metrics_event_broker.MetricsEventBroker",
    ],
)
def test_rasa_finds_classes_by_their_old_paths(stored_path: str) -> None:
    cls = class_from_module_path(stored_path)
    assert cls is getattr(rasa_llm, stored_path.rsplit(".", 1)[1])


def test_an_unknown_name_is_still_an_import_error() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("rasa_llm.no_such_module")
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        rasa_llm.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("name", rasa_llm.__all__)
def test_every_public_name_comes_from_the_package(name: str) -> None:
    value = getattr(rasa_llm, name)
    assert value.__name__ == name
    assert value.__module__.startswith("rasa_llm.")


def test_serving_imports_no_training_code() -> None:
    """What a Rasa server imports to parse and predict: the components, the policy, the
    fallback's action and backends; none of it may pull in the training loop."""
    script = """
import json, sys
import rasa_llm
from rasa_llm.nlu.transformer_intent_classifier import TransformerIntentClassifier
from rasa_llm.nlu.transformer_sentiment_analyzer import TransformerSentimentAnalyzer
from rasa_llm.models import serving, inference, model_files
from rasa_llm.fallback import action_generative_fallback, local_transformers_backend
rasa_llm.ActionHandoff, rasa_llm.ResilientSQLTrackerStore
print(json.dumps(sorted(m for m in sys.modules
                        if m.startswith(("rasa_llm.", "training")) or m == "training")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "rasa_llm.nlu.transformer_intent_classifier" in loaded  # the check sees imports
    training = [
        m
        for m in loaded
        if m in ("rasa_llm.models.training_loop", "rasa_llm.models.fine_tuning")
        or m == "training"
        or m.startswith("training.")
    ]
    assert training == []
