"""OrderStore on SQLite and on PostgreSQL: seeding, reads, guarded writes, failures."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from bench.support.postgres_server import PostgresServer
from bot.actions import store_schema as t
from bot.actions.lookup_limits import Claimant, LookupLimits
from bot.actions.order_policy import add_working_days
from bot.actions.order_store import (
    STORE_TODAY_ENV,
    STORE_URL_ENV,
    OrderStore,
    StoreUnavailable,
    store_from_env,
)
from bot.actions.store_records import Access, OrderAccess, Outcome

from .conftest import JANE, SAM, TODAY


@pytest.fixture(scope="module")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A database of this module's on the tests' own PostgreSQL server."""
    return postgres_server.create_database(f"bot_store_test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'northwind.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    # Each test starts from empty tables in the module's database.
    engine = sa.create_engine(base, future=True)
    t.metadata.drop_all(engine)
    engine.dispose()
    yield base


@pytest.fixture
def store(url: str) -> Iterator[OrderStore]:
    store = OrderStore(url, today=lambda: TODAY)
    yield store
    store.dispose()


def rows(url: str, table: sa.Table) -> list:
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(table)).mappings()]
    finally:
        engine.dispose()


def test_an_empty_store_is_seeded_with_the_sample_data_dated_from_today(store):
    order = store.get_order("10023")
    assert order is not None and order.status == "Dispatched" and order.carrier == "DPD"
    assert order.dispatched_on == add_working_days(TODAY, -2)
    assert order.expected_on == add_working_days(TODAY, 1)
    assert store.get_order("10024").placed_on == TODAY
    assert store.get_order("10026").delivered_on == TODAY - timedelta(days=45)
    assert store.get_order("48213").status == "Delivered"
    assert store.get_order("99999") is None
    charges = [p for p in store.payments("10029") if p.kind == "charge"]
    assert [p.status for p in charges] == ["completed", "completed"]
    # Orders without listed payments were paid once, in full, when placed.
    assert [(p.amount_pence, p.made_on) for p in store.payments("10023")] == [
        (6450, add_working_days(TODAY, -3))
    ]
    account = store.get_account("  Jane.Doe@Example.com ")
    assert (
        account is not None and account.full_name == "Jane Doe" and account.store_card == "active"
    )


def test_the_sample_data_is_seeded_once_and_never_over_written(url, store):
    assert store.cancel_order("10024", "jane.doe@example.com").outcome is Outcome.DONE
    later = OrderStore(url, today=lambda: TODAY + timedelta(days=7))
    try:
        assert later.get_order("10024").status == "Cancelled"
        assert later.get_order("10023").dispatched_on == add_working_days(TODAY, -2)
        assert len(rows(url, t.orders)) == 9 and len(rows(url, t.accounts)) == 3
    finally:
        later.dispose()


def test_cancel_only_while_received_or_processing_and_refund_the_total(url, store):
    assert store.cancel_order("10024", "someone@example.com").outcome is Outcome.NOT_OWNER
    assert store.get_order("10024").status == "Processing"

    change = store.cancel_order("10024", "JANE.DOE@example.com")
    assert change.outcome is Outcome.DONE
    assert change.order.status == "Cancelled" and change.order.cancelled_on == TODAY
    refund = [p for p in store.payments("10024") if p.kind == "refund"]
    assert [(r.status, r.amount_pence, r.method, r.made_on) for r in refund] == [
        ("issued", 3200, "credit card", TODAY)
    ]
    assert store.cancel_order("10024", "jane.doe@example.com").outcome is Outcome.ALREADY_DONE
    assert len([p for p in store.payments("10024") if p.kind == "refund"]) == 1

    refused = store.cancel_order("10023", "jane.doe@example.com")
    assert refused.outcome is Outcome.NOT_ALLOWED and refused.order.status == "Dispatched"
    assert store.get_order("10023").status == "Dispatched"
    assert store.cancel_order("12345", "jane.doe@example.com").outcome is Outcome.NOT_FOUND


