"""The web chat in Chinese, in headless Chromium: a browser that prefers Chinese gets the
page's own words in Chinese, an input method's Enter (choosing a word from pinyin) does
not send the message, and a Chinese message goes over the WebSocket to the bot and a
Chinese reply comes back, shown character for character in a CJK font, wrapped inside
its bubble. The channel runs on a loopback Sanic app; the agent answers at once and
keeps the conversation in Rasa's in-memory tracker store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from rasa.core.channels import channel as rasa_channel
from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Sanic

from channels.webchat import WebChatInput
from channels.webchat_config import WebChatConfig
from tests.channels.webchat_cdp import Browser
from tests.sanic_serving import serving

SECRET = "z" * 40
QUESTION = "你好，我的订单ＮＷ－１０２３４什么时候到？𠮷"
# A reply with full-width punctuation, an emoji sequence, a character outside the BMP,
# a run of Chinese with no break and a long URL: each must wrap inside the bubble.
REPLY = (
    "您好！您的订单已于昨天发货📦，预计三到五个工作日内送达。"
    "详情请见《配送说明》：https://shop.example.com/help/shipping/"
    + "a" * 120
    + " ＊注意＊【重要】家庭账户👨‍👩‍👧由主账户管理。𠮷野家"
    + "非常感谢您的耐心等待" * 12
)


class ChineseAgent:
    """Stands in for Rasa's agent: answers every message with ``REPLY``."""

    def __init__(self) -> None:
        self.tracker_store = InMemoryTrackerStore(Domain.empty())
        self.messages: List[UserMessage] = []

    def is_ready(self) -> bool:
        return False

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, metadata=message.metadata))
        tracker.update(BotUttered(REPLY))
        await self.tracker_store.save(tracker)
        await message.output_channel.send_text_message(message.sender_id, REPLY)


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Tuple[str, ChineseAgent]]:
    app = Sanic(f"webchat_chinese_{len(Sanic._app_registry)}")
    settings = WebChatConfig.from_credentials(
        {
            "session_secret": SECRET,
            "dedup_db": str(tmp_path / "d.db"),
            "attachment_dir": None,
            "greeting": "您好！请问有什么可以帮您？",
            "suggested_questions": ["我的订单在哪里？", "怎么退货？"],
        }
    )
    rasa_channel.register([WebChatInput(settings)], app, route="/webhooks/")
    agent = ChineseAgent()
    with serving(app, agent) as url:
        yield f"{url}/webhooks/webchat/", agent


async def prefer_chinese(browser: Browser) -> None:
    """Make the page see a browser whose languages are zh-CN, zh, en."""
    version = await browser.call("Browser.getVersion")
    await browser.call(
        "Emulation.setUserAgentOverride",
        userAgent=version["userAgent"],
        acceptLanguage="zh-CN,zh,en",
    )


def js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


USERS = "Array.from(document.querySelectorAll('.webchat-user'))"
BOTS = "Array.from(document.querySelectorAll('.webchat-bot:not(.webchat-greeting)'))"
# A bubble's text without its hidden "You said: " / "Assistant: " label.
SHOWN = "(e => Array.from(e.querySelectorAll('p')).map(p => p.textContent).join(''))"
STATUS = "document.getElementById('webchat-status').textContent"


