"""Which conversations are with a person: the agent desk's own small table.

The tracker says a conversation is paused; this table says why, since when, and where
the agents discuss it (the Slack thread), and how far the customer's messages have
been forwarded there. It is a SQLite file or a shared database
(:mod:`channels.channel_database`), not memory, so every worker and server sees the
same hand-offs, and a restart loses none.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from channels.channel_database import ChannelDatabase

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
        self,
        location: str | Path = DEFAULT_PATH,
        *,
        clock: Optional[Callable[[], float]] = None,
        setting: str = "db",
    ) -> None:
        self.database = ChannelDatabase(location, setting=setting)
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self.database.create(
            "CREATE TABLE IF NOT EXISTS handoffs ("
            " sender_id TEXT PRIMARY KEY, channel TEXT NOT NULL, reason TEXT NOT NULL,"
            " opened_at DOUBLE PRECISION NOT NULL, closed_at DOUBLE PRECISION,"
            " thread_ts TEXT, forwarded_until DOUBLE PRECISION NOT NULL DEFAULT 0)",
            "CREATE INDEX IF NOT EXISTS handoffs_thread ON handoffs (thread_ts)",
        )

    def open_sync(self, sender_id: str, channel: str, reason: str, since: float) -> bool:
        """Open a hand-off; False when one is already open for ``sender_id``.

        ``since`` is the tracker time of the customer's latest message: what came
        before it was in the transcript the agents got when the hand-off opened.
        """
        # One statement: a new row, or a closed one opened again; an open one is left
        # alone (no row changed), however many processes try at once.
        with self._lock:
            changed = self.database.execute(
                f"INSERT INTO handoffs ({_COLUMNS}) VALUES (:sender_id, :channel, :reason,"
                " :opened_at, NULL, NULL, :since)"
                " ON CONFLICT (sender_id) DO UPDATE SET channel = excluded.channel,"
                " reason = excluded.reason, opened_at = excluded.opened_at, closed_at = NULL,"
                " thread_ts = NULL, forwarded_until = excluded.forwarded_until"
                " WHERE handoffs.closed_at IS NOT NULL",
                {
                    "sender_id": sender_id,
                    "channel": channel,
                    "reason": reason,
                    "opened_at": self._clock(),
                    "since": since,
                },
            )
        return bool(changed == 1)

    def get_sync(self, sender_id: str) -> Optional[Handoff]:
        rows = self.database.execute(
            f"SELECT {_COLUMNS} FROM handoffs WHERE sender_id = :sender_id",
            {"sender_id": sender_id},
        )
        return Handoff(*rows[0]) if rows else None

    def by_thread_sync(self, thread_ts: str) -> Optional[Handoff]:
        rows = self.database.execute(
            f"SELECT {_COLUMNS} FROM handoffs WHERE thread_ts = :thread_ts AND closed_at IS NULL",
            {"thread_ts": thread_ts},
        )
        return Handoff(*rows[0]) if rows else None

    def list_open_sync(self) -> List[Handoff]:
        rows = self.database.execute(
            f"SELECT {_COLUMNS} FROM handoffs WHERE closed_at IS NULL ORDER BY opened_at"
        )
        return [Handoff(*row) for row in rows]

    def close_sync(self, sender_id: str) -> bool:
        """Close the open hand-off of ``sender_id``; False when none was open."""
        with self._lock:
            changed = self.database.execute(
                "UPDATE handoffs SET closed_at = :now WHERE sender_id = :sender_id"
                " AND closed_at IS NULL",
                {"now": self._clock(), "sender_id": sender_id},
            )
        return bool(changed == 1)

    def set_thread_sync(self, sender_id: str, thread_ts: str) -> None:
        with self._lock:
            self.database.execute(
                "UPDATE handoffs SET thread_ts = :thread_ts WHERE sender_id = :sender_id",
                {"thread_ts": thread_ts, "sender_id": sender_id},
            )

    def claim_forward_sync(self, sender_id: str, seen: float, until: float) -> bool:
        """Move the forwarding mark from ``seen`` to ``until``; False if another worker did.

        Claimed before posting, so two workers never forward the same message twice.
        """
        with self._lock:
            changed = self.database.execute(
                "UPDATE handoffs SET forwarded_until = :until WHERE sender_id = :sender_id"
                " AND forwarded_until = :seen AND closed_at IS NULL",
                {"until": until, "sender_id": sender_id, "seen": seen},
            )
        return bool(changed == 1)

    # Async wrappers: database calls leave the event loop.
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