def test_the_address_changes_only_before_dispatch(store):
    new = "7 Station Road, Salford M5 4WT"
    assert store.change_address("10024", "sam.lee@example.com", new).outcome is Outcome.NOT_OWNER
    assert store.change_address("10024", "jane.doe@example.com", new).outcome is Outcome.DONE
    assert store.get_order("10024").delivery_address == new
    refused = store.change_address("10023", "jane.doe@example.com", new)
    assert refused.outcome is Outcome.NOT_ALLOWED
    assert store.get_order("10023").delivery_address == "12 Elm Road, Manchester M14 5TT"


def test_returns_start_within_30_days_of_delivery_once_per_order(store):
    started = store.start_return("10025", "sam.lee@example.com", "Too small")
    assert started.outcome is Outcome.DONE and started.reference.startswith("RET-")
    again = store.start_return("10025", "sam.lee@example.com", "Too small")
    assert again.outcome is Outcome.ALREADY_DONE and again.reference == started.reference
    assert [r.reference for r in store.returns("10025")] == [started.reference]

    assert store.start_return("10026", "sam.lee@example.com", "x y z").outcome is (
        Outcome.NOT_ALLOWED
    )
    assert store.start_return("10023", "jane.doe@example.com", "x y z").outcome is (
        Outcome.NOT_ALLOWED
    )
    assert store.start_return("10025", "jane.doe@example.com", "x y z").outcome is (
        Outcome.NOT_OWNER
    )
    assert store.returns("10026") == []


def test_a_case_is_opened_once_per_order_and_kind(store):
    first = store.open_case("10030", "late")
    assert first.outcome is Outcome.DONE and first.reference.startswith("CASE-")
    assert store.open_case("10030", "late").reference == first.reference
    other = store.open_case("10030", "damaged")
    assert other.outcome is Outcome.DONE and other.reference != first.reference
    assert store.open_case("55555", "late").outcome is Outcome.NOT_FOUND


def test_an_account_closes_only_when_nothing_is_open(store):
    jane = store.request_account_closure("jane.doe@example.com")
    assert jane.outcome is Outcome.NOT_ALLOWED
    assert jane.open_orders == ("10023", "10024", "10028", "10030")
    assert store.request_account_closure("priya.shah@example.com").outcome is Outcome.DONE
    assert store.get_account("priya.shah@example.com").closure_requested_on == TODAY
    again = store.request_account_closure("priya.shah@example.com")
    assert again.outcome is Outcome.ALREADY_DONE
    # An open return keeps Sam's account open too.
    store.start_return("10025", "sam.lee@example.com", "Too small")
    sam = store.request_account_closure("sam.lee@example.com")
    assert sam.outcome is Outcome.NOT_ALLOWED and sam.open_orders == ("10025",)
    assert store.request_account_closure("nobody@example.com").outcome is Outcome.NOT_FOUND


def test_a_blocked_card_stays_blocked_and_a_replacement_is_ordered(store):
    assert store.block_card("priya.shah@example.com", "Jane Doe").outcome is Outcome.NOT_OWNER
    assert store.get_account("priya.shah@example.com").store_card == "active"
    assert store.block_card("priya.shah@example.com", "priya   SHAH").outcome is Outcome.DONE
    account = store.get_account("priya.shah@example.com")
    assert account.store_card == "blocked" and account.card_replacement_ordered_on == TODAY
    again = store.block_card("priya.shah@example.com", "Priya Shah")
    assert again.outcome is Outcome.ALREADY_DONE
    assert store.block_card("sam.lee@example.com", "Sam Lee").outcome is Outcome.NOT_ALLOWED
    assert store.block_card("nobody@example.com", "No Body").outcome is Outcome.NOT_FOUND


def test_password_resets_are_recorded_whether_or_not_the_account_exists(url, store):
    store.record_password_reset("Jane.Doe@example.com")
    store.record_password_reset("nobody@example.com")
    recorded = sorted((r["email"], r["sent"]) for r in rows(url, t.password_resets))
    assert recorded == [("jane.doe@example.com", True), ("nobody@example.com", False)]


def test_an_unreachable_store_raises_store_unavailable_without_customer_data(tmp_path):
    missing = tmp_path / "no-such-folder"
    store = OrderStore(f"sqlite:///{missing / 'northwind.db'}", today=lambda: TODAY)
    with pytest.raises(StoreUnavailable) as raised:
        store.cancel_order("10024", "jane.doe@example.com")
    assert "OperationalError" in str(raised.value)
    assert "10024" not in str(raised.value) and "jane" not in str(raised.value)
    # The store is prepared again on the next call, so it recovers once the disk is back.
    missing.mkdir()
    assert store.get_order("10024").status == "Processing"
    store.dispose()


