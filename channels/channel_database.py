"""Where the channels keep their small tables: a SQLite file, or a shared database.

Retry de-duplication, SMS opt-outs and numbered options, Telegram's long button
payloads and the agent desk's hand-offs must be seen by every process that serves the
webhooks. A SQLite file (the default, beside the embedded tracker store) is shared by
the workers of one machine. Servers on several machines behind one load balancer need
one database for all of them: give the same setting a database URL instead of a file
name (``postgresql://user:password@host:5432/rasa``, the database the tracker store
uses is fine: the tables' names do not clash with Rasa's). Both go through SQLAlchemy,
which Rasa already uses for its SQL tracker store, with the same portable SQL.

SQLite takes its write lock at the start of every transaction (``BEGIN IMMEDIATE``),
so a read-then-write in one transaction is never interleaved with another process's;
on PostgreSQL every read-then-write is one atomic statement, or checks that the row it
read is unchanged when it writes.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Union

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError


class ChannelDatabaseError(RuntimeError):
    """A channel's database setting that cannot be used, with what to change."""


# A channel setting's value: a file name (SQLite) or a database URL.
DatabaseLocation = Union[str, Path]

# The advisory lock that creating the channels' tables takes on PostgreSQL: any fixed
# 64-bit number that other software on the database is unlikely to use.
_CREATE_LOCK_KEY = 0x7261_7361_6C6C_6D01  # "rasallm" + 1

_engines: Dict[str, Engine] = {}
_engines_lock = threading.Lock()


def is_database_url(location: str | Path) -> bool:
    """True for ``dialect://...``; anything else is a SQLite file name."""
    return "://" in str(location)


def database_location(value: str) -> DatabaseLocation:
    """A setting's value as a location: a URL stays text (a Path would fold its ``//``)."""
    return value if is_database_url(value) else Path(value)


class ChannelDatabase:
    """One channel store's connection: transactions on a SQLite file or a database URL."""

    def __init__(self, location: str | Path, *, setting: str) -> None:
        self.setting = setting
        self.is_url = is_database_url(location)
        self.path: Optional[Path] = None if self.is_url else Path(location)
        self.engine = _engine_for(str(location), setting)
        # Shown in errors and logs: a URL without its password.
        self.shown = repr(self.engine.url) if self.is_url else str(self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed at the end, rolled back on error."""
        with self.engine.begin() as connection:
            yield connection

    def execute(self, sql: str, parameters: Mapping[str, Any]) -> Any:
        """One statement in a transaction of its own; its rows, or how many rows changed.

        ``parameters``: the values of the statement's ``:name`` placeholders (``{}``
        for none).
        """
        with self.transaction() as connection:
            result = connection.execute(sa.text(sql), dict(parameters))
            if result.returns_rows:
                return result.fetchall()
            return result.rowcount

    def create(self, *statements: str) -> None:
        """Run the ``CREATE ... IF NOT EXISTS`` statements; a clear error if unreachable."""
        try:
            with self.transaction() as connection:
                if connection.dialect.name == "postgresql":
                    # PostgreSQL's CREATE ... IF NOT EXISTS is not safe against itself:
                    # two servers (or workers) starting at once both find no table and
                    # the second fails on pg_type's unique index. One lock, held to the
                    # end of this transaction, makes them take turns.
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": _CREATE_LOCK_KEY},
                    )
                for statement in statements:
                    connection.execute(sa.text(statement))
        except SQLAlchemyError as error:
            raise ChannelDatabaseError(
                f"the channels' database {self.shown} (`{self.setting}` in credentials.yml) "
                f"cannot be used: {type(error).__name__}: {_first_line(error)}. Check that "
                "the server is running and the URL's user, password and database are right, "
                "or give a file name to keep the table in a SQLite file"
            ) from error


def _engine_for(location: str, setting: str) -> Engine:
    """One engine (one connection pool) per database in this process, shared by stores."""
    if is_database_url(location):
        key = location
    else:
        path = Path(location).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = str(path)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _url_engine(key, setting) if is_database_url(key) else _sqlite_engine(key)
            _engines[key] = engine
        return engine


def _url_engine(url: str, setting: str) -> Engine:
    fix = (
        f"set `{setting}` to a file name (SQLite) or to a URL such as "
        "postgresql://user:password@host:5432/rasa"
    )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is no number
        # The parser's message quotes the whole URL, password included: not repeated.
        raise ChannelDatabaseError(
            f"`{setting}` is not a database URL (expected dialect://user:password@host:port/"
            f"database); {fix}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        raise ChannelDatabaseError(
            f"`{setting}` names SQLite by URL; give the file name itself (for example "
            "channel_deliveries.db), which sets up the locking several workers need"
        )
    try:
        # pool_pre_ping: a connection left over from before a database restart is
        # replaced instead of failing the next webhook.
        return sa.create_engine(parsed, pool_pre_ping=True, future=True)
    except (NoSuchModuleError, ImportError) as error:
        raise ChannelDatabaseError(
            f"`{setting}`: no driver for {parsed.drivername!r} ({_first_line(error)}); "
            f"{fix} (PostgreSQL's driver, psycopg2, comes with Rasa)"
        ) from None


def _sqlite_engine(path: str) -> Engine:
    engine = sa.create_engine(
        sa.engine.URL.create("sqlite", database=path),
        # A busy writer makes the webhook wait, not fail; connections move between the
        # threads that asyncio.to_thread runs the stores' calls in.
        connect_args={"timeout": 30, "check_same_thread": False},
        poolclass=sa.pool.NullPool,
        future=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling off, so that the "begin" hook below
        # decides how a transaction starts. WAL lets several processes read and write
        # the file; with it, synchronous=NORMAL still survives a crash of the server
        # (what de-duplication across restarts needs) without an fsync per delivery.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
