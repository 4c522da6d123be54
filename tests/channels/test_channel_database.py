"""The channels' tables on a SQLite file and on PostgreSQL: the same rules on both.

Each store is opened twice on one location, as two servers (or two workers) would; the
races are real threads on real connections. PostgreSQL is the test session's own
server on loopback (bench/support/postgres_server.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, List

import pytest

from channels.channel_database import ChannelDatabase, ChannelDatabaseError, database_location
from channels.delivery_log import DeliveryLog
from channels.handoff_store import HandoffStore
from channels.slack_config import SlackConfig
from channels.sms_config import SmsConfig
from channels.sms_state import Option, SenderStore
from channels.telegram_buttons import ButtonPayloads
from tests.rasa_process import free_port

# Epoch seconds of today: a float4 column (PostgreSQL's REAL) holds them to the nearest
# 128 s (this one 63 s early), so windows of seconds would not hold.
NOW = 1_764_633_663.25


def race(calls: int, call: Callable[[int], Any]) -> List[Any]:
    """``call(i)`` for every i, from 8 threads released at the same moment."""
    start = threading.Barrier(8)

    def run(i: int) -> Any:
        if i < 8:
            start.wait()
        return call(i)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(run, range(calls)))


def test_each_delivery_is_taken_once_by_two_servers_racing(location: Any):
    servers = [DeliveryLog(location), DeliveryLog(location)]
    # 8 threads, two stores, each of 40 ids delivered 4 times (a platform retrying).
    firsts = race(160, lambda i: servers[i % 2].first_time_sync("slack", f"Ev{i % 40}"))
    assert sum(firsts) == 40
    assert not servers[0].first_time_sync("slack", "Ev7")
    assert servers[1].first_time_sync("telegram", "Ev7"), "ids are per channel"


def test_the_window_holds_to_the_second_at_todays_timestamps(location: Any):
    now = [NOW]
    log = DeliveryLog(location, window_seconds=60, clock=lambda: now[0])
    assert log.first_time_sync("sms", "SM1")
    now[0] += 59
    assert not log.first_time_sync("sms", "SM1")
    now[0] += 2  # 61 s after the first delivery
    assert log.first_time_sync("sms", "SM1")


def test_a_handoff_opens_once_however_many_servers_try(location: Any):
    stores = [HandoffStore(location, clock=lambda: NOW), HandoffStore(location)]
    opened = race(16, lambda i: stores[i % 2].open_sync("c1", "sms", f"reason{i}", NOW - 5))
    assert sum(opened) == 1
    handoff = stores[1].get_sync("c1")
    assert handoff is not None and handoff.is_open and handoff.forwarded_until == NOW - 5
    stores[0].set_thread_sync("c1", "1700000000.000100")
    assert stores[1].by_thread_sync("1700000000.000100") == stores[0].get_sync("c1")
    claims = race(8, lambda i: stores[i % 2].claim_forward_sync("c1", NOW - 5, NOW))
    assert sum(claims) == 1, "two servers never forward the same messages"
    assert [h.sender_id for h in stores[1].list_open_sync()] == ["c1"]
    assert stores[1].close_sync("c1") and not stores[0].close_sync("c1")
    assert stores[0].list_open_sync() == []
    # A closed hand-off opens again, as new: no thread, forwarded from the new mark.
    assert stores[0].open_sync("c1", "webchat", "asked_for_person", NOW + 1)
    reopened = stores[1].get_sync("c1")
    assert reopened is not None and reopened.is_open
    assert (reopened.channel, reopened.thread_ts, reopened.forwarded_until) == (
        "webchat",
        None,
        NOW + 1,
    )


def test_an_opt_out_and_options_are_seen_by_every_server(location: Any):
    one = SenderStore(location, options_ttl_seconds=60, clock=lambda: NOW)
    two = SenderStore(location, options_ttl_seconds=60, clock=lambda: NOW + 30)
    one.set_opted_out_sync("+15550001", True)
    one.set_opted_out_sync("+15550001", True)  # STOP twice
    assert two.is_opted_out_sync("+15550001") and not two.is_opted_out_sync("+15550002")
    two.set_opted_out_sync("+15550001", False)
    assert not one.is_opted_out_sync("+15550001")

    options = [Option("Yes, connect me", "/affirm"), Option("No thanks", "/deny")]
    one.remember_options_sync("+15550003", options)
    one.remember_options_sync("+15550003", options[:1])  # the newest options count
    # Two messages from the customer reach two servers at once: one gets the options.
    taken = race(8, lambda i: (one, two)[i % 2].take_options_sync("+15550003"))
    assert sorted(taken, key=len) == [[]] * 7 + [options[:1]]
    one.remember_options_sync("+15550004", options)
    one.set_opted_out_sync("+15550004", True)
    assert two.take_options_sync("+15550004") == [], "STOP forgets the options"


def test_long_button_payloads_are_found_by_another_server(location: Any):
    payload = '/inform{"order_id": "' + "1" * 80 + '"}'
    key = ButtonPayloads(location).callback_data_sync(payload)
    assert key != payload and len(key.encode()) <= 64
    assert ButtonPayloads(location).payload_sync(key) == payload
    assert ButtonPayloads(location).callback_data_sync(payload) == key  # the same key again


def test_servers_starting_at_once_create_the_tables_once(location: Any):
    """Two servers (or workers) starting together both find no table and create it.

    PostgreSQL's CREATE TABLE IF NOT EXISTS alone fails for the second one (a duplicate
    in pg_type; CI saw it with the production set-up's two servers).
    """
    stores: List[Callable[[Any], Any]] = [
        DeliveryLog,
        HandoffStore,
        lambda location: SenderStore(location, options_ttl_seconds=60),
        ButtonPayloads,
    ]
    opened = race(32, lambda i: stores[i % 4](location))
    assert [type(store) for store in opened[:4]] == [
        DeliveryLog,
        HandoffStore,
        SenderStore,
        ButtonPayloads,
    ]
    assert opened[0].first_time_sync("slack", "Ev1")
    assert not opened[4].first_time_sync("slack", "Ev1")


def test_a_url_stays_a_url_and_sms_state_shares_its_database():
    url = "postgresql://rasa:secret@db.internal:5432/rasa"
    assert database_location(url) == url  # a Path would fold the "//"
    assert database_location("data/channel_deliveries.db") == Path("data/channel_deliveries.db")
    sms = SmsConfig.from_credentials(
        {"account_sid": "AC" + "0" * 32, "auth_token": "t", "twilio_number": "+15005550006",
         "dedup_db": url}
    )  # fmt: skip
    assert (sms.dedup_db, sms.state_db) == (url, url)
    by_file = SmsConfig.from_credentials(
        {"account_sid": "AC" + "0" * 32, "auth_token": "t", "twilio_number": "+15005550006",
         "dedup_db": "state/d.db"}
    )  # fmt: skip
    assert by_file.state_db == Path("state/sms_senders.db")
    slack = SlackConfig.from_credentials(
        {"slack_token": "xoxb-1", "slack_signing_secret": "s", "dedup_db": url}
    )
    assert slack.dedup_db == url


def test_an_unreachable_database_fails_at_start_with_the_setting_and_no_password():
    url = f"postgresql://rasa:hunter2@127.0.0.1:{free_port()}/rasa"
    with pytest.raises(ChannelDatabaseError) as raised:
        DeliveryLog(url)
    message = str(raised.value)
    assert "`dedup_db` in credentials.yml" in message and "hunter2" not in message
    assert "127.0.0.1" in message and "server is running" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nosuchdb://host/x", "no driver"),
        ("sqlite:///channels.db", "give the file name itself"),
        ("postgresql://u:hunter2@host:notaport/x", "not a database URL"),
        ("postgresql://u:hunter2@[::1/x", "not a database URL"),
    ],
)
def test_a_database_setting_that_cannot_work_says_how_to_fix_it(url: str, expected: str):
    with pytest.raises(ChannelDatabaseError, match=expected) as raised:
        ChannelDatabase(url, setting="state_db")
    assert "state_db" in str(raised.value) and "hunter2" not in str(raised.value)
