"""The agent desk over real HTTP in this process (tests/channels/desk_support.py):
settings, claims and take-overs, the audit trail, Slack commands and notes, where
replies go, and the agents' command line."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from channels import desk_agents
from channels.agent_desk import COMMAND_MAX_BYTES, MESSAGE_MAX_BYTES, OPEN_MAX_BYTES
from channels.agent_desk_config import AgentDeskConfig, AgentDeskConfigError
from channels.desk_agents import AgentDirectory, AgentError, desk_db_from_credentials
from channels.desk_audit import DeskAudit
from tests.channels.desk_support import (
    CUSTOMER_NUMBER,
    HANDBACK,
    SERVICE_TOKEN,
    SLACK_AGENT,
    SLACK_AGENT_2,
    SMS_CONVERSATION,
    DeskServer,
    desk_agents_command,
    desk_server,
)

SMS = SMS_CONVERSATION


def audit_of(server: DeskServer, ref: str) -> List[tuple]:
    entries = DeskAudit(server.desk.store.database).entries_sync(handoff_id=ref)
    return [(e.agent, e.action, e.detail) for e in entries]


# ----------------------------------------------------------------- settings
def test_settings_with_defaults(tmp_path: Path):
    config = AgentDeskConfig.from_credentials({"token": SERVICE_TOKEN})
    assert config.takeover_after_s == 900.0 and config.transcript_turns == 10
    never = AgentDeskConfig.from_credentials({"token": SERVICE_TOKEN, "takeover_after_s": None})
    assert never.takeover_after_s is None


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"token": "short"}, "token"),
        ({"takeover_after_s": -1}, "takeover_after_s"),
        ({"takeover_after_s": "soon"}, "takeover_after_s"),
        ({"agents": ["anna"]}, "agents"),
    ],
)
def test_bad_settings_name_the_key(changes: Dict[str, Any], key: str):
    with pytest.raises(AgentDeskConfigError) as error:
        AgentDeskConfig.from_credentials({"token": SERVICE_TOKEN, **changes})
    assert error.value.key == key and f"key `{key}`" in str(error.value)


def test_post_routes_declare_their_body_limit(tmp_path: Path):
    with desk_server(tmp_path) as server:
        posts = {
            route.path: getattr(route.ctx, "max_body_bytes", None)
            for route in server.app.router.routes
            if route.path.startswith("webhooks/agent") and "POST" in route.methods
        }
    assert posts == {
        "webhooks/agent/handoffs": OPEN_MAX_BYTES,
        "webhooks/agent/handoffs/<ref:str>/claim": COMMAND_MAX_BYTES,
        "webhooks/agent/handoffs/<ref:str>/release": COMMAND_MAX_BYTES,
        "webhooks/agent/handoffs/<ref:str>/messages": MESSAGE_MAX_BYTES,
        "webhooks/agent/handoffs/<ref:str>/handback": COMMAND_MAX_BYTES,
        "webhooks/agent/slack/events": 256 * 1024,
    }


# ------------------------------------------------------------------- claims
def test_the_list_shows_who_claimed_each_and_how_long_the_customer_waited(tmp_path: Path):
    with desk_server(tmp_path) as server:
        ref = server.hand_off()
        anna = server.add_agent("anna")
        time.sleep(0.2)
        (first,) = server.call("GET", "/handoffs", anna).json()["handoffs"]
        assert first["handoff_id"] == ref and first["channel"] == "twilio"
        assert first["claimed_by"] is None and first["answered"] is False
        assert first["waited_s"] >= 0.1
        server.call("POST", f"/handoffs/{ref}/claim", anna)
        server.call("POST", f"/handoffs/{ref}/messages", anna, json={"text": "Hello"})
        time.sleep(0.3)
        (after,) = server.call("GET", "/handoffs", anna).json()["handoffs"]
        assert after["claimed_by"] == "anna" and after["answered"] is True
        assert after["waited_s"] == pytest.approx(first["waited_s"], abs=1.0)
        later = server.call("GET", "/handoffs", anna).json()["handoffs"][0]["waited_s"]
        assert later == after["waited_s"], "the wait stops at the first answer"
        shown = server.call("GET", f"/handoffs/{ref}", anna).json()
        assert shown["transcript"][-1]["role"] == "agent"
        assert shown["transcript"][-1]["agent"] == "anna"


def test_release_lets_another_agent_claim_and_everything_is_audited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO), desk_server(tmp_path) as server:
        ref = server.hand_off()
        anna, ben = server.add_agent("anna"), server.add_agent("ben")
        assert server.call("POST", f"/handoffs/{ref}/claim", anna).json()["status"] == "claimed"
        again = server.call("POST", f"/handoffs/{ref}/claim", anna).json()
        assert again["status"] == "already_yours"
        server.call("POST", f"/handoffs/{ref}/messages", anna, json={"text": "Secret 4111"})
        assert (
            server.call("POST", f"/handoffs/{ref}/messages", ben, json={"text": "x"}).status_code
            == 409
        )
        assert server.call("POST", f"/handoffs/{ref}/release", anna).status_code == 200
        assert server.call("POST", f"/handoffs/{ref}/release", anna).status_code == 409
        assert server.call("POST", f"/handoffs/{ref}/claim", ben).status_code == 200
        assert server.call("POST", f"/handoffs/{ref}/handback", ben).status_code == 200
        assert server.sms.bodies(CUSTOMER_NUMBER, 2) == ["Secret 4111", HANDBACK]
        trail = audit_of(server, ref)
    assert trail == [
        ("service", "open", "reason=asked_for_person channel=twilio"),
        ("anna", "claim", ""),
        ("anna", "message", "length=11 delivered=true"),
        ("ben", "refused", "claimed_by=anna"),
        ("anna", "release", ""),
        ("ben", "claim", ""),
        ("ben", "handback", ""),
    ]
    assert f"agent desk audit: anna claim {ref}" in caplog.text
    # Logs name the hand-off by its reference: no phone number, no text.
    assert CUSTOMER_NUMBER not in caplog.text and "4111" not in caplog.text


def test_an_agent_silent_past_takeover_after_s_can_be_taken_over(tmp_path: Path):
    with desk_server(tmp_path, takeover_after_s=0.5) as server:
        ref = server.hand_off()
        anna, ben = server.add_agent("anna"), server.add_agent("ben")
        server.call("POST", f"/handoffs/{ref}/claim", anna)
        refused = server.call("POST", f"/handoffs/{ref}/claim", ben, json={"take_over": True})
        assert refused.status_code == 409 and "after 0.5 s of silence" in refused.text
        assert "claimed by anna" in refused.json()["error"]
        time.sleep(0.7)
        plain = server.call("POST", f"/handoffs/{ref}/claim", ben)
        assert plain.status_code == 409, "a take-over is asked for, never implied"
        taken = server.call("POST", f"/handoffs/{ref}/claim", ben, json={"take_over": True})
        assert taken.status_code == 200 and taken.json()["status"] == "taken_over"
        assert (
            server.call("POST", f"/handoffs/{ref}/messages", anna, json={"text": "x"}).status_code
            == 409
        )
        assert ("ben", "take_over", "previous=anna") in audit_of(server, ref)
        bad = server.call("POST", f"/handoffs/{ref}/claim", ben, json={"take_over": "yes"})
        assert bad.status_code == 400


def test_take_over_can_be_switched_off(tmp_path: Path):
    with desk_server(tmp_path, takeover_after_s=None) as server:
        ref = server.hand_off()
        anna, ben = server.add_agent("anna"), server.add_agent("ben")
        server.call("POST", f"/handoffs/{ref}/claim", anna)
        refused = server.call("POST", f"/handoffs/{ref}/claim", ben, json={"take_over": True})
        assert refused.status_code == 409 and "switched off" in refused.json()["error"]


def test_bodies_are_strict(tmp_path: Path):
    with desk_server(tmp_path) as server:
        ref = server.hand_off()
        anna = server.add_agent("anna")
        server.call("POST", f"/handoffs/{ref}/claim", anna)
        for path, body, reason in [
            ("/messages", {"text": "hi", "urgent": True}, "unknown field(s) urgent"),
            ("/handback", {"agent": "anna"}, "owner of the bearer token"),
            ("/release", {"why": "lunch"}, "expected no fields"),
            ("/messages", {"text": "x" * 4001}, "longer than 4000"),
        ]:
            answer = server.call("POST", f"/handoffs/{ref}{path}", anna, json=body)
            assert answer.status_code in (400, 413) and reason in answer.json()["error"], path
        assert server.sms.sent_to(CUSTOMER_NUMBER) == []


# ------------------------------------------------------------- where replies go
def test_a_rest_conversation_is_recorded_not_pushed_and_a_bare_id_goes_nowhere(tmp_path: Path):
    with desk_server(tmp_path) as server:
        anna = server.add_agent("anna")
        for sender in ("rest:+447700900123", "+447700900123"):
            server.customer_says(sender, "hello", "twilio")
            ref = server.open(sender)
            server.call("POST", f"/handoffs/{ref}/claim", anna)
            said = server.call("POST", f"/handoffs/{ref}/messages", anna, json={"text": "Hi"})
            assert said.json() == {"delivered": False}, sender
            assert server.agent_turns(sender)[-1]["text"] == "Hi"
        assert server.sms.fake.calls == []


# -------------------------------------------------------------------- Slack
def test_slack_claim_release_and_notes(tmp_path: Path):
    with desk_server(tmp_path, with_slack=True) as server:
        assert server.slack is not None
        ref = server.hand_off()
        (thread,) = server.slack.parents
        (parent,) = server.slack.posts()
        assert ref in parent and CUSTOMER_NUMBER not in parent
        server.slack_reply(thread, "!claim", user=SLACK_AGENT)
        server.settle()
        server.slack.wait_for(thread, f"Claimed by <@{SLACK_AGENT}>")
        anna = server.add_agent("anna")
        refused = server.call("POST", f"/handoffs/{ref}/messages", anna, json={"text": "Hi"})
        assert refused.status_code == 409
        assert f"claimed by slack:{SLACK_AGENT}" in refused.json()["error"]
        server.slack_reply(thread, "!handback", user=SLACK_AGENT_2)
        server.settle()
        server.slack.wait_for(thread, f"<@{SLACK_AGENT_2}>: this hand-off is claimed by")
        server.slack_reply(thread, "!release", user=SLACK_AGENT)
        server.settle()
        server.slack.wait_for(thread, "another agent may claim it")
        # An agent of the HTTP desk claims it: the thread is told.
        assert server.call("POST", f"/handoffs/{ref}/claim", anna).status_code == 200
        server.slack.wait_for(thread, "Claimed by anna.")
        assert server.call("POST", f"/handoffs/{ref}/handback", anna).status_code == 200
        server.slack.wait_for(thread, "Handed back to the bot by anna.")
        assert server.sms.bodies(CUSTOMER_NUMBER, 1) == [HANDBACK]


# ------------------------------------------------------------ command line
@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def desk_cli(*args: str, cwd: Optional[Path] = None) -> Ran:
    """``python -m channels.desk_agents ...``: its ``main`` run here, in ``cwd``.

    (As a process it imports the whole plugin, 10 s or more; one test below runs it
    so, the others call the same ``main``.)
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    before = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = desk_agents.main(list(args))
    finally:
        os.chdir(before)
    return Ran(code, stdout.getvalue(), stderr.getvalue())


