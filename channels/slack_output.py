"""What the bot says, posted to Slack with ``chat.postMessage`` through slack_sdk.

The recipient is a conversation id of this channel (``slack:U0CUSTOMER``, or
``slack:U0CUSTOMER_C0SUPPORT_1700000000.000100`` by granularity): a reply goes to the
channel and thread the output was made for, or else to where the id says the
conversation is (the user's DM, or the channel and thread in it). An id of another
channel is refused: one log line, nothing posted.

Every call goes through :func:`channels.outbound.call_with_retry`, at most once per
message: Slack's 429 (with its ``Retry-After``), 503 and a connection that could not
be opened are retried with back-off; a timeout, a dropped connection or another 5xx
may have posted the message already, and Slack has no way to ask, so it is logged as
possibly undelivered and not posted again; anything else fails at once. A reply that
cannot be delivered is logged with Slack's error code, never its text, and the
conversation goes on.

The words the channel adds follow the language of the message they belong to: a
buttons-only message's notification text that of its buttons, an image's alt text that
of the text this output posted last (Rasa sends a response's text before its image),
"You chose: …" that of the clicked question (:mod:`channels.slack_format`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import aiohttp
from rasa.core.channels.channel import OutputChannel
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels.conversation_ids import recipient
from channels.outbound import (
    AT_MOST_ONCE,
    Failure,
    RetryPolicy,
    call_with_retry,
    connection_failure,
    http_failure,
)
from channels.slack_format import (
    BLOCKS_PER_MESSAGE,
    button_blocks,
    buttons_fallback,
    image_block,
    reply_language,
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
        failure = http_failure(status, retry_after=headers.get("Retry-After"))
        if code:
            return replace(failure, reason=f"{failure.reason} ({code})")
        return failure
    if isinstance(error, (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)):
        return connection_failure(error)
    return Failure(retryable=False, reason=f"unexpected {type(error).__name__}")


def destination(conversation: str) -> Tuple[str, Optional[str]]:
    """Where a conversation's platform id says to answer: (Slack channel, thread).

    The id is the stock channel's: ``user`` (answered in a DM: Slack opens one for a
    user id), ``user_channel`` or ``user_channel_thread``. Slack's ids hold no ``_``.
    """
    parts = conversation.split("_", 2)
    if len(parts) == 1:
        return parts[0], None
    return parts[1], (parts[2] if len(parts) == 3 and parts[2] else None)


class SlackBot(OutputChannel):
    """Replies to one Slack conversation: a channel, and a thread in it when there is one."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``slack``."""
        return CHANNEL

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        slack_channel: Optional[str] = None,
        thread_id: Optional[str] = None,
        policy: RetryPolicy = AT_MOST_ONCE,
    ) -> None:
        super().__init__()
        self.client = client
        self.slack_channel = slack_channel
        self.thread_id = thread_id
        self.policy = policy
        # The language of the last text posted that told one, for words added later.
        self.language: Optional[str] = None

    def _heard(self, *texts: str) -> Optional[str]:
        """The language of a message being posted (its texts, in order), remembered
        when it tells one; else the last one that did.
        """
        self.language = reply_language(*texts) or self.language
        return self.language

    async def _call(self, operation: str, call: Callable[[], Awaitable[Any]]) -> Optional[Any]:
        return await call_with_retry(
            CHANNEL, operation, call, classify_slack_error, policy=self.policy
        )

    def _where(self, recipient_id: str) -> Optional[Tuple[str, Optional[str]]]:
        """(Slack channel, thread) for a reply to ``recipient_id``; None (logged) for a
        conversation of another channel.
        """
        conversation = recipient(CHANNEL, recipient_id)
        if conversation is None:
            return None
        if self.slack_channel:
            return self.slack_channel, self.thread_id
        return destination(conversation)

    async def _post(self, where: Tuple[str, Optional[str]], **message: Any) -> None:
        channel = message.pop("channel", None) or where[0]
        if where[1] and "thread_ts" not in message:
            message["thread_ts"] = where[1]

        async def post() -> Any:
            return await self.client.chat_postMessage(channel=channel, **message)

        await self._call("chat.postMessage", post)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Post ``text`` as mrkdwn, split into pieces Slack accepts."""
        where = self._where(recipient_id)
        if where is None:
            return
        self._heard(text)
        for piece in split_mrkdwn(text):
            await self._post(where, text=piece)

    # Rasa's OutputChannel.send_text_with_buttons signature, alike in every channel.
    async def send_text_with_buttons(
        self,
        recipient_id: str,
        text: str,
        buttons: List[Dict[str, Any]],
        **kwargs: Any,
    ) -> None:
        """Post ``text`` with the buttons as Block Kit actions."""
        where = self._where(recipient_id)
        if where is None:
            return
        # Long text goes first as plain messages; the buttons ride on its last piece,
        # so they sit right under the question they answer.
        pieces = split_mrkdwn(text or "")
        for piece in pieces[:-1]:
            await self._post(where, text=piece)
        last = pieces[-1] if pieces else None
        actions = button_blocks(buttons)
        titles = " ".join(str(button.get("title") or "") for button in buttons)
        language = self._heard(text or "", titles)
        head = [section_block(last)] if last else []
        room = BLOCKS_PER_MESSAGE - len(head)
        if len(actions) > room:
            logger.warning(
                "%s: %d buttons do not fit in one message; the last ones are left out",
                CHANNEL,
                len(buttons),
            )
        await self._post(
            where,
            text=last or buttons_fallback(buttons, language=language),
            blocks=head + actions[:room],
        )

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        """Post the image at the URL ``image`` as an image block."""
        where = self._where(recipient_id)
        if where is not None:
            block = image_block(image, language=self.language)
            await self._post(where, text=image, blocks=[block])

    async def send_attachment(  # type: ignore[override]
        self, recipient_id: str, attachment: Any, **kwargs: Any
    ) -> None:
        """A dict is a legacy Slack attachment (as the stock channel sends); text is shown."""
        if not isinstance(attachment, dict):
            await self.send_text_message(recipient_id, str(attachment))
            return
        where = self._where(recipient_id)
        if where is not None:
            await self._post(where, attachments=[attachment])

    async def send_custom_json(
        self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any
    ) -> None:
        """A ``custom`` response is a ``chat.postMessage`` body, as with the stock channel."""
        where = self._where(recipient_id)
        if where is not None:
            await self._post(where, **dict(json_message))

    async def show_choice(
        self, channel: str, message_ts: str, blocks: List[Dict[str, Any]], text: str, chosen: str
    ) -> None:
        """Replace the buttons of a clicked message by the choice that was made."""
        new_blocks = with_choice_shown(blocks, chosen, language=reply_language(text, chosen))

        async def update() -> Any:
            return await self.client.chat_update(
                channel=channel, ts=message_ts, text=text or chosen, blocks=new_blocks
            )

        await self._call("chat.update", update)
