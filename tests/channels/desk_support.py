"""The agent desk served in this process, over real HTTP, without a model.

A real Sanic app with the desk and the SMS channel (its output against a fake Twilio
REST API that fails any call it does not expect), a real Rasa ``Agent`` (domain,
SQLite tracker store, lock store; no model is loaded: the desk needs none), and
agents made with the desk's own directory. Optionally the agents' Slack, against a
fake Slack Web API, with Events API requests signed for real.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import requests
from rasa.core.agent import Agent
from rasa.core.channels import channel as rasa_channel
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic

from channels.agent_desk import AgentDeskInput
from channels.agent_desk_config import AgentDeskConfig
from channels.sms import TwilioSmsInput
from channels.sms_config import SmsConfig
from tests.channels import sms_support as twilio
from tests.channels.slack_payloads import SECRET as SLACK_SECRET
from tests.channels.slack_payloads import TOKEN as SLACK_TOKEN
from tests.channels.slack_payloads import event_request, message_event
from tests.fake_platform import Call, FakePlatform, Reply
from tests.rasa_process import ROOT, rasa_env
from tests.sanic_serving import serving

SERVICE_TOKEN = "desk-service-token-0123456789abcdef"
HANDBACK = "You're back with the assistant."
CUSTOMER_NUMBER = "+447700900123"
SMS_CONVERSATION = f"sms:{CUSTOMER_NUMBER}"
AGENTS_CHANNEL = "C0AGENTS01"
SLACK_AGENT = "U0AGENT001"
SLACK_AGENT_2 = "U0AGENT002"
NOT_AN_AGENT = "U0VISITOR1"
WAIT = 30.0

DOMAIN = Domain.from_yaml(
    f"""
version: "3.1"
intents: [greet]
responses:
  utter_handback:
    - text: "{HANDBACK}"