def test_the_command_line_runs_as_a_program(tmp_path: Path):
    db = str(tmp_path / "desk.db")
    ran = desk_agents_command("add", "anna", "--db", db)
    assert ran.returncode == 0, ran.stderr[-2000:]
    token = ran.stdout.strip()
    assert token.startswith("desk_") and "shown once" in ran.stderr
    assert AgentDirectory(db).authenticate_sync(token) == "anna"


def test_ensure_writes_a_private_token_file_once_and_keeps_it_working(tmp_path: Path):
    (tmp_path / "credentials.yml").write_text(
        "channels.agent_desk.AgentDeskInput:\n  token: ${RASA_LLM_DESK_TOKEN}\n"
    )
    token_file = tmp_path / ".secrets" / "agent-token"
    args = ("ensure", "operator", "--token-file", str(token_file))
    first = desk_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    token = token_file.read_text().strip()
    assert token not in first.stdout + first.stderr, "a token file's token is not printed"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    directory = AgentDirectory(tmp_path / "handoffs.db")  # the default `db`, where it runs
    assert directory.authenticate_sync(token) == "operator"
    # Run again: nothing changes. Token file lost: a new token replaces the old one.
    again = desk_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "holds a working token" in again.stdout
    assert token_file.read_text().strip() == token
    token_file.unlink()
    assert desk_cli(*args, cwd=tmp_path).returncode == 0
    assert directory.authenticate_sync(token) is None
    assert directory.authenticate_sync(token_file.read_text().strip()) == "operator"
    listed = desk_cli("list", cwd=tmp_path)
    assert listed.stdout.startswith("operator\t") and token not in listed.stdout


