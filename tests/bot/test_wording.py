"""The values actions put into responses, in English and in Chinese."""

from __future__ import annotations

from datetime import date

import pytest
from rasa_sdk import Tracker

from bot.actions import store_schema as t
from bot.actions.wording import LANGUAGES, Wording, language_of

from .conftest import has_han

EN, ZH = Wording("en"), Wording("zh")
TUESDAY = date(2025, 6, 10)


def test_days_read_as_northwind_writes_them_in_each_language():
    assert EN.day(TUESDAY) == "Tuesday 10 June"
    assert ZH.day(TUESDAY) == "6月10日（星期二）"
    assert ZH.day(date(2025, 12, 28)) == "12月28日（星期日）"
    assert EN.day(None) == "unknown" and ZH.day(None) == "待定"


@pytest.mark.parametrize(
    "method, says",
    [
        ("debit card", "5-10 business days"),
        ("Credit card", "5-10 business days"),
        ("PayPal", "1-2 business days"),
        ("Northwind store card", "within 2 business days"),
        ("gift card", "straight away"),
        ("Apple Pay", "5-10 business days"),
        ("bank transfer", "depends on your bank"),
    ],
)
def test_refund_timing_follows_the_knowledge_base(method, says):
    assert says in EN.refund_timing(method)
    chinese = ZH.refund_timing(method)
    assert has_han(chinese)
    # The same number of days in both languages.
    days = [part for part in says.split() if part[0].isdigit()]
    assert all(d in chinese for d in days)


def test_every_status_and_payment_method_has_a_chinese_name():
    for status in t.ORDER_STATUSES:
        assert EN.status(status) == status and has_han(ZH.status(status))
    for method in ("debit card", "Credit Card", "gift card", "Northwind store card"):
        assert EN.payment_method(method) == method and has_han(ZH.payment_method(method))
    assert ZH.payment_method("PayPal") == "PayPal"


def test_the_carrier_and_lists_of_numbers():
    assert EN.carrier(None) == "our carrier" and ZH.carrier(None) == "合作快递公司"
    assert ZH.carrier("DPD") == "DPD"
    assert EN.numbers(()) == "" and ZH.numbers(("10023",)) == "10023"
    assert EN.numbers(("10023", "10024")) == "10023 and 10024"
    assert EN.numbers(("10023", "10028", "10030")) == "10023, 10028 and 10030"
    assert ZH.numbers(("10023", "10028", "10030")) == "10023、10028和10030"


@pytest.mark.parametrize("slot, language", [("zh", "zh"), ("en", "en"), (None, "en"), ("fr", "en")])
def test_the_language_is_the_slots_and_english_otherwise(slot, language):
    tracker = Tracker("c", {"language": slot}, {}, [], False, None, {}, "action_listen")
    assert language_of(tracker) == language and language in LANGUAGES
