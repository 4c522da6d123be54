"""Turns bot/store/sample_data.yml into rows, with its relative dates made absolute."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import yaml

from .order_policy import add_working_days

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "store" / "sample_data.yml"

_DATE_FIELDS = ("placed_on", "dispatched_on", "expected_on", "delivered_on", "cancelled_on")


class SeedDataError(ValueError):
    """The sample data file is missing, unreadable or malformed; the message says where."""


def resolve_day(spec: Any, today: date, *, where: str) -> date:
    """``{days_ago: N}``, ``{working_days_ago: N}`` or ``{working_days_from_now: N}``."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise SeedDataError(
            f"{where}: a date must be one of {{days_ago: N}}, {{working_days_ago: N}} or "
            f"{{working_days_from_now: N}}, not {spec!r}"
        )
    ((unit, count),) = spec.items()
    if not isinstance(count, int) or count < 0:
        raise SeedDataError(f"{where}: {unit} must be a whole number >= 0, not {count!r}")
    if unit == "days_ago":
        return today - timedelta(days=count)
    if unit == "working_days_ago":
        return add_working_days(today, -count)
    if unit == "working_days_from_now":
        return add_working_days(today, count)
    raise SeedDataError(f"{where}: unknown date unit {unit!r}")


def to_pence(amount: Any, *, where: str) -> int:
    """An amount in pounds (12.5, '64.50') as whole pence."""
    try:
        return int((Decimal(str(amount)) * 100).to_integral_value())
    except InvalidOperation as e:
        raise SeedDataError(f"{where}: {amount!r} is not an amount in pounds") from e


def _phone(value: Any, *, where: str) -> Optional[str]:
    """An E.164 number ('+447700900123'), or None; unquoted in YAML it is an integer."""
    if value is None:
        return None
    phone = str(value).replace(" ", "")
    if not phone.startswith("+") or not phone[1:].isdigit():
        raise SeedDataError(
            f"{where}: phone {value!r} is not an E.164 number; write it in quotes with "
            "the country code, like '+447700900123'"
        )
    return phone


def load_sample_data(today: date, *, path: Path = SAMPLE_DATA) -> Dict[str, List[Dict[str, Any]]]:
    """Rows for the accounts, orders and payments tables, dated relative to ``today``."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise SeedDataError(f"cannot read the order store's sample data {path}: {e}") from e
    if not isinstance(raw, Mapping):
        raise SeedDataError(f"{path}: expected accounts, orders and payments at the top level")
    try:
        return _rows(raw, today, path)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, SeedDataError):
            raise
        raise SeedDataError(f"{path}: a required field is missing or malformed: {e!r}") from e


def _rows(raw: Mapping[str, Any], today: date, path: Path) -> Dict[str, List[Dict[str, Any]]]:
    accounts = [
        {
            "email": str(a["email"]).lower(),
            "full_name": str(a["full_name"]),
            "store_card": str(a.get("store_card", "none")),
        }
        for a in raw.get("accounts", [])
    ]
    orders = []
    for o in raw.get("orders", []):
        where = f"{path}: order {o.get('order_number')}"
        row = {key: o.get(key) for key in ("carrier", "tracking_url")}
        row["phone"] = _phone(o.get("phone"), where=where)
        row.update(
            order_number=str(o["order_number"]),
            email=str(o["email"]).lower(),
            status=str(o["status"]),
            destination=str(o.get("destination", "UK")),
            delivery_address=str(o["delivery_address"]),
            payment_method=str(o["payment_method"]),
            total_pence=to_pence(o["total"], where=where),
            currency=str(o.get("currency", "GBP")),
        )
        for field in _DATE_FIELDS:
            row[field] = resolve_day(o[field], today, where=where) if field in o else None
        orders.append(row)

    payments = [
        {
            "order_number": str(p["order_number"]),
            "kind": str(p["kind"]),
            "status": str(p["status"]),
            "amount_pence": to_pence(p["amount"], where=f"{path}: payment"),
            "method": str(p["method"]),
            "made_on": resolve_day(p["made_on"], today, where=f"{path}: payment"),
        }
        for p in raw.get("payments", [])
    ]
    # Every other order was paid once, in full, when it was placed.
    paid = {p["order_number"] for p in payments}
    payments += [
        {
            "order_number": o["order_number"],
            "kind": "charge",
            "status": "completed",
            "amount_pence": o["total_pence"],
            "method": o["payment_method"],
            "made_on": o["placed_on"],
        }
        for o in orders
        if o["order_number"] not in paid
    ]
    return {"accounts": accounts, "orders": orders, "payments": payments}