def test_the_command_line_refuses_clearly(tmp_path: Path):
    db = str(tmp_path / "desk.db")
    assert desk_cli("add", "anna", "--db", db).returncode == 0
    for args, message in [
        (("add", "anna", "--db", db), "agent 'anna' exists; `rotate`"),
        (("add", "slack:U1", "--db", db), "is not allowed"),
        (("remove", "ben", "--db", db), "no agent 'ben'"),
        (("rotate", "ben", "--db", db), "no agent 'ben'; `add`"),
        (("list", "--credentials", str(tmp_path / "none.yml")), "cannot read"),
    ]:
        refused = desk_cli(*args)
        assert refused.returncode == 1 and message in refused.stderr, (args, refused.stderr)


def test_the_desk_database_comes_from_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    credentials = tmp_path / "credentials.yml"
    credentials.write_text(
        "rest:\nchannels.agent_desk.AgentDeskInput:\n  token: x\n  db: ${DESK_DB}\n"
    )
    monkeypatch.setenv("DESK_DB", "postgresql://desk:pw@127.0.0.1:5432/rasa")
    assert desk_db_from_credentials(credentials) == "postgresql://desk:pw@127.0.0.1:5432/rasa"
    monkeypatch.delenv("DESK_DB")
    with pytest.raises(AgentError, match="not set"):
        desk_db_from_credentials(credentials)
    credentials.write_text("rest:\n")
    with pytest.raises(AgentError, match="agent desk is not configured"):
        desk_db_from_credentials(credentials)
    credentials.write_text("channels.agent_desk.AgentDeskInput:\n  token: x\n")
    assert desk_db_from_credentials(credentials) == Path("handoffs.db")


def test_rotate_and_remove_take_effect_at_once(tmp_path: Path):
    with desk_server(tmp_path) as server:
        ref = server.hand_off()
        directory = server.desk.agents
        old = server.add_agent("anna")
        assert server.call("POST", f"/handoffs/{ref}/claim", old).status_code == 200
        new = directory.rotate_sync("anna")
        assert server.call("GET", "/handoffs", old).status_code == 403
        assert server.call("GET", "/handoffs", new).status_code == 200
        removed = desk_cli("remove", "anna", "--db", str(tmp_path / "desk.db"))
        assert removed.returncode == 0 and "1 claim(s) released" in removed.stdout
        assert server.call("GET", "/handoffs", new).status_code == 403
        ben = server.add_agent("ben")
        assert server.call("POST", f"/handoffs/{ref}/claim", ben).status_code == 200
        trail = desk_cli("audit", "--handoff", ref, "--db", str(tmp_path / "desk.db"))
        assert trail.returncode == 0
        assert [line.split("\t")[1:3] for line in trail.stdout.splitlines()] == [
            ["service", "open"],
            ["anna", "claim"],
            ["ben", "claim"],
        ]
    assert os.path.exists(tmp_path / "desk.db")
