"""One message at a time per conversation, in the order the messages came.

Every channel answers its webhook at once and lets the bot work out of band, so two
messages of one customer can be in flight together: the second must not overtake the
first, neither on the way to the bot nor before it (de-duplication and the SMS opt-out
are awaited in the webhook, and a slow database for the first message would otherwise
let the second through first).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


class Turns:
    """Per-key FIFO turns: ``async with turns.turn(key):`` waits for the key's earlier
    holders, in the order they asked (asyncio.Lock wakes its waiters first come, first
    served). A key's lock is forgotten once nobody holds or waits for it, so the table
    does not grow with every customer the server has seen.
    """

    def __init__(self) -> None:
        self._entries: Dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s turn for the ``async with`` block, after its earlier holders."""
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def __len__(self) -> int:
        """How many keys have a holder or a waiter."""
        return len(self._entries)
