"""Which platform deliveries were already taken in, so a retried one is dropped.

Slack, Telegram and Twilio all re-send a webhook they think was lost. Each delivery
carries the platform's own id (Slack ``event_id``, Telegram ``update_id``, Twilio
``MessageSid``); the first delivery of an id is processed, every later one within the
window is acknowledged and dropped. The ids live in a table, not in memory, so the
rule holds across a restart of the server: in a SQLite file that the workers of one
machine share, or in a database that servers on several machines share
(:mod:`channels.channel_database`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import sqlalchemy as sa

from channels.channel_database import ChannelDatabase
from channels.settings import DEFAULT_DEDUP_WINDOW_SECONDS

DEFAULT_WINDOW_SECONDS = DEFAULT_DEDUP_WINDOW_SECONDS


class DeliveryLog:
    """A de-duplication window over platform delivery ids, kept in a database table."""

    def __init__(
        self,
        location: str | Path,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Optional[Callable[[], float]] = None,
        setting: str = "dedup_db",
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(
                f"the de-duplication window must be positive, not {window_seconds!r}; "
                "set `dedup_window_seconds` in credentials.yml to a number of seconds"
            )
        self.database = ChannelDatabase(location, setting=setting)
        self.window_seconds = float(window_seconds)
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self.database.create(
            "CREATE TABLE IF NOT EXISTS deliveries ("
            " channel TEXT NOT NULL, delivery_id TEXT NOT NULL,"
            " seen_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (channel, delivery_id))",
            # Pruning by age runs on every delivery: without an index it would scan
            # a day's worth of ids each time.
            "CREATE INDEX IF NOT EXISTS deliveries_seen_at ON deliveries (seen_at)",
        )

    def first_time_sync(self, channel: str, delivery_id: str) -> bool:
        """Record the delivery; True only for the first one of its id in the window."""
        now = self._clock()
        oldest = now - self.window_seconds
        with self._lock, self.database.transaction() as connection:
            connection.execute(
                sa.text("DELETE FROM deliveries WHERE seen_at < :oldest"), {"oldest": oldest}
            )
            # One atomic statement: of two processes taking the same id at once, the
            # database lets exactly one insert it.
            result = connection.execute(
                sa.text(
                    "INSERT INTO deliveries (channel, delivery_id, seen_at)"
                    " VALUES (:channel, :delivery_id, :now)"
                    " ON CONFLICT (channel, delivery_id) DO NOTHING"
                ),
                {"channel": channel, "delivery_id": str(delivery_id), "now": now},
            )
            return bool(result.rowcount == 1)

    async def first_time(self, channel: str, delivery_id: str) -> bool:
        """Like :meth:`first_time_sync`, off the event loop."""
        return await asyncio.to_thread(self.first_time_sync, channel, delivery_id)
