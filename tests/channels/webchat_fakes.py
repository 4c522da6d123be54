"""Stand-ins for what the web chat's socket reads when a test greets a page without a
server: a Sanic request's Rasa agent, and a tracker store that is down."""

from __future__ import annotations

from typing import Any


class Request:
    """What ``_greet`` reads of a Sanic request: the app's Rasa agent."""

    def __init__(self, tracker_store: Any) -> None:
        agent = type("Agent", (), {"tracker_store": tracker_store})()
        self.app = type("App", (), {"ctx": type("Ctx", (), {"agent": agent})()})()


class BrokenTrackerStore:
    """A tracker store whose database is down."""

    async def retrieve(self, sender_id: str) -> Any:
        """Fail as a store does when it cannot reach its database."""
        raise ConnectionError("database is down")
