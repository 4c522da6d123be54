"""Hand-off to a person, end to end: real `rasa run` with the Telegram channel and the
agent desk, the real action server (`rasa run actions` in bot/), a fake Telegram Bot API
that fails any call it did not expect, and agents (made with `python -m
channels.desk_agents`, as an operator does) using the desk's HTTP API or Slack.

Round trip: the customer asks for a person; the bot says so and goes quiet; an agent
claims the hand-off and answers on the customer's channel; the customer's next message
reaches the agent, not the bot; the agent hands back; the bot answers again. Then the
generative fallback: two questions the bot has no answer for hand the customer over.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Iterator, List
from urllib.parse import quote

import pytest
import requests

from tests.channels import telegram_payloads as tg
from tests.channels.desk_support import SlackApi, desk_agents_command
from tests.channels.slack_payloads import SECRET as SLACK_SECRET
from tests.channels.slack_payloads import TOKEN as SLACK_TOKEN
from tests.channels.slack_payloads import event_request, message_event
from tests.fake_platform import FakePlatform
from tests.rasa_process import DESK_TOKEN, ActionServer, RasaServer, free_port

pytestmark = pytest.mark.integration

HANDOFF = "Okay, I'm passing you to a member of our customer service team."
HANDBACK = "You're back with Northwind's virtual assistant."
ORDER = "Could you give me your 5-digit order number?"
SERVICE = {"Authorization": f"Bearer {DESK_TOKEN}"}
AGENTS = "C0AGENTS01"
AGENT = "U0AGENT001"
WAIT = 120
# The desk agents of these tests; their tokens are made when the server's folder is.
ANNA, BEN = "anna", "ben"
TOKENS: Dict[str, str] = {}


def auth(agent: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[agent]}"}


def chat_id(chat: int) -> str:
    """The conversation id of a Telegram chat."""
    return f"telegram:{chat}"


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakePlatform]:
    fake, _ = tg.fake_bot_api()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackApi]:
    api = SlackApi(wait=WAIT)
    yield api
    api.fake.stop()


@pytest.fixture(autouse=True)
def no_unexpected_calls(telegram: FakePlatform, slack: SlackApi) -> Iterator[None]:
    yield
    telegram.assert_no_unexpected_calls()
    slack.fake.assert_no_unexpected_calls()


@pytest.fixture(scope="module")
def servers(
    bot_model: Path,
    telegram: FakePlatform,
    slack: SlackApi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("handoff")
    actions_port = free_port()
    credentials = workdir / "credentials.yml"
    credentials.write_text(
        "channels.telegram.TelegramInput:\n"
        f'  access_token: "{tg.TOKEN}"\n'
        f'  verify: "{tg.BOT_USERNAME}"\n'
        '  webhook_url: "https://bot.example.com/webhooks/telegram/webhook"\n'
        f'  secret_token: "{tg.SECRET}"\n'
        f'  base_url: "{telegram.url}/bot"\n'
        "channels.agent_desk.AgentDeskInput:\n"
        "  token: ${RASA_LLM_DESK_TOKEN}\n"
        "  forward_interval_s: 0.5\n"
        "  slack:\n"
        f"    slack_token: {SLACK_TOKEN}\n"
        f"    slack_signing_secret: {SLACK_SECRET}\n"
        f"    agent_channel: {AGENTS}\n"
        f"    agent_user_ids: [{AGENT}]\n"
        f"    api_url: {slack.fake.url}/api/\n"
    )
    # The agents, as an operator makes them: in the server's folder, tokens in files.
    for name in (ANNA, BEN):
        token_file = workdir / ".secrets" / f"{name}-token"
        made = desk_agents_command(
            "ensure",
            name,
            "--credentials",
            str(credentials),
            "--token-file",
            str(token_file),
            cwd=workdir,
        )
        assert made.returncode == 0, made.stderr[-2000:]
        assert token_file.stat().st_mode & 0o777 == 0o600
        TOKENS[name] = token_file.read_text().strip()
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
        "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: rasa.db\n"
    )
    rasa = RasaServer(bot_model, workdir, credentials=credentials, endpoints=endpoints)
    actions = ActionServer(
        workdir,
        port=actions_port,
        env={"RASA_LLM_DESK_URL": f"{rasa.url}/webhooks/agent"},
    ).start()
    try:
        yield rasa.start()
    finally:
        rasa.stop()
        actions.stop()


def say(server: RasaServer, chat: int, text: str) -> None:
    answer = requests.post(
        f"{server.url}/webhooks/telegram/webhook",
        data=tg.body(tg.text_message(chat, text)),
        headers=tg.headers(secret=tg.SECRET, content_type="application/json"),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def texts(fake: FakePlatform, chat: int, count: int) -> List[str]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = [m["text"] for m in tg.sent(fake, chat)]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{count} messages to {chat} expected, got {tg.sent(fake, chat)}")


def wait_for_text(fake: FakePlatform, chat: int, start: str, after: int) -> None:
    """Wait for a message to ``chat`` starting with ``start`` beyond the first ``after``."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if any(m["text"].startswith(start) for m in tg.sent(fake, chat)[after:]):
            return
        time.sleep(0.1)
    raise AssertionError(f"no message starting {start!r} to {chat}: {tg.sent(fake, chat)}")


