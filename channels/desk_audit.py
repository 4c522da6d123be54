"""The agent desk's audit trail: who did what to which hand-off, and when.

Every opening, claim, take-over, release, agent message and hand-back is one row of
``desk_audit`` in the desk's database (time, agent, action, hand-off reference,
conversation id, detail) and one log line. The detail says how much (``length=42``),
never what: no customer or agent text. The log line names the hand-off by its
reference (``h-…``), never by the conversation id, which for an SMS customer is a
phone number; the table keeps the id so that an operator can find the conversation.
Refusals (a reply from someone who is not an agent, an answer to a hand-off another
agent holds) are recorded too.

Read it with ``python -m channels.desk_agents audit [--handoff h-…]``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

from channels.channel_database import ChannelDatabase

logger = logging.getLogger(__name__)

# The actions recorded.
OPEN = "open"
CLAIM = "claim"
TAKE_OVER = "take_over"
RELEASE = "release"
MESSAGE = "message"
HANDBACK = "handback"
REFUSED = "refused"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit trail."""

    at: float
    agent: str
    action: str
    handoff_id: str
    sender_id: str
    detail: str

    def line(self) -> str:
        """The entry as the command line prints it (the conversation id included)."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        return "\t".join(
            (when, self.agent, self.action, self.handoff_id, self.sender_id, self.detail)
        )


class DeskAudit:
    """Record and read the desk's audit trail."""

    def __init__(
        self, database: ChannelDatabase, *, clock: Optional[Callable[[], float]] = None
    ) -> None:
        self.database = database
        self._clock = clock or time.time
        database.create(
            "CREATE TABLE IF NOT EXISTS desk_audit ("
            " at DOUBLE PRECISION NOT NULL, agent TEXT NOT NULL, action TEXT NOT NULL,"
            " handoff_id TEXT NOT NULL, sender_id TEXT NOT NULL, detail TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS desk_audit_handoff ON desk_audit (handoff_id, at)",
        )

    def record_sync(
        self, agent: str, action: str, handoff_id: str, sender_id: str, *, detail: str = ""
    ) -> None:
        """Add a row to the trail and log it (``detail``: how much, never what was said)."""
        self.database.execute(
            "INSERT INTO desk_audit (at, agent, action, handoff_id, sender_id, detail)"
            " VALUES (:at, :agent, :action, :handoff_id, :sender_id, :detail)",
            {
                "at": self._clock(),
                "agent": agent,
                "action": action,
                "handoff_id": handoff_id,
                "sender_id": sender_id,
                "detail": detail,
            },
        )
        logger.info(
            "agent desk audit: %s %s %s%s",
            agent,
            action,
            handoff_id,
            f" ({detail})" if detail else "",
        )

    async def record(
        self, agent: str, action: str, handoff_id: str, sender_id: str, *, detail: str = ""
    ) -> None:
        """:meth:`record_sync` off the event loop."""
        await asyncio.to_thread(
            self.record_sync, agent, action, handoff_id, sender_id, detail=detail
        )

    def entries_sync(
        self, *, handoff_id: Optional[str] = None, limit: int = 50
    ) -> List[AuditEntry]:
        """The newest ``limit`` entries (of one hand-off), oldest first."""
        where = "WHERE handoff_id = :handoff_id" if handoff_id else ""
        rows = self.database.execute(
            "SELECT at, agent, action, handoff_id, sender_id, detail FROM desk_audit"
            f" {where} ORDER BY at DESC LIMIT :limit",
            {"handoff_id": handoff_id, "limit": max(1, limit)},
        )
        return [AuditEntry(*row) for row in reversed(rows)]
