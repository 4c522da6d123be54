"""Which conversations are with a person: the agent desk's own small table.

The tracker says a conversation is paused; this table says why, since when, which
agent has claimed it, where the agents discuss it (the Slack thread), and how far the
customer's messages have been forwarded there. It is a SQLite file or a shared
database (:mod:`channels.channel_database`), not memory, so every worker and server
sees the same hand-offs and claims, and a restart loses none.

Every hand-off has a reference of its own (``h-`` and 12 hex digits, new at each
opening), which logs, Slack and the desk's URLs can show instead of the conversation
id (an SMS conversation's id is the customer's phone number).

Claims: one agent at a time answers a customer. Claiming, answering, releasing and
handing back are each one conditional statement (``... WHERE claimed_by = :agent``),
so two agents or two workers racing cannot both win.
"""

from __future__ import annotations

import asyncio
import enum
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import sqlalchemy as sa

from channels.channel_database import ChannelDatabase

_REFERENCE = re.compile(r"^h-[0-9a-f]{12}$")
# Columns added after the first release: an existing desk database gets them when a
# server starts (see :meth:`HandoffStore._upgrade`).
_ADDED_COLUMNS = (
    ("handoff_id", "TEXT"),
    ("claimed_by", "TEXT"),
    ("claimed_at", "DOUBLE PRECISION"),
    ("agent_active_at", "DOUBLE PRECISION"),
    ("first_answer_at", "DOUBLE PRECISION"),
)
# The advisory lock that upgrading the table takes on PostgreSQL (servers starting at
# once take turns); any fixed 64-bit number other software is unlikely to use.
_UPGRADE_LOCK_KEY = 0x7261_7361_6C6C_6D02


def new_reference() -> str:
    """A fresh hand-off reference: ``h-`` and 12 hex digits (48 random bits)."""
    return "h-" + secrets.token_hex(6)


def is_reference(value: str) -> bool:
    """True for a hand-off reference (``h-3f9a1c2b7d4e``), False for a conversation id."""
    return bool(_REFERENCE.match(value))


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
    # The hand-off's own reference; None only for one opened before references existed
    # and not yet seen by a server that gives it one.
    handoff_id: Optional[str] = None
    # The agent answering it (a desk agent's name, or ``slack:U…``), since when, and
    # when that agent last claimed or answered.
    claimed_by: Optional[str] = None
    claimed_at: Optional[float] = None
    agent_active_at: Optional[float] = None
    # When an agent first answered the customer.
    first_answer_at: Optional[float] = None

    @property
    def is_open(self) -> bool:
        """Whether the conversation is still with a person (not handed back)."""
        return self.closed_at is None

    @property
    def ref(self) -> str:
        """What logs and notes call this hand-off: its reference, never the id."""
        return self.handoff_id or "h-unknown"

    def waited_s(self, now: float) -> float:
        """How long the customer waited for a person: from the opening to the first
        agent message, or to ``now`` while nobody has answered.
        """
        end = self.first_answer_at if self.first_answer_at is not None else now
        return max(0.0, end - self.opened_at)


class Claim(enum.Enum):
    """The outcome of a claim."""

    CLAIMED = "claimed"  # the hand-off is now the agent's
    ALREADY_YOURS = "already_yours"  # it was the agent's before
    TAKEN_OVER = "taken_over"  # it was another agent's, idle long enough
    CLAIMED_BY_OTHER = "claimed_by_other"  # another agent has it
    NOT_OPEN = "not_open"  # no open hand-off


_COLUMNS = (
    "sender_id, channel, reason, opened_at, closed_at, thread_ts, forwarded_until,"
    " handoff_id, claimed_by, claimed_at, agent_active_at, first_answer_at"
)


