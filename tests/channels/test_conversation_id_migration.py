"""Renaming stored conversations to channel-named ids, on SQLite and on PostgreSQL.

The conversations are written by Rasa's own SQL tracker store (real events, slots,
sessions) and read back by it after the migration; the agent desk's hand-offs by the
desk's own HandoffStore. PostgreSQL is the test session's own server on loopback.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from channels.conversation_id_migration import NO_MESSAGE, SEVERAL, main, owner_of
from channels.handoff_store import HandoffStore
from rasa_llm.server.resilient_sql_tracker_store import ResilientSQLTrackerStore
from tests.rasa_process import free_port

DOMAIN = Domain.from_yaml(
    'version: "3.1"\nintents: [order_status]\nslots:\n'
    "  order_number:\n    type: text\n    mappings: [{type: custom}]\n"
    "  email:\n    type: text\n    mappings: [{type: custom}]\n"
)
WEBCHAT = "0123456789abcdef0123456789abcdef"
_databases = itertools.count(1)


def session(at: float) -> List[Event]:
    return [
        ActionExecuted("action_session_start", timestamp=at),
        SessionStarted(timestamp=at),
        ActionExecuted("action_listen", timestamp=at),
    ]


def turn(channel: str, at: float, order: str = "10023") -> List[Event]:
    text = f"where is order {order}"
    return [
        UserUttered(
            text, {"name": "order_status", "confidence": 1.0}, input_channel=channel, timestamp=at
        ),  # fmt: skip
        SlotSet("order_number", order, timestamp=at),
        SlotSet("email", "ann@example.com", timestamp=at),
        BotUttered("It left today.", timestamp=at),
        ActionExecuted("action_listen", timestamp=at),
    ]


# Stored before the upgrade under bare ids: id -> events (and where each should go).
OLD: Dict[str, List[Event]] = {
    "+447700900123": session(100) + turn("twilio", 101),
    "4242": session(100) + turn("telegram", 102, "10024"),
    WEBCHAT: session(100) + turn("webchat", 103, "10025"),
    "U1_C2": session(100) + turn("slack", 104, "10026"),
    "alice": session(100) + turn("rest", 105, "10027"),
    # An SMS customer's conversation a REST caller wrote into last: still theirs.
    "+447700900777": session(100) + turn("twilio", 106) + turn("rest", 107, "99999"),
    # The customer came back after the upgrade, before the migration ran (merge).
    "+447700900555": session(100) + turn("twilio", 108, "10028"),
    # Left alone: a local shell, no customer message, two channels that both verify.
    "cli-user": session(100) + turn("cmdline", 109),
    "silent": session(100),
    "shared-7": session(100) + turn("telegram", 110) + turn("slack", 111),
}
MOVES = {
    "+447700900123": "sms:+447700900123",
    "4242": "telegram:4242",
    WEBCHAT: "webchat:" + WEBCHAT,
    "U1_C2": "slack:U1_C2",
    "alice": "rest:alice",
    "+447700900777": "sms:+447700900777",
    "+447700900555": "sms:+447700900555",
}
NEW: Dict[str, List[Event]] = {
    "sms:+447700900999": session(200) + turn("twilio", 201, "10029"),
    "sms:+447700900555": session(300) + turn("twilio", 301, "10030"),
}


class Setup:
    """A tracker store and a desk database, the files that name them, and the command."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.workdir = tmp_path
        self.endpoints = tmp_path / "endpoints.yml"
        self.credentials = tmp_path / "credentials.yml"
        monkeypatch = request.getfixturevalue("monkeypatch")
        # The desk's token is not needed: only its `db` is read.
        monkeypatch.delenv("RASA_LLM_DESK_TOKEN", raising=False)
        if kind == "sqlite":
            self.store: SQLTrackerStore = SQLTrackerStore(DOMAIN, db=str(tmp_path / "rasa.db"))
            self.endpoints.write_text(
                "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: rasa.db\n"
            )
            self.desk: Any = tmp_path / "handoffs.db"
            desk_setting = "handoffs.db"
        else:
            server = request.getfixturevalue("postgres_server")
            url = server.create_database(f"trackers_{next(_databases)}")
            self.store = ResilientSQLTrackerStore(DOMAIN, host=url)
            self.desk = server.create_database(f"desk_{next(_databases)}")
            monkeypatch.setenv("MIGRATION_TEST_TRACKERS", url)
            monkeypatch.setenv("MIGRATION_TEST_DESK", self.desk)
            self.endpoints.write_text(
                "tracker_store:\n"
                "  type: rasa_llm.server.resilient_sql_tracker_store.ResilientSQLTrackerStore\n"
                "  dialect: postgresql\n  url: ${MIGRATION_TEST_TRACKERS}\n"
            )
            desk_setting = "${MIGRATION_TEST_DESK}"
        self.credentials.write_text(
            "rest:\nchannels.agent_desk.AgentDeskInput:\n"
            f"  token: ${{RASA_LLM_DESK_TOKEN}}\n  db: {desk_setting}\n"
        )

    def save(self, conversations: Dict[str, List[Event]]) -> None:
        for sender_id, events in conversations.items():
            tracker = DialogueStateTracker.from_events(sender_id, events, slots=DOMAIN.slots)
            asyncio.run(self.store.save(tracker))

    def run(self, capsys: pytest.CaptureFixture, *extra: str) -> Tuple[int, str, str]:
        status = main(
            ["--endpoints", str(self.endpoints), "--credentials", str(self.credentials),
             "--workdir", str(self.workdir), *extra]
        )  # fmt: skip
        out, err = capsys.readouterr()
        return status, out, err

    def rows(self) -> List[Tuple[Any, ...]]:
        with self.store.engine.connect() as connection:
            query = "SELECT id, sender_id, type_name, timestamp, data FROM events ORDER BY id"
            return [tuple(row) for row in connection.execute(sa.text(query))]

    def full(self, sender_id: str) -> Any:
        return asyncio.run(self.store.retrieve_full_tracker(sender_id))


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    return Setup(request.param, tmp_path, request)


