"""RequestLimits: each route's largest body, refused before the body is read.

Sanic 21.12 has one request size for a whole app (``REQUEST_MAX_SIZE``, 100 MB by
default) and reads a body completely into memory before any middleware or handler
looks at the request: a webhook that wants a few kilobytes would first take in
100 MB from anybody. :func:`limit_request_sizes` gives every route its own limit, set
on the request in the instant between Sanic finding the route and reading the body
(:class:`LimitedRequest`, whose ``route`` attribute applies it), so a larger body is
answered 413 as soon as its ``Content-Length`` is seen, or as soon as a chunked body
passes the limit, and never read past it:

* a route's own limit, declared where the route is made (Sanic's route context:
  ``@blueprint.post("/webhook", ctx_max_body_bytes=65536)``), as every rasa-llm
  channel does;
* Rasa's HTTP API routes, by name (:data:`RASA_ROUTE_LIMITS`): bodies of events,
  messages and parses get 1 MiB; training data and test data 32 MiB (a larger bot
  trains from files, not over HTTP);
* any other route (another plugin's channel): :data:`DEFAULT_LIMIT` (1 MiB).

Streaming routes (the web chat's upload) read their body themselves and cap it there.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from sanic import Sanic
from sanic.request import Request

__all__ = [
    "DEFAULT_LIMIT",
    "RASA_ROUTE_LIMITS",
    "LimitedRequest",
    "limit_for",
    "limit_request_sizes",
]

MIB = 1024 * 1024
DEFAULT_LIMIT = 1 * MIB
LARGE_LIMIT = 32 * MIB
# Rasa 3.6's HTTP API routes (rasa/server.py) that take large bodies, by handler name.
RASA_ROUTE_LIMITS: Dict[str, int] = {
    "train": LARGE_LIMIT,
    "evaluate_stories": LARGE_LIMIT,
    "evaluate_intents": LARGE_LIMIT,
}
_INSTALLED = "_rasa_llm_request_limits"


def limit_for(route: Any) -> int:
    """The largest body ``route`` accepts, in bytes."""
    declared = getattr(route.ctx, "max_body_bytes", None)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    handler_name = str(route.name).rsplit(".", 1)[-1]
    return RASA_ROUTE_LIMITS.get(handler_name, DEFAULT_LIMIT)


# Sanic's own storage of a request's route (a slot), which the property below wraps.
_ROUTE_SLOT: Any = Request.__dict__["route"]


class LimitedRequest(Request):
    """A request that applies its route's body limit the moment Sanic routes it."""

    __slots__ = ()

    @property  # type: ignore[override]
    def route(self) -> Optional[Any]:
        """The Sanic route the request matched (setting it applies the route's body limit)."""
        return _ROUTE_SLOT.__get__(self)

    @route.setter
    def route(self, value: Optional[Any]) -> None:
        _ROUTE_SLOT.__set__(self, value)
        stream = getattr(self, "stream", None)
        if value is None or stream is None or not hasattr(stream, "request_max_size"):
            return
        # Sanic compares the body read so far (for Content-Length: the declared length,
        # at the first read) with this and answers 413 beyond it.
        stream.request_max_size = min(stream.request_max_size, limit_for(value))
        declared = getattr(stream, "request_bytes", None)
        if isinstance(declared, int) and declared > stream.request_max_size:
            # No "100 Continue" for a body that will be refused: the client need not send it.
            stream.expecting_continue = False


def _limited(request_class: type[Request]) -> type[Request]:
    if issubclass(request_class, LimitedRequest):
        return request_class
    if request_class is Request:
        return LimitedRequest
    name = f"Limited{request_class.__name__}"  # another plugin's or our own subclass
    return type(name, (LimitedRequest, request_class), {"__slots__": ()})


def limit_request_sizes(app: Sanic) -> Sanic:
    """Give every route of ``app`` its own body limit (idempotent); returns ``app``."""
    if getattr(app.ctx, _INSTALLED, False):
        return app
    app.request_class = _limited(app.request_class)
    setattr(app.ctx, _INSTALLED, True)
    return app
