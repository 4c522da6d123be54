"""MetricsEventBroker: Rasa's event stream feeds the Prometheus metrics.

In ``endpoints.yml``::

    event_broker:
      type: rasa_llm.server.metrics_event_broker.MetricsEventBroker
      # optional: also send every event on to another broker, as Rasa would
      forward_to:
        type: pika
        url: localhost
        username: guest
        password: guest
        queues: [rasa_events]

Rasa gives a server one event broker; this one counts each event
(:class:`rasa_llm.server.serving_metrics.ServingMetrics`) and hands it to the broker under
``forward_to`` (any type Rasa supports), so metrics never cost the analytics stream.
The channel ``channels.monitoring.MonitoringInput`` serves the figures.
"""

from __future__ import annotations

import logging
from asyncio import AbstractEventLoop
from typing import Any, Dict, Optional

from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from rasa_llm.errors import RasaLLMError
from rasa_llm.server.serving_metrics import ServingMetrics, serving_metrics

__all__ = ["MetricsEventBroker", "MetricsEventBrokerError"]

logger = logging.getLogger(__name__)
KNOWN_KEYS = {"forward_to"}


class MetricsEventBrokerError(RasaLLMError):
    """The ``event_broker`` section for the metrics broker is not one it can use."""


class MetricsEventBroker(EventBroker):
    """Counts every published event, then forwards it to an optional second broker."""

    def __init__(
        self, *, metrics: Optional[ServingMetrics] = None, forward_to: Optional[EventBroker] = None
    ) -> None:
        self.metrics = metrics if metrics is not None else serving_metrics()
        self.forward_to = forward_to

    @classmethod
    async def from_endpoint_config(  # positional: Rasa's EventBroker.from_endpoint_config signature
        cls,
        broker_config: EndpointConfig,
        event_loop: Optional[AbstractEventLoop] = None,
    ) -> MetricsEventBroker:
        """Build the broker from ``event_broker:`` in endpoints.yml (and its ``forward_to``)."""
        settings: Dict[str, Any] = dict(broker_config.kwargs)
        unknown = sorted(set(settings) - KNOWN_KEYS)
        if unknown or broker_config.url:
            raise MetricsEventBrokerError(
                f"event_broker (MetricsEventBroker) does not read {unknown or ['url']}. "
                f"Its only key is `forward_to:`, with another broker's settings "
                f"(type, url, ...) indented under it."
            )
        forward_config = settings.get("forward_to")
        forward_to = None
        if forward_config is not None:
            if not isinstance(forward_config, dict) or not forward_config.get("type"):
                raise MetricsEventBrokerError(
                    "event_broker.forward_to must be a mapping with a `type` (pika, kafka, "
                    "sql, file or a class path) and that broker's own keys."
                )
            forward_to = await EventBroker.create(
                EndpointConfig.from_dict(forward_config), event_loop
            )
        return cls(forward_to=forward_to)

    def publish(self, event: Dict[str, Any]) -> None:
        """Count the event for the metrics, then forward it (a metrics error never stops it)."""
        try:
            self.metrics.observe(event)
        except Exception:  # a metrics bug must never cost a conversation its events
            logger.exception("Counting an event for the metrics failed; it is forwarded anyway.")
        if self.forward_to is not None:
            self.forward_to.publish(event)

    def is_ready(self) -> bool:
        """Whether the broker forwarded to is ready (always, when there is none)."""
        return self.forward_to.is_ready() if self.forward_to is not None else True

    async def close(self) -> None:
        """Close the broker forwarded to."""
        if self.forward_to is not None:
            await self.forward_to.close()
