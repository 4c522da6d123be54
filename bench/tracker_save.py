"""Saving a turn with the metrics event broker: stock SQLTrackerStore vs ours, one run.

    .venv/bin/python -m bench.tracker_save [--turns 5 20 60] [--repeats 20]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--out bench/results]

With an event broker, stock Rasa's ``save`` first reads the whole conversation back
(``retrieve``) to find the events it has not published yet; ResilientSQLTrackerStore
counts the stored events instead (rasa_llm/server/resilient_sql_tracker_store.py). Each store
gets the same conversation, handled as Rasa's processor does (read the tracker, add a
turn of five events, save), with the bot's MetricsEventBroker, on SQLite (a file, as
``make run``) and, with ``--postgres``, on PostgreSQL (databases of their own, dropped
after); the two take turns. Reported: the median time of a save and of a whole turn
(read + save) over the ``--repeats`` turns after the conversation has reached each
length in ``--turns``, and ours / stock as a ratio. No model is involved: the tracker
store alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any, Dict, List, Sequence, Tuple

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa.core.tracker_store import SQLTrackerStore  # noqa: E402
from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import (  # noqa: E402
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

from bench.production_load import machine, write_report  # noqa: E402
from rasa_llm.server.metrics_event_broker import MetricsEventBroker  # noqa: E402
from rasa_llm.server.resilient_sql_tracker_store import ResilientSQLTrackerStore  # noqa: E402

# Alike in shape to the conversation-id migration tests' imports and domain: both build
# Rasa trackers from the same events; that test's domain has a slot more.
DOMAIN = Domain.from_yaml(
    'version: "3.1"\nintents: [order_status]\n'
    "slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n"
)
RANKING = [{"name": f"intent_{k}", "confidence": 0.01} for k in range(10)]


def turn(index: int) -> List[Event]:
    """One customer turn as the bot stores it: message (with its ranking), slot, reply."""
    text = f"where is my order A-{1000 + index}? it was due yesterday"
    intent = {"name": "order_status", "confidence": 0.97}
    parse = {"intent": intent, "intent_ranking": RANKING, "entities": [], "text": text}
    return [
        UserUttered(text, intent=intent, parse_data=parse),
        SlotSet("order_number", f"A-{1000 + index}"),
        ActionExecuted("utter_order_status"),
        BotUttered("Your order left our warehouse today and arrives tomorrow before noon."),
        ActionExecuted("action_listen"),
    ]


async def one_turn(store: SQLTrackerStore, sender: str, index: int) -> Tuple[float, float]:
    """Read the tracker, add turn ``index``, save: (save seconds, whole turn seconds)."""
    started = time.perf_counter()
    tracker = await store.retrieve(sender)
    if tracker is None:
        tracker = DialogueStateTracker.from_events(sender, [], slots=DOMAIN.slots)
        for event in (ActionExecuted("action_session_start"), SessionStarted()):
            tracker.update(event)
    for event in turn(index):
        tracker.update(event)
    saving = time.perf_counter()
    await store.save(tracker)
    done = time.perf_counter()
    return done - saving, done - started


KINDS = {"stock": SQLTrackerStore, "rasa-llm": ResilientSQLTrackerStore}


def stores(databases: Dict[str, str], **where: Any) -> Dict[str, SQLTrackerStore]:
    """Each kind on a database of its own, so neither reads the other's rows."""
    return {
        name: kind(DOMAIN, event_broker=MetricsEventBroker(), db=databases[name], **where)
        for name, kind in KINDS.items()
    }


async def compare(
    made: Dict[str, SQLTrackerStore], lengths: Sequence[int], repeats: int
) -> Dict[str, Any]:
    """The stores take turns, one conversation each, so the machine's moods hit both;
    medians (ms) over ``repeats`` turns at each length."""
    senders = {name: uuid.uuid4().hex for name in made}
    times: Dict[str, Dict[int, Dict[str, List[float]]]] = {
        name: {length: {"save": [], "turn": []} for length in lengths} for name in made
    }
    for index in range(max(lengths) + repeats):
        order = list(made) if index % 2 == 0 else list(reversed(list(made)))
        for name in order:
            save_s, turn_s = await one_turn(made[name], senders[name], index)
            for length in lengths:
                if length <= index < length + repeats:
                    times[name][length]["save"].append(1000 * save_s)
                    times[name][length]["turn"].append(1000 * turn_s)
    rows = []
    for length in lengths:
        stock, ours = times["stock"][length], times["rasa-llm"][length]
        save = {"stock": median(stock["save"]), "rasa-llm": median(ours["save"])}
        whole = {"stock": median(stock["turn"]), "rasa-llm": median(ours["turn"])}
        rows.append(
            {
                "turns_stored": length,
                "events_stored": 2 + 5 * length,
                "save_ms": {k: round(v, 2) for k, v in save.items()},
                "save_ratio": round(save["rasa-llm"] / save["stock"], 2),
                "turn_ms": {k: round(v, 2) for k, v in whole.items()},
                "turn_ratio": round(whole["rasa-llm"] / whole["stock"], 2),
            }
        )
    return {"rows": rows}


def on_postgres(url: str, lengths: Sequence[int], repeats: int) -> Dict[str, Any]:
    import psycopg2
    from sqlalchemy.engine.url import make_url

    parsed = make_url(url)
    run = uuid.uuid4().hex[:8]
    databases = {name: f"rasa_llm_bench_{run}_{i}" for i, name in enumerate(KINDS)}
    admin = psycopg2.connect(url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for database in databases.values():
                cursor.execute(f"CREATE DATABASE {database}")
        where = {
            "dialect": "postgresql",
            "host": parsed.host,
            "port": parsed.port,
            "username": parsed.username,
            "password": parsed.password,
        }
        made = stores(databases, **where)
        try:
            return asyncio.run(compare(made, lengths, repeats))
        finally:
            for store in made.values():
                store.engine.dispose()
    finally:
        with admin.cursor() as cursor:
            for database in databases.values():
                cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[5, 20, 60])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--postgres", help="a server URL; a database is made and dropped")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    report: Dict[str, Any] = {"machine": machine(), "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as directory:
        files = {name: str(Path(directory) / f"{name}.db") for name in KINDS}
        made = stores(files, dialect="sqlite")
        report["sqlite"] = asyncio.run(compare(made, args.turns, args.repeats))
    if args.postgres:
        report["postgresql"] = on_postgres(args.postgres, args.turns, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(report, args.out / "tracker_save.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
