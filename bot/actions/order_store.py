"""The bot's orders, payments and accounts: what the store holds and Northwind's rules
for changing it.

Its methods are synchronous (SQLAlchemy 1.4 Core); the actions call them through
``asyncio.to_thread`` so a slow database never blocks the action server's event loop.
The connection, the tables' creation and seeding, and the translation of every
database error into :class:`StoreUnavailable` are in store_database.py.
"""

from __future__ import annotations

import functools
import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, List, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from . import store_schema as t
from .lookup_limits import DEFAULT_LIMITS, Claimant, LookupLimits, owns, same_email, same_phone
from .order_policy import return_deadline
from .store_database import STORE_URL_ENV, StoreDatabase, StoreUnavailable, uk_today
from .store_records import (
    Access,
    Account,
    Change,
    Order,
    OrderAccess,
    Outcome,
    Payment,
    ReturnRecord,
)
from .store_seed import SAMPLE_DATA

# An ISO date (2025-06-11) that the store takes as today: for demos and tests that
# need the same weekdays every run. Unset in production.
STORE_TODAY_ENV = "BOT_STORE_TODAY"
DEFAULT_URL = f"sqlite:///{Path(__file__).resolve().parents[1] / 'store' / 'northwind.db'}"


def utc_now() -> datetime:
    """Now, in UTC: the default clock of the look-up limits."""
    return datetime.now(timezone.utc)


def return_reference(row_id: int) -> str:
    """The reference the customer is given for the return in row ``row_id``."""
    return f"RET-{30000 + row_id}"


def case_reference(row_id: int) -> str:
    """The reference the customer is given for the case in row ``row_id``."""
    return f"CASE-{50000 + row_id}"


