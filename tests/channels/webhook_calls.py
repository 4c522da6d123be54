"""Calling a channel's ``handle`` without a server, and a database slow for one call.

The webhook tests that need a real Rasa server are in the ``*_server.py`` files; these
helpers serve the ones that need control over timing instead.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Iterable, List, Mapping, Optional, Sequence, cast
from urllib.parse import urlsplit

import pytest
from rasa.core.channels.channel import UserMessage
from sanic.compat import Header
from sanic.request import Request


class _Posted:
    """What a channel's ``handle`` reads of a Sanic request: the raw body and headers,
    and the URL it was posted to."""

    def __init__(self, body: bytes, headers: Mapping[str, str], url: str) -> None:
        parts = urlsplit(url)
        self.body = body
        self.headers = Header({"host": parts.netloc, **headers})  # case-insensitive
        self.scheme = parts.scheme
        self.path = parts.path
        self.query_string = parts.query


def webhook_request(
    body: bytes, headers: Mapping[str, str], *, url: str = "http://127.0.0.1/webhook"
) -> Request:
    """A request as ``handle`` sees it, without a server."""
    return cast(Request, _Posted(body, headers, url))


class Bot:
    """``on_new_message``: records the texts that reach the bot."""

    def __init__(self) -> None:
        self.reached: List[str] = []

    async def __call__(self, message: Any) -> None:
        self.reached.append(message.text)


class MessageBot:
    """``on_new_message``: keeps each ``UserMessage`` (text, parse_data, sender id) and,
    given ``reply``, answers it through the message's output channel."""

    def __init__(self, reply: Optional[str] = None) -> None:
        self.messages: List[UserMessage] = []
        self.reply = reply

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        if self.reply is not None:
            await message.output_channel.send_text_message(message.sender_id, self.reply)


def slow_first_call(
    monkeypatch: pytest.MonkeyPatch, owner: type, method: str, seconds: float = 0.5
) -> None:
    """Make ``owner.method``'s first call (in any thread) take ``seconds`` longer."""
    original = getattr(owner, method)
    calls = itertools.count()  # next() is atomic under the GIL: one call gets 0

    def slowed(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == 0:
            time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, slowed)


async def settle(tasks: Iterable[asyncio.Future]) -> None:
    """Wait for the channel's out-of-band work (at most 10 s)."""
    pending = list(tasks)
    if pending:
        await asyncio.wait_for(asyncio.gather(*pending), 10)


def posted_together(channel: Any, requests: Sequence[Request]) -> List[str]:
    """Post ``requests`` to ``channel.handle`` at once, wait for the bot's turns, close the
    channel; the texts that reached the bot, in the order they did."""
    bot = Bot()

    async def scenario() -> None:
        try:
            answers = await asyncio.gather(*(channel.handle(r, bot) for r in requests))
            assert [answer.status for answer in answers] == [200] * len(requests)
            await settle(channel._tasks)
        finally:
            await channel.close()

    asyncio.run(scenario())
    return bot.reached
