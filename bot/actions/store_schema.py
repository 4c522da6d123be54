"""Tables of the bot's order and account store (SQLAlchemy Core, SQLite or PostgreSQL)."""

from __future__ import annotations

from typing import Any, Tuple

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Order statuses as the customer sees them in their account (bot/knowledge/orders.md).
RECEIVED = "Received"
PROCESSING = "Processing"
DISPATCHED = "Dispatched"
OUT_FOR_DELIVERY = "Out for delivery"
DELIVERED = "Delivered"
CANCELLED = "Cancelled"
ORDER_STATUSES = (RECEIVED, PROCESSING, DISPATCHED, OUT_FOR_DELIVERY, DELIVERED, CANCELLED)
NOT_DISPATCHED = (RECEIVED, PROCESSING)
IN_TRANSIT = (DISPATCHED, OUT_FOR_DELIVERY)
OPEN_ORDER = (*NOT_DISPATCHED, *IN_TRANSIT)

# Store card states on an account.
CARD_ACTIVE = "active"
CARD_BLOCKED = "blocked"
NO_CARD = "none"

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    # Stored lower-cased: email addresses are matched case-insensitively.
    Column("email", String(254), primary_key=True),
    Column("full_name", String(200), nullable=False),
    Column("store_card", String(16), nullable=False, default=NO_CARD),
    Column("card_replacement_ordered_on", Date),
    Column("closure_requested_on", Date),
)

orders = Table(
    "orders",
    metadata,
    Column("order_number", String(5), primary_key=True),
    Column("email", String(254), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("destination", String(8), nullable=False, default="UK"),  # UK or EU
    Column("placed_on", Date, nullable=False),
    Column("dispatched_on", Date),
    Column("expected_on", Date),
    Column("delivered_on", Date),
    Column("cancelled_on", Date),
    Column("carrier", String(64)),
    Column("tracking_url", String(500)),
    Column("delivery_address", Text, nullable=False),
    Column("payment_method", String(64), nullable=False),
    Column("total_pence", Integer, nullable=False),
    Column("currency", String(3), nullable=False, default="GBP"),
    # The phone number the order was placed with (E.164, e.g. +447700900123), if any:
    # an SMS conversation from it may look the order up without the email.
    Column("phone", String(20)),
)

# Columns added to a table after its first release, with their SQL type: a store made
# before them gets them added when it is opened (store_database.py).
ADDED_COLUMNS = {"orders": {"phone": "VARCHAR(20)"}}


def _about_an_order() -> Tuple[Column[Any], ...]:
    """The columns of a row about one order (a payment, return or case): its own id and
    the order's number.
    """
    return (
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("order_number", String(5), ForeignKey("orders.order_number"), nullable=False),
    )


payments = Table(
    "payments",
    metadata,
    *_about_an_order(),
    Column("kind", String(16), nullable=False),  # charge or refund
    # charge: completed | failed; refund: requested (cancelled, not yet sent) | issued
    Column("status", String(16), nullable=False),
    Column("amount_pence", Integer, nullable=False),
    Column("method", String(64), nullable=False),
    Column("made_on", Date, nullable=False),
)

returns = Table(
    "returns",
    metadata,
    *_about_an_order(),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # open (label emailed) | refunded
    Column("started_on", Date, nullable=False),
)

cases = Table(
    "cases",
    metadata,
    *_about_an_order(),
    # late | lost | damaged | wrong_item | duplicate_payment
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # open | closed
    Column("opened_on", Date, nullable=False),
)

password_resets = Table(
    "password_resets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False),
    # Whether a link went out: only the store knows; the customer is never told.
    Column("sent", Boolean, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
)

# Look-ups that missed: an email that is not the order's, or an order that does not
# exist. Counted per conversation and per order number to pause guessing
# (bot/actions/lookup_limits.py); rows older than the longest window are deleted.
lookup_misses = Table(
    "lookup_misses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # SHA-256 of the conversation id, never the id itself (an SMS id is a phone number).
    Column("conversation", String(64), nullable=False, index=True),
    # Not a foreign key: numbers that do not exist are counted too.
    Column("order_number", String(5), nullable=False, index=True),
    # UTC, without a time zone (SQLite and PostgreSQL compare these alike).
    Column("missed_at", DateTime, nullable=False, index=True),
)
