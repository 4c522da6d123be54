"""The desk's hand-off table: openings, references, claims, and an earlier version's file."""

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from channels.channel_database import ChannelDatabase
from channels.handoff_store import Claim, HandoffStore, is_reference


def test_open_is_once_until_closed_and_reopens_after(tmp_path: Path):
    store = HandoffStore(tmp_path / "h.db", clock=lambda: 100.0)
    assert store.open_sync("c1", "telegram", "asked_for_person", 5.0)
    assert not store.open_sync("c1", "telegram", "negative_turns", 6.0)
    handoff = store.get_sync("c1")
    assert handoff is not None and handoff.is_open
    assert (handoff.channel, handoff.reason, handoff.forwarded_until) == (
        "telegram",
        "asked_for_person",
        5.0,
    )
    assert [h.sender_id for h in store.list_open_sync()] == ["c1"]
    assert store.close_sync("c1") and not store.close_sync("c1")
    assert store.list_open_sync() == []
    assert store.open_sync("c1", "slack", "fallback_turns", 9.0)
    assert store.get_sync("c1").reason == "fallback_turns"  # type: ignore[union-attr]


def test_threads_and_forwarding_claims_survive_a_new_store(tmp_path: Path):
    path = tmp_path / "h.db"
    first = HandoffStore(path)
    first.open_sync("c1", "webchat", "asked_for_person", 1.0)
    first.set_thread_sync("c1", "1700000000.000100")
    second = HandoffStore(path)  # another worker, or after a restart
    assert second.by_thread_sync("1700000000.000100").sender_id == "c1"  # type: ignore[union-attr]
    # Two workers race to forward the same new messages: only one wins.
    assert first.claim_forward_sync("c1", 1.0, 2.0)
    assert not second.claim_forward_sync("c1", 1.0, 2.0)
    second.close_sync("c1")
    assert first.by_thread_sync("1700000000.000100") is None
    assert not first.claim_forward_sync("c1", 2.0, 3.0)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_opening_has_a_reference_of_its_own(tmp_path: Path):
    store = HandoffStore(tmp_path / "h.db")
    store.open_sync("sms:+15550001111", "twilio", "asked_for_person", 1.0)
    first = store.get_sync("sms:+15550001111")
    assert first is not None and is_reference(first.ref)
    assert store.find_sync(first.ref) == first == store.find_sync("sms:+15550001111")
    store.close_sync("sms:+15550001111")
    store.open_sync("sms:+15550001111", "twilio", "asked_for_person", 2.0)
    second = store.get_sync("sms:+15550001111")
    assert second is not None and second.ref != first.ref
    assert store.find_sync(first.ref) is None, "an old reference names no hand-off"
    assert store.find_sync("h-000000000000") is None


def test_one_agent_claims_answers_and_hands_back(tmp_path: Path):
    clock = Clock()
    store = HandoffStore(tmp_path / "h.db", clock=clock)
    store.open_sync("c1", "telegram", "asked_for_person", 0.0)
    assert not store.answered_sync("c1", "anna"), "no answer before a claim"
    assert not store.close_sync("c1", agent="anna"), "no hand-back before a claim"
    assert store.claim_sync("c1", "anna")[0] is Claim.CLAIMED
    assert store.claim_sync("c1", "anna")[0] is Claim.ALREADY_YOURS
    outcome, holder = store.claim_sync("c1", "ben")
    assert outcome is Claim.CLAIMED_BY_OTHER and holder is not None
    assert holder.claimed_by == "anna"
    assert not store.answered_sync("c1", "ben") and not store.close_sync("c1", agent="ben")
    clock.now += 30
    assert store.answered_sync("c1", "anna")
    handoff = store.get_sync("c1")
    assert handoff is not None and handoff.first_answer_at == 1030.0
    assert handoff.waited_s(now=5000.0) == 30.0
    assert store.close_sync("c1", agent="anna")
    assert store.claim_sync("c1", "anna")[0] is Claim.NOT_OPEN


