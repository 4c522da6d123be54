"""What the order store hands back: plain frozen records, no database rows."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Optional, Tuple


class Outcome(enum.Enum):
    """What a write did."""

    DONE = "done"
    ALREADY_DONE = "already_done"
    NOT_FOUND = "not_found"
    # The email (or name) given is not the one on the order or account.
    NOT_OWNER = "not_owner"
    # Northwind's rules do not allow it now: see the order's status and dates.
    NOT_ALLOWED = "not_allowed"


@dataclass(frozen=True)
class Order:
    order_number: str
    email: str
    status: str
    destination: str
    placed_on: date
    dispatched_on: Optional[date]
    expected_on: Optional[date]
    delivered_on: Optional[date]
    cancelled_on: Optional[date]
    carrier: Optional[str]
    tracking_url: Optional[str]
    delivery_address: str
    payment_method: str
    total_pence: int
    currency: str


@dataclass(frozen=True)
class Payment:
    kind: str  # charge | refund
    status: str  # completed | failed (charges); issued (refunds)
    amount_pence: int
    method: str
    made_on: date


@dataclass(frozen=True)
class Account:
    email: str
    full_name: str
    store_card: str
    card_replacement_ordered_on: Optional[date]
    closure_requested_on: Optional[date]


@dataclass(frozen=True)
class ReturnRecord:
    reference: str
    status: str  # open (label emailed) | refunded
    started_on: date


@dataclass(frozen=True)
class Change:
    """The result of a write: its outcome, and the order or reference it concerns."""

    outcome: Outcome
    order: Optional[Order] = None
    reference: Optional[str] = None
    open_orders: Tuple[str, ...] = ()
