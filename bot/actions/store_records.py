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
    """An order as the customer sees it in their account."""

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
    phone: Optional[str] = None


class Access(enum.Enum):
    """Whether a claimant may see an order (bot/actions/lookup_limits.py)."""

    # The email is the order's, or the SMS conversation comes from the order's phone.
    GRANTED = "granted"
    # No email given yet and no channel identity: ask for the email.
    NO_PROOF = "no_proof"
    # The email is not the order's, or there is no such order (the same to the customer).
    NOT_MATCHED = "not_matched"
    # Too many misses in this conversation, or on this order: no look-up for a while.
    PAUSED = "paused"


@dataclass(frozen=True)
class OrderAccess:
    """The answer to a look-up: the access, and the order only when it is granted."""

    access: Access
    order: Optional[Order] = None


@dataclass(frozen=True)
class Payment:
    """A charge or a refund of an order."""

    kind: str  # charge | refund
    status: str  # completed | failed (charges); issued (refunds)
    amount_pence: int
    method: str
    made_on: date


@dataclass(frozen=True)
class Account:
    """A customer account: its holder, its store card and any closure request."""

    email: str
    full_name: str
    store_card: str
    card_replacement_ordered_on: Optional[date]
    closure_requested_on: Optional[date]


@dataclass(frozen=True)
class ReturnRecord:
    """A return of an order, by the reference the customer was given."""

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
