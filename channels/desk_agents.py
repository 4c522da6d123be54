"""The agent desk's people: one secret token per agent, kept only as its SHA-256.

An agent is a name (``anna``, ``night-shift.2``) and a token of 256 random bits. The
desk stores the token's SHA-256 in its database (the ``db`` key of
``channels.agent_desk.AgentDeskInput``, a SQLite file or a shared database URL), so a
copy of the database lets nobody answer customers. A request's bearer token is hashed
and looked up; the stored hash is compared again in constant time. The agent's name
then comes from the token, never from the request.

The command line manages them (run it where the server runs, so that a relative
``db`` names the same file)::

    python -m channels.desk_agents add NAME [--token-file PATH]   # prints or writes the token once
    python -m channels.desk_agents ensure NAME --token-file PATH  # add, unless PATH already works
    python -m channels.desk_agents rotate NAME [--token-file PATH]
    python -m channels.desk_agents list
    python -m channels.desk_agents remove NAME                  # also releases their claims
    python -m channels.desk_agents audit [--handoff REF] [--limit N]

Each takes ``--credentials bot/credentials.yml`` (default ``credentials.yml``) to find
the desk's ``db``, or ``--db`` to name it. A token file is written with mode 0600.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence

import yaml

from channels.agent_desk_config import CLASS_PATH, get_default_config
from channels.channel_database import ChannelDatabase, DatabaseLocation, database_location

# Agent names: shown in logs, the audit and Slack notes; no ":" (``slack:U…`` names
# a Slack agent) and nothing that needs escaping.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_PREFIX = "desk_"
TOKEN_BYTES = 32  # 256 bits


class AgentError(ValueError):
    """A request to the agent directory that cannot be done, and why."""


@dataclass(frozen=True)
class Agent:
    """One agent: a name, and when the current token was made."""

    name: str
    created_at: float


def new_token() -> str:
    """A fresh agent token: ``desk_`` and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the database keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """``name`` when it is an allowed agent name; :class:`AgentError` otherwise."""
    if not NAME_PATTERN.match(name or ""):
        raise AgentError(
            f"agent name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class AgentDirectory:
    """The agents of one desk database: add, rotate, remove, list, authenticate."""

    def __init__(
        self,
        location: DatabaseLocation,
        *,
        clock: Optional[Callable[[], float]] = None,
        setting: str = "db",
    ) -> None:
        self.database = ChannelDatabase(location, setting=setting)
        self._clock = clock or time.time
        self.database.create(
            "CREATE TABLE IF NOT EXISTS desk_agents ("
            " name TEXT PRIMARY KEY, token_hash TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL)",
            "CREATE UNIQUE INDEX IF NOT EXISTS desk_agents_token ON desk_agents (token_hash)",
        )

    def add_sync(self, name: str) -> str:
        """Add ``name``; its token (shown once: only its hash is kept)."""
        return self._store_new_token(
            name,
            "INSERT INTO desk_agents (name, token_hash, created_at)"
            " VALUES (:name, :hash, :now) ON CONFLICT (name) DO NOTHING",
            refused=f"agent {name!r} exists; `rotate` gives it a new token",
        )

    def rotate_sync(self, name: str) -> str:
        """A new token for ``name``; the old one stops working at once."""
        return self._store_new_token(
            name,
            "UPDATE desk_agents SET token_hash = :hash, created_at = :now WHERE name = :name",
            refused=f"no agent {name!r}; `add` makes one",
        )

    def _store_new_token(self, name: str, statement: str, *, refused: str) -> str:
        """Make a token for ``name`` and store its hash with ``statement``; the token.

        ``statement`` takes ``:name``, ``:hash`` and ``:now``; when it changes no row,
        :class:`AgentError` with ``refused``.
        """
        check_name(name)
        token = new_token()
        changed = self.database.execute(
            statement, {"name": name, "hash": token_hash(token), "now": self._clock()}
        )
        if changed != 1:
            raise AgentError(refused)
        return token

    def remove_sync(self, name: str) -> bool:
        """Remove ``name``; their token stops working at once. False if there was none."""
        changed = self.database.execute(
            "DELETE FROM desk_agents WHERE name = :name", {"name": name}
        )
        return bool(changed == 1)

    def list_sync(self) -> List[Agent]:
        """Every agent, by name."""
        rows = self.database.execute("SELECT name, created_at FROM desk_agents ORDER BY name", {})
        return [Agent(str(name), float(created)) for name, created in rows]

    def exists_sync(self, name: str) -> bool:
        """Whether an agent called ``name`` exists."""
        rows = self.database.execute("SELECT 1 FROM desk_agents WHERE name = :name", {"name": name})
        return bool(rows)

    def authenticate_sync(self, token: str) -> Optional[str]:
        """The name of the agent whose token this is, or None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        wanted = token_hash(token)
        # The lookup is by the hash of what the caller sent, which tells a caller timing
        # it nothing about any stored token; the final check is constant-time anyway.
        rows = self.database.execute(
            "SELECT name, token_hash FROM desk_agents WHERE token_hash = :hash", {"hash": wanted}
        )
        for name, stored in rows:
            if hmac.compare_digest(str(stored).encode(), wanted.encode()):
                return str(name)
        return None

    async def authenticate(self, token: str) -> Optional[str]:
        """:meth:`authenticate_sync` off the event loop."""
        return await asyncio.to_thread(self.authenticate_sync, token)


# ------------------------------------------------------------------ command line
def desk_db_from_credentials(path: Path) -> DatabaseLocation:
    """The desk's ``db`` setting in ``credentials.yml`` (its default when absent).

    ``${VAR}`` in the value is read from the environment, as Rasa reads it.
    """
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AgentError(
            f"cannot read {path}: {error.strerror}; pass --credentials or --db"
        ) from None
    except yaml.YAMLError as error:
        raise AgentError(f"{path} is not valid YAML ({type(error).__name__})") from None
    if not isinstance(loaded, Mapping) or CLASS_PATH not in loaded:
        raise AgentError(
            f"{path} has no `{CLASS_PATH}` entry: the agent desk is not configured there"
        )
    section = loaded.get(CLASS_PATH) or {}
    value = section.get("db") if isinstance(section, Mapping) else None
    db = str(value if value is not None else get_default_config()["db"])
    expanded = os.path.expandvars(db)
    if "${" in expanded:
        raise AgentError(
            f"`db` of `{CLASS_PATH}` in {path} reads an environment variable that is not "
            "set; set it as for the server, or pass --db"
        )
    return database_location(expanded)


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` with mode 0600 (its folder 0700 when made here)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".agent-token-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(token + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_token_file(path: Path) -> Optional[str]:
    """The token kept in ``path``, or None when it is missing, unreadable or empty."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _give(name: str, token: str, token_file: Optional[Path]) -> None:
    if token_file is None:
        print(token)
        print(
            f"agent {name}: the token above is shown once; only its hash is kept",
            file=sys.stderr,
        )
    else:
        write_token_file(token_file, token)
        print(f"agent {name}: token written to {token_file} (mode 0600)")


def _parser() -> argparse.ArgumentParser:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--credentials",
        type=Path,
        default=Path("credentials.yml"),
        help="credentials.yml with the desk's entry (default: ./credentials.yml)",
    )
    where.add_argument("--db", help="the desk's database (file or URL), instead of --credentials")
    parser = argparse.ArgumentParser(
        prog="python -m channels.desk_agents", description="Manage the agent desk's agents."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (
        ("add", "add an agent and give its token once"),
        ("rotate", "give an agent a new token (the old one stops working)"),
        ("ensure", "add NAME unless --token-file already holds a working token of NAME"),
    ):
        sub = commands.add_parser(command, parents=[where], help=text)
        sub.add_argument("name")
        sub.add_argument(
            "--token-file",
            type=Path,
            required=command == "ensure",
            help="write the token to this file (mode 0600) instead of printing it",
        )
    remove = commands.add_parser(
        "remove", parents=[where], help="remove an agent and release their claims"
    )
    remove.add_argument("name")
    commands.add_parser("list", parents=[where], help="the agents, with when each token was made")
    audit = commands.add_parser("audit", parents=[where], help="the desk's audit trail")
    audit.add_argument("--handoff", help="only this hand-off (its reference, h-…)")
    audit.add_argument("--limit", type=int, default=50, help="newest entries (default 50)")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run the command line on ``argv`` (without the program name); the exit status."""
    arguments = _parser().parse_args(argv)
    try:
        location = (
            database_location(arguments.db)
            if arguments.db
            else desk_db_from_credentials(arguments.credentials)
        )
        return _run(arguments, location)
    except AgentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(arguments: Any, location: DatabaseLocation) -> int:
    directory = AgentDirectory(location)
    command = arguments.command
    if command == "add":
        _give(arguments.name, directory.add_sync(arguments.name), arguments.token_file)
    elif command == "rotate":
        _give(arguments.name, directory.rotate_sync(arguments.name), arguments.token_file)
    elif command == "ensure":
        kept = read_token_file(arguments.token_file)
        if kept is not None and directory.authenticate_sync(kept) == arguments.name:
            print(f"agent {arguments.name}: {arguments.token_file} holds a working token")
            return 0
        if directory.exists_sync(arguments.name):
            token = directory.rotate_sync(arguments.name)
        else:
            token = directory.add_sync(arguments.name)
        _give(arguments.name, token, arguments.token_file)
    elif command == "remove":
        if not directory.remove_sync(arguments.name):
            raise AgentError(f"no agent {arguments.name!r}")
        # Imported here: the store's module is not needed by the other commands.
        from channels.handoff_store import HandoffStore

        released = HandoffStore(location).release_all_sync(arguments.name)
        print(f"agent {arguments.name}: removed; {released} claim(s) released")
    elif command == "list":
        for agent in directory.list_sync():
            made = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(agent.created_at))
            print(f"{agent.name}\ttoken made {made}")
    elif command == "audit":
        from channels.desk_audit import DeskAudit

        for entry in DeskAudit(directory.database).entries_sync(
            handoff_id=arguments.handoff, limit=arguments.limit
        ):
            print(entry.line())
    print(f"(desk database: {directory.database.shown})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
