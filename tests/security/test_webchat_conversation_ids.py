"""Issue 23, finding 2: a web chat conversation is the web chat's, and only the web chat's.

The tracker of a web chat session is ``webchat:<session id>``, so no other channel's
caller can name it, and the web chat's output channel answers only such ids: a reply
addressed to another channel's conversation (or to a bare id from before ids carried
their channel) reaches no page, and one log line says so without naming the id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.core.channels.channel import UserMessage

from channels.attachments import Said
from channels.webchat import WebChatInput
from channels.webchat_config import WebChatConfig
from channels.webchat_output import SessionHub, WebChatOutput

SESSION = "0123456789abcdef0123456789abcdef"


class Page:
    """An open page of the session: what it was sent."""

    def __init__(self) -> None:
        self.sent: List[Dict[str, Any]] = []

    async def send(self, data: str) -> None:
        self.sent.append(json.loads(data))


def test_a_web_chat_message_reaches_rasa_as_the_sessions_webchat_conversation(tmp_path: Path):
    channel = WebChatInput(
        WebChatConfig.from_credentials(
            {"session_secret": "s" * 40, "dedup_db": str(tmp_path / "d.db")}
        )
    )
    received: List[UserMessage] = []

    async def on_new_message(message: UserMessage) -> None:
        received.append(message)

    async def scenario() -> None:
        channel.turns.enqueue(SESSION, [Said("where is my order?")], on_new_message)
        while channel.turns:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert [m.sender_id for m in received] == [f"webchat:{SESSION}"]
    assert received[0].input_channel == "webchat"


def test_replies_reach_the_page_only_for_the_web_chats_own_conversation_ids(
    caplog: pytest.LogCaptureFixture,
):
    hub = SessionHub()
    page = Page()
    hub.add(SESSION, page)
    output = WebChatOutput(hub, max_reply_chars=1000)

    async def scenario() -> None:
        await output.send_text_message(f"webchat:{SESSION}", "Your order has shipped.")
        for foreign in (
            f"sms:{SESSION}",
            f"rest:{SESSION}",
            f"telegram:{SESSION}",
            SESSION,  # a bare id: no channel owns it
        ):
            await output.send_text_message(foreign, "CUSTOMER-REPLY-7731")

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert page.sent == [{"type": "bot", "message": {"text": "Your order has shipped."}}]
    refusals = [r for r in caplog.records if "reply not sent" in r.getMessage()]
    assert len(refusals) == 4, [r.getMessage() for r in caplog.records]
    assert SESSION not in caplog.text and "CUSTOMER-REPLY" not in caplog.text
