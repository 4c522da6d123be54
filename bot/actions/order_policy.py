"""Northwind's rules about dates and money, as bot/knowledge states them.

Pure functions over dates, so each rule is tested without a store or a tracker. How
dates, statuses and refund times are worded, in each language, is wording.py's job.
Working days are Monday to Friday; UK bank holidays are not modelled, so a deadline
near one is a day early at worst, never late.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Optional

from .store_schema import IN_TRANSIT

RETURN_WINDOW_DAYS = 30
# Items bought between 1 November and 24 December can go back until 31 January.
CHRISTMAS_FIRST = (11, 1)
CHRISTMAS_LAST = (12, 24)
# A UK parcel is late 5 working days after dispatch, elsewhere after 10 (shipping.md).
LATE_AFTER_WORKING_DAYS = {"UK": 5, "EU": 10}
# Damaged, wrong or missing items and parcels marked delivered: tell us within 14 days.
PROBLEM_REPORT_DAYS = 14
# A refund not seen 10 business days after it was issued is worth tracing (ARN).
REFUND_TRACE_AFTER_BUSINESS_DAYS = 10


def is_working_day(day: date) -> bool:
    """Monday to Friday (bank holidays are not modelled)."""
    return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days after (or, if negative, before) ``start``."""
    step = 1 if days >= 0 else -1
    day, left = start, abs(days)
    while left:
        day += timedelta(days=step)
        if is_working_day(day):
            left -= 1
    return day


def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end`` (0 if end <= start)."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


def late_after(dispatched_on: date, destination: str) -> date:
    """The first day on which an undelivered parcel counts as late."""
    return add_working_days(dispatched_on, LATE_AFTER_WORKING_DAYS.get(destination, 10))


def return_deadline(placed_on: date, delivered_on: date) -> date:
    """Last day to start a return: 30 days after delivery, or 31 January for Christmas."""
    deadline = delivered_on + timedelta(days=RETURN_WINDOW_DAYS)
    bought_at_christmas = (
        date(placed_on.year, *CHRISTMAS_FIRST) <= placed_on <= date(placed_on.year, *CHRISTMAS_LAST)
    )
    if bought_at_christmas:
        deadline = max(deadline, date(placed_on.year + 1, 1, 31))
    return deadline


def problem_report_deadline(delivered_on: date) -> date:
    """Last day to report a damaged, wrong or missing item: 14 days after delivery."""
    return delivered_on + timedelta(days=PROBLEM_REPORT_DAYS)


def refund_trace_date(issued_on: date) -> date:
    """From this day on, an issued refund that has not arrived is worth tracing."""
    return add_working_days(issued_on, REFUND_TRACE_AFTER_BUSINESS_DAYS)


def format_money(pence: int, *, currency: str = "GBP") -> str:
    """'£1,234.05': pence as the amount in ``currency``, with its symbol."""
    symbol = {"GBP": "£", "EUR": "€"}.get(currency, f"{currency} ")
    return f"{symbol}{pence // 100:,}.{pence % 100:02d}"


def can_redirect(status: str, carrier: Optional[str]) -> bool:
    """Only a DPD parcel on its way can be redirected, with the link in DPD's text
    message (shipping.md); Royal Mail parcels cannot.
    """
    return status in IN_TRANSIT and (carrier or "").upper() == "DPD"