def test_a_closed_postgresql_store_is_unavailable_not_a_crash(postgres_url):
    store = OrderStore(postgres_url.rsplit("/", 1)[0] + "/no_such_database_here")
    with pytest.raises(StoreUnavailable, match="OperationalError"):
        store.get_order("10023")
    store.dispose()


def test_a_bad_url_or_day_in_the_environment_is_reported_with_the_fix(monkeypatch):
    with pytest.raises(StoreUnavailable, match=STORE_URL_ENV):
        OrderStore("not a database url")
    monkeypatch.setenv(STORE_URL_ENV, "sqlite:////tmp/unused.db")
    monkeypatch.setenv(STORE_TODAY_ENV, "11/06/2025")
    with pytest.raises(StoreUnavailable, match=STORE_TODAY_ENV):
        store_from_env()


def test_the_password_never_shows_in_the_store_name():
    store = OrderStore("postgresql://bot:s3cret@127.0.0.1:5432/northwind")
    assert "s3cret" not in repr(store)
    store.dispose()


def test_a_malformed_sample_file_is_reported_with_its_path(tmp_path):
    sample = tmp_path / "sample.yml"
    sample.write_text("orders:\n  - order_number: '10001'\n    placed_on: yesterday\n")
    store = OrderStore(f"sqlite:///{tmp_path / 'db.sqlite'}", sample_data=sample)
    with pytest.raises(StoreUnavailable, match=str(sample)):
        store.get_order("10001")
    store.dispose()


def test_the_default_store_lives_in_bot_store(monkeypatch):
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    monkeypatch.delenv(STORE_TODAY_ENV, raising=False)
    default = repr(store_from_env())
    assert default.endswith("/bot/store/northwind.db')") and default.startswith(
        "OrderStore('sqlite"
    )
    assert abs(store_from_env().today() - date.today()) <= timedelta(days=1)


