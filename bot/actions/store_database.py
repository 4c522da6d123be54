"""The order store's connection to its SQL database (SQLite or PostgreSQL).

Makes the engine, creates the tables and adds the columns a store from an earlier
release lacks, seeds the sample data into an empty store, and runs each query in one
transaction. Every database error surfaces as :class:`StoreUnavailable`, whose message
names the store and the error type but never the query's parameters (they hold
customer data). What the store holds and the rules for changing it are in
order_store.py.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from . import store_schema as t
from .store_seed import SAMPLE_DATA, SeedDataError, load_sample_data

logger = logging.getLogger(__name__)

STORE_URL_ENV = "BOT_STORE_URL"


def uk_today() -> date:
    """Today in the UK: Northwind's dates and cut-offs are all UK time (about_and_contact.md)."""
    try:
        return datetime.now(ZoneInfo("Europe/London")).date()
    except ZoneInfoNotFoundError:  # no time zone database on this machine
        return date.today()


class StoreUnavailable(RuntimeError):
    """The store could not be reached or read; the message holds no customer data."""


class StoreDatabase:
    """The store's tables in one SQL database, made and seeded on first use."""

    def __init__(
        self,
        url: str,
        *,
        today: Callable[[], date] = uk_today,
        sample_data: Path = SAMPLE_DATA,
    ) -> None:
        try:
            self._url = make_url(url)
            # pre_ping: a PostgreSQL server that restarted costs a reconnect, not an error.
            self._engine: Engine = create_engine(self._url, future=True, pool_pre_ping=True)
        except (SQLAlchemyError, ValueError) as e:
            raise StoreUnavailable(
                f"the order store URL in {STORE_URL_ENV} is not a database URL "
                f"({type(e).__name__}); example: sqlite:////path/to/northwind.db"
            ) from e
        self._today = today
        self._sample_data = sample_data
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url.render_as_string(hide_password=True)!r})"

    def today(self) -> date:
        """The store's today: the UK date, or the fixed day it was given."""
        return self._today()

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self._engine.dispose()

    def _prepare(self) -> None:
        """Create the tables if missing and seed the sample data into an empty store."""
        with self._lock:
            if self._ready:
                return
            t.metadata.create_all(self._engine, checkfirst=True)
            self._add_missing_columns()
            with self._engine.connect() as conn:
                empty = not conn.execute(select(func.count()).select_from(t.orders)).scalar()
            if empty:
                rows = load_sample_data(self.today(), path=self._sample_data)
                try:
                    with self._engine.begin() as conn:
                        for table in (t.accounts, t.orders, t.payments):
                            conn.execute(table.insert(), rows[table.name])
                except IntegrityError:
                    # Another action server seeded the same store a moment earlier.
                    logger.info("order store already seeded by another process")
            self._ready = True

    def _add_missing_columns(self) -> None:
        """Add the columns a store made by an earlier release lacks (the order's phone)."""
        for table, columns in t.ADDED_COLUMNS.items():
            present = {c["name"] for c in inspect(self._engine).get_columns(table)}
            for name, sql_type in columns.items():
                if name in present:
                    continue
                try:
                    with self._engine.begin() as conn:
                        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))
                    logger.info("order store: added the column %s.%s", table, name)
                except SQLAlchemyError:
                    # Another action server added it a moment earlier; anything else fails
                    # on the next query, as StoreUnavailable.
                    if name not in {c["name"] for c in inspect(self._engine).get_columns(table)}:
                        raise

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """One transaction; any database failure becomes StoreUnavailable."""
        try:
            self._prepare()
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StoreUnavailable(f"{self!r} failed ({type(e).__name__})") from e
        except SeedDataError as e:
            raise StoreUnavailable(str(e)) from e
