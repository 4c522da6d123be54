"""Which conversations are with a person: the agent desk's own small SQLite table.

The tracker says a conversation is paused; this table says why, since when, and where
the agents discuss it (the Slack thread), and how far the customer's messages have
been forwarded there. It is a file, not memory, so several workers on one machine
see the same hand-offs, and a restart loses none.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from channels.delivery_log import connect_sqlite

DEFAULT_PATH = "handoffs.db"


@dataclass(frozen=True)
class Handoff:
    """One conversation handed to a person."""

    sender_id: str
    channel: str
    reason: str
    opened_at: float
    closed_at: Optional[float]
    thread_ts: Optional[str]
    # Tracker timestamp of the newest customer message already forwarded to agents.
    forwarded_until: float

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


_COLUMNS = "sender_id, channel, reason, opened_at, closed_at, thread_ts, forwarded_until"


class HandoffStore:
    """Open, list, look up and close hand-offs."""

    def __init__(
        self, path: str | Path = DEFAULT_PATH, *, clock: Optional[Callable[[], float]] = None
    ) -> None:
        self.path = Path(path)
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS handoffs ("
                " sender_id TEXT PRIMARY KEY, channel TEXT NOT NULL, reason TEXT NOT NULL,"
                " opened_at REAL NOT NULL, closed_at REAL, thread_ts TEXT,"
                " forwarded_until REAL NOT NULL DEFAULT 0)"
            )
            connection.execute("CREATE INDEX IF NOT EXISTS handoffs_thread ON handoffs (thread_ts)")

    def _connect(self) -> sqlite3.Connection:
        return connect_sqlite(self.path)

    def open_sync(self, sender_id: str, channel: str, reason: str, since: float) -> bool:
        """Open a hand-off; False when one is already open for ``sender_id``.

        ``since`` is the tracker time of the customer's latest message: what came
        before it was in the transcript the agents got when the hand-off opened.
        """
        with self._lock, self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    "SELECT closed_at FROM handoffs WHERE sender_id = ?", (sender_id,)
                ).fetchone()
                if row is not None and row[0] is None:
                    connection.execute("COMMIT")
                    return False
                connection.execute(
                    f"INSERT OR REPLACE INTO handoffs ({_COLUMNS}) VALUES (?, ?, ?, ?, NULL,"
                    " NULL, ?)",
                    (sender_id, channel, reason, self._clock(), since),
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return True

    def get_sync(self, sender_id: str) -> Optional[Handoff]:
        with self._connect() as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM handoffs WHERE sender_id = ?", (sender_id,)
            ).fetchone()
        return Handoff(*row) if row else None

    def by_thread_sync(self, thread_ts: str) -> Optional[Handoff]:
        with self._connect() as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM handoffs WHERE thread_ts = ? AND closed_at IS NULL",
                (thread_ts,),
            ).fetchone()
        return Handoff(*row) if row else None

    def list_open_sync(self) -> List[Handoff]:
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM handoffs WHERE closed_at IS NULL ORDER BY opened_at"
            ).fetchall()
        return [Handoff(*row) for row in rows]

    def close_sync(self, sender_id: str) -> bool:
        """Close the open hand-off of ``sender_id``; False when none was open."""
        with self._lock, self._connect() as connection:
            cursor = connection.execute(
                "UPDATE handoffs SET closed_at = ? WHERE sender_id = ? AND closed_at IS NULL",
                (self._clock(), sender_id),
            )
        return cursor.rowcount == 1

    def set_thread_sync(self, sender_id: str, thread_ts: str) -> None:
        with self._lock, self._connect() as connection:
            connection.execute(
                "UPDATE handoffs SET thread_ts = ? WHERE sender_id = ?", (thread_ts, sender_id)
            )

    def claim_forward_sync(self, sender_id: str, seen: float, until: float) -> bool:
        """Move the forwarding mark from ``seen`` to ``until``; False if another worker did.

        Claimed before posting, so two workers never forward the same message twice.
        """
        with self._lock, self._connect() as connection:
            cursor = connection.execute(
                "UPDATE handoffs SET forwarded_until = ? WHERE sender_id = ?"
                " AND forwarded_until = ? AND closed_at IS NULL",
                (until, sender_id, seen),
            )
        return cursor.rowcount == 1

    # Async wrappers: SQLite calls leave the event loop.
    async def open(self, sender_id: str, channel: str, reason: str, since: float) -> bool:
        return await asyncio.to_thread(self.open_sync, sender_id, channel, reason, since)

    async def get(self, sender_id: str) -> Optional[Handoff]:
        return await asyncio.to_thread(self.get_sync, sender_id)

    async def by_thread(self, thread_ts: str) -> Optional[Handoff]:
        return await asyncio.to_thread(self.by_thread_sync, thread_ts)

    async def list_open(self) -> List[Handoff]:
        return await asyncio.to_thread(self.list_open_sync)

    async def close(self, sender_id: str) -> bool:
        return await asyncio.to_thread(self.close_sync, sender_id)

    async def set_thread(self, sender_id: str, thread_ts: str) -> None:
        await asyncio.to_thread(self.set_thread_sync, sender_id, thread_ts)

    async def claim_forward(self, sender_id: str, seen: float, until: float) -> bool:
        return await asyncio.to_thread(self.claim_forward_sync, sender_id, seen, until)
