"""Who may look up an order, and how many wrong guesses a conversation or an order gets.

An order is the customer's when they give the email it was placed with, or when the
conversation comes from the phone number it was placed with over SMS: the SMS channel
checked Twilio's signature on the message, so the ``sms:<number>`` conversation id
(channels/conversation_ids.py) names the phone that sent it. Any other channel's id is
the channel's own, whatever digits it holds, and proves nothing about an order.

A miss is a look-up with an email that does not match the order, or of an order that
does not exist: both get the same answer, so a miss never tells whether a number
exists. Misses are kept in the order store (every action-server worker sees them, and
they survive restarts) and pause look-ups in two ways:

* a conversation with ``per_conversation`` misses in the last ``conversation_window``
  gets no more look-ups, right or wrong, until its oldest counted miss is older than
  the window (one customer mistyping a few times is not locked out);
* an order with ``per_order`` misses in the last ``order_window``, from any number of
  conversations, cannot be looked up by email until its misses age out likewise, so
  its email cannot be guessed by starting one conversation after another. A
  conversation from the order's own phone over SMS still gets it: it guesses nothing.

A paused look-up is answered with ``utter_lookups_paused``, which offers a person.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from channels.conversation_ids import channel_of, platform_id

from .store_records import Order

# Misses before a conversation's look-ups pause, and the window they are counted in.
MISSES_PER_CONVERSATION = 5
CONVERSATION_WINDOW = timedelta(minutes=30)
# Misses on one order number, from all conversations, before its look-ups by email pause.
MISSES_PER_ORDER = 10
ORDER_WINDOW = timedelta(hours=1)

_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


@dataclass(frozen=True)
class LookupLimits:
    """The limits above; the store takes others for a test or an embedding."""

    per_conversation: int = MISSES_PER_CONVERSATION
    conversation_window: timedelta = CONVERSATION_WINDOW
    per_order: int = MISSES_PER_ORDER
    order_window: timedelta = ORDER_WINDOW

    @property
    def longest_window(self) -> timedelta:
        """The longer of the two windows: misses older than it count nowhere."""
        return max(self.conversation_window, self.order_window)


DEFAULT_LIMITS = LookupLimits()


@dataclass(frozen=True)
class Claimant:
    """Who asks about an order: their conversation and the proof they offer."""

    # The whole conversation id (``webchat:...``, ``sms:+44...``).
    conversation: str
    # The email the customer gave, if any.
    email: Optional[str] = None

    @property
    def phone(self) -> Optional[str]:
        """The sender's phone number, when the conversation is an SMS one."""
        return sms_phone(self.conversation)

    @property
    def conversation_key(self) -> str:
        """The SHA-256 of the conversation id, which the store keeps instead of the id."""
        return hashlib.sha256(self.conversation.encode("utf-8")).hexdigest()


def sms_phone(conversation: str) -> Optional[str]:
    """The phone number of an ``sms:`` conversation id; None for every other channel."""
    if channel_of(conversation) != "twilio":
        return None
    return platform_id("twilio", conversation)


def same_phone(a: Optional[str], b: Optional[str]) -> bool:
    """Two E.164 numbers are the same, spaces and punctuation aside ('+44 7700 900123')."""
    if not a or not b:
        return False
    left, right = _PHONE_PUNCTUATION.sub("", a), _PHONE_PUNCTUATION.sub("", b)
    return left.startswith("+") and left == right


def same_email(a: Optional[str], b: Optional[str]) -> bool:
    """Email addresses compare case-insensitively (customers type them both ways)."""
    if not a or not b:
        return False
    return a.strip().casefold() == b.strip().casefold()


def owns(order: Order, email: Optional[str], phone: Optional[str]) -> bool:
    """The order's email, or (over SMS) the phone number the order was placed with."""
    return same_email(order.email, email) or same_phone(order.phone, phone)