def test_a_released_or_idle_claim_can_be_taken(tmp_path: Path):
    clock = Clock()
    store = HandoffStore(tmp_path / "h.db", clock=clock)
    store.open_sync("c1", "sms", "asked_for_person", 0.0)
    store.claim_sync("c1", "anna")
    assert not store.release_sync("c1", "ben")
    assert store.release_sync("c1", "anna")
    assert store.claim_sync("c1", "ben")[0] is Claim.CLAIMED
    # Ben answers, then goes quiet: Anna may take over only after 900 s of silence.
    clock.now += 100
    store.answered_sync("c1", "ben")
    clock.now += 899
    assert store.claim_sync("c1", "anna", take_over_idle_s=900)[0] is Claim.CLAIMED_BY_OTHER
    clock.now += 1
    outcome, before = store.claim_sync("c1", "anna", take_over_idle_s=900)
    assert outcome is Claim.TAKEN_OVER and before is not None and before.claimed_by == "ben"
    assert store.get_sync("c1").claimed_by == "anna"  # type: ignore[union-attr]
    # Removing an agent releases what they held.
    assert store.release_all_sync("anna") == 1
    assert store.get_sync("c1").claimed_by is None  # type: ignore[union-attr]


def test_a_database_of_the_earlier_version_keeps_working(tmp_path: Path):
    path = tmp_path / "h.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE handoffs (sender_id TEXT PRIMARY KEY, channel TEXT NOT NULL,"
            " reason TEXT NOT NULL, opened_at DOUBLE PRECISION NOT NULL,"
            " closed_at DOUBLE PRECISION, thread_ts TEXT,"
            " forwarded_until DOUBLE PRECISION NOT NULL DEFAULT 0)"
        )
        old.execute(
            "INSERT INTO handoffs VALUES ('telegram:42', 'telegram', 'asked_for_person',"
            " 10.0, NULL, '1700000000.000100', 12.0)"
        )
        old.execute(
            "INSERT INTO handoffs VALUES ('sms:+15550001111', 'twilio', 'fallback_turns',"
            " 5.0, 9.0, NULL, 0)"
        )
    stores = [HandoffStore(path), HandoffStore(path)]  # two workers starting
    handoff = stores[1].by_thread_sync("1700000000.000100")
    assert handoff is not None and handoff.sender_id == "telegram:42" and handoff.is_open
    assert is_reference(handoff.ref) and handoff.claimed_by is None
    assert handoff.forwarded_until == 12.0
    closed = stores[0].get_sync("sms:+15550001111")
    assert closed is not None and not closed.is_open and is_reference(closed.ref)
    assert closed.ref != handoff.ref
    assert stores[0].claim_sync("telegram:42", "anna")[0] is Claim.CLAIMED
    assert HandoffStore(path).get_sync("telegram:42").ref == handoff.ref  # type: ignore[union-attr]


def test_one_of_many_agents_racing_wins_the_claim(location: Any):
    stores = [HandoffStore(location), HandoffStore(location)]  # two servers
    stores[0].open_sync("c1", "sms", "asked_for_person", 0.0)
    start = threading.Barrier(8)

    def claim(i: int) -> Claim:
        start.wait()
        return stores[i % 2].claim_sync("c1", f"agent{i}")[0]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    assert outcomes.count(Claim.CLAIMED) == 1
    assert outcomes.count(Claim.CLAIMED_BY_OTHER) == 7
    winner = f"agent{outcomes.index(Claim.CLAIMED)}"
    assert stores[1].get_sync("c1").claimed_by == winner  # type: ignore[union-attr]


def test_an_earlier_versions_table_is_upgraded_on_either_database(location: Any):
    database = ChannelDatabase(location, setting="db")
    with database.transaction() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE handoffs (sender_id TEXT PRIMARY KEY, channel TEXT NOT NULL,"
                " reason TEXT NOT NULL, opened_at DOUBLE PRECISION NOT NULL,"
                " closed_at DOUBLE PRECISION, thread_ts TEXT,"
                " forwarded_until DOUBLE PRECISION NOT NULL DEFAULT 0)"
            )
        )
        connection.execute(
            sa.text("INSERT INTO handoffs VALUES ('c1', 'sms', 'r', 1.0, NULL, NULL, 0)")
        )
    with ThreadPoolExecutor(4) as pool:  # servers starting at once
        stores = list(pool.map(lambda _: HandoffStore(location), range(4)))
    handoff = stores[0].get_sync("c1")
    assert handoff is not None and is_reference(handoff.ref)
    assert stores[3].claim_sync("c1", "anna")[0] is Claim.CLAIMED