def test_a_chinese_customer_chats_in_chromium(chat: Tuple[str, ChineseAgent], tmp_path: Path):
    page_url, agent = chat

    async def scenario() -> Dict[str, Any]:
        browser = await Browser(tmp_path / "profile").start()
        try:
            await prefer_chinese(browser)
            await browser.open(page_url)
            await browser.wait_for(f"{STATUS} === '已连接'", what="the page to connect")
            page = await browser.evaluate(
                "({lang: document.documentElement.lang,"
                " placeholder: document.getElementById('webchat-input').placeholder,"
                " send: document.getElementById('webchat-send').textContent,"
                " label: document.querySelector('label[for=webchat-input]').textContent,"
                " attach: document.getElementById('webchat-attach').getAttribute('aria-label'),"
                " log: document.getElementById('webchat-log').getAttribute('aria-label'),"
                " font: getComputedStyle(document.getElementById('webchat-input')).fontFamily,"
                " greeting: document.querySelector('.webchat-greeting p').lang})"
            )

            # An input method composes 你好 from pinyin; its Enter chooses the word.
            await browser.click("document.getElementById('webchat-input')")
            await browser.call(
                "Input.imeSetComposition", text="你好", selectionStart=2, selectionEnd=2
            )
            for kind in ("rawKeyDown", "keyUp"):
                await browser.call(
                    "Input.dispatchKeyEvent",
                    type=kind,
                    key="Enter",
                    code="Enter",
                    windowsVirtualKeyCode=229,
                    nativeVirtualKeyCode=229,
                )
            # The same events as a page sees them from any browser: the Enter of a
            # composition is refused, and a submit while composing sends nothing.
            refused = await browser.evaluate(
                "(() => { const input = document.getElementById('webchat-input');"
                " const enter = new KeyboardEvent('keydown',"
                "   {key: 'Enter', isComposing: true, cancelable: true, bubbles: true});"
                " input.dispatchEvent(enter);"
                " const safari = new KeyboardEvent('keydown',"
                "   {key: 'Enter', keyCode: 229, cancelable: true, bubbles: true});"
                " input.dispatchEvent(safari);"
                " input.dispatchEvent(new CompositionEvent('compositionstart', {bubbles: true}));"
                " input.value = '你好';"
                " document.getElementById('webchat-form').requestSubmit();"
                " input.dispatchEvent(new CompositionEvent('compositionend', {bubbles: true}));"
                " return [enter.defaultPrevented, safari.defaultPrevented]; })()"
            )
            await asyncio.sleep(0.5)
            sent_while_composing = await browser.evaluate(f"{USERS}.length")

            # The composition ends; the customer types the question, and Enter sends it.
            await browser.call("Input.insertText", text="")
            await browser.evaluate("document.getElementById('webchat-input').value = ''")
            await browser.type(QUESTION)
            await browser.wait_for(f"{BOTS}.length === 1", what="the Chinese reply")
            shown = await browser.evaluate(
                f"({{user: {SHOWN}({USERS}[0]), bot: {SHOWN}({BOTS}[0]),"
                f" lang: {BOTS}[0].querySelector('p').lang,"
                f" wraps: {BOTS}[0].scrollWidth <= {BOTS}[0].clientWidth,"
                f" page: document.body.innerText.includes('\\ufffd')}})"
            )
            # A reload replays the conversation from the tracker, unchanged.
            await browser.reload()
            await browser.wait_for(f"{BOTS}.length === 1", what="the history")
            replayed = await browser.evaluate(f"[{SHOWN}({USERS}[0]), {SHOWN}({BOTS}[0])]")
            assert browser.errors == []
            return {
                "page": page,
                "refused": refused,
                "sent_while_composing": sent_while_composing,
                "shown": shown,
                "replayed": replayed,
            }
        finally:
            await browser.close()

    seen = asyncio.run(asyncio.wait_for(scenario(), 180))
    page = seen["page"]
    assert page["lang"] == "zh-Hans" and page["greeting"] == "zh-Hans"
    assert (page["placeholder"], page["send"], page["label"]) == (
        "输入消息，按回车发送",
        "发送",
        "您的消息",
    )
    assert page["attach"] == "添加照片或 PDF" and page["log"] == "对话"
    assert "Noto Sans CJK SC" in page["font"] and "Microsoft YaHei" in page["font"]
    assert seen["refused"] == [True, True]
    assert seen["sent_while_composing"] == 0, "Enter while composing sent nothing"
    assert [message.text for message in agent.messages] == [QUESTION]
    shown = seen["shown"]
    assert shown["user"] == QUESTION and shown["bot"] == REPLY, "character for character"
    assert shown["lang"] == "zh-Hans" and shown["wraps"] and not shown["page"]
    assert seen["replayed"] == [QUESTION, REPLY]


def test_an_english_browser_keeps_the_english_page(chat: Tuple[str, ChineseAgent], tmp_path: Path):
    page_url, _ = chat

    async def scenario() -> List[Any]:
        browser = await Browser(tmp_path / "profile").start()
        try:
            version = await browser.call("Browser.getVersion")
            await browser.call(
                "Emulation.setUserAgentOverride",
                userAgent=version["userAgent"],
                acceptLanguage="fr-FR,en-GB,zh-CN",
            )
            await browser.open(page_url)
            await browser.wait_for(f"{STATUS} === 'Connected'", what="the page to connect")
            return await browser.evaluate(
                "[document.documentElement.lang,"
                " document.getElementById('webchat-input').placeholder,"
                " document.querySelector('.webchat-greeting p').lang]"
            )
        finally:
            await browser.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 120)) == [
        "en",
        "Type your message and press Enter",
        "zh-Hans",  # the Chinese greeting is still marked Chinese, for its font
    ]
