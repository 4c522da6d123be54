"""Old module paths of rasa-llm 0.1 keep working: ``rasa_llm.<module>`` is the module's
new home under ``rasa_llm.nlu``, ``.models``, ``.handoff`` or ``.server``.

Why it must: a trained Rasa model names each component and policy by the full path of
its class (``rasa_llm.transformer_intent_classifier.TransformerIntentClassifier`` in a
model trained before the move), and bots' ``endpoints.yml`` and action packages name
stores, brokers and actions the same way. The old name is the same module object as the
new one, imported only when something asks for it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Optional, Sequence

MOVED = {
    "rasa_llm.action_failure_reply": "rasa_llm.server.action_failure_reply",
    "rasa_llm.action_handoff": "rasa_llm.handoff.action_handoff",
    "rasa_llm.action_server_auth": "rasa_llm.server.action_server_auth",
    "rasa_llm.bearer_tokens": "rasa_llm.server.bearer_tokens",
    "rasa_llm.calibration": "rasa_llm.models.calibration",
    "rasa_llm.concurrent_redis_lock_store": "rasa_llm.server.concurrent_redis_lock_store",
    "rasa_llm.device": "rasa_llm.models.device",
    "rasa_llm.encoder_classifier": "rasa_llm.models.encoder_classifier",
    "rasa_llm.fine_tuning": "rasa_llm.models.fine_tuning",
    "rasa_llm.handoff_rules": "rasa_llm.handoff.handoff_rules",
    "rasa_llm.http_api_auth": "rasa_llm.server.http_api_auth",
    "rasa_llm.http_api_checks": "rasa_llm.server.http_api_checks",
    "rasa_llm.http_api_guard": "rasa_llm.server.http_api_guard",
    "rasa_llm.human_handoff_policy": "rasa_llm.handoff.human_handoff_policy",
    "rasa_llm.intent_shortcuts": "rasa_llm.server.intent_shortcuts",
    "rasa_llm.log_redactor": "rasa_llm.server.log_redactor",
    "rasa_llm.metrics_event_broker": "rasa_llm.server.metrics_event_broker",
    "rasa_llm.model_files": "rasa_llm.models.model_files",
    "rasa_llm.neighbour_score": "rasa_llm.models.neighbour_score",
    "rasa_llm.onnx_encoder_classifier": "rasa_llm.models.onnx_encoder_classifier",
    "rasa_llm.ranking": "rasa_llm.nlu.ranking",
    "rasa_llm.request_limits": "rasa_llm.server.request_limits",
    "rasa_llm.resilient_sql_tracker_store": "rasa_llm.server.resilient_sql_tracker_store",
    "rasa_llm.sentiment_data": "rasa_llm.nlu.sentiment_data",
    "rasa_llm.server_guards": "rasa_llm.server.server_guards",
    "rasa_llm.serving": "rasa_llm.models.serving",
    "rasa_llm.serving_metrics": "rasa_llm.server.serving_metrics",
    "rasa_llm.splits": "rasa_llm.models.splits",
    "rasa_llm.telemetry_check": "rasa_llm.server.telemetry_check",
    "rasa_llm.training_loop": "rasa_llm.models.training_loop",
    "rasa_llm.transformer_intent_classifier": "rasa_llm.nlu.transformer_intent_classifier",
    "rasa_llm.transformer_sentiment_analyzer": "rasa_llm.nlu.transformer_sentiment_analyzer",
}


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module already imported under its new name."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.target_spec: Optional[importlib.machinery.ModuleSpec] = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        """The module under its new name, imported if it is not yet."""
        module = importlib.import_module(self.target)
        self.target_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing runs again; the import system set ``__spec__`` to the old name's,
        so the module gets its own back.
        """
        module.__spec__ = self.target_spec


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names in :data:`MOVED`; every other import goes on as usual."""

    def find_spec(  # positional: importlib calls find_spec(fullname, path, target)
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        """A spec that loads the new module for an old name; None for other names."""
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new_name))


def install_moved_module_finder() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