class HandoffStore:
    """Open, claim, list, look up and close hand-offs."""

    def __init__(
        self,
        location: str | Path,
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
        self._upgrade()

    def _upgrade(self) -> None:
        """Add the columns a desk database made by an earlier version lacks, and give
        every hand-off a reference; then the reference's index. Safe to run at once
        from several servers: SQLite's write lock, or an advisory lock on PostgreSQL,
        makes them take turns, and each step is skipped once done.
        """
        with self.database.transaction() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY}
                )
            present = {column["name"] for column in sa.inspect(connection).get_columns("handoffs")}
            for name, kind in _ADDED_COLUMNS:
                if name not in present:
                    connection.execute(sa.text(f"ALTER TABLE handoffs ADD COLUMN {name} {kind}"))
            unnamed = connection.execute(
                sa.text("SELECT sender_id FROM handoffs WHERE handoff_id IS NULL")
            ).fetchall()
            for (sender_id,) in unnamed:
                connection.execute(
                    sa.text("UPDATE handoffs SET handoff_id = :ref WHERE sender_id = :sender_id"),
                    {"ref": new_reference(), "sender_id": sender_id},
                )
            connection.execute(
                sa.text(
                    "CREATE UNIQUE INDEX IF NOT EXISTS handoffs_reference ON handoffs (handoff_id)"
                )
            )

    # ------------------------------------------------------------- open and find
    def open_sync(self, sender_id: str, channel: str, reason: str, since: float) -> bool:
        """Open a hand-off; False when one is already open for ``sender_id``.

        ``since`` is the tracker time of the customer's latest message: what came
        before it was in the transcript the agents got when the hand-off opened.
        """
        # One statement: a new row, or a closed one opened again (with a new reference
        # and no claim); an open one is left alone (no row changed), however many
        # processes try at once.
        with self._lock:
            changed = self.database.execute(
                f"INSERT INTO handoffs ({_COLUMNS}) VALUES (:sender_id, :channel, :reason,"
                " :opened_at, NULL, NULL, :since, :ref, NULL, NULL, NULL, NULL)"
                " ON CONFLICT (sender_id) DO UPDATE SET channel = excluded.channel,"
                " reason = excluded.reason, opened_at = excluded.opened_at, closed_at = NULL,"
                " thread_ts = NULL, forwarded_until = excluded.forwarded_until,"
                " handoff_id = excluded.handoff_id, claimed_by = NULL, claimed_at = NULL,"
                " agent_active_at = NULL, first_answer_at = NULL"
                " WHERE handoffs.closed_at IS NOT NULL",
                {
                    "sender_id": sender_id,
                    "channel": channel,
                    "reason": reason,
                    "opened_at": self._clock(),
                    "since": since,
                    "ref": new_reference(),
                },
            )
        return bool(changed == 1)

    def get_sync(self, sender_id: str) -> Optional[Handoff]:
        """The hand-off of conversation ``sender_id`` (open or closed), or None."""
        return self._one("sender_id = :key", sender_id)

    def by_reference_sync(self, handoff_id: str) -> Optional[Handoff]:
        """The hand-off whose reference is ``handoff_id`` (``h-…``), or None."""
        return self._one("handoff_id = :key", handoff_id)

    def find_sync(self, ref: str) -> Optional[Handoff]:
        """The hand-off named by its reference or by its conversation id."""
        found = self.by_reference_sync(ref) if is_reference(ref) else None
        return found or self.get_sync(ref)

    def by_thread_sync(self, thread_ts: str) -> Optional[Handoff]:
        """The open hand-off discussed in the Slack thread ``thread_ts``, or None."""
        return self._one("thread_ts = :key AND closed_at IS NULL", thread_ts)

    def list_open_sync(self) -> List[Handoff]:
        """Every open hand-off, oldest first."""
        rows = self.database.execute(
            f"SELECT {_COLUMNS} FROM handoffs WHERE closed_at IS NULL ORDER BY opened_at", {}
        )
        return [Handoff(*row) for row in rows]

    def _one(self, where: str, key: str) -> Optional[Handoff]:
        rows = self.database.execute(f"SELECT {_COLUMNS} FROM handoffs WHERE {where}", {"key": key})
        return Handoff(*rows[0]) if rows else None

    # -------------------------------------------------------------------- claims
    def claim_sync(
        self, sender_id: str, agent: str, *, take_over_idle_s: Optional[float] = None
    ) -> Tuple[Claim, Optional[Handoff]]:
        """Claim the open hand-off of ``sender_id`` for ``agent``.

        With ``take_over_idle_s``, a hand-off another agent claimed is taken over when
        that agent has neither claimed nor answered it for that many seconds. Returns
        the outcome and the hand-off as it was before (its ``claimed_by`` names the
        agent taken over from).
        """
        with self._lock:
            before = self.get_sync(sender_id)
            if before is None or not before.is_open:
                return Claim.NOT_OPEN, before
            if before.claimed_by == agent:
                self._touch(sender_id, agent)
                return Claim.ALREADY_YOURS, before
            now = self._clock()
            parameters = {
                "agent": agent,
                "now": now,
                "sender_id": sender_id,
                "ref": before.handoff_id,
                "previous": before.claimed_by,
            }
            # The row must still be as read: unclaimed, or claimed by the same idle agent.
            if before.claimed_by is None:
                still = "claimed_by IS NULL"
            elif take_over_idle_s is not None:
                still = "claimed_by = :previous AND COALESCE(agent_active_at, 0) <= :idle_before"
                parameters["idle_before"] = now - take_over_idle_s
            else:
                return Claim.CLAIMED_BY_OTHER, before
            changed = self.database.execute(
                "UPDATE handoffs SET claimed_by = :agent, claimed_at = :now,"
                " agent_active_at = :now WHERE sender_id = :sender_id AND closed_at IS NULL"
                f" AND handoff_id = :ref AND {still}",
                parameters,
            )
        if changed == 1:
            return (Claim.CLAIMED if before.claimed_by is None else Claim.TAKEN_OVER), before
        after = self.get_sync(sender_id)
        if after is None or not after.is_open:
            return Claim.NOT_OPEN, after
        if after.claimed_by == agent:  # an earlier request of the same agent won
            return Claim.ALREADY_YOURS, after
        return Claim.CLAIMED_BY_OTHER, after

    def release_sync(self, sender_id: str, agent: str) -> bool:
        """Give up ``agent``'s claim; False when the hand-off is not open and theirs."""
        with self._lock:
            changed = self.database.execute(
                "UPDATE handoffs SET claimed_by = NULL, claimed_at = NULL,"
                " agent_active_at = NULL WHERE sender_id = :sender_id AND claimed_by = :agent"
                " AND closed_at IS NULL",
                {"sender_id": sender_id, "agent": agent},
            )
        return bool(changed == 1)

    def release_all_sync(self, agent: str) -> int:
        """Give up every claim of ``agent`` (an agent removed); how many there were."""
        with self._lock:
            changed = self.database.execute(
                "UPDATE handoffs SET claimed_by = NULL, claimed_at = NULL,"
                " agent_active_at = NULL WHERE claimed_by = :agent AND closed_at IS NULL",
                {"agent": agent},
            )
        return int(changed)

    def answered_sync(self, sender_id: str, agent: str) -> bool:
        """Record that ``agent`` answered; False when the claim is no longer theirs."""
        with self._lock:
            now = self._clock()
            changed = self.database.execute(
                "UPDATE handoffs SET agent_active_at = :now,"
                " first_answer_at = COALESCE(first_answer_at, :now)"
                " WHERE sender_id = :sender_id AND claimed_by = :agent AND closed_at IS NULL",
                {"now": now, "sender_id": sender_id, "agent": agent},
            )
        return bool(changed == 1)

    def _touch(self, sender_id: str, agent: str) -> None:
        self.database.execute(
            "UPDATE handoffs SET agent_active_at = :now WHERE sender_id = :sender_id"
            " AND claimed_by = :agent AND closed_at IS NULL",
            {"now": self._clock(), "sender_id": sender_id, "agent": agent},
        )

    # ------------------------------------------------------------- close and more
    def close_sync(self, sender_id: str, *, agent: Optional[str] = None) -> bool:
        """Close the open hand-off of ``sender_id``; False when none was open.

        With ``agent``, only if that agent holds the claim.
        """
        claim = " AND claimed_by = :agent" if agent is not None else ""
        with self._lock:
            changed = self.database.execute(
                "UPDATE handoffs SET closed_at = :now WHERE sender_id = :sender_id"
                f" AND closed_at IS NULL{claim}",
                {"now": self._clock(), "sender_id": sender_id, "agent": agent},
            )
        return bool(changed == 1)

    def set_thread_sync(self, sender_id: str, thread_ts: str) -> None:
        """Record the Slack thread ``thread_ts`` where agents discuss ``sender_id``."""
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
        """:meth:`open_sync` off the event loop."""
        return await asyncio.to_thread(self.open_sync, sender_id, channel, reason, since)

    async def get(self, sender_id: str) -> Optional[Handoff]:
        """:meth:`get_sync` off the event loop."""
        return await asyncio.to_thread(self.get_sync, sender_id)

    async def find(self, ref: str) -> Optional[Handoff]:
        """:meth:`find_sync` off the event loop."""
        return await asyncio.to_thread(self.find_sync, ref)

    async def by_thread(self, thread_ts: str) -> Optional[Handoff]:
        """:meth:`by_thread_sync` off the event loop."""
        return await asyncio.to_thread(self.by_thread_sync, thread_ts)

    async def list_open(self) -> List[Handoff]:
        """:meth:`list_open_sync` off the event loop."""
        return await asyncio.to_thread(self.list_open_sync)

    async def claim(
        self, sender_id: str, agent: str, *, take_over_idle_s: Optional[float] = None
    ) -> Tuple[Claim, Optional[Handoff]]:
        """:meth:`claim_sync` off the event loop."""
        return await asyncio.to_thread(
            lambda: self.claim_sync(sender_id, agent, take_over_idle_s=take_over_idle_s)
        )

    async def release(self, sender_id: str, agent: str) -> bool:
        """:meth:`release_sync` off the event loop."""
        return await asyncio.to_thread(self.release_sync, sender_id, agent)

    async def answered(self, sender_id: str, agent: str) -> bool:
        """:meth:`answered_sync` off the event loop."""
        return await asyncio.to_thread(self.answered_sync, sender_id, agent)

    async def close(self, sender_id: str, *, agent: Optional[str] = None) -> bool:
        """:meth:`close_sync` off the event loop."""
        return await asyncio.to_thread(lambda: self.close_sync(sender_id, agent=agent))

    async def set_thread(self, sender_id: str, thread_ts: str) -> None:
        """:meth:`set_thread_sync` off the event loop."""
        await asyncio.to_thread(self.set_thread_sync, sender_id, thread_ts)

    async def claim_forward(self, sender_id: str, seen: float, until: float) -> bool:
        """:meth:`claim_forward_sync` off the event loop."""
        return await asyncio.to_thread(self.claim_forward_sync, sender_id, seen, until)
