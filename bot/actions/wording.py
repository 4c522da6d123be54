"""The words the bot's actions put into responses, in the conversation's language.

Every response in domain.yml has an English variation and a Chinese one, picked by
the ``language`` slot (rasa_llm/language/language_slot.py). The values an action
passes into a response (dates, an order's status, a payment method, the sentence on
refund times, a list of order numbers) must be in the same language as the text
around them: :func:`wording_of` gives the action a :class:`Wording` for the
conversation's language, and each table below is the one place a value is translated.

Money stays as Northwind writes it in both languages (£1,234.05: a UK shop), and so
do names: carriers (DPD, Royal Mail), PayPal and the like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Dict, Optional, Sequence

from rasa_sdk import Tracker

from . import store_schema as t

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "zh": ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"),
}
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
# Said for a date the store does not have (an expected day not yet known).
_UNKNOWN_DAY = {"en": "unknown", "zh": "待定"}
# Said when an order has no carrier of its own.
_ANY_CARRIER = {"en": "our carrier", "zh": "合作快递公司"}

# Order statuses as a Chinese customer sees them; the English ones are the store's own.
# The Chinese responses that name the statuses ("only while it is Received or
# Processing") use these words too.
_STATUS_ZH = {
    t.RECEIVED: "已下单",
    t.PROCESSING: "处理中",
    t.DISPATCHED: "已发货",
    t.OUT_FOR_DELIVERY: "派送中",
    t.DELIVERED: "已签收",
    t.CANCELLED: "已取消",
}

# Payment methods, by the store's name lower-cased; brands keep their own name.
_METHOD_ZH = {
    "debit card": "借记卡",
    "credit card": "信用卡",
    "apple pay": "Apple Pay",
    "google pay": "Google Pay",
    "paypal": "PayPal",
    "northwind store card": "Northwind 店铺卡",
    "gift card": "礼品卡",
}

# How long an issued refund takes to reach the customer, by payment method
# (bot/knowledge/returns_and_refunds.md, "Refund times by payment method").
_REFUND_TIMING: Dict[str, Dict[str, str]] = {
    "debit card": {
        "en": "Refunds to a debit card take 5-10 business days to appear on your statement.",
        "zh": "退款到借记卡一般需要5-10个工作日才会显示在账单上。",
    },
    "credit card": {
        "en": "Refunds to a credit card take 5-10 business days to appear on your statement.",
        "zh": "退款到信用卡一般需要5-10个工作日才会显示在账单上。",
    },
    "apple pay": {
        "en": "Apple Pay refunds go to the card behind it and take 5-10 business days to appear.",
        "zh": "Apple Pay 的退款会退回到绑定的银行卡，一般需要5-10个工作日到账。",
    },
    "google pay": {
        "en": "Google Pay refunds go to the card behind it and take 5-10 business days to appear.",
        "zh": "Google Pay 的退款会退回到绑定的银行卡，一般需要5-10个工作日到账。",
    },
    "paypal": {
        "en": "PayPal refunds arrive within 1-2 business days.",
        "zh": "PayPal 退款一般在1-2个工作日内到账。",
    },
    "northwind store card": {
        "en": "Refunds to the Northwind store card appear within 2 business days.",
        "zh": "退款到 Northwind 店铺卡会在2个工作日内到账。",
    },
    "gift card": {
        "en": "Refunds of gift card payments go back onto the gift card straight away.",
        "zh": "用礼品卡支付的金额会立即退回到礼品卡。",
    },
}
_BANK_DECIDES = {
    "en": "The time the refund then takes to appear depends on your bank.",
    "zh": "之后退款到账的时间取决于您的银行。",
}


def language_of(tracker: Tracker) -> str:
    """The conversation's language: the ``language`` slot's, English when it has none."""
    language = tracker.get_slot("language")
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def wording_of(tracker: Tracker) -> Wording:
    """The words for the conversation's language (see :func:`language_of`)."""
    return Wording(language_of(tracker))


@dataclass(frozen=True)
class Wording:
    """The values of responses, written in one of :data:`LANGUAGES`."""

    language: str = DEFAULT_LANGUAGE

    @property
    def chinese(self) -> bool:
        """True for Chinese, False for English."""
        return self.language == "zh"

    def day(self, day: Optional[date]) -> str:
        """'Tuesday 10 June' or '6月10日（星期二）', as Northwind's emails write dates."""
        if day is None:
            return _UNKNOWN_DAY[self.language]
        weekday = _WEEKDAYS[self.language][day.weekday()]
        if self.chinese:
            return f"{day.month}月{day.day}日（{weekday}）"
        return f"{weekday} {day.day} {_MONTHS[day.month - 1]}"

    def status(self, status: str) -> str:
        """An order status ('Processing', or '处理中')."""
        return _STATUS_ZH.get(status, status) if self.chinese else status

    def payment_method(self, method: str) -> str:
        """A payment method ('debit card', or '借记卡'); an unknown one as the store has it."""
        if not self.chinese:
            return method
        return _METHOD_ZH.get(method.strip().lower(), method)

    def refund_timing(self, method: str) -> str:
        """One sentence on how long a refund to ``method`` takes once Northwind issues it."""
        timing = _REFUND_TIMING.get(method.strip().lower(), _BANK_DECIDES)
        return timing[self.language]

    def carrier(self, carrier: Optional[str]) -> str:
        """The carrier's name, or 'our carrier' when the order has none."""
        return carrier or _ANY_CARRIER[self.language]

    def numbers(self, numbers: Sequence[str]) -> str:
        """'10023, 10028 and 10030', or '10023、10028和10030'."""
        if len(numbers) < 2:
            return "".join(numbers)
        head, last = numbers[:-1], numbers[-1]
        if self.chinese:
            return f"{'、'.join(head)}和{last}"
        return f"{', '.join(head)} and {last}"
