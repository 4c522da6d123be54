"""The web chat page says why a message was refused in its own language, in Chromium.

The server's reasons are English and written for its logs ("message text longer than
5 characters"): the English page shows them as they are, the Chinese page says them in
Chinese. The server here accepts at most five characters a message; the page keeps
what a customer types within that, but a bot's button sends its payload, and one of
14 characters is refused as a longer one would be over the real limit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from rasa.core.channels import channel as rasa_channel
from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from sanic import Sanic

from channels.webchat import WebChatInput
from channels.webchat_config import WebChatConfig
from tests.channels.test_webchat_chinese import STATUS, USERS
from tests.channels.webchat_cdp import Browser
from tests.sanic_serving import serving


class ButtonAgent:
    """Stands in for Rasa's agent: answers every message with a question and one button."""

    def __init__(self) -> None:
        self.tracker_store = InMemoryTrackerStore(Domain.empty())
        self.reached: List[str] = []

    def is_ready(self) -> bool:
        return False

    async def handle_message(self, message: UserMessage) -> None:
        self.reached.append(message.text or "")
        await message.output_channel.send_text_with_buttons(
            message.sender_id, "需要转人工吗？", [{"title": "转人工", "payload": "/request_human"}]
        )


@pytest.fixture
def page_url(tmp_path: Path) -> Iterator[str]:
    app = Sanic(f"webchat_refusals_{len(Sanic._app_registry)}")
    settings = WebChatConfig.from_credentials(
        {
            "session_secret": "r" * 40,
            "dedup_db": str(tmp_path / "d.db"),
            "attachment_dir": None,
            "max_message_chars": 5,
            "suggested_questions": [],
        }
    )
    rasa_channel.register([WebChatInput(settings)], app, route="/webhooks/")
    with serving(app, ButtonAgent()) as url:
        yield f"{url}/webhooks/webchat/"


@pytest.mark.parametrize(
    ("languages", "connected", "message", "said"),
    [
        (
            "zh-CN,zh,en",
            "已连接",
            "你好，我想查一下订单",
            "消息未能发送：消息超过 5 个字，请缩短后再试。",
        ),
        (
            "en-GB,zh-CN",
            "Connected",
            "hello",
            "The message could not be sent: message text longer than 5 characters",
        ),
    ],
)
def test_a_refused_message_is_explained_in_the_pages_language(
    page_url: str, tmp_path: Path, languages: str, connected: str, message: str, said: str
):
    async def scenario() -> Any:
        browser = await Browser(tmp_path / "profile").start()
        try:
            version = await browser.call("Browser.getVersion")
            await browser.call(
                "Emulation.setUserAgentOverride",
                userAgent=version["userAgent"],
                acceptLanguage=languages,
            )
            await browser.open(page_url)
            await browser.wait_for(f"{STATUS} === '{connected}'", what="the page to connect")
            await browser.click("document.getElementById('webchat-input')")
            await browser.type(message)
            button = "document.querySelector('.webchat-bot button.webchat-button')"
            await browser.wait_for(f"{button} !== null", what="the bot's button")
            await browser.click(button)
            await browser.wait_for(
                f"{USERS}.length === 2 && {USERS}[1].dataset.state === 'failed'",
                what="the message to fail",
            )
            assert browser.errors == []
            return await browser.evaluate(STATUS)
        finally:
            await browser.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 120)) == said
