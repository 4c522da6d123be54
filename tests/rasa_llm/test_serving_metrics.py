"""ServingMetrics and MetricsEventBroker on real Rasa events and a real Rasa broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.utils.endpoints import EndpointConfig

from rasa_llm.server.metrics_event_broker import MetricsEventBroker, MetricsEventBrokerError
from rasa_llm.server.serving_metrics import ServingMetrics


def published(event: Any, sender: str = "customer-1") -> Dict[str, Any]:
    """The dict Rasa's tracker store hands its event broker (TrackerStore._stream_new_events)."""
    return {"sender_id": sender, **event.as_dict()}


def user(text: str, intent: str, sentiment: str, timestamp: float) -> Dict[str, Any]:
    parse_data = {
        "intent": {"name": intent, "confidence": 0.9},
        "entities": [],
        "sentiment": {"label": sentiment, "score": 0.8},
    }
    event = UserUttered(text, parse_data["intent"], [], parse_data, timestamp=timestamp,
                        input_channel="rest")  # fmt: skip
    return published(event)


def value(metrics: ServingMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_messages_latency_fallbacks_handoffs_and_sentiment_are_counted():
    metrics = ServingMetrics(clock=lambda: 1000.0)
    events: List[Dict[str, Any]] = [
        user("where is my parcel", "order_status", "neutral", timestamp=999.95),
        published(ActionExecuted("utter_ask_order_number")),
        published(BotUttered("What is the order number?")),
        user("asdf qwerty", "nlu_fallback", "neutral", timestamp=999.0),
        published(ActionExecuted("action_generative_fallback")),
        user("this is useless, get me a person", "request_human", "negative", timestamp=998.0),
        published(ActionExecuted("action_handoff")),
    ]
    for event in events:
        metrics.observe(event)
    assert value(metrics, "rasa_llm_messages_total", channel="rest") == 3
    assert value(metrics, "rasa_llm_fallbacks_total", kind="nlu") == 1
    assert value(metrics, "rasa_llm_fallbacks_total", kind="generative") == 1
    assert value(metrics, "rasa_llm_handoffs_total") == 1
    assert value(metrics, "rasa_llm_sentiment_total", label="neutral") == 2
    assert value(metrics, "rasa_llm_sentiment_total", label="negative") == 1
    # 0.05 s, 1 s and 2 s from arrival to the save: the histogram has them.
    assert value(metrics, "rasa_llm_response_seconds_count") == 3
    assert value(metrics, "rasa_llm_response_seconds_sum") == pytest.approx(3.05)
    assert value(metrics, "rasa_llm_response_seconds_bucket", le="0.05") == 1
    assert value(metrics, "rasa_llm_response_seconds_bucket", le="1.0") == 2


def test_the_exposition_holds_no_customer_text():
    metrics = ServingMetrics()
    metrics.observe(user("my card 4242 was charged twice", "complain", "negative", 0.0))
    text = metrics.exposition().decode()
    assert 'rasa_llm_messages_total{channel="rest"} 1.0' in text
    assert "4242" not in text and "charged" not in text


def test_the_broker_counts_and_forwards_to_rasas_file_broker(tmp_path: Path):
    path = tmp_path / "events.log"
    config = EndpointConfig.from_dict(
        {
            "type": "rasa_llm.server.metrics_event_broker.MetricsEventBroker",
            "forward_to": {"type": "file", "path": str(path)},
        }
    )
    broker = asyncio.run(MetricsEventBroker.from_endpoint_config(config))
    broker.metrics = ServingMetrics()
    event = user("hello there", "greet", "neutral", 0.0)
    broker.publish(event)
    assert value(broker.metrics, "rasa_llm_messages_total", channel="rest") == 1
    forwarded = [json.loads(line) for line in path.read_text().splitlines()]
    assert forwarded == [event]
    assert broker.is_ready()


def test_a_metrics_failure_still_forwards_the_event(tmp_path: Path):
    path = tmp_path / "events.log"
    config = EndpointConfig.from_dict({"forward_to": {"type": "file", "path": str(path)}})
    broker = asyncio.run(MetricsEventBroker.from_endpoint_config(config))

    class Broken(ServingMetrics):
        def observe(self, event: Dict[str, Any]) -> None:
            raise RuntimeError("a bug in counting")

    broker.metrics = Broken()
    broker.publish(user("hello there", "greet", "neutral", 0.0))
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"forwrd_to": {"type": "file"}}, r"does not read \['forwrd_to'\].*forward_to"),
        ({"url": "localhost"}, r"does not read \['url'\]"),
        ({"forward_to": "pika"}, r"forward_to must be a mapping with a `type`"),
    ],
)
def test_a_wrong_broker_section_says_how_to_fix_it(settings: Dict[str, Any], message: str):
    config = EndpointConfig.from_dict({"type": "x", **settings})
    with pytest.raises(MetricsEventBrokerError, match=message):
        asyncio.run(MetricsEventBroker.from_endpoint_config(config))
