"""ServingMetrics: Prometheus counters for what the assistant does, fed by tracker events.

Every conversation event Rasa saves passes :meth:`ServingMetrics.observe` (through
:class:`rasa_llm.server.metrics_event_broker.MetricsEventBroker`), which counts:

- ``rasa_llm_messages_total{channel}``: customer messages;
- ``rasa_llm_response_seconds``: from a message's arrival to the saving of the turn it
  started (understanding, policies, actions and replies; a histogram);
- ``rasa_llm_fallbacks_total{kind}``: the generative fallback run (``generative``) and
  messages classified ``nlu_fallback`` (``nlu``); fallback rate in PromQL is
  ``rate(rasa_llm_fallbacks_total{kind="generative"}[5m]) / rate(rasa_llm_messages_total[5m])``;
- ``rasa_llm_handoffs_total``: conversations handed to a person (``action_handoff``);
- ``rasa_llm_sentiment_total{label}``: the sentiment analyzer's label of each message;
- ``rasa_llm_action_failures_total{action}``: actions that failed (action server down,
  erroring or too slow), each answered with ``utter_action_failed``
  (:mod:`rasa_llm.server.action_failure_reply`).

No label holds customer data: channel names, fixed kinds, sentiment labels and action
names only.
With several Sanic workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before
start so that every worker's figures add up in one scrape (prometheus_client's
multiprocess mode); otherwise a scrape shows the worker that answered it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics", "serving_metrics"]

# rasa_llm.server.action_failure_reply.FAILED_ACTION_KEY, not imported: that module is Rasa's
# processor's business, this one is loaded by the monitoring channel too.
FAILED_ACTION_KEY = "rasa_llm_failed_action"
GENERATIVE_FALLBACK_ACTION = "action_generative_fallback"
HANDOFF_ACTION = "action_handoff"
NLU_FALLBACK_INTENT = "nlu_fallback"
# Seconds; a reply on two CPU cores takes tens of milliseconds, one that runs the
# generative model up to several seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServingMetrics:
    """The assistant's Prometheus metrics, in a registry of their own."""

    def __init__(
        self,
        *,
        registry: Optional[CollectorRegistry] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._clock = clock
        self.messages = Counter(
            "rasa_llm_messages", "Customer messages.", ["channel"], registry=self.registry
        )
        self.response_seconds = Histogram(
            "rasa_llm_response_seconds",
            "Seconds from a customer message's arrival to the saving of its turn.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "rasa_llm_fallbacks", "Fallbacks, by kind.", ["kind"], registry=self.registry
        )
        self.handoffs = Counter(
            "rasa_llm_handoffs", "Conversations handed to a person.", registry=self.registry
        )
        self.sentiment = Counter(
            "rasa_llm_sentiment", "Customer messages by sentiment.", ["label"],
            registry=self.registry,
        )  # fmt: skip
        self.action_failures = Counter(
            "rasa_llm_action_failures", "Actions that failed and were answered with "
            "utter_action_failed.", ["action"], registry=self.registry,
        )  # fmt: skip

    def observe(self, event: Dict[str, Any]) -> None:
        """Count one tracker event, as Rasa's event brokers receive it."""
        kind = event.get("event")
        if kind == "user":
            self._observe_user(event)
        elif kind == "action":
            name = event.get("name")
            if name == GENERATIVE_FALLBACK_ACTION:
                self.fallbacks.labels(kind="generative").inc()
            elif name == HANDOFF_ACTION:
                self.handoffs.inc()
        elif kind == "bot":
            failed = (event.get("metadata") or {}).get(FAILED_ACTION_KEY)
            if isinstance(failed, str):
                self.action_failures.labels(action=failed).inc()

    def _observe_user(self, event: Dict[str, Any]) -> None:
        self.messages.labels(channel=str(event.get("input_channel") or "unknown")).inc()
        timestamp = event.get("timestamp")
        if isinstance(timestamp, (int, float)):
            # Rasa publishes a turn's events when it saves the tracker, after the replies.
            self.response_seconds.observe(max(0.0, self._clock() - timestamp))
        parse_data = event.get("parse_data") or {}
        if (parse_data.get("intent") or {}).get("name") == NLU_FALLBACK_INTENT:
            self.fallbacks.labels(kind="nlu").inc()
        label = (parse_data.get("sentiment") or {}).get("label")
        if isinstance(label, str):
            self.sentiment.labels(label=label).inc()

    def exposition(self) -> bytes:
        """The text a Prometheus scrape reads: all workers' figures in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))


_METRICS: Optional[ServingMetrics] = None


def serving_metrics() -> ServingMetrics:
    """The metrics of this process, shared by the event broker and the monitoring channel."""
    global _METRICS
    if _METRICS is None:
        _METRICS = ServingMetrics()
    return _METRICS