def row_of(desk: HandoffStore, sender_id: str) -> Dict[str, Any]:
    """Every column of a hand-off row but its id."""
    rows = desk.database.execute(
        "SELECT * FROM handoffs WHERE sender_id = :sender_id", {"sender_id": sender_id}
    )
    row = dict(rows[0]._mapping)
    row.pop("sender_id")
    return row


def dicts(events: List[Event]) -> List[Dict[str, Any]]:
    return [event.as_dict() for event in events]


def no_ids_in(text: str) -> None:
    for sender_id in [*OLD, *NEW]:
        assert sender_id.split(":")[-1] not in text, "the output names a conversation"


def test_old_conversations_move_to_their_channels_and_rasa_finds_them(setup, capsys):
    setup.save(OLD)
    setup.save(NEW)
    desk = HandoffStore(setup.desk)
    desk.open_sync("+447700900123", "twilio", "asked_for_human", 101)
    desk.open_sync("+447700900555", "twilio", "asked_for_human", 108)
    desk.close_sync("+447700900555")
    desk.open_sync("sms:+447700900555", "twilio", "asked_for_human", 301)
    desk.open_sync("ghost", "twilio", "asked_for_human", 1)  # no such conversation
    # Columns of other versions (agents' claims, say) are carried, never touched.
    desk.database.execute("ALTER TABLE handoffs ADD COLUMN migration_test_note TEXT", {})
    desk.database.execute("UPDATE handoffs SET migration_test_note = 'kept'", {})
    handoff_row = row_of(desk, "+447700900123")

    before = setup.rows()
    status, out, err = setup.run(capsys)
    assert (status, err) == (0, "")
    assert setup.rows() == before, "a dry run changed the tracker store"
    assert "Would rename 7: rest 1, slack 1, sms 3, telegram 1, webchat 1." in out
    assert "1 of them would be merged" in out
    assert "Dry run: nothing was changed" in out
    no_ids_in(out)

    status, out, err = setup.run(capsys, "--apply")
    assert (status, err) == (0, "")
    assert "Renamed 7: rest 1, slack 1, sms 3, telegram 1, webchat 1." in out
    assert "12 conversations stored; 2 already named by their channel." in out
    assert f"Left alone: 1 with {NO_MESSAGE}." in out
    assert f"Left alone: 1 with {SEVERAL}." in out
    assert "Left alone: 1 with messages only from channels without a prefix (cmdline)." in out
    assert "renamed 2." in out and "1 of them met a hand-off" in out
    assert "Left alone: 1 hand-offs whose conversation has no channel-named id." in out
    no_ids_in(out)

    for old, new in MOVES.items():
        assert setup.full(old) is None
        moved = setup.full(new)
        expected = OLD[old] + NEW.get(new, [])
        assert dicts(list(moved.events)) == dicts(expected), new
    # The current session, slots included, as Rasa loads it for the next message.
    current = asyncio.run(setup.store.retrieve("sms:+447700900123"))
    assert current.get_slot("order_number") == "10023"
    assert current.get_slot("email") == "ann@example.com"
    merged = asyncio.run(setup.store.retrieve("sms:+447700900555"))
    assert dicts(list(merged.events)) == dicts(NEW["sms:+447700900555"])
    assert merged.get_slot("order_number") == "10030"
    for alone in ["cli-user", "silent", "shared-7", "sms:+447700900999"]:
        assert dicts(list(setup.full(alone).events)) == dicts({**OLD, **NEW}[alone])

    assert desk.get_sync("+447700900123") is None
    assert desk.get_sync("sms:+447700900123").is_open
    assert row_of(desk, "sms:+447700900123") == handoff_row
    assert desk.get_sync("+447700900555") is None
    kept = desk.get_sync("sms:+447700900555")
    assert kept.is_open and kept.forwarded_until == 301, "the open hand-off is the one kept"
    assert desk.get_sync("ghost") is not None

    after = setup.rows()
    status, out, err = setup.run(capsys, "--apply")
    assert (status, err) == (0, "")
    assert "Nothing to rename." in out
    assert setup.rows() == after, "a second run changed something"


