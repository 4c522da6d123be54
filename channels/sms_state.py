"""What the SMS channel remembers per phone number: opt-outs and the last numbered options.

Both must outlive the server process. An opt-out is a legal matter (a customer who
texted STOP gets nothing more until START), and a customer may answer "1" to the
options minutes later, after a deploy restarted the server. So both live in a SQLite
file (WAL, like :class:`channels.delivery_log.DeliveryLog`), not in memory.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from channels.delivery_log import connect_sqlite


@dataclass(frozen=True)
class Option:
    """One button, shown as a numbered line: what the customer reads and what it means."""

    title: str
    payload: str


class SenderStore:
    """Opt-out flags and last options per sender, in a SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        options_ttl_seconds: float,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        self.path = Path(path)
        self.options_ttl_seconds = options_ttl_seconds
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS opt_outs ("
                " sender TEXT PRIMARY KEY, opted_out_at REAL NOT NULL)"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS options ("
                " sender TEXT PRIMARY KEY, options TEXT NOT NULL, saved_at REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return connect_sqlite(self.path)

    # -------------------------------------------------------------- opt-out
    def is_opted_out_sync(self, sender: str) -> bool:
        with self._lock, self._connect() as connection:
            row = connection.execute(
                "SELECT 1 FROM opt_outs WHERE sender = ?", (sender,)
            ).fetchone()
        return row is not None

    def set_opted_out_sync(self, sender: str, opted_out: bool) -> None:
        with self._lock, self._connect() as connection:
            if opted_out:
                connection.execute(
                    "INSERT OR REPLACE INTO opt_outs (sender, opted_out_at) VALUES (?, ?)",
                    (sender, self._clock()),
                )
                # Options offered before STOP mean nothing after START.
                connection.execute("DELETE FROM options WHERE sender = ?", (sender,))
            else:
                connection.execute("DELETE FROM opt_outs WHERE sender = ?", (sender,))

    async def is_opted_out(self, sender: str) -> bool:
        return await asyncio.to_thread(self.is_opted_out_sync, sender)

    async def set_opted_out(self, sender: str, opted_out: bool) -> None:
        await asyncio.to_thread(self.set_opted_out_sync, sender, opted_out)

    # -------------------------------------------------------------- options
    def remember_options_sync(self, sender: str, options: Sequence[Option]) -> None:
        encoded = json.dumps([[option.title, option.payload] for option in options])
        with self._lock, self._connect() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO options (sender, options, saved_at) VALUES (?, ?, ?)",
                (sender, encoded, self._clock()),
            )

    def take_options_sync(self, sender: str) -> List[Option]:
        """The sender's last options, if still fresh; they are forgotten either way.

        Options answer the very next message only: a "2" typed an hour and three
        topics later is a number, not a button.
        """
        with self._lock, self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            row = connection.execute(
                "SELECT options, saved_at FROM options WHERE sender = ?", (sender,)
            ).fetchone()
            connection.execute("DELETE FROM options WHERE sender = ?", (sender,))
            connection.execute("COMMIT")
        if row is None or self._clock() - row[1] > self.options_ttl_seconds:
            return []
        return [Option(title, payload) for title, payload in json.loads(row[0])]

    async def remember_options(self, sender: str, options: Sequence[Option]) -> None:
        await asyncio.to_thread(self.remember_options_sync, sender, list(options))

    async def take_options(self, sender: str) -> List[Option]:
        return await asyncio.to_thread(self.take_options_sync, sender)


def choose_option(text: str, options: Sequence[Option]) -> Optional[Option]:
    """The option a reply picks: its number ("2", "2.", " 2) ") or its exact title."""
    answer = " ".join(text.split()).rstrip(".)").strip()
    if answer.isdigit() and answer.isascii():
        index = int(answer)
        return options[index - 1] if 1 <= index <= len(options) else None
    folded = answer.casefold()
    for option in options:
        if " ".join(option.title.split()).casefold() == folded:
            return option
    return None
