"""Northwind's date and money rules, as bot/knowledge states them."""

from __future__ import annotations

from datetime import date

import pytest

from bot.actions.order_policy import (
    add_working_days,
    can_redirect,
    format_money,
    late_after,
    problem_report_deadline,
    refund_trace_date,
    return_deadline,
    working_days_between,
)

FRIDAY = date(2025, 6, 13)
MONDAY = date(2025, 6, 16)


def test_working_days_skip_the_weekend_both_ways():
    assert add_working_days(FRIDAY, 1) == MONDAY
    assert add_working_days(MONDAY, -1) == FRIDAY
    assert add_working_days(date(2025, 6, 14), 1) == MONDAY  # Saturday -> Monday
    assert add_working_days(FRIDAY, 0) == FRIDAY
    assert working_days_between(FRIDAY, MONDAY) == 1
    assert working_days_between(MONDAY, FRIDAY) == 0


def test_a_uk_parcel_is_late_after_5_working_days_and_an_eu_one_after_10():
    assert late_after(MONDAY, "UK") == date(2025, 6, 23)
    assert late_after(MONDAY, "EU") == date(2025, 6, 30)


def test_returns_close_30_days_after_delivery():
    assert return_deadline(date(2025, 5, 1), date(2025, 5, 5)) == date(2025, 6, 4)


@pytest.mark.parametrize(
    "placed, delivered, deadline",
    [
        (date(2025, 11, 1), date(2025, 11, 4), date(2026, 1, 31)),
        (date(2025, 12, 24), date(2025, 12, 29), date(2026, 1, 31)),
        # Delivered late in January: the 30 days run past 31 January.
        (date(2025, 12, 20), date(2026, 1, 10), date(2026, 2, 9)),
        # Bought on 25 December: the Christmas rule no longer applies.
        (date(2025, 12, 25), date(2025, 12, 29), date(2026, 1, 28)),
        (date(2025, 10, 31), date(2025, 11, 3), date(2025, 12, 3)),
    ],
)
def test_christmas_purchases_can_go_back_until_31_january(placed, delivered, deadline):
    assert return_deadline(placed, delivered) == deadline


def test_problems_must_be_reported_within_14_days_and_refunds_traced_after_10():
    assert problem_report_deadline(MONDAY) == date(2025, 6, 30)
    assert refund_trace_date(MONDAY) == date(2025, 6, 30)


def test_money_reads_as_northwind_writes_it():
    assert format_money(6450) == "£64.50"
    assert format_money(123405, currency="EUR") == "€1,234.05"


def test_only_a_dpd_parcel_on_its_way_can_be_redirected():
    assert can_redirect("Dispatched", "DPD") and can_redirect("Out for delivery", "dpd")
    assert not can_redirect("Dispatched", "Royal Mail")
    assert not can_redirect("Delivered", "DPD") and not can_redirect("Processing", None)
