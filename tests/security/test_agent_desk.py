"""Issue 23, finding 7 ("agents are people") and finding 2 for agent replies.

The desk served over real HTTP in this process (tests/channels/desk_support.py): the
SMS channel's real output against a fake Twilio that fails any call it does not
expect, a real Rasa agent with a SQLite tracker store, agents made by the desk's own
command line or directory, Slack events signed for real.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
from pathlib import Path
from typing import List

import pytest

from tests.channels.desk_support import (
    CUSTOMER_NUMBER,
    HANDBACK,
    NOT_AN_AGENT,
    SERVICE_TOKEN,
    SLACK_AGENT,
    SLACK_AGENT_2,
    SMS_CONVERSATION,
    DeskServer,
    desk_agents_command,
    desk_server,
)

SMS = SMS_CONVERSATION


def bodies(server: DeskServer) -> List[str]:
    return [call.form.get("Body", "") for call in server.sms.sent_to(CUSTOMER_NUMBER)]


def test_agent_tokens_come_from_the_directory_and_unknown_ones_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    db = str(tmp_path / "desk.db")
    with caplog.at_level(logging.INFO), desk_server(tmp_path) as server:
        server.hand_off(paused=True)
        added = desk_agents_command("add", "anna", "--db", db)
        assert added.returncode == 0, added.stderr
        anna = added.stdout.strip()
        assert server.call("GET", "/handoffs", anna).status_code == 200

        made_up = "desk_" + secrets.token_urlsafe(32)
        for token in (made_up, "not-even-a-desk-token", anna + "x"):
            refused = server.call("GET", "/handoffs", token)
            assert refused.status_code == 403, token
            assert refused.json() == {"error": "unknown token"}
        assert server.call("GET", "/handoffs").status_code == 401

        removed = desk_agents_command("remove", "anna", "--db", db)
        assert removed.returncode == 0, removed.stderr
        assert server.call("GET", "/handoffs", anna).status_code == 403
    # The database keeps the token's SHA-256 only; no log holds a token.
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT * FROM desk_agents").fetchall()
    assert stored == []
    assert anna not in caplog.text and made_up not in caplog.text
    assert "agent webhook: rejected with 403: unknown token" in caplog.text


def test_tokens_are_stored_as_their_hash(tmp_path: Path):
    db = str(tmp_path / "desk.db")
    added = desk_agents_command("add", "anna", "--db", db)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    with sqlite3.connect(db) as connection:
        ((name, stored),) = connection.execute("SELECT name, token_hash FROM desk_agents")
    assert name == "anna" and token not in stored
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_the_service_token_cannot_answer_a_customer(tmp_path: Path):
    with desk_server(tmp_path) as server:
        server.hand_off(paused=True)
        for method, path, body in [
            ("POST", f"/handoffs/{SMS}/messages", {"text": "a message from the service"}),
            ("POST", f"/handoffs/{SMS}/claim", {}),
            ("POST", f"/handoffs/{SMS}/handback", {}),
            ("GET", "/handoffs", None),
            ("GET", f"/handoffs/{SMS}", None),
        ]:
            answer = server.call(method, path, SERVICE_TOKEN, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
        assert bodies(server) == [] and server.agent_turns(SMS) == []
        # Agents cannot open hand-offs (which would let them pick any conversation).
        anna = server.add_agent("anna")
        opened = server.call("POST", "/handoffs", anna, json={"sender_id": "sms:+15550001111"})
        assert opened.status_code == 403


def test_an_agent_cannot_answer_or_hand_back_an_unclaimed_handoff(tmp_path: Path):
    with desk_server(tmp_path) as server:
        server.hand_off(paused=True)
        anna = server.add_agent("anna")
        said = server.call("POST", f"/handoffs/{SMS}/messages", anna, json={"text": "Hi, Anna"})
        assert said.status_code == 409 and "claim this hand-off first" in said.json()["error"]
        back = server.call("POST", f"/handoffs/{SMS}/handback", anna)
        assert back.status_code == 409
        assert bodies(server) == [] and server.agent_turns(SMS) == []
        (listed,) = server.call("GET", "/handoffs", anna).json()["handoffs"]
        assert listed["status"] == "open" and listed["claimed_by"] is None

        assert server.call("POST", f"/handoffs/{SMS}/claim", anna).status_code == 200
        said = server.call("POST", f"/handoffs/{SMS}/messages", anna, json={"text": "Hi, Anna"})
        assert said.status_code == 200 and said.json() == {"delivered": True}


def test_a_second_agent_cannot_claim_or_answer_a_handoff_the_first_holds(tmp_path: Path):
    with desk_server(tmp_path) as server:
        server.hand_off(paused=True)
        anna, ben = server.add_agent("anna"), server.add_agent("ben")
        assert server.call("POST", f"/handoffs/{SMS}/claim", anna).status_code == 200
        for path, body in [
            ("/claim", {}),
            ("/claim", {"take_over": True}),  # anna answered moments ago
            ("/messages", {"text": "Ben here, I'll take it"}),
            ("/handback", {}),
            ("/release", {}),
        ]:
            answer = server.call("POST", f"/handoffs/{SMS}{path}", ben, json=body)
            assert answer.status_code == 409, (path, answer.text)
        assert (
            "claimed by anna" in answer.json()["error"]
            or "not claimed by you" in (answer.json()["error"])
        )
        assert bodies(server) == [] and server.agent_turns(SMS) == []
        (listed,) = server.call("GET", "/handoffs", ben).json()["handoffs"]
        assert listed["claimed_by"] == "anna"


def test_the_agents_name_comes_from_the_token_not_the_body(tmp_path: Path):
    with desk_server(tmp_path) as server:
        server.hand_off(paused=True)
        anna = server.add_agent("anna")
        assert server.call("POST", f"/handoffs/{SMS}/claim", anna).status_code == 200
        forged = server.call(
            "POST", f"/handoffs/{SMS}/messages", anna, json={"text": "Hi", "agent": "mallory"}
        )
        assert forged.status_code == 400 and "owner of the bearer token" in forged.json()["error"]
        assert bodies(server) == []
        said = server.call("POST", f"/handoffs/{SMS}/messages", anna, json={"text": "Hi there"})
        assert said.status_code == 200
        assert server.agent_turns(SMS) == [{"text": "Hi there", "metadata": {"agent": "anna"}}]


def test_a_slack_reply_from_someone_not_in_agent_user_ids_does_not_reach_the_customer(
    tmp_path: Path,
):
    with desk_server(tmp_path, with_slack=True) as server:
        assert server.slack is not None
        server.hand_off(paused=True)
        (thread,) = server.slack.parents
        server.slack_reply(thread, "Here is your refund: https://evil.example", user=NOT_AN_AGENT)
        server.settle()
        server.slack.wait_for(thread, "not one of the desk's agents")
        assert bodies(server) == [] and server.agent_turns(SMS) == []

        # An agent's first reply claims the thread and reaches the customer; another
        # agent's reply in it is refused with a note.
        server.slack_reply(thread, "Hello, this is the team", user=SLACK_AGENT)
        server.settle()
        assert server.sms.wait_for(CUSTOMER_NUMBER, 1)[0].form["Body"] == (
            "Hello, this is the team"
        )
        server.slack_reply(thread, "Me too!", user=SLACK_AGENT_2)
        server.settle()
        server.slack.wait_for(thread, f"claimed by slack:{SLACK_AGENT}")
        assert bodies(server) == ["Hello, this is the team"]


def test_an_agent_reply_to_an_sms_customer_goes_by_sms_even_after_a_rest_post(tmp_path: Path):
    with desk_server(tmp_path) as server:
        server.hand_off(paused=True)
        # Something else wrote last (as a REST post into this id could before ids
        # named their channel): the tracker's latest input channel is now "rest".
        server.customer_says(SMS, "written by someone else", "rest")
        assert server.tracker(SMS).get_latest_input_channel() == "rest"
        anna = server.add_agent("anna")
        assert server.call("POST", f"/handoffs/{SMS}/claim", anna).status_code == 200
        said = server.call("POST", f"/handoffs/{SMS}/messages", anna, json={"text": "Anna here"})
        assert said.status_code == 200 and said.json() == {"delivered": True}
        assert bodies(server) == ["Anna here"]
        back = server.call("POST", f"/handoffs/{SMS}/handback", anna)
        assert back.status_code == 200
        assert server.sms.wait_for(CUSTOMER_NUMBER, 2)[1].form["Body"] == HANDBACK