class OrderStore(StoreDatabase):
    """Northwind's orders, payments, returns, cases and accounts in one SQL database."""

    def __init__(
        self,
        url: str,
        *,
        today: Callable[[], date] = uk_today,
        sample_data: Path = SAMPLE_DATA,
        limits: LookupLimits = DEFAULT_LIMITS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(url, today=today, sample_data=sample_data)
        self.limits = limits
        self._clock = clock

    @staticmethod
    def _order(conn: Connection, order_number: str) -> Optional[Order]:
        row = conn.execute(select(t.orders).where(t.orders.c.order_number == order_number))
        found = row.mappings().first()
        return Order(**found) if found else None

    @staticmethod
    def _account(conn: Connection, email: str) -> Optional[Account]:
        row = conn.execute(select(t.accounts).where(t.accounts.c.email == email.strip().lower()))
        found = row.mappings().first()
        return Account(**found) if found else None

    def _now(self) -> datetime:
        """UTC now without a time zone, as lookup_misses stores it."""
        return self._clock().astimezone(timezone.utc).replace(tzinfo=None)

    @staticmethod
    def _misses(conn: Connection, which: ColumnElement[bool], since: datetime) -> int:
        query = (
            select(func.count())
            .select_from(t.lookup_misses)
            .where(which)
            .where(t.lookup_misses.c.missed_at > since)
        )
        return int(conn.execute(query).scalar() or 0)

    # ------------------------------------------------------------ who may look
    def order_access(self, order_number: Optional[str], claimant: Claimant) -> OrderAccess:
        """May ``claimant`` see order ``order_number``? See bot/actions/lookup_limits.py.

        Checked in this order: the conversation's misses; the SMS phone the order was
        placed with (granted without an email, whatever the order's misses); the
        order's misses; the email. A wrong email and an unknown number are one answer,
        NOT_MATCHED, and one more miss; without an email the answer is NO_PROOF and
        nothing is counted. Every miss is recorded here, in the same transaction.
        """
        limits, now = self.limits, self._now()
        misses = t.lookup_misses.c
        key = claimant.conversation_key
        with self._begin() as conn:
            recent = self._misses(
                conn, misses.conversation == key, now - limits.conversation_window
            )
            if recent >= limits.per_conversation:
                return OrderAccess(Access.PAUSED)
            if order_number is None:
                return OrderAccess(Access.NO_PROOF)
            order = self._order(conn, order_number)
            if order is not None and same_phone(order.phone, claimant.phone):
                return OrderAccess(Access.GRANTED, order)
            on_order = self._misses(
                conn, misses.order_number == order_number, now - limits.order_window
            )
            if on_order >= limits.per_order:
                return OrderAccess(Access.PAUSED)
            if not claimant.email:
                return OrderAccess(Access.NO_PROOF)
            if order is not None and same_email(order.email, claimant.email):
                return OrderAccess(Access.GRANTED, order)
            conn.execute(
                t.lookup_misses.insert().values(
                    conversation=key, order_number=order_number, missed_at=now
                )
            )
            conn.execute(
                t.lookup_misses.delete().where(misses.missed_at <= now - limits.longest_window)
            )
            return OrderAccess(Access.NOT_MATCHED)

    # -------------------------------------------------------------------- reads
    def get_order(self, order_number: str) -> Optional[Order]:
        """The order with this number, or None; whoever asks (check order_access first)."""
        with self._begin() as conn:
            return self._order(conn, order_number)

    def get_account(self, email: str) -> Optional[Account]:
        """The account with this email (any case), or None."""
        with self._begin() as conn:
            return self._account(conn, email)

    def payments(self, order_number: str) -> List[Payment]:
        """Charges and refunds of an order, oldest first."""
        query = (
            select(t.payments)
            .where(t.payments.c.order_number == order_number)
            .order_by(t.payments.c.made_on, t.payments.c.id)
        )
        with self._begin() as conn:
            return [
                Payment(**{k: v for k, v in row.items() if k in Payment.__annotations__})
                for row in conn.execute(query).mappings()
            ]

    def returns(self, order_number: str) -> List[ReturnRecord]:
        """The order's returns, oldest first."""
        query = select(t.returns).where(t.returns.c.order_number == order_number)
        with self._begin() as conn:
            return [
                ReturnRecord(return_reference(r["id"]), r["status"], r["started_on"])
                for r in conn.execute(query.order_by(t.returns.c.id)).mappings()
            ]

    # ------------------------------------------------------------- order writes
    def _owner_write(
        self,
        order_number: str,
        email: Optional[str],
        phone: Optional[str],
        write: Callable[[Connection, Order], Change],
    ) -> Change:
        """``write`` the order in one transaction if ``email`` or the SMS ``phone`` owns
        it; NOT_FOUND or NOT_OWNER otherwise.

        The owner's writes below share this check, and so the shape of their signatures:
        the order number, the email given, what the change needs, and ``phone``.
        """
        with self._begin() as conn:
            order = self._order(conn, order_number)
            if order is None:
                return Change(Outcome.NOT_FOUND)
            if not owns(order, email, phone):
                return Change(Outcome.NOT_OWNER)
            return write(conn, order)

    def cancel_order(
        self, order_number: str, email: Optional[str], *, phone: Optional[str] = None
    ) -> Change:
        """Cancel while Received or Processing and refund the total to the payment method.

        Only for the order's owner: its email, or the SMS ``phone`` it was placed with.
        """

        def cancel(conn: Connection, order: Order) -> Change:
            if order.status == t.CANCELLED:
                return Change(Outcome.ALREADY_DONE, order)
            today = self.today()
            # The status condition in the UPDATE itself: a parcel the warehouse dispatches
            # meanwhile is never cancelled by a stale read.
            cancelled = conn.execute(
                t.orders.update()
                .where(t.orders.c.order_number == order_number)
                .where(t.orders.c.status.in_(t.NOT_DISPATCHED))
                .values(status=t.CANCELLED, cancelled_on=today)
            ).rowcount
            if cancelled:
                conn.execute(
                    t.payments.insert().values(
                        order_number=order_number,
                        kind="refund",
                        status="issued",
                        amount_pence=order.total_pence,
                        method=order.payment_method,
                        made_on=today,
                    )
                )
            outcome = Outcome.DONE if cancelled else Outcome.NOT_ALLOWED
            return Change(outcome, self._order(conn, order_number))

        return self._owner_write(order_number, email, phone, cancel)

    def change_address(
        self,
        order_number: str,
        email: Optional[str],
        address: str,
        *,
        phone: Optional[str] = None,
    ) -> Change:
        """Change the delivery address while the order is Received or Processing."""

        def change(conn: Connection, order: Order) -> Change:
            changed = conn.execute(
                t.orders.update()
                .where(t.orders.c.order_number == order_number)
                .where(t.orders.c.status.in_(t.NOT_DISPATCHED))
                .values(delivery_address=address.strip())
            ).rowcount
            outcome = Outcome.DONE if changed else Outcome.NOT_ALLOWED
            return Change(outcome, self._order(conn, order_number))

        return self._owner_write(order_number, email, phone, change)

    def start_return(
        self,
        order_number: str,
        email: Optional[str],
        reason: str,
        *,
        phone: Optional[str] = None,
    ) -> Change:
        """Start a return of a delivered order inside its return window."""

        def start(conn: Connection, order: Order) -> Change:
            existing = conn.execute(
                select(t.returns.c.id)
                .where(t.returns.c.order_number == order_number)
                .where(t.returns.c.status == "open")
            ).scalar()
            if existing is not None:
                return Change(Outcome.ALREADY_DONE, order, return_reference(existing))
            today = self.today()
            if order.status != t.DELIVERED or order.delivered_on is None:
                return Change(Outcome.NOT_ALLOWED, order)
            if today > return_deadline(order.placed_on, order.delivered_on):
                return Change(Outcome.NOT_ALLOWED, order)
            row_id = conn.execute(
                t.returns.insert().values(
                    order_number=order_number,
                    reason=reason.strip(),
                    status="open",
                    started_on=today,
                )
            ).inserted_primary_key[0]
            return Change(Outcome.DONE, order, return_reference(row_id))

        return self._owner_write(order_number, email, phone, start)

    def open_case(self, order_number: str, kind: str) -> Change:
        """Open a case for the team (delivery problem, duplicate payment); one per kind."""
        with self._begin() as conn:
            order = self._order(conn, order_number)
            if order is None:
                return Change(Outcome.NOT_FOUND)
            existing = conn.execute(
                select(t.cases.c.id)
                .where(t.cases.c.order_number == order_number)
                .where(t.cases.c.kind == kind)
                .where(t.cases.c.status == "open")
            ).scalar()
            if existing is not None:
                return Change(Outcome.ALREADY_DONE, order, case_reference(existing))
            row_id = conn.execute(
                t.cases.insert().values(
                    order_number=order_number, kind=kind, status="open", opened_on=self.today()
                )
            ).inserted_primary_key[0]
            return Change(Outcome.DONE, order, case_reference(row_id))

    # ----------------------------------------------------------- account writes
    def record_password_reset(self, email: str) -> None:
        """Send (record) a reset link if the account exists; the caller is never told."""
        with self._begin() as conn:
            exists = self._account(conn, email) is not None
            conn.execute(
                t.password_resets.insert().values(
                    email=email.strip().lower(),
                    sent=exists,
                    requested_at=datetime.now(timezone.utc),
                )
            )

    def request_account_closure(self, email: str) -> Change:
        """Record a closure request, refused while orders or returns are still open."""
        with self._begin() as conn:
            account = self._account(conn, email)
            if account is None:
                return Change(Outcome.NOT_FOUND)
            if account.closure_requested_on is not None:
                return Change(Outcome.ALREADY_DONE)
            open_orders = conn.execute(
                select(t.orders.c.order_number)
                .where(t.orders.c.email == account.email)
                .where(t.orders.c.status.in_(t.OPEN_ORDER))
            ).scalars()
            open_returns = conn.execute(
                select(t.returns.c.order_number)
                .join(t.orders, t.orders.c.order_number == t.returns.c.order_number)
                .where(t.orders.c.email == account.email)
                .where(t.returns.c.status == "open")
            ).scalars()
            still_open = tuple(sorted({*open_orders, *open_returns}))
            if still_open:
                return Change(Outcome.NOT_ALLOWED, open_orders=still_open)
            conn.execute(
                t.accounts.update()
                .where(t.accounts.c.email == account.email)
                .values(closure_requested_on=self.today())
            )
            return Change(Outcome.DONE)

    def block_card(self, email: str, full_name: str) -> Change:
        """Block the account's store card for good and order a replacement."""
        with self._begin() as conn:
            account = self._account(conn, email)
            if account is None:
                return Change(Outcome.NOT_FOUND)
            if " ".join(full_name.split()).casefold() != account.full_name.casefold():
                return Change(Outcome.NOT_OWNER)
            if account.store_card == t.NO_CARD:
                return Change(Outcome.NOT_ALLOWED)
            if account.store_card == t.CARD_BLOCKED:
                return Change(Outcome.ALREADY_DONE)
            conn.execute(
                t.accounts.update()
                .where(t.accounts.c.email == account.email)
                .where(t.accounts.c.store_card == t.CARD_ACTIVE)
                .values(store_card=t.CARD_BLOCKED, card_replacement_ordered_on=self.today())
            )
            return Change(Outcome.DONE)


@functools.lru_cache(maxsize=8)
def _store_for(url: str, today: Optional[str]) -> OrderStore:
    """One store per URL and fixed day, shared by every action in the process."""
    if today is None:
        return OrderStore(url)
    try:
        fixed = date.fromisoformat(today)
    except ValueError as e:
        raise StoreUnavailable(f"{STORE_TODAY_ENV}={today!r} is not a date like 2025-06-11") from e
    return OrderStore(url, today=lambda: fixed)


def store_from_env() -> OrderStore:
    """The process's store for ``$BOT_STORE_URL`` (default: bot/store/northwind.db)."""
    return _store_for(
        os.environ.get(STORE_URL_ENV) or DEFAULT_URL, os.environ.get(STORE_TODAY_ENV) or None
    )
