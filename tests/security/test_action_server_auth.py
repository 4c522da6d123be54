"""Finding 9: the action server answered anyone, on every interface.

The shipped action server (`rasa run actions`, as `make run` starts it) refuses every
call without the Rasa server's token (`GET /actions` included), answers only
`/health` openly, listens on loopback, and does not start without a token; the Rasa
server sends the token, so the bot's forms and actions work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.rasa_process import BOT, run_rasa_expecting_failure
from tests.security.conftest import Stack

# What anybody could post to run `action_close_account` for a stranger's email.
CLOSE_ACCOUNT = {
    "next_action": "action_close_account",
    "sender_id": "attacker",
    "tracker": {
        "sender_id": "attacker",
        "slots": {"email": "victim@example.com"},
        "latest_message": {"text": "close my account", "intent": {"name": "close_account"}},
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    },
    "domain": {},
    "version": "3.6.2",
}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-the-action-token-0123"}, {"Authorization": "secret"}],
)
def test_the_action_server_refuses_a_caller_without_the_rasa_servers_token(
    stack: Stack, headers: dict
):
    url = stack.actions.url
    ran = requests.post(f"{url}/webhook", json=CLOSE_ACCOUNT, headers=headers, timeout=30)
    assert ran.status_code in (401, 403), ran.text[:200]
    assert "events" not in ran.text
    listed = requests.get(f"{url}/actions", headers=headers, timeout=30)
    assert listed.status_code in (401, 403)
    assert requests.get(f"{url}/health", timeout=30).status_code == 200


def test_the_rasa_server_sends_the_token_and_actions_run(stack: Stack):
    replies = stack.rasa.rest("action-token", "I want to close my account").json()
    asked = " ".join(reply.get("text", "") for reply in replies)
    assert "email" in asked.lower()  # the form asked, through its validation action
    answered = stack.rasa.rest("action-token", "ada@example.com").json()
    assert answered and "went wrong on our side" not in str(answered)


def test_the_action_server_listens_on_loopback_only(stack: Stack):
    port = int(stack.actions.url.rsplit(":", 1)[1])
    addresses = listening_addresses(port)
    assert addresses == {"127.0.0.1"}, addresses


def test_without_a_token_the_action_server_does_not_start(tmp_path: Path):
    output = run_rasa_expecting_failure(
        ["run", "actions", "--actions", "actions", "--port", "0"],
        cwd=BOT,
        env={"RASA_LLM_ACTION_TOKEN": "", "BOT_STORE_URL": f"sqlite:///{tmp_path}/s.db"},
        timeout=180,
    )
    assert "RASA_LLM_ACTION_TOKEN" in output


def listening_addresses(port: int) -> set:
    """The local IPv4 addresses with a socket listening on ``port`` (from /proc)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
            octets = [str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)]
            found.add(".".join(octets))
    return found
