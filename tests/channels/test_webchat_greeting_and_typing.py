"""The web chat greets a new visitor and shows that an answer is coming.

Settings and frames without a server; then the page in headless Chromium against the
channel on a loopback Sanic app whose agent takes its time, as the fallback's language
model does, and keeps its conversations in Rasa's in-memory tracker store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import yaml
from rasa.core.channels import channel as rasa_channel
from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Sanic

from channels.attachments import Said
from channels.webchat import WebChatInput
from channels.webchat_config import (
    MAX_SUGGESTED_QUESTIONS,
    WebChatConfig,
    WebChatConfigError,
    get_default_config,
)
from tests.channels.webchat_cdp import Browser
from tests.channels.webchat_fakes import BrokenTrackerStore, Request
from tests.sanic_serving import serving

ROOT = Path(__file__).resolve().parents[2]
SECRET = "g" * 40
DEFAULT_QUESTIONS = get_default_config()["suggested_questions"]


def config(tmp_path: Path, **overrides: Any) -> WebChatConfig:
    values: Dict[str, Any] = {
        "session_secret": SECRET,
        "dedup_db": str(tmp_path / "d.db"),
        "attachment_dir": None,
        **overrides,
    }
    return WebChatConfig.from_credentials(values)


# ---------------------------------------------------------------- settings
def test_a_new_visitor_is_greeted_by_default_and_the_bots_settings_load(tmp_path: Path):
    default = config(tmp_path)
    assert default.greeting and default.suggested_questions == tuple(DEFAULT_QUESTIONS)
    assert all(not q.startswith("/") for q in DEFAULT_QUESTIONS)
    shipped = yaml.safe_load((ROOT / "bot" / "credentials.yml").read_text(encoding="utf-8"))
    ours = WebChatConfig.from_credentials(shipped["channels.webchat.WebChatInput"])
    assert ours.greeting and "Northwind" in ours.greeting
    assert 2 <= len(ours.suggested_questions) <= MAX_SUGGESTED_QUESTIONS
    off = config(tmp_path, greeting=None)
    assert off.greeting is None and off.suggested_questions == ()
    plain = config(tmp_path, suggested_questions=[" Where is  my order? "])
    assert plain.suggested_questions == ("Where is my order?",)


@pytest.mark.parametrize(
    "settings, key, words",
    [
        ({"greeting": ""}, "greeting", "non-empty string"),
        ({"greeting": 12}, "greeting", "or null for no greeting"),
        ({"greeting": "Hi " * 400}, "greeting", "at most 1000 characters"),
        ({"suggested_questions": "Where is my order?"}, "suggested_questions", "a list"),
        ({"suggested_questions": ["/order_status"]}, "suggested_questions[0]", "intent payload"),
        ({"suggested_questions": ["Hi", 3]}, "suggested_questions[1]", "non-empty string"),
        ({"suggested_questions": ["Hi", "  "]}, "suggested_questions[1]", "non-empty string"),
        ({"suggested_questions": ["x" * 201]}, "suggested_questions[0]", "at most 200"),
        ({"suggested_questions": ["Same?", "Same?"]}, "suggested_questions[1]", "twice"),
        (
            {"suggested_questions": [f"Question {n}?" for n in range(7)]},
            "suggested_questions",
            "at most 6",
        ),
        (
            {"greeting": None, "suggested_questions": ["Where is my order?"]},
            "suggested_questions",
            "`greeting` is null",
        ),
        ({"suggested_question": ["Hi?"]}, "suggested_question", "suggested_questions"),
    ],
)
def test_bad_greeting_settings_fail_naming_the_key_and_the_fix(
    tmp_path: Path, settings: Dict[str, Any], key: str, words: str
):
    with pytest.raises(WebChatConfigError) as raised:
        config(tmp_path, **settings)
    message = str(raised.value)
    assert raised.value.key == key
    assert f"`{key}`" in message and "channels.webchat.WebChatInput" in message
    assert words in message


# ---------------------------------------------------------------- frames
class FakeSocket:
    def __init__(self, *incoming: str) -> None:
        self.incoming = list(incoming)
        self.sent: List[Dict[str, Any]] = []

    async def recv(self, timeout: Any = None) -> Any:
        return self.incoming.pop(0)

    async def send(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


def greeted(channel: WebChatInput, store: Any, session: Optional[Tuple[str, str]] = None) -> Any:
    """The history frame a page gets for a new session, or for ``session``."""
    hello: Dict[str, Any] = {"type": "hello"}
    if session is not None:
        hello.update(session_id=session[0], token=session[1])
    socket = FakeSocket(json.dumps(hello))
    assert asyncio.run(channel.socket._greet(Request(store), socket, "127.0.0.1")) is not None
    return socket.sent[1]


def conversation(store: InMemoryTrackerStore, session_id: str, *events: Any) -> None:
    async def save() -> None:
        tracker = await store.get_or_create_tracker(f"webchat:{session_id}")
        for event in events:
            tracker.update(event)
        await store.save(tracker)

    asyncio.run(save())


def test_the_greeting_comes_with_the_history_of_a_conversation_without_messages(
    tmp_path: Path,
):
    channel = WebChatInput(config(tmp_path, greeting="Hello <b>there</b>"))
    store = InMemoryTrackerStore(Domain.empty())
    new = greeted(channel, store)
    assert new == {
        "type": "history",
        "messages": [],
        "greeting": {"text": "Hello <b>there</b>", "suggestions": DEFAULT_QUESTIONS},
    }
    # A session whose tracker holds no message yet (only Rasa's own events) is greeted.
    quiet = channel.signer.new_session()
    conversation(store, quiet[0])
    assert "greeting" in greeted(channel, store, quiet)
    # Once the customer has said something, a reload shows the conversation, no greeting.
    begun = channel.signer.new_session()
    conversation(store, begun[0], UserUttered("hi"), BotUttered("Hello!"))
    frame = greeted(channel, store, begun)
    assert "greeting" not in frame and [m["text"] for m in frame["messages"]] == ["hi", "Hello!"]
    # Also when no history is shown, and when the store cannot say (no second greeting).
    hidden = WebChatInput(config(tmp_path, history_limit=0))
    assert greeted(hidden, store, begun) == {"type": "history", "messages": []}
    assert greeted(channel, BrokenTrackerStore(), begun) == {"type": "history", "messages": []}
    assert "greeting" not in greeted(WebChatInput(config(tmp_path, greeting=None)), store)


def test_each_turn_is_framed_by_typing_frames_also_when_the_bot_fails(
    tmp_path: Path,
):
    channel = WebChatInput(config(tmp_path))
    page = FakeSocket()
    channel.hub.add("s1", page)

    async def bot(message: UserMessage) -> None:
        if message.text == "boom":
            raise RuntimeError("the model server is down")
        await message.output_channel.send_text_message(message.sender_id, "Delivery is £3.95.")

    async def scenario() -> None:
        channel.turns.enqueue("s1", [Said("how much is delivery?")], bot)
        channel.turns.enqueue("s1", [Said("boom")], bot)
        while channel.turns:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert page.sent == [
        {"type": "typing", "active": True},
        {"type": "bot", "message": {"text": "Delivery is £3.95."}},
        {"type": "typing", "active": False},
        {"type": "typing", "active": True},
        {"type": "typing", "active": False},
    ]


def test_a_page_that_reconnects_while_a_reply_is_written_shows_the_indicator(
    tmp_path: Path,
):
    channel = WebChatInput(config(tmp_path))
    session = channel.signer.new_session()
    released = asyncio.Event()

    async def slow_bot(message: UserMessage) -> None:
        await released.wait()

    async def scenario() -> List[Dict[str, Any]]:
        channel.turns.enqueue(session[0], [Said("where is my order?")], slow_bot)
        await asyncio.sleep(0)
        hello = {"type": "hello", "session_id": session[0], "token": session[1]}
        socket = FakeSocket(json.dumps(hello))
        await channel.socket._greet(Request(None), socket, "127.0.0.1")
        released.set()
        while channel.turns:
            await asyncio.sleep(0.01)
        return socket.sent

    sent = asyncio.run(scenario())
    assert [f["type"] for f in sent] == ["session", "history", "typing"]
    assert sent[-1]["active"] is True


# ---------------------------------------------------------------- in a browser
class ThinkingAgent:
    """Stands in for Rasa's agent: takes ``think_s`` over each message (as the fallback's
    language model does), then answers, and keeps the conversation in Rasa's in-memory
    tracker store as Rasa would."""

    def __init__(self, think_s: float) -> None:
        self.think_s = think_s
        self.tracker_store = InMemoryTrackerStore(Domain.empty())
        self.messages: List[UserMessage] = []

    def is_ready(self) -> bool:
        return False

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, metadata=message.metadata))
        await asyncio.sleep(self.think_s)
        if message.text == "break":
            raise RuntimeError("the model server is down")
        reply = f"You asked: {message.text}"
        tracker.update(BotUttered(reply))
        await self.tracker_store.save(tracker)
        await message.output_channel.send_text_message(message.sender_id, reply)


def webchat_app(tmp_path: Path) -> Sanic:
    app = Sanic(f"webchat_greeting_{len(Sanic._app_registry)}")
    settings = config(tmp_path, greeting="Hi! Ask me anything, or pick a question below.")
    rasa_channel.register([WebChatInput(settings)], app, route="/webhooks/")
    return app


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Tuple[str, ThinkingAgent]]:
    agent = ThinkingAgent(think_s=2.0)
    with serving(webchat_app(tmp_path), agent) as url:
        yield f"{url}/webhooks/webchat/", agent


# Records, in the page, when the typing indicator and bot bubbles come and go.
WATCH = """
(() => {
  window.seen = [];
  let typing = false;  // the indicator is moved down under each new bubble: not news
  const name = (node) => node.id === 'webchat-typing' ? 'typing'
    : node.classList && node.classList.contains('webchat-bot') ? 'bot' : null;
  new MutationObserver((records) => {
    for (const record of records) {
      record.addedNodes.forEach((n) => {
        if (name(n) === 'bot') window.seen.push('+bot');
        if (name(n) === 'typing' && !typing) { typing = true; window.seen.push('+typing'); }
      });
      record.removedNodes.forEach((n) => {
        if (name(n) === 'typing' && !n.isConnected) { typing = false; window.seen.push('-typing'); }
      });
    }
  }).observe(document.getElementById('webchat-log'), {childList: true});
  return true;
})()
"""
TYPING_SHOWN = "Boolean(document.getElementById('webchat-typing'))"
BOT_TEXTS = "Array.from(document.querySelectorAll('.webchat-bot')).map(e => e.innerText)"
SUGGESTIONS = "Array.from(document.querySelectorAll('.webchat-greeting button'))"


def test_the_page_greets_a_new_visitor_and_shows_typing_until_the_reply(
    chat: Tuple[str, ThinkingAgent], tmp_path: Path
):
    page_url, agent = chat
    question = DEFAULT_QUESTIONS[2]

    async def scenario() -> None:
        browser = await Browser(tmp_path / "profile").start()
        try:
            await browser.open(page_url)
            await browser.wait_for(f"{SUGGESTIONS}.length === 3", what="the suggestions")
            shown = await browser.evaluate(BOT_TEXTS)
            assert len(shown) == 1 and "Ask me anything, or pick a question below." in shown[0]
            titles = await browser.evaluate(f"{SUGGESTIONS}.map(b => b.textContent)")
            assert titles == DEFAULT_QUESTIONS
            assert not await browser.evaluate(TYPING_SHOWN)
            await browser.evaluate(WATCH)

            await browser.click(f"{SUGGESTIONS}[2]")
            await browser.wait_for(TYPING_SHOWN, timeout=10, what="the typing indicator")
            assert await browser.evaluate("window.seen") == ["+typing"], "no reply yet"
            assert await browser.evaluate(
                "document.getElementById('webchat-typing').getBoundingClientRect().height > 0"
            ), "the indicator is visible"
            await browser.wait_for(
                f"{BOT_TEXTS}.some(t => t.includes('You asked: {question}'))", what="the reply"
            )
            await browser.wait_for(f"!{TYPING_SHOWN}", timeout=10, what="the indicator to go")
            assert await browser.evaluate("window.seen") == ["+typing", "+bot", "-typing"]
            users = "Array.from(document.querySelectorAll('.webchat-user')).map(e => e.innerText)"
            assert question in (await browser.evaluate(users))[0]
            assert await browser.evaluate(f"{SUGGESTIONS}.every(b => b.disabled)")

            # The bot failing on a message ends the indicator too.
            await browser.click("document.getElementById('webchat-input')")
            await browser.type("break")
            await browser.wait_for(TYPING_SHOWN, timeout=10, what="the typing indicator")
            await browser.wait_for(f"!{TYPING_SHOWN}", timeout=10, what="the indicator to go")

            # A reload of the conversation shows it, without a second greeting.
            await browser.reload()
            await browser.wait_for(
                f"{BOT_TEXTS}.some(t => t.includes('You asked:'))", what="the history"
            )
            assert (
                await browser.evaluate("document.querySelectorAll('.webchat-greeting').length") == 0
            )
            assert await browser.evaluate(f"{SUGGESTIONS}.length") == 0
            assert browser.errors == []
        finally:
            await browser.close()

    asyncio.run(asyncio.wait_for(scenario(), 180))
    # The suggestion reached the bot as the customer's words, not as a payload.
    first = agent.messages[0]
    assert first.text == question and first.parse_data is None
    assert first.metadata["webchat"]["display"] is None
    assert [m.text for m in agent.messages] == [question, "break"]


def test_a_lost_connection_does_not_leave_the_indicator(tmp_path: Path):
    """No word of the turn's end can come on a closed socket: the page drops it."""
    server = serving(webchat_app(tmp_path), ThinkingAgent(think_s=30.0))
    url = server.__enter__()
    stopped: List[bool] = []

    async def scenario() -> None:
        browser = await Browser(tmp_path / "profile").start()
        try:
            await browser.open(f"{url}/webhooks/webchat/")
            await browser.wait_for(
                "document.getElementById('webchat-status').textContent === 'Connected'"
            )
            await browser.click("document.getElementById('webchat-input')")
            await browser.type("where is my parcel?")
            await browser.wait_for(TYPING_SHOWN, timeout=10, what="the typing indicator")
            await asyncio.to_thread(server.__exit__, None, None, None)  # the server goes
            stopped.append(True)
            await browser.wait_for(f"!{TYPING_SHOWN}", timeout=20, what="the indicator to go")
            status = await browser.evaluate("document.getElementById('webchat-status').textContent")
            assert status == "Reconnecting…"
        finally:
            await browser.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        if not stopped:
            server.__exit__(None, None, None)