# ------------------------------------------------------------- who may look up an order
class Clock:
    """A settable UTC clock for the look-up windows."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 11, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guarded(url: str, clock: Clock) -> Iterator[OrderStore]:
    """A store with small limits: 3 misses per conversation in 10 minutes, 4 per order
    in 30 minutes."""
    limits = LookupLimits(
        per_conversation=3,
        conversation_window=timedelta(minutes=10),
        per_order=4,
        order_window=timedelta(minutes=30),
    )
    store = OrderStore(url, today=lambda: TODAY, limits=limits, clock=clock)
    yield store
    store.dispose()


def test_an_order_is_shown_to_its_email_or_its_sms_phone_only(guarded):
    jane = Claimant("webchat:1", "Jane.Doe@example.com ")
    granted = guarded.order_access("10023", jane)
    assert granted.access is Access.GRANTED and granted.order.order_number == "10023"
    assert granted.order.phone == "+447700900123"
    sms = guarded.order_access("10023", Claimant("sms:+447700900123"))
    assert sms.access is Access.GRANTED
    # No email and no SMS identity: asked for the email, and nothing is counted.
    for nobody in (Claimant("webchat:2"), Claimant("rest:+447700900123"), Claimant("sms:+4470")):
        answer = guarded.order_access("10023", nobody)
        assert answer == OrderAccess(Access.NO_PROOF)
    # 48213 was placed without a phone: its email is the only proof.
    assert guarded.order_access("48213", Claimant("sms:+447700900123")).access is Access.NO_PROOF
    assert guarded.order_access("48213", Claimant("sms:+447700900123", JANE)).order is not None


def test_a_wrong_email_and_an_unknown_order_are_one_answer_and_one_miss_each(url, guarded):
    wrong = guarded.order_access("10023", Claimant("webchat:1", SAM))
    unknown = guarded.order_access("99999", Claimant("webchat:1", SAM))
    assert wrong == unknown == OrderAccess(Access.NOT_MATCHED)
    misses = rows(url, t.lookup_misses)
    assert [m["order_number"] for m in misses] == ["10023", "99999"]
    # The conversation id is kept as its SHA-256 only: no phone number in the table.
    assert {m["conversation"] for m in misses} == {Claimant("webchat:1").conversation_key}
    assert all(len(m["conversation"]) == 64 and "webchat" not in m["conversation"] for m in misses)


def test_a_conversation_with_too_many_misses_is_paused_until_they_age_out(guarded, clock):
    guesser = Claimant("webchat:guesser", SAM)
    for number in ("20001", "20002", "20003"):
        assert guarded.order_access(number, guesser).access is Access.NOT_MATCHED
        clock.now += timedelta(minutes=1)
    right = Claimant("webchat:guesser", JANE)
    assert guarded.order_access("10023", right) == OrderAccess(Access.PAUSED)
    assert guarded.order_access(None, right) == OrderAccess(Access.PAUSED)
    # Paused answers are not misses: the first miss ages out 10 minutes after it was made.
    clock.now += timedelta(minutes=7, seconds=1)
    assert guarded.order_access("10023", right).access is Access.GRANTED
    # Other conversations were never affected.
    assert guarded.order_access("10024", Claimant("webchat:other", JANE)).access is Access.GRANTED


def test_an_order_missed_from_many_conversations_is_paused_but_not_for_its_sms_phone(
    url, guarded, clock
):
    for n in range(4):
        guess = Claimant(f"webchat:guess-{n}", f"guess{n}@example.com")
        assert guarded.order_access("10023", guess).access is Access.NOT_MATCHED
    for email in (JANE, None):
        assert guarded.order_access("10023", Claimant("webchat:jane", email)).access is (
            Access.PAUSED
        )
    assert guarded.order_access("10024", Claimant("webchat:jane", JANE)).access is Access.GRANTED
    # The phone it was placed with guesses nothing: still answered over SMS.
    assert guarded.order_access("10023", Claimant("sms:+447700900123")).access is Access.GRANTED
    # 30 minutes later the order's misses have aged out, and are deleted by the next miss.
    clock.now += timedelta(minutes=30, seconds=1)
    assert guarded.order_access("10023", Claimant("webchat:jane", JANE)).access is Access.GRANTED
    guarded.order_access("99999", Claimant("webchat:late", SAM))
    assert [m["order_number"] for m in rows(url, t.lookup_misses)] == ["99999"]


def test_an_sms_owner_may_change_the_order_without_the_email(store):
    phone = "+44 7700 900123"
    assert store.cancel_order("10024", None, phone="+447700900456").outcome is Outcome.NOT_OWNER
    assert store.cancel_order("10024", None, phone=phone).outcome is Outcome.DONE
    new = "7 Station Road, Salford M5 4WT"
    changed = store.change_address("10028", None, new, phone="+447700900123")
    assert changed.outcome is Outcome.DONE
    assert store.start_return("10025", None, "Too small", phone="+447700900456").outcome is (
        Outcome.DONE
    )


def test_a_store_made_before_the_phone_column_gets_it_when_opened(url):
    old = OrderStore(url, today=lambda: TODAY)
    old.get_order("10023")
    old.dispose()
    engine = sa.create_engine(url, future=True)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE orders DROP COLUMN phone"))
    engine.dispose()
    upgraded = OrderStore(url, today=lambda: TODAY)
    try:
        order = upgraded.get_order("10023")
        # Orders seeded before keep working; their phone is unknown until set.
        assert order is not None and order.phone is None and order.status == "Dispatched"
        assert upgraded.order_access("10023", Claimant("webchat:1", JANE)).access is (
            Access.GRANTED
        )
    finally:
        upgraded.dispose()


def test_a_phone_in_the_sample_data_must_be_an_e164_number_in_quotes(tmp_path):
    sample = tmp_path / "sample.yml"
    sample.write_text(
        "orders:\n  - order_number: '10001'\n    email: a@example.com\n    status: Received\n"
        "    placed_on: {days_ago: 0}\n    delivery_address: 1 A Road\n"
        "    payment_method: PayPal\n    total: '1.00'\n    phone: 447700900123\n"
    )
    store = OrderStore(f"sqlite:///{tmp_path / 'db.sqlite'}", sample_data=sample)
    with pytest.raises(StoreUnavailable, match="E.164"):
        store.get_order("10001")
    store.dispose()
