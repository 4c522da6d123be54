"""Where the conversation-id migration reads and writes, found as the server finds it.

The tracker store's database comes from ``tracker_store`` in endpoints.yml (Rasa's SQL
store or a subclass; SQLite or PostgreSQL; ``${VAR}`` expanded as Rasa does), and the
agent desk's from its ``db`` in credentials.yml; relative SQLite files are found in the
directory ``rasa run`` starts in. A setting that cannot be used is a
:class:`MigrationSetupError` that says what to change.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import sqlalchemy as sa
import yaml
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs, validate_port
from rasa.shared.exceptions import RasaException
from rasa.shared.utils.common import class_from_module_path
from rasa.utils.endpoints import read_endpoint_config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import ArgumentError

from channels.agent_desk_config import CLASS_PATH as DESK_CLASS_PATH
from channels.agent_desk_config import get_default_config as desk_defaults
from channels.channel_database import database_location

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


class MigrationSetupError(Exception):
    """A setting the migration cannot use; the message says what to change (exit 2)."""


def tracker_engine(endpoints: Path, workdir: Path) -> Engine:
    """An engine on the tracker store's database, from ``tracker_store`` in ``endpoints``."""
    if not endpoints.is_file():
        raise MigrationSetupError(
            f"{endpoints}: no such file; give --endpoints the endpoints.yml `rasa run` uses"
        )
    try:
        config = read_endpoint_config(str(endpoints), "tracker_store")
    except RasaException as error:
        raise MigrationSetupError(
            f"{endpoints} cannot be read: {first_line(error)} (export the environment "
            "variables `rasa run` gets, or fix the file)"
        ) from None
    if config is None or config.type is None:
        raise MigrationSetupError(
            f"{endpoints}: no tracker_store type, so conversations were kept in memory and "
            "none survived the upgrade's restart: there is nothing to rename (in-memory "
            "stores are not supported)"
        )
    _require_sql_store(config.type, endpoints)
    kwargs = config.kwargs
    try:
        with warnings.catch_warnings():  # Rasa's own use of a deprecated SQLAlchemy call
            warnings.simplefilter("ignore")
            url = SQLTrackerStore.get_db_url(
                kwargs.get("dialect", "sqlite"), config.url, validate_port(kwargs.get("port")),
                kwargs.get("db", "rasa.db"), kwargs.get("username"), kwargs.get("password"),
                None, kwargs.get("query"),
            )  # fmt: skip
        url = make_url(url) if isinstance(url, str) else url
    except (RasaException, ArgumentError, ValueError):
        # The parser's message may quote the whole URL, password included: not repeated.
        raise MigrationSetupError(
            f"{endpoints}: tracker_store does not give a database URL Rasa can use (check "
            "url, or dialect, host, port, db, username and password)"
        ) from None
    if url.get_backend_name() not in SUPPORTED_DIALECTS:
        raise MigrationSetupError(
            f"{endpoints}: tracker_store dialect {url.get_backend_name()!r} is not supported; "
            "this command renames conversations in SQLite and PostgreSQL only"
        )
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(_sqlite_file(url, workdir, endpoints))
    try:
        return sa.create_engine(url, future=True, **create_engine_kwargs(url))
    except (ImportError, ArgumentError) as error:
        raise MigrationSetupError(
            f"{endpoints}: no database driver for {url.drivername!r} ({type(error).__name__}); "
            "install the one `rasa run` uses"
        ) from None


def _require_sql_store(kind: str, endpoints: Path) -> None:
    if kind.lower() == "sql":
        return
    store: Any = None
    if "." in kind:
        try:
            store = class_from_module_path(kind)
        except (ImportError, AttributeError):
            raise MigrationSetupError(
                f"{endpoints}: tracker_store type {kind!r} cannot be imported; run this "
                "command in the environment that `rasa run` uses"
            ) from None
    if not (isinstance(store, type) and issubclass(store, SQLTrackerStore)):
        raise MigrationSetupError(
            f"{endpoints}: tracker_store type {kind!r} is not supported: only Rasa's SQL "
            "tracker store (SQLite, PostgreSQL) and its subclasses can be renamed. In other "
            "stores rename each conversation's key to <prefix>:<id> with the database's "
            "own tools (prefixes: channels/conversation_ids.py), or let returning "
            "customers start new conversations"
        )


def _sqlite_file(url: URL, workdir: Path, endpoints: Path) -> Path:
    path = Path(url.database or "")
    path = path if path.is_absolute() else workdir / path
    if not path.is_file():
        raise MigrationSetupError(
            f"no tracker database at {path} (tracker_store in {endpoints}); give --workdir "
            "the directory `rasa run` starts in (for `make run`: bot)"
        )
    return path


def _sqlite_engine(path: Path) -> Engine:
    """SQLite with its write lock taken when a transaction starts, as a server's is."""
    engine = sa.create_engine(
        sa.engine.URL.create("sqlite", database=str(path)),
        connect_args={"timeout": 30},
        poolclass=sa.pool.NullPool,
        future=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def desk_location(credentials: Path, workdir: Path) -> Optional[str | Path]:
    """The agent desk's ``db`` in ``credentials`` as the desk resolves it; None: no desk.

    Only this value has its ``${VAR}`` expanded, so the channels' secrets need not be
    in the environment.
    """
    try:
        content = yaml.safe_load(credentials.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MigrationSetupError(
            f"{credentials} cannot be read ({type(error).__name__}); give --credentials the "
            "credentials.yml `rasa run` uses"
        ) from None
    if not isinstance(content, Mapping) or DESK_CLASS_PATH not in content:
        return None
    section = content[DESK_CLASS_PATH] or {}
    if not isinstance(section, Mapping):
        raise MigrationSetupError(f"{credentials}: {DESK_CLASS_PATH} must be a mapping of keys")
    value = str(section.get("db") or desk_defaults()["db"])
    expanded = os.path.expandvars(value)
    unset = [word for word in expanded.split() if word.startswith("$") and word in value]
    if unset:
        raise MigrationSetupError(
            f"{credentials}: {DESK_CLASS_PATH} key `db` uses {', '.join(unset)}, which is not "
            "set; export it as for `rasa run`"
        )
    location = database_location(expanded)
    return location if isinstance(location, str) or location.is_absolute() else workdir / location


def first_line(error: BaseException) -> str:
    """The first line of a database error's own message (the driver's), or its type."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
