"""ResilientSQLTrackerStore's event streaming: what stock Rasa publishes, without re-reading.

The retries and checked connections are tested against a real PostgreSQL restart in
tests/production/test_database_outage.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List, Tuple

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

# The benchmark's conversation (bench/tracker_save.py): a domain with one slot, and a
# customer turn of five events as the bot stores them.
from bench.tracker_save import DOMAIN, turn
from rasa_llm.server.resilient_sql_tracker_store import ResilientSQLTrackerStore


class Recorder(EventBroker):
    """An event broker that keeps what it is given."""

    def __init__(self) -> None:
        self.published: List[Dict[str, Any]] = []

    def publish(self, event: Dict[str, Any]) -> None:
        self.published.append(event)


def session_start() -> List[Event]:
    return [
        ActionExecuted("action_session_start"),
        SessionStarted(),
        ActionExecuted("action_listen"),
    ]


# Three saves, the third after a new session began: the stored count that matters is
# the current session's, as in Rasa's own read-back.
SAVES = [session_start() + turn(0), turn(1), session_start() + turn(2)]


SENDER = "+15551230000"


def conversation(store: SQLTrackerStore, broker: Recorder) -> Tuple[List[List[Any]], int]:
    """The saves handled as Rasa's processor does (read the tracker, add the turn, save):
    what each save published, and how many times the tracker was read in all."""
    reads = []
    read = store.retrieve

    async def counted(sender_id: str) -> Any:
        reads.append(sender_id)
        return await read(sender_id)

    store.retrieve = counted  # type: ignore[method-assign]
    per_save = []

    async def scenario() -> None:
        for events in SAVES:
            tracker = await store.retrieve(SENDER)
            if tracker is None:
                tracker = DialogueStateTracker.from_events(SENDER, [], slots=DOMAIN.slots)
            for event in events:
                tracker.update(event)
            before = len(broker.published)
            await store.save(tracker)
            per_save.append(broker.published[before:])

    asyncio.run(scenario())
    return per_save, len(reads)


def test_a_save_publishes_what_stock_rasa_publishes_without_reading_the_tracker_back(
    tmp_path: Path,
):
    stock_broker, ours_broker = Recorder(), Recorder()
    stock = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "stock.db"))
    stock.event_broker = stock_broker
    expected, stock_reads = conversation(stock, stock_broker)
    assert [len(events) for events in expected] == [8, 5, 8], "the stock reference itself"
    assert stock_reads == 6, "stock Rasa: the processor's read and one more in each save"

    ours = ResilientSQLTrackerStore(
        DOMAIN, dialect="sqlite", db=str(tmp_path / "ours.db"), event_broker=ours_broker
    )
    published, reads = conversation(ours, ours_broker)
    assert published == expected
    assert reads == 3, "only the processor's read"
    assert all(event["sender_id"] == SENDER for event in ours_broker.published)


def test_without_a_broker_a_save_stores_the_same_events_as_stock(tmp_path: Path):
    stock = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "stock.db"))
    ours = ResilientSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "ours.db"))
    for store in (stock, ours):
        conversation(store, Recorder())
    stored = [asyncio.run(store.retrieve_full_tracker(SENDER)) for store in (stock, ours)]
    assert stored[0] is not None and stored[1] is not None
    assert [e.as_dict() for e in stored[1].events] == [e.as_dict() for e in stored[0].events]
    assert len(stored[1].events) == sum(len(events) for events in SAVES)
