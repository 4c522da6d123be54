"""What the SMS channel remembers per phone number: opt-outs and the last numbered options.

Both must outlive the server process. An opt-out is a legal matter (a customer who
texted STOP gets nothing more until START), and a customer may answer "1" to the
options minutes later, after a deploy restarted the server. So both live in a table,
not in memory: a SQLite file the workers of one machine share, or a database servers
on several machines share (:mod:`channels.channel_database`); an opt-out taken by one
server holds on all of them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import sqlalchemy as sa

from channels.channel_database import ChannelDatabase


@dataclass(frozen=True)
class Option:
    """One button, shown as a numbered line: what the customer reads and what it means."""

    title: str
    payload: str


class SenderStore:
    """Opt-out flags and last options per sender, in a SQLite file or a shared database."""

    def __init__(
        self,
        location: str | Path,
        *,
        options_ttl_seconds: float,
        clock: Optional[Callable[[], float]] = None,
        setting: str = "state_db",
    ) -> None:
        self.database = ChannelDatabase(location, setting=setting)
        self.options_ttl_seconds = options_ttl_seconds
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self.database.create(
            "CREATE TABLE IF NOT EXISTS opt_outs ("
            " sender TEXT PRIMARY KEY, opted_out_at DOUBLE PRECISION NOT NULL)",
            "CREATE TABLE IF NOT EXISTS options ("
            " sender TEXT PRIMARY KEY, options TEXT NOT NULL,"
            " saved_at DOUBLE PRECISION NOT NULL)",
        )

    # -------------------------------------------------------------- opt-out
    def is_opted_out_sync(self, sender: str) -> bool:
        """Whether ``sender`` has opted out (sent STOP)."""
        with self._lock:
            rows = self.database.execute(
                "SELECT 1 FROM opt_outs WHERE sender = :sender", {"sender": sender}
            )
        return bool(rows)

    def set_opted_out_sync(self, sender: str, opted_out: bool) -> None:
        """Record that ``sender`` opted out, or opted back in."""
        with self._lock, self.database.transaction() as connection:
            if opted_out:
                connection.execute(
                    sa.text(
                        "INSERT INTO opt_outs (sender, opted_out_at) VALUES (:sender, :now)"
                        " ON CONFLICT (sender) DO UPDATE SET opted_out_at = excluded.opted_out_at"
                    ),
                    {"sender": sender, "now": self._clock()},
                )
                # Options offered before STOP mean nothing after START.
                connection.execute(
                    sa.text("DELETE FROM options WHERE sender = :sender"), {"sender": sender}
                )
            else:
                connection.execute(
                    sa.text("DELETE FROM opt_outs WHERE sender = :sender"), {"sender": sender}
                )

    async def is_opted_out(self, sender: str) -> bool:
        """Whether ``sender`` has opted out, read off the event loop."""
        return await asyncio.to_thread(self.is_opted_out_sync, sender)

    async def set_opted_out(self, sender: str, opted_out: bool) -> None:
        """Record the sender's opt-out or opt-in, written off the event loop."""
        await asyncio.to_thread(self.set_opted_out_sync, sender, opted_out)

    # -------------------------------------------------------------- options
    def remember_options_sync(self, sender: str, options: Sequence[Option]) -> None:
        """Keep the options last offered to ``sender``, replacing earlier ones."""
        encoded = json.dumps([[option.title, option.payload] for option in options])
        with self._lock:
            self.database.execute(
                "INSERT INTO options (sender, options, saved_at) VALUES (:sender, :options, :now)"
                " ON CONFLICT (sender) DO UPDATE SET options = excluded.options,"
                " saved_at = excluded.saved_at",
                {"sender": sender, "options": encoded, "now": self._clock()},
            )

    def take_options_sync(self, sender: str) -> List[Option]:
        """The sender's last options, if still fresh; they are forgotten either way.

        Options answer the very next message only: a "2" typed an hour and three
        topics later is a number, not a button.
        """
        with self._lock, self.database.transaction() as connection:
            row = connection.execute(
                sa.text("SELECT options, saved_at FROM options WHERE sender = :sender"),
                {"sender": sender},
            ).fetchone()
            if row is None:
                return []
            # Deleted only if unchanged since read: of two messages taking the same
            # options at once (two servers), one gets them and the other none.
            taken = connection.execute(
                sa.text(
                    "DELETE FROM options WHERE sender = :sender AND options = :options"
                    " AND saved_at = :saved_at"
                ),
                {"sender": sender, "options": row[0], "saved_at": row[1]},
            ).rowcount
        if taken != 1 or self._clock() - row[1] > self.options_ttl_seconds:
            return []
        return [Option(title, payload) for title, payload in json.loads(row[0])]

    async def remember_options(self, sender: str, options: Sequence[Option]) -> None:
        """Keep the options last offered to ``sender``, written off the event loop."""
        await asyncio.to_thread(self.remember_options_sync, sender, list(options))

    async def take_options(self, sender: str) -> List[Option]:
        """The sender's last options if still fresh (forgotten either way), off the event loop."""
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