def desk(server: RasaServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{server.url}/webhooks/agent{path}", timeout=30, **kwargs)


def tracker_events(server: RasaServer, chat: int) -> List[Dict[str, Any]]:
    return list(server.tracker(chat_id(chat))["events"])


def path_of(chat: int) -> str:
    return quote(chat_id(chat), safe=":")


def test_customer_agent_and_bot_round_trip(servers: RasaServer, telegram: FakePlatform):
    chat = tg.next_id()
    say(servers, chat, "I want to talk to a real person please")
    assert texts(telegram, chat, 1)[0].startswith(HANDOFF)

    # The desk lists the hand-off, only for an agent: not without a token, not with an
    # unknown one, not with the action server's service token.
    assert desk(servers, "GET", "/handoffs").status_code == 401
    assert (
        desk(servers, "GET", "/handoffs", headers={"Authorization": "Bearer wrong"}).status_code
        == 403
    )
    assert desk(servers, "GET", "/handoffs", headers=SERVICE).status_code == 403
    listed = desk(servers, "GET", "/handoffs", headers=auth(ANNA)).json()["handoffs"]
    mine = [h for h in listed if h["sender_id"] == chat_id(chat)]
    assert mine and mine[0]["channel"] == "telegram" and mine[0]["reason"] == "asked_for_person"
    assert mine[0]["claimed_by"] is None and mine[0]["answered"] is False
    ref = mine[0]["handoff_id"]

    # Anna claims it and answers; it reaches the customer on Telegram. Ben cannot.
    assert desk(servers, "POST", f"/handoffs/{ref}/claim", headers=auth(ANNA)).status_code == 200
    text = "Hi, I'm Anna from the team. How can I help?"
    refused = desk(
        servers, "POST", f"/handoffs/{ref}/messages", headers=auth(BEN), json={"text": "Ben"}
    )
    assert refused.status_code == 409 and "claimed by anna" in refused.json()["error"]
    sent = desk(
        servers, "POST", f"/handoffs/{ref}/messages", headers=auth(ANNA), json={"text": text}
    )
    assert sent.status_code == 200 and sent.json() == {"delivered": True}
    assert texts(telegram, chat, 2)[1] == "Hi, I'm Anna from the team. How can I help?"

    # While paused, the customer's message is recorded for the agent; the bot is silent.
    say(servers, chat, "where is my order?")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        shown = desk(servers, "GET", f"/handoffs/{path_of(chat)}", headers=auth(ANNA)).json()[
            "transcript"
        ]
        if any(t["text"] == "where is my order?" for t in shown):
            break
        time.sleep(0.2)
    roles = [(t["role"], t["text"]) for t in shown]
    assert ("agent", "Hi, I'm Anna from the team. How can I help?") in roles
    assert roles[-1] == ("customer", "where is my order?")
    time.sleep(2)
    assert len(tg.sent(telegram, chat)) == 2, "the bot answered during the hand-off"

    # The agent hands back: the bot says so, then answers the next question itself.
    assert desk(servers, "POST", f"/handoffs/{ref}/handback", headers=auth(BEN)).status_code == 409
    back = desk(servers, "POST", f"/handoffs/{ref}/handback", headers=auth(ANNA))
    assert back.status_code == 200
    assert texts(telegram, chat, 3)[2].startswith(HANDBACK)
    assert (
        desk(
            servers, "POST", f"/handoffs/{ref}/messages", headers=auth(ANNA), json={"text": "late"}
        ).status_code
        == 409
    )
    say(servers, chat, "where is my order?")
    # The bot asks for the order number. It may apologise first: the sentiment analyzer
    # of today's model reads "where is my order?" as upset (0.67 negative, float32 and
    # int8 alike; without the "?" 0.33), which is the sentiment's business, not this test's.
    wait_for_text(telegram, chat, ORDER, after=3)
    events = [e["event"] for e in tracker_events(servers, chat)]
    assert "pause" in events and "resume" in events


def test_desk_rejects_bad_requests_without_losing_anything(servers: RasaServer):
    anna = auth(ANNA)
    assert (
        desk(
            servers, "POST", "/handoffs/nobody/messages", headers=anna, json={"text": "hello"}
        ).status_code
        == 409
    )
    assert (
        desk(
            servers, "POST", "/handoffs/nobody/messages", headers=anna, json={"text": ""}
        ).status_code
        == 400
    )
    assert (
        desk(
            servers,
            "POST",
            "/handoffs",
            headers={**SERVICE, "Content-Type": "text/plain"},
            data="x",
        ).status_code
        == 415
    )
    secret_text = "my card is 4111 1111 1111 1111, please call me"
    refused = desk(
        servers, "POST", "/handoffs/nobody/messages", headers=anna, json={"text": secret_text}
    )
    assert refused.status_code == 409 and secret_text not in refused.text
    log = servers.log()
    assert "agent webhook: rejected with 409" in log
    assert "4111" not in log and "please call me" not in log


def test_two_unanswerable_questions_hand_off(servers: RasaServer, telegram: FakePlatform):
    chat = tg.next_id()
    say(servers, chat, "who won the basketball final last night?")
    first = texts(telegram, chat, 1)[0]
    assert not first.startswith(HANDOFF)
    # Not "what's the best pizza topping?": an opinion question, which the model may
    # fairly read as chit-chat (it did after a retrain).
    say(servers, chat, "and can you recommend a good pizza recipe?")
    assert texts(telegram, chat, 2)[1].startswith(HANDOFF)
    listed = desk(servers, "GET", "/handoffs", headers=auth(ANNA)).json()["handoffs"]
    assert any(h["sender_id"] == chat_id(chat) and h["reason"] == "fallback_turns" for h in listed)


def agent_says(server: RasaServer, thread: str, text: str, user: str = AGENT) -> None:
    envelope = message_event(
        text,
        user=user,
        channel=AGENTS,
        channel_type="channel",
        thread_ts=thread,
        ts=f"1750000000.{tg.next_id() % 1_000_000:06d}",
    )
    body, headers = event_request(envelope)
    answer = requests.post(
        f"{server.url}/webhooks/agent/slack/events", data=body, headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text


def test_agents_answer_in_a_slack_thread(
    servers: RasaServer, telegram: FakePlatform, slack: SlackApi
):
    chat = tg.next_id()
    say(servers, chat, "I need to speak with someone from your team")
    assert texts(telegram, chat, 1)[0].startswith(HANDOFF)
    listed = desk(servers, "GET", "/handoffs", headers=auth(ANNA)).json()["handoffs"]
    (ref,) = [h["handoff_id"] for h in listed if h["sender_id"] == chat_id(chat)]
    thread = slack.thread_of(ref)
    assert slack.parents[thread]["channel"] == AGENTS
    assert chat_id(chat) not in str(slack.parents[thread]["text"]), "no customer id in Slack"
    slack.wait_for(thread, "I need to speak with someone from your team")  # transcript

    # The customer's next message is forwarded into the thread, not answered by the bot.
    say(servers, chat, "my parcel never arrived")
    slack.wait_for(thread, "my parcel never arrived")
    assert len(tg.sent(telegram, chat)) == 1

    # Someone in the channel who is not an agent reaches nobody; a note says so.
    agent_says(servers, thread, "psst, try a refund", user="U0VISITOR1")
    slack.wait_for(thread, "not one of the desk's agents")

    # The agent's reply in the thread claims it and reaches the customer on Telegram.
    agent_says(servers, thread, "Hello from the team, I'm looking into your parcel now.")
    assert texts(telegram, chat, 2)[1] == "Hello from the team, I'm looking into your parcel now."
    slack.wait_for(thread, f"Claimed by <@{AGENT}>")
    assert len(tg.sent(telegram, chat)) == 2, "the visitor's message reached the customer"

    # `!handback` gives the conversation back; the thread gets a note.
    agent_says(servers, thread, "!handback")
    assert texts(telegram, chat, 3)[2].startswith(HANDBACK)
    slack.wait_for(thread, "Handed back to the bot")
    listed = desk(servers, "GET", "/handoffs", headers=auth(ANNA)).json()["handoffs"]
    assert all(h["sender_id"] != chat_id(chat) for h in listed)


def test_a_forged_slack_event_changes_nothing(servers: RasaServer):
    envelope = message_event("!handback", user=AGENT, channel=AGENTS, thread_ts="1700000000.000001")
    body, headers = event_request(envelope, secret="not-the-signing-secret")
    answer = requests.post(
        f"{servers.url}/webhooks/agent/slack/events", data=body, headers=headers, timeout=30
    )
    assert answer.status_code == 401
