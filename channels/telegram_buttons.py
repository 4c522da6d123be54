"""Rasa buttons as Telegram inline keyboards, and payloads too long for ``callback_data``.

Telegram gives a button at most 64 bytes of ``callback_data``; a Rasa payload with
entities (``/inform{"order_id": "…"}``) is often longer. Such a payload is kept in a
table (a SQLite file or a shared database, as for de-duplication) and the button
carries a short key instead (``~k:`` and 32 characters of its SHA-256), so the same
payload always gets the same key and a click still works after a restart of the
server or on another server. A key that is no longer known (the table was deleted)
is answered with a short notice, never sent to the bot as text.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import sqlalchemy as sa
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from channels.channel_database import ChannelDatabase

CALLBACK_DATA_LIMIT = 64
KEY_PREFIX = "~k:"
# Telegram's own limits on an inline keyboard.
BUTTONS_PER_ROW = 8
MAX_BUTTONS = 100
# Keys unused this long are forgotten: a keyboard that old is not clicked any more.
KEEP_SECONDS = 90 * 24 * 60 * 60
# Shown on a one-line keyboard only when the labels are this short in total; longer
# labels get a row each, because Telegram cuts labels that do not fit the width.
_ONE_ROW_CHARACTERS = 30
_ONE_ROW_BUTTONS = 3


class ButtonPayloads:
    """Long button payloads behind short keys, in the database de-duplication uses."""

    def __init__(
        self, location: str | Path, *, clock: Any = time.time, setting: str = "dedup_db"
    ) -> None:
        self.database = ChannelDatabase(location, setting=setting)
        self._clock = clock
        self._lock = threading.Lock()
        self.database.create(
            "CREATE TABLE IF NOT EXISTS telegram_button_payloads ("
            " key TEXT PRIMARY KEY, payload TEXT NOT NULL, used_at DOUBLE PRECISION NOT NULL)"
        )

    @staticmethod
    def needs_key(payload: str) -> bool:
        """Whether ``payload`` cannot ride in callback_data as it is and needs a stored key."""
        return (
            len(payload.encode("utf-8")) > CALLBACK_DATA_LIMIT
            or payload.startswith(KEY_PREFIX)
            or not payload
        )

    @staticmethod
    def key_of(payload: str) -> str:
        """The stored key for ``payload``: a prefix and part of its SHA-256."""
        digest = hashlib.sha256(payload.encode("utf-8")).digest()
        return KEY_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii")[:32]

    def callback_data_sync(self, payload: str) -> str:
        """What the button carries for ``payload``: itself when it fits, else its key."""
        if not self.needs_key(payload):
            return payload
        key = self.key_of(payload)
        now = self._clock()
        with self._lock, self.database.transaction() as connection:
            connection.execute(
                sa.text("DELETE FROM telegram_button_payloads WHERE used_at < :oldest"),
                {"oldest": now - KEEP_SECONDS},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO telegram_button_payloads (key, payload, used_at)"
                    " VALUES (:key, :payload, :now)"
                    " ON CONFLICT (key) DO UPDATE SET used_at = excluded.used_at"
                ),
                {"key": key, "payload": payload, "now": now},
            )
        return key

    def payload_sync(self, callback_data: str) -> Optional[str]:
        """The payload a clicked button stands for; None for a key that is not known."""
        if not callback_data.startswith(KEY_PREFIX):
            return callback_data
        with self._lock:
            rows = self.database.execute(
                "SELECT payload FROM telegram_button_payloads WHERE key = :key",
                {"key": callback_data},
            )
        return str(rows[0][0]) if rows else None

    async def callback_data(self, payload: str) -> str:
        """What the button carries for ``payload``; a long one is stored off the event loop."""
        if not self.needs_key(payload):
            return payload
        return await asyncio.to_thread(self.callback_data_sync, payload)

    async def payload(self, callback_data: str) -> Optional[str]:
        """The payload a button's callback_data stands for; None for an unknown or expired key."""
        if not callback_data.startswith(KEY_PREFIX):
            return callback_data
        return await asyncio.to_thread(self.payload_sync, callback_data)


def button_title(button: Dict[str, Any]) -> str:
    """The text a button shows: its title, else its payload or URL."""
    return str(button.get("title") or button.get("payload") or button.get("url") or "?")


def row_sizes(titles: Sequence[str], button_type: Optional[str]) -> List[int]:
    """How many buttons go on each row.

    ``button_type`` as in Rasa's stock channel: "vertical" puts each button on its own
    row, "inline" puts them side by side (Telegram allows 8 a row); without it, short
    labels share one row and longer ones get a row each.
    """
    count = len(titles)
    if button_type == "inline":
        side_by_side = True
    elif button_type == "vertical":
        side_by_side = False
    else:
        side_by_side = (
            count <= _ONE_ROW_BUTTONS and sum(len(t) for t in titles) <= _ONE_ROW_CHARACTERS
        )
    if not side_by_side:
        return [1] * count
    return [min(BUTTONS_PER_ROW, count - start) for start in range(0, count, BUTTONS_PER_ROW)]


async def inline_keyboard(
    buttons: Iterable[Any], payloads: ButtonPayloads, *, button_type: Optional[str] = None
) -> Optional[InlineKeyboardMarkup]:
    """Rasa buttons (``title`` and ``payload``, or ``url``) as an inline keyboard."""
    usable = [b for b in buttons if isinstance(b, dict) and (b.get("payload") or b.get("url"))]
    usable = usable[:MAX_BUTTONS]
    if not usable:
        return None
    made: List[InlineKeyboardButton] = []
    for button in usable:
        title = button_title(button)
        if button.get("url") and not button.get("payload"):
            made.append(InlineKeyboardButton(title, url=str(button["url"])))
        else:
            data = await payloads.callback_data(str(button["payload"]))
            made.append(InlineKeyboardButton(title, callback_data=data))
    rows: List[List[InlineKeyboardButton]] = []
    start = 0
    for size in row_sizes([button_title(b) for b in usable], button_type):
        rows.append(made[start : start + size])
        start += size
    return InlineKeyboardMarkup(rows)
