"""Which platform deliveries were already taken in, so a retried one is dropped.

Slack, Telegram and Twilio all re-send a webhook they think was lost. Each delivery
carries the platform's own id (Slack ``event_id``, Telegram ``update_id``, Twilio
``MessageSid``); the first delivery of an id is processed, every later one within the
window is acknowledged and dropped. The ids live in a SQLite file, not in memory, so
the rule holds across a restart of the server and across workers on one machine that
share the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Optional

DEFAULT_WINDOW_SECONDS = 24 * 60 * 60
DEFAULT_PATH = "channel_deliveries.db"


class DeliveryLog:
    """A de-duplication window over platform delivery ids, kept in a SQLite file."""

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(
                f"the de-duplication window must be positive, not {window_seconds!r}; "
                "set `dedup_window_seconds` in credentials.yml to a number of seconds"
            )
        self.path = Path(path)
        self.window_seconds = float(window_seconds)
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS deliveries ("
                " channel TEXT NOT NULL, delivery_id TEXT NOT NULL, seen_at REAL NOT NULL,"
                " PRIMARY KEY (channel, delivery_id))"
            )
            # Pruning by age runs on every delivery: without an index it would scan
            # a day's worth of ids each time.
            connection.execute(
                "CREATE INDEX IF NOT EXISTS deliveries_seen_at ON deliveries (seen_at)"
            )

    def _connect(self) -> sqlite3.Connection:
        return connect_sqlite(self.path)

    def first_time_sync(self, channel: str, delivery_id: str) -> bool:
        """Record the delivery; True only for the first one of its id in the window."""
        now = self._clock()
        oldest = now - self.window_seconds
        with self._lock, self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute("DELETE FROM deliveries WHERE seen_at < ?", (oldest,))
                cursor = connection.execute(
                    "INSERT OR IGNORE INTO deliveries (channel, delivery_id, seen_at)"
                    " VALUES (?, ?, ?)",
                    (channel, str(delivery_id), now),
                )
                first = cursor.rowcount == 1
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return first

    async def first_time(self, channel: str, delivery_id: str) -> bool:
        """Like :meth:`first_time_sync`, off the event loop."""
        return await asyncio.to_thread(self.first_time_sync, channel, delivery_id)


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """A connection to one of the channels' small SQLite files (autocommit).

    WAL lets several worker processes read and write the same file; the timeout makes a
    busy writer wait instead of failing the webhook; in WAL mode ``synchronous=NORMAL``
    still survives a crash of the server (what de-duplication across restarts needs)
    without an fsync on every delivery.
    """
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection
