"""What the bot says, posted to Slack with ``chat.postMessage`` through slack_sdk.

Every call goes through :func:`channels.outbound.call_with_retry`: Slack's 429 (with
its ``Retry-After``) and 5xx are retried with back-off, anything else fails at once; a
reply that cannot be delivered is logged with Slack's error code, never its text, and
the conversation goes on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional

import aiohttp
from rasa.core.channels.channel import OutputChannel
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels.outbound import Failure, call_with_retry, http_failure
from channels.slack_format import (
    BLOCKS_PER_MESSAGE,
    button_blocks,
    buttons_fallback,
    image_block,
    section_block,
    split_mrkdwn,
    with_choice_shown,
)

logger = logging.getLogger(__name__)

CHANNEL = "slack"


def classify_slack_error(error: BaseException) -> Failure:
    """slack_sdk's and aiohttp's exceptions as retryable or not, with a reason safe to log."""
    if isinstance(error, SlackApiError):
        response = error.response
        # slack_sdk hands over its own response, or aiohttp's when the body was not JSON.
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
        headers = getattr(response, "headers", None) or {}
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        failure = http_failure(status, headers.get("Retry-After"))
        if code:
            return Failure(failure.retryable, f"{failure.reason} ({code})", failure.retry_after)
        return failure
    if isinstance(error, (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)):
        return Failure(retryable=True, reason=f"connection error ({type(error).__name__})")
    return Failure(retryable=False, reason=f"unexpected {type(error).__name__}")


class SlackBot(OutputChannel):
    """Replies to one Slack conversation: a channel, and a thread in it when there is one."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def __init__(
        self,
        client: AsyncWebClient,
        slack_channel: Optional[str] = None,
        thread_id: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.slack_channel = slack_channel
        self.thread_id = thread_id

    async def _call(self, operation: str, call: Callable[[], Awaitable[Any]]) -> Optional[Any]:
        return await call_with_retry(CHANNEL, operation, call, classify_slack_error)

    async def _post(self, recipient_id: str, **message: Any) -> None:
        channel = message.pop("channel", None) or self.slack_channel or recipient_id
        if self.thread_id and "thread_ts" not in message:
            message["thread_ts"] = self.thread_id

        async def post() -> Any:
            return await self.client.chat_postMessage(channel=channel, **message)

        await self._call("chat.postMessage", post)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for piece in split_mrkdwn(text):
            await self._post(recipient_id, text=piece)

    async def send_text_with_buttons(
        self,
        recipient_id: str,
        text: str,
        buttons: List[Dict[str, Any]],
        **kwargs: Any,
    ) -> None:
        # Long text goes first as plain messages; the buttons ride on its last piece,
        # so they sit right under the question they answer.
        pieces = split_mrkdwn(text or "")
        for piece in pieces[:-1]:
            await self._post(recipient_id, text=piece)
        last = pieces[-1] if pieces else None
        actions = button_blocks(buttons)
        head = [section_block(last)] if last else []
        room = BLOCKS_PER_MESSAGE - len(head)
        if len(actions) > room:
            logger.warning(
                "%s: %d buttons do not fit in one message; the last ones are left out",
                CHANNEL,
                len(buttons),
            )
        await self._post(
            recipient_id,
            text=last or buttons_fallback(buttons),
            blocks=head + actions[:room],
        )

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._post(recipient_id, text=image, blocks=[image_block(image)])

    async def send_attachment(  # type: ignore[override]
        self, recipient_id: str, attachment: Any, **kwargs: Any
    ) -> None:
        """A dict is a legacy Slack attachment (as the stock channel sends); text is shown."""
        if isinstance(attachment, dict):
            await self._post(recipient_id, attachments=[attachment])
        else:
            await self.send_text_message(recipient_id, str(attachment))

    async def send_custom_json(
        self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any
    ) -> None:
        """A ``custom`` response is a ``chat.postMessage`` body, as with the stock channel."""
        await self._post(recipient_id, **dict(json_message))

    async def show_choice(
        self, channel: str, message_ts: str, blocks: List[Dict[str, Any]], text: str, chosen: str
    ) -> None:
        """Replace the buttons of a clicked message by the choice that was made."""
        new_blocks = with_choice_shown(blocks, chosen)

        async def update() -> Any:
            return await self.client.chat_update(
                channel=channel, ts=message_ts, text=text or chosen, blocks=new_blocks
            )

        await self._call("chat.update", update)
