"""A health endpoint and Prometheus metrics for operators, as a Rasa input channel.

``channels.monitoring.MonitoringInput:`` in ``credentials.yml`` serves

- ``GET /webhooks/monitoring/health``: 200 ``{"status": "ok"}`` when the model is loaded
  and the tracker store and lock store answer; 503 ``{"status": "unavailable"}`` when
  one does not, so a load balancer sends customers to another server. An action
  server that does not answer gives 200 ``{"status": "degraded"}``: every server
  shares it, so taking them all out would help nobody, and customers still get the
  scripted answers. ``checks`` says which part is which.
- ``GET /webhooks/monitoring/metrics``: the Prometheus text format of
  :class:`rasa_llm.server.serving_metrics.ServingMetrics`, which
  ``rasa_llm.server.metrics_event_broker.MetricsEventBroker`` (endpoints.yml ``event_broker``)
  feeds, for a caller with ``Authorization: Bearer <metrics_token>`` (401/403
  otherwise; 404 with the fix when no ``metrics_token`` is set).

Health stays open: load balancers ask it without credentials, and it says only
whether the parts answer. The metrics count the business's traffic (messages,
hand-offs, fallbacks, sentiment), which is nobody else's business, so they need a token
(``metrics_token: ${RASA_LLM_API_TOKEN}`` in bot/credentials.yml; Prometheus sends it
with ``authorization: {credentials_file: ...}``). Neither holds customer data.

A channel because Rasa mounts channels' routes in its own server: no second port.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

import aiohttp
from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from rasa_llm.server.bearer_tokens import refusal
from rasa_llm.server.serving_metrics import CONTENT_TYPE_LATEST, serving_metrics

logger = logging.getLogger(__name__)

CHANNEL = "monitoring"
CHECK_TIMEOUT_SECONDS = 3.0
OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


MIN_TOKEN_CHARS = 16


class MonitoringError(ValueError):
    """The channel's section in credentials.yml has a key it does not read or a weak token."""


class MonitoringInput(InputChannel):
    """Health and metrics routes; takes no customer messages."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``monitoring``."""
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel from its credentials.yml section: only ``metrics_token``, if any.

        Raises :class:`MonitoringError` for another key or a token under 16 characters.
        """
        given = dict(credentials or {})
        unknown = sorted(str(key) for key in given if key != "metrics_token")
        if unknown:
            raise MonitoringError(
                "credentials.yml, channel `monitoring` (channels.monitoring.MonitoringInput): "
                f"unknown key(s) {unknown}. Valid keys: metrics_token."
            )
        token = given.get("metrics_token")
        if token is not None and (not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS):
            raise MonitoringError(
                "credentials.yml, channel `monitoring` (channels.monitoring.MonitoringInput), "
                f"key `metrics_token`: must be a secret of at least {MIN_TOKEN_CHARS} "
                "characters. Write metrics_token: ${RASA_LLM_API_TOKEN} (or a token of its own)."
            )
        return cls(metrics_token=token)

    def __init__(self, *, metrics_token: Optional[str] = None) -> None:
        self.metrics_token = metrics_token

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Routes ``GET /health`` (no token) and ``GET /metrics`` (the metrics token)."""
        monitoring = Blueprint("rasa_llm_monitoring", __name__)

        @monitoring.get("/health")
        async def health(request: Request) -> HTTPResponse:
            checks = await self.checks(request.app.ctx.agent)
            essential = (checks["model"], checks["tracker_store"], checks["lock_store"])
            if any(state not in ("ok", "not checked") for state in essential):
                status, code = "unavailable", 503
            elif checks["action_server"] not in ("ok", "not configured"):
                status, code = "degraded", 200
            else:
                status, code = "ok", 200
            return response.json({"status": status, "checks": checks}, status=code)

        @monitoring.get("/metrics")
        async def metrics(request: Request) -> HTTPResponse:
            refused = self._refuse_metrics(request)
            if refused is not None:
                return refused
            return response.raw(serving_metrics().exposition(), content_type=CONTENT_TYPE_LATEST)

        return monitoring

    def _refuse_metrics(self, request: Request) -> Optional[HTTPResponse]:
        """A 4xx for a caller without the metrics token; None lets the scrape through."""
        if self.metrics_token is None:
            reason, status = (
                (
                    "metrics are off: set metrics_token for channels.monitoring.MonitoringInput "
                    "in credentials.yml"
                ),
                404,
            )
        else:
            refused = refusal(request.headers, self.metrics_token)
            if refused is None:
                return None
            status, reason = refused
        logger.warning("monitoring: metrics refused with %d: %s", status, reason)
        return response.json({"error": reason}, status=status)

    async def checks(self, agent: Any) -> Dict[str, str]:
        """Each part's state: ``ok``, or a short reason without any customer data."""
        if agent is None or not agent.is_ready():
            return {
                "model": "not loaded", "tracker_store": "not checked",
                "lock_store": "not checked", "action_server": "not checked",
            }  # fmt: skip
        tracker_store, lock_store, action = await asyncio.gather(
            _in_thread(_tracker_store_check(agent.tracker_store)),
            _in_thread(_lock_store_check(agent.lock_store)),
            _action_server_check(agent.action_endpoint),
        )
        return {
            "model": "ok",
            "tracker_store": tracker_store,
            "lock_store": lock_store,
            "action_server": action,
        }


async def _in_thread(check: Optional[Callable[[], None]]) -> str:
    """Run a blocking check (a database driver's) off the event loop, with a deadline."""
    if check is None:
        return "not checked"
    try:
        await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        return "no answer"
    except Exception as error:  # the driver's own error type, whichever it is
        logger.warning("Health check failed: %s", type(error).__name__)
        return f"unreachable ({type(error).__name__})"
    return "ok"


def _tracker_store_check(store: Any) -> Optional[Callable[[], None]]:
    # Rasa wraps the configured store in a FailSafeTrackerStore; the engine is inside.
    inner = getattr(store, "_tracker_store", store)
    engine = getattr(inner, "engine", None)
    if engine is None:  # in memory, or a store this check does not know
        return None

    def select_one() -> None:
        import sqlalchemy as sa

        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    return select_one


def _lock_store_check(store: Any) -> Optional[Callable[[], None]]:
    client = getattr(store, "red", None)  # RedisLockStore's client
    if client is None:  # Rasa's in-memory lock store: nothing to reach
        return None

    def ping() -> None:
        client.ping()

    return ping


async def _action_server_check(endpoint: Any) -> str:
    url = getattr(endpoint, "url", None)
    if not url:
        return "not configured"
    # rasa_sdk answers GET /health next to its /webhook.
    health_url = url.rsplit("/", 1)[0] + "/health"
    try:
        timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(health_url) as answer:
                return "ok" if answer.status == 200 else f"HTTP {answer.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        return f"unreachable ({type(error).__name__})"