"""
)


class SlackApi:
    """The agents' Slack: chat.postMessage, each parent message with a ts of its own.

    ``parents``: each parent message's fields by its ts (its thread), oldest first.
    ``wait``: seconds to wait for a post before a test fails.
    """

    def __init__(self, *, wait: float = WAIT) -> None:
        self.fake = FakePlatform("slack").start()
        self.parents: Dict[str, Dict[str, Any]] = {}
        self.wait = wait
        self.fake.expect("POST", "/api/chat.postMessage", self._post)

    def _post(self, call: Call) -> Reply:
        fields = call.fields()
        if fields.get("thread_ts"):
            return 200, {"ok": True, "ts": f"1800000000.{len(self.fake.calls):06d}"}, {}
        ts = f"1700000000.{len(self.parents) + 1:06d}"
        self.parents[ts] = fields
        return 200, {"ok": True, "channel": fields.get("channel"), "ts": ts}, {}

    def thread_of(self, handoff_id: str) -> str:
        """The thread whose parent message names the hand-off ``handoff_id``."""
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            for ts, fields in list(self.parents.items()):
                if handoff_id in str(fields.get("text")):
                    return ts
            time.sleep(0.05)
        raise AssertionError(f"no hand-off thread for {handoff_id}: {self.parents}")

    def posts(self, thread: Optional[str] = None) -> List[str]:
        """The texts posted (in ``thread``, or as parents when None)."""
        return [
            str(c.fields().get("text"))
            for c in self.fake.calls_to("/api/chat.postMessage")
            if c.fields().get("thread_ts") == thread
        ]

    def wait_for(self, thread: str, needle: str) -> List[str]:
        """The texts posted in ``thread``, once one of them holds ``needle``."""
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            found = self.posts(thread)
            if any(needle in text for text in found):
                return found
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never posted in {thread}: {self.posts(thread)}")


class DeskServer:
    """The served desk, and what a test does with it."""

    def __init__(
        self,
        url: str,
        app: Sanic,
        desk: AgentDeskInput,
        agent: Agent,
        sms: twilio.TwilioApi,
        slack: Optional[SlackApi],
    ) -> None:
        self.url = url
        self.app = app
        self.desk = desk
        self.agent = agent
        self.sms = sms
        self.slack = slack

    # ------------------------------------------------------------ HTTP calls
    def call(
        self, method: str, path: str, token: Optional[str] = None, **kwargs: Any
    ) -> requests.Response:
        """``path`` under /webhooks/agent, with ``token`` as the bearer token."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(
            method, f"{self.url}/webhooks/agent{path}", headers=headers, timeout=30, **kwargs
        )

    def open(self, sender_id: str, reason: str = "asked_for_person") -> Optional[str]:
        """Open a hand-off as the action server does; its reference."""
        answer = self.call(
            "POST",
            "/handoffs",
            SERVICE_TOKEN,
            json={
                "sender_id": sender_id,
                "reason": reason,
                "since": 0.0,
                "transcript": [["customer", "I want a person"]],
            },
        )
        assert answer.status_code == 201, answer.text
        reference = answer.json().get("handoff_id")
        return str(reference) if reference else None

    def hand_off(self, sender_id: str = SMS_CONVERSATION, *, paused: bool = False) -> str:
        """The customer asks for a person and the action server opens a hand-off; its
        reference. ``paused``: the conversation is paused first, as ``action_handoff``
        does."""
        self.customer_says(sender_id, "I want to talk to a person", "twilio")
        if paused:
            self.pause(sender_id)
        reference = self.open(sender_id)
        assert reference is not None
        return reference

    def add_agent(self, name: str) -> str:
        """A new agent's token, from the desk's own directory."""
        return self.desk.agents.add_sync(name)

    # ----------------------------------------------------------- the tracker
    def customer_says(self, sender_id: str, text: str, input_channel: str) -> None:
        """Record a customer message in the conversation, as Rasa would."""
        store = self.agent.tracker_store

        async def record() -> None:
            tracker = await store.get_or_create_tracker(sender_id)
            tracker.update(ActionExecuted("action_listen"))
            tracker.update(UserUttered(text, input_channel=input_channel))
            await store.save(tracker)

        asyncio.run(record())

    def pause(self, sender_id: str) -> None:
        async def paused() -> None:
            tracker = await self.agent.tracker_store.get_or_create_tracker(sender_id)
            tracker.update(ConversationPaused())
            await self.agent.tracker_store.save(tracker)

        asyncio.run(paused())

    def tracker(self, sender_id: str) -> DialogueStateTracker:
        found = asyncio.run(self.agent.tracker_store.retrieve(sender_id))
        assert found is not None
        return found

    def agent_turns(self, sender_id: str) -> List[Dict[str, Any]]:
        """The agent messages recorded in the tracker: text and metadata."""
        return [
            {"text": e.text, "metadata": e.metadata}
            for e in self.tracker(sender_id).events
            if isinstance(e, BotUttered) and (e.metadata or {}).get("agent")
        ]

    # ----------------------------------------------------------------- Slack
    def slack_reply(self, thread: str, text: str, user: str = SLACK_AGENT) -> None:
        """Someone writes ``text`` in the hand-off thread; Slack posts the event."""
        envelope = message_event(
            text,
            user=user,
            channel=AGENTS_CHANNEL,
            channel_type="channel",
            thread_ts=thread,
        )
        body, headers = event_request(envelope)
        answer = requests.post(
            f"{self.url}/webhooks/agent/slack/events", data=body, headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text

    def settle(self) -> None:
        """Wait for the desk's background work (Slack events) to finish."""
        deadline = time.monotonic() + WAIT
        while self.desk._tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.desk._tasks, "the desk's Slack work did not finish"


def desk_agents_command(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m channels.desk_agents ARGS`` run as an operator runs it, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "channels.desk_agents", *args],
        cwd=cwd,
        env=rasa_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def sms_channel(tmp_path: Path, api: twilio.TwilioApi) -> TwilioSmsInput:
    config = SmsConfig.from_credentials(
        {
            "account_sid": twilio.ACCOUNT_SID,
            "auth_token": twilio.AUTH_TOKEN,
            "twilio_number": twilio.NUMBER,
            "webhook_url": twilio.PUBLIC_URL,
            "api_base_url": api.fake.url,
            "dedup_db": str(tmp_path / "sms_deliveries.db"),
            "state_db": str(tmp_path / "sms_state.db"),
        }
    )
    return TwilioSmsInput(config)


def desk_config(
    tmp_path: Path, slack: Optional[SlackApi] = None, **settings: Any
) -> AgentDeskConfig:
    values: Dict[str, Any] = {
        "token": SERVICE_TOKEN,
        "db": str(tmp_path / "desk.db"),
        "forward_interval_s": 0.2,
    }
    if slack is not None:
        values["slack"] = {
            "slack_token": SLACK_TOKEN,
            "slack_signing_secret": SLACK_SECRET,
            "agent_channel": AGENTS_CHANNEL,
            "agent_user_ids": [SLACK_AGENT, SLACK_AGENT_2],
            "api_url": f"{slack.fake.url}/api/",
            "dedup_db": str(tmp_path / "agent_deliveries.db"),
        }
    values.update(settings)
    return AgentDeskConfig.from_credentials(values)


@contextmanager
def desk_server(
    tmp_path: Path, *, with_slack: bool = False, **settings: Any
) -> Iterator[DeskServer]:
    """The desk and the SMS channel served on a loopback port, with their fakes."""
    sms_api = twilio.TwilioApi()
    slack = SlackApi() if with_slack else None
    try:
        desk = AgentDeskInput(desk_config(tmp_path, slack, **settings))
        sms = sms_channel(tmp_path, sms_api)
        app = Sanic(f"desk_test_{len(Sanic._app_registry)}")
        channels: Sequence[Any] = [sms, desk]
        rasa_channel.register(list(channels), app, route="/webhooks/")
        loops: List[asyncio.AbstractEventLoop] = []

        @app.listener("after_server_start")
        async def keep_loop(_: Sanic, loop: asyncio.AbstractEventLoop) -> None:
            loops.append(loop)

        tracker_store = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "rasa.db"))
        agent = Agent(domain=DOMAIN, tracker_store=tracker_store, lock_store=InMemoryLockStore())
        with serving(app, agent) as url:
            try:
                yield DeskServer(url, app, desk, agent, sms_api, slack)
            finally:

                async def close() -> None:
                    if desk._forwarder is not None:
                        desk._forwarder.cancel()
                    if desk.slack is not None:
                        await desk.slack.close()
                    await sms.messages.close()

                if loops:
                    asyncio.run_coroutine_threadsafe(close(), loops[0]).result(10)
        sms_api.fake.assert_no_unexpected_calls()
        if slack is not None:
            slack.fake.assert_no_unexpected_calls()
    finally:
        sms_api.fake.stop()
        if slack is not None:
            slack.fake.stop()
