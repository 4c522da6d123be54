"""ResilientSQLTrackerStore: Rasa's SQL tracker store that rides out a database restart.

Rasa 3.6's ``SQLTrackerStore`` keeps a pool of connections without checking them, and
Rasa wraps every tracker store in a ``FailSafeTrackerStore`` that, when a read fails,
carries on with an empty tracker and, when a write fails, keeps the turn in memory.
After a database restart or fail-over each stale pooled connection therefore fails
once, and each failure costs a customer the context of the conversation (the bot
answers as if it had never met them) and the turn it just had (never written). This
subclass changes three things, nothing else:

* connections are checked before use (SQLAlchemy's ``pool_pre_ping``), so stale ones
  are replaced instead of failing a read or a write;
* a read or write that fails because the database cannot be reached is retried, with
  growing pauses, for up to ``retry_seconds`` (default 10): a moment's outage delays
  the reply instead of losing the conversation. Past that, Rasa's own behaviour and
  error log apply;
* with an event broker (the metrics broker is one), the events a save publishes are
  found by counting the stored ones, as the save itself does, instead of reading the
  whole conversation back and rebuilding its tracker: Rasa's way costs a second
  tracker read per turn (measured in ``bench/tracker_save.py``).

In ``endpoints.yml``, instead of ``type: SQL``::

    tracker_store:
      type: rasa_llm.server.resilient_sql_tracker_store.ResilientSQLTrackerStore
      dialect: postgresql
      url: ${RASA_LLM_DATABASE_URL}
      retry_seconds: 10
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable, Optional, TypeVar

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_llm.errors import RasaLLMError

__all__ = ["ResilientSQLTrackerStore", "ResilientSQLTrackerStoreError"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_PAUSE_SECONDS = 0.2
LONGEST_PAUSE_SECONDS = 2.0


class ResilientSQLTrackerStoreError(RasaLLMError):
    """The tracker store's settings cannot be used."""


class ResilientSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` with checked connections and retried reads and writes."""

    def __init__(self, *args: Any, retry_seconds: Any = 10.0, **kwargs: Any) -> None:
        try:
            self.retry_seconds = float(retry_seconds)
        except (TypeError, ValueError):
            self.retry_seconds = -1.0
        if not 0 <= self.retry_seconds <= 600:
            raise ResilientSQLTrackerStoreError(
                f"tracker_store.retry_seconds is {retry_seconds!r}: give a number of "
                f"seconds from 0 (no retries) to 600, such as 10."
            )
        super().__init__(*args, **kwargs)
        # Rasa made its engine without pre-ping; the same URL and pool settings with it.
        rasa_engine: sa.engine.Engine = self.engine  # type: ignore[has-type]
        url = rasa_engine.url
        rasa_engine.dispose()
        self.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry_seconds
        pause = FIRST_PAUSE_SECONDS
        attempt = 1
        while True:
            try:
                return await call()
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
                if time.monotonic() + pause > deadline:
                    raise
                # The error's text may quote SQL parameters (customer text): type only.
                logger.warning(
                    "Tracker store %s failed (%s, attempt %d): database unreachable, "
                    "retrying in %.1f s.", what, type(error).__name__, attempt, pause,
                )  # fmt: skip
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
            attempt += 1

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        """Read a conversation's tracker (from its last session), retrying a lost connection."""
        return await self._retrying("read", lambda: SQLTrackerStore.retrieve(self, sender_id))

    async def retrieve_full_tracker(self, sender_id: str) -> Optional[DialogueStateTracker]:
        """Read a conversation's tracker with every session, retrying a lost connection."""
        return await self._retrying(
            "read", lambda: SQLTrackerStore.retrieve_full_tracker(self, sender_id)
        )

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Save the tracker's new events, retrying a lost connection."""
        await self._retrying("write", lambda: SQLTrackerStore.save(self, tracker))

    async def keys(self) -> Iterable[str]:
        """The ids of every stored conversation, retrying a lost connection."""
        return await self._retrying("read", lambda: SQLTrackerStore.keys(self))

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """Publish the events this save adds: those past the stored ones' count.

        Rasa's version retrieves the stored tracker to take its length; the count of
        the same query (events since the last session start) is that length, and is
        what ``save`` itself uses to pick the events it writes.
        """
        if self.event_broker is None:
            return
        with self.session_scope() as session:
            new_events = list(self._additional_events(session, tracker))
        await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)
