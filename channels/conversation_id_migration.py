r"""Rename stored conversations from bare platform ids to ids that name their channel.

Conversations are stored under ids that carry their channel (``sms:+447700900123``,
``telegram:4242``: :mod:`channels.conversation_ids`); older versions stored them under
the bare platform id. Run once after upgrading, so that returning customers find their
conversation (history and slots) and an open hand-off follows it::

    python -m channels.conversation_id_migration --endpoints bot/endpoints.yml \
        --credentials bot/credentials.yml --workdir bot           # dry run: what would change
    python -m channels.conversation_id_migration ... --apply      # rename

It works on Rasa's SQL tracker store (``type: SQL`` or a subclass such as
``ResilientSQLTrackerStore``; SQLite or PostgreSQL), read from the endpoints file as Rasa
reads it (``${VAR}`` expanded); relative SQLite files are found in ``--workdir``, the
directory ``rasa run`` starts in (:mod:`channels.migration_sources` finds both
databases). For each stored id without a channel prefix:

* the channel is the one its customer wrote from (the ``input_channel`` of its user
  events). Only channels that verify who writes (web chat, Slack, Telegram, SMS) prove
  whose a conversation is: a REST message in an SMS customer's conversation (any caller
  could name any id before) does not move it to REST. Only REST messages: REST. Messages
  of two verifying channels, no customer message, or only channels without a prefix
  (``rasa shell``'s ``cmdline``): left alone, and counted;
* all its events are renamed in one transaction. If the new id holds events already
  (the customer wrote after the upgrade, before this ran), the two are merged: the old
  events come first, and the current session is the newer one;
* with ``--credentials``, the agent desk's hand-offs (``handoffs.sender_id``, in the
  desk's ``db`` resolved as the desk does, relative to ``--workdir``) follow their
  conversations; where both ids have a hand-off, the open (else the newer) one is kept.

A dry run (the default) changes nothing. The output gives counts per channel, never an
id (SMS ids are phone numbers). A second run finds nothing to do. Exit status: 0 done;
2 a setting that cannot be used (one line saying what to change); 1 a database error
part way (what was renamed stays renamed: run it again).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from channels.agent_desk_config import CLASS_PATH as DESK_CLASS_PATH
from channels.channel_database import ChannelDatabase, ChannelDatabaseError
from channels.conversation_ids import PREFIXES, channel_of, conversation_id
from channels.migration_sources import (
    MigrationSetupError,
    desk_location,
    first_line,
    tracker_engine,
)

__all__ = ["MigrationSetupError", "main", "owner_of"]

# The channels whose messages prove whose a conversation is. Before ids carried their
# channel, REST callers named any conversation they liked.
UNVERIFIED = "rest"
VERIFIED = frozenset(PREFIXES) - {UNVERIFIED}
# Why a bare id is left alone (also in the output).
NO_MESSAGE = "no customer message"
SEVERAL = "messages from more than one channel"
T = TypeVar("T")


# ------------------------------------------------------------------ conversations
def owner_of(channels: Set[Optional[str]]) -> Tuple[Optional[str], str]:
    """The channel a bare id's conversation moves to, from its user events' channels.

    Returns (channel, "") or (None, why it is left alone).
    """
    verified = channels & VERIFIED
    if len(verified) == 1:
        return next(iter(verified)), ""
    if verified:
        return None, SEVERAL
    if UNVERIFIED in channels:
        return UNVERIFIED, ""
    if not channels:
        return None, NO_MESSAGE
    names = ", ".join(sorted(str(name) for name in channels))
    return None, f"messages only from channels without a prefix ({names})"


@dataclass(frozen=True)
class Rename:
    old: str
    new: str
    merge: bool


@dataclass
class ConversationPlan:
    stored: Set[str] = field(default_factory=set)
    renames: List[Rename] = field(default_factory=list)
    named: int = 0  # ids that carry their channel already
    left_alone: Counter[str] = field(default_factory=Counter)

    def after(self) -> Set[str]:
        """The stored ids once the renames are done."""
        moved = {rename.old for rename in self.renames}
        return (self.stored - moved) | {rename.new for rename in self.renames}


def plan_conversations(engine: Engine) -> ConversationPlan:
    """What renaming would do to the tracker store, read in one go."""
    plan = ConversationPlan()
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("events"):
            return plan
        plan.stored = {
            row[0] for row in connection.execute(sa.text("SELECT DISTINCT sender_id FROM events"))
        }
        if connection.dialect.name == "postgresql":
            channel = "CAST(data AS json) ->> 'input_channel'"
        else:
            channel = "json_extract(data, '$.input_channel')"
        channels: Dict[str, Set[Optional[str]]] = {}
        for sender_id, name in connection.execute(
            sa.text(f"SELECT DISTINCT sender_id, {channel} FROM events WHERE type_name = 'user'")
        ):
            channels.setdefault(sender_id, set()).add(name)
    for sender_id in sorted(plan.stored):
        if channel_of(sender_id) is not None:
            plan.named += 1
            continue
        owner, why = owner_of(channels.get(sender_id, set()))
        if owner is None:
            plan.left_alone[why] += 1
            continue
        new = conversation_id(owner, sender_id)
        plan.renames.append(Rename(sender_id, new, merge=new in plan.stored))
    return plan


def rename_conversation(engine: Engine, rename: Rename) -> str:
    """Move all of ``rename.old``'s events to ``rename.new`` in one transaction.

    Returns "renamed", "merged" (the new id had events: the old ones now come first,
    as Rasa orders a conversation's events by their row id) or "gone" (nothing left to
    move: another run did it).
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Servers may go on reading; their writes wait for this conversation's move.
            connection.execute(sa.text("LOCK TABLE events IN EXCLUSIVE MODE"))
        ids = {"old": rename.old, "new": rename.new}
        old_last = connection.execute(
            sa.text("SELECT MAX(id) FROM events WHERE sender_id = :old"), ids
        ).scalar()
        if old_last is None:
            return "gone"
        new_first = connection.execute(
            sa.text("SELECT MIN(id) FROM events WHERE sender_id = :new"), ids
        ).scalar()
        if new_first is not None and new_first < old_last:
            _move_to_end(connection, rename.new)
        connection.execute(
            sa.text("UPDATE events SET sender_id = :new WHERE sender_id = :old"), ids
        )
        return "renamed" if new_first is None else "merged"


def _move_to_end(connection: Connection, sender_id: str) -> None:
    """Give ``sender_id``'s events new row ids after every other, keeping their order."""
    columns = "type_name, timestamp, intent_name, action_name, data"
    rows = connection.execute(
        sa.text(f"SELECT {columns} FROM events WHERE sender_id = :sender_id ORDER BY id"),
        {"sender_id": sender_id},
    ).all()
    connection.execute(
        sa.text("DELETE FROM events WHERE sender_id = :sender_id"), {"sender_id": sender_id}
    )
    insert = sa.text(
        f"INSERT INTO events (sender_id, {columns}) VALUES (:sender_id, :type_name,"
        " :timestamp, :intent_name, :action_name, :data)"
    )
    for row in rows:  # one by one: each row's id is taken in this order
        connection.execute(insert, {"sender_id": sender_id, **row._asdict()})


# ------------------------------------------------------------------------ hand-offs
@dataclass
class HandoffPlan:
    shown: str
    database: Optional[ChannelDatabase] = None
    renames: List[Rename] = field(default_factory=list)
    unmatched: int = 0


def plan_handoffs(location: str | Path, conversations: ConversationPlan) -> HandoffPlan:
    """Which hand-off rows follow their conversation's new id."""
    plan = HandoffPlan(shown=str(location))
    if isinstance(location, Path) and not location.is_file():
        return plan
    database = ChannelDatabase(location, setting=f"{DESK_CLASS_PATH} db")
    plan.shown = database.shown
    with database.engine.connect() as connection:
        if not sa.inspect(connection).has_table("handoffs"):
            return plan
        rows = connection.execute(sa.text("SELECT sender_id, channel FROM handoffs")).all()
    plan.database = database
    targets = {rename.old: rename.new for rename in conversations.renames}
    stored = conversations.after()
    held = {sender_id for sender_id, _ in rows}
    for sender_id, channel in rows:
        if channel_of(sender_id) is not None:
            continue
        new = targets.get(sender_id) or _handoff_target(sender_id, channel, stored)
        if new is None:
            plan.unmatched += 1
            continue
        plan.renames.append(Rename(sender_id, new, merge=new in held))
    return plan


def _handoff_target(sender_id: str, channel: Optional[str], stored: Set[str]) -> Optional[str]:
    """The channel-named conversation of a bare hand-off id, if exactly one is known."""
    if channel in PREFIXES and conversation_id(channel, sender_id) in stored:
        return conversation_id(channel, sender_id)
    found = [conversation_id(name, sender_id) for name in PREFIXES]
    found = [candidate for candidate in found if candidate in stored]
    return found[0] if len(found) == 1 else None


def rename_handoff(database: ChannelDatabase, rename: Rename) -> str:
    """Move a hand-off row to its new id ("renamed", "merged" or "gone").

    Only ``sender_id`` changes. Where the new id has a row already, the open one is
    kept (if both or neither is open, the newer), and the other is deleted.
    """
    ids = {"old": rename.old, "new": rename.new}
    query = "SELECT closed_at IS NULL, opened_at FROM handoffs WHERE sender_id = :{}"
    with database.transaction() as connection:
        old = connection.execute(sa.text(query.format("old")), ids).first()
        if old is None:
            return "gone"
        new = connection.execute(sa.text(query.format("new")), ids).first()
        if new is not None:
            if (bool(old[0]), old[1]) <= (bool(new[0]), new[1]):
                connection.execute(sa.text("DELETE FROM handoffs WHERE sender_id = :old"), ids)
                return "merged"
            connection.execute(sa.text("DELETE FROM handoffs WHERE sender_id = :new"), ids)
        connection.execute(
            sa.text("UPDATE handoffs SET sender_id = :new WHERE sender_id = :old"), ids
        )
        return "renamed" if new is None else "merged"


# --------------------------------------------------------------------------- output
def _per_channel(renames: Sequence[Rename]) -> str:
    counts = Counter(rename.new.partition(":")[0] for rename in renames)
    return ", ".join(f"{prefix} {count}" for prefix, count in sorted(counts.items()))


def describe_conversations(plan: ConversationPlan, apply: bool) -> List[str]:
    verb = "Renamed" if apply else "Would rename"
    lines = [
        f"{len(plan.stored)} conversations stored; {plan.named} already named by their channel."
    ]
    if plan.renames:
        lines.append(f"{verb} {len(plan.renames)}: {_per_channel(plan.renames)}.")
    merged = sum(rename.merge for rename in plan.renames)
    if merged:
        lines.append(
            f"{merged} of them {'were' if apply else 'would be'} merged into a conversation "
            "the customer started under the new id before this ran: the old events come "
            "first, and the current session is the newer one."
        )
    for why, count in sorted(plan.left_alone.items()):
        lines.append(f"Left alone: {count} with {why}.")
    return lines


def describe_handoffs(plan: HandoffPlan, apply: bool) -> List[str]:
    where = f"Agent desk hand-offs ({plan.shown})"
    if plan.database is None:
        return [f"{where}: none stored."]
    verb = "renamed" if apply else "would rename"
    lines = [f"{where}: {verb} {len(plan.renames)}."]
    merged = sum(rename.merge for rename in plan.renames)
    if merged:
        lines.append(
            f"{merged} of them {'met' if apply else 'would meet'} a hand-off under the new id: "
            "the open one (else the newer) is kept."
        )
    if plan.unmatched:
        lines.append(
            f"Left alone: {plan.unmatched} hand-offs whose conversation has no channel-named id."
        )
    return lines


# ------------------------------------------------------------------------------ CLI
def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m channels.conversation_id_migration",
        description="Rename stored conversations to ids that name their channel "
        "(sms:+44..., telegram:...). A dry run unless --apply.",
    )
    parser.add_argument(
        "--endpoints",
        type=Path,
        default=Path("endpoints.yml"),
        help="the endpoints.yml `rasa run` uses (its tracker_store)",
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="the credentials.yml `rasa run` uses: also rename the agent desk's hand-offs",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("."),
        help="the directory `rasa run` starts in: relative SQLite files "
        "are found there (for `make run`: bot)",
    )
    parser.add_argument("--apply", action="store_true", help="write the changes")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    """Run the migration on ``argv`` (without the program name); returns the exit status."""
    arguments = _arguments(argv)
    try:
        engine = tracker_engine(arguments.endpoints, arguments.workdir)
        conversations = _reading("the tracker store's", plan_conversations, engine)
        location = None
        if arguments.credentials is not None:
            location = desk_location(arguments.credentials, arguments.workdir)
        handoffs = None
        if location is not None:
            handoffs = _reading("the agent desk's", plan_handoffs, location, conversations)
    except MigrationSetupError as error:
        print(f"conversation_id_migration: {error}", file=sys.stderr)
        return 2
    lines = [f"Tracker store ({engine.url!r}):"]
    if arguments.apply:
        try:
            lines += _apply(engine, conversations, handoffs)
        except SQLAlchemyError as error:
            print(
                f"conversation_id_migration: database error ({type(error).__name__}: "
                f"{first_line(error)}); what was renamed stays renamed: run it again",
                file=sys.stderr,
            )
            return 1
    lines += describe_conversations(conversations, arguments.apply)
    if handoffs is not None:
        lines += describe_handoffs(handoffs, arguments.apply)
    elif arguments.credentials is not None:
        lines.append(f"No agent desk in {arguments.credentials}: no hand-offs to rename.")
    else:
        lines.append("Hand-offs not checked: give --credentials to rename the desk's too.")
    if not (conversations.renames or (handoffs is not None and handoffs.renames)):
        lines.append("Nothing to rename.")
    elif not arguments.apply:
        lines.append("Dry run: nothing was changed. Run again with --apply to rename.")
    print("\n".join(lines))
    return 0


def _reading(whose: str, plan: Callable[..., T], *arguments: Any) -> T:
    try:
        return plan(*arguments)
    except ChannelDatabaseError as error:
        raise MigrationSetupError(str(error)) from None
    except SQLAlchemyError as error:
        raise MigrationSetupError(
            f"{whose} database cannot be read ({type(error).__name__}: {first_line(error)}); "
            "start it, or fix its settings"
        ) from None


def _apply(
    engine: Engine, conversations: ConversationPlan, handoffs: Optional[HandoffPlan]
) -> List[str]:
    """Do the planned renames; a line for any that another run had done meanwhile."""
    gone = sum(rename_conversation(engine, rename) == "gone" for rename in conversations.renames)
    if handoffs is not None and handoffs.database is not None:
        database = handoffs.database
        gone += sum(rename_handoff(database, rename) == "gone" for rename in handoffs.renames)
    return [f"{gone} had been renamed meanwhile by another run."] if gone else []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