def test_events_written_under_the_old_id_after_the_new_one_still_come_first(setup, capsys):
    # A server of the old version still answered under the bare id after an upgraded one
    # had started the new id: the old events have the higher row ids.
    setup.save({"sms:+447700900555": NEW["sms:+447700900555"]})
    setup.save({"+447700900555": OLD["+447700900555"]})
    status, out, _ = setup.run(capsys, "--apply")
    assert status == 0 and "1 of them were merged" in out
    merged = setup.full("sms:+447700900555")
    assert dicts(list(merged.events)) == dicts(OLD["+447700900555"] + NEW["sms:+447700900555"])


def test_an_empty_store_and_a_desk_without_hand_offs_have_nothing_to_rename(setup, capsys):
    status, out, err = setup.run(capsys, "--apply")
    assert (status, err) == (0, "")
    assert "0 conversations stored" in out and "Nothing to rename." in out


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        ({"twilio"}, ("twilio", "")),
        ({"twilio", "rest"}, ("twilio", "")),
        ({"rest"}, ("rest", "")),
        ({"rest", "cmdline", None}, ("rest", "")),
        ({"webchat", "cmdline"}, ("webchat", "")),
        ({"telegram", "slack"}, (None, SEVERAL)),
        (set(), (None, NO_MESSAGE)),
    ],
)
def test_only_channels_that_verify_their_senders_decide_whose_a_conversation_is(channels, expected):
    assert owner_of(channels) == expected


def _fails(capsys: pytest.CaptureFixture, argv: List[str], *words: str) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, "one line"
    for word in words:
        assert word in err


def test_settings_that_cannot_work_exit_2_with_the_fix(tmp_path, capsys, monkeypatch):
    endpoints = tmp_path / "endpoints.yml"
    argv = ["--endpoints", str(endpoints), "--workdir", str(tmp_path)]
    _fails(capsys, argv, "no such file", "--endpoints")

    endpoints.write_text("action_endpoint:\n  url: http://localhost:5055/webhook\n")
    _fails(capsys, argv, "kept in memory", "nothing to rename")
    endpoints.write_text("tracker_store:\n  type: redis\n  url: localhost\n")
    _fails(capsys, argv, "'redis' is not supported", "<prefix>:<id>")
    endpoints.write_text("tracker_store:\n  type: rasa.core.tracker_store.MongoTrackerStore\n")
    _fails(capsys, argv, "is not supported")
    endpoints.write_text("tracker_store:\n  type: SQL\n  dialect: mysql\n  db: rasa\n")
    _fails(capsys, argv, "'mysql' is not supported")

    monkeypatch.delenv("MIGRATION_TEST_UNSET", raising=False)
    endpoints.write_text("tracker_store:\n  type: SQL\n  url: ${MIGRATION_TEST_UNSET}\n")
    _fails(capsys, argv, "MIGRATION_TEST_UNSET", "export")

    endpoints.write_text("tracker_store:\n  type: SQL\n  db: rasa.db\n")
    _fails(capsys, argv, "no tracker database", "--workdir")

    nobody = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/rasa"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  url: {nobody}\n")
    _fails(capsys, argv, "the tracker store's database cannot be read", "OperationalError")
    assert "hunter2" not in capsys.readouterr().err

    SQLTrackerStore(DOMAIN, db=str(tmp_path / "rasa.db"))
    endpoints.write_text("tracker_store:\n  type: SQL\n  db: rasa.db\n")
    credentials = tmp_path / "credentials.yml"
    credentials.write_text("channels.agent_desk.AgentDeskInput:\n  db: ${MIGRATION_TEST_UNSET}\n")
    _fails(capsys, [*argv, "--credentials", str(credentials)], "`db`", "MIGRATION_TEST_UNSET")
    credentials.write_text("channels.agent_desk.AgentDeskInput:\n  db: sqlite:///handoffs.db\n")
    _fails(capsys, [*argv, "--credentials", str(credentials)], "names SQLite by URL")


def test_without_a_desk_the_command_says_so(tmp_path, capsys):
    SQLTrackerStore(DOMAIN, db=str(tmp_path / "rasa.db"))
    (tmp_path / "endpoints.yml").write_text("tracker_store:\n  type: SQL\n  db: rasa.db\n")
    (tmp_path / "credentials.yml").write_text("rest:\n")
    argv = ["--endpoints", str(tmp_path / "endpoints.yml"), "--workdir", str(tmp_path)]
    assert main(argv) == 0
    assert "give --credentials" in capsys.readouterr().out
    assert main([*argv, "--credentials", str(tmp_path / "credentials.yml")]) == 0
    assert "No agent desk in" in capsys.readouterr().out
