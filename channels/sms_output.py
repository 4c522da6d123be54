"""The bot's replies as SMS: numbered options for buttons, MMS for images, split to segments.

Every reply passes the same steps: the recipient must be a conversation of this
channel (``sms:<number>``; an id of another channel is refused with one log line, and
nothing is sent), the number's opt-out is checked (nothing goes to a number that
texted STOP, whatever asks to send: a reply, a reminder, the HTTP API),
the text is split into messages of at most ``max_segments`` segments (look-alike
characters made GSM-7 where that makes a message GSM-7, ``smart_encoding``), and the
messages are handed to a *delivery*: :class:`RestDelivery` (Twilio's REST API, the default) or
:class:`TwimlReply` (the webhook's own TwiML answer, falling back to REST when the
bot is slower than the deadline). Buttons become numbered lines, remembered per
sender so that "1" can be read as the first button's payload
(:mod:`channels.sms_state`), and ``options_prompt`` after them in the reply's own
language (its text's, else its buttons' titles'; English when neither tells).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

from rasa.core.channels.channel import OutputChannel
from twilio.twiml.messaging_response import MessagingResponse

from channels.conversation_ids import recipient
from channels.sms_config import CHANNEL, SmsConfig, reply_language
from channels.sms_rest import TwilioMessages
from channels.sms_segments import split_sms
from channels.sms_state import Option, SenderStore

logger = logging.getLogger(__name__)

Outgoing = Tuple[str, str, Tuple[str, ...]]  # (to, body, media URLs)


class Delivery(Protocol):
    """Where finished messages go."""

    async def deliver(self, to: str, body: str, media_urls: Sequence[str]) -> bool:
        """Send one message to ``to``; whether it was taken."""


class RestDelivery:
    """Each message through Twilio's REST API, in order, sent once (channels.sms_rest)."""

    def __init__(self, messages: TwilioMessages) -> None:
        self.messages = messages

    async def deliver(self, to: str, body: str, media_urls: Sequence[str]) -> bool:
        """Send one message through the REST API; whether Twilio took it."""
        return await self.messages.send(to, body, media_urls=media_urls)


def empty_twiml() -> str:
    """A TwiML answer that tells Twilio to send nothing."""
    return str(MessagingResponse().to_xml())


class TwimlReply:
    """Collects one webhook's replies as TwiML ``<Message>`` elements until a deadline.

    The webhook waits for the bot up to ``twiml_deadline_seconds``. If the bot is done,
    :meth:`take_twiml` answers with the messages. If not, :meth:`fall_back` sends the
    ones collected so far through ``rest`` and every later one goes the same way, in
    order: the lock makes a reply that arrives meanwhile wait behind the flush.
    """

    def __init__(self, rest: Delivery) -> None:
        self.rest = rest
        self._pending: List[Outgoing] = []
        self._through_rest = False
        self._lock = asyncio.Lock()

    async def deliver(self, to: str, body: str, media_urls: Sequence[str]) -> bool:
        """Keep the message for the TwiML answer, or send it through REST once past the deadline."""
        async with self._lock:
            if self._through_rest:
                return await self.rest.deliver(to, body, media_urls)
            self._pending.append((to, body, tuple(media_urls)))
            return True

    def take_twiml(self) -> str:
        """The TwiML answer with everything collected; later replies go through REST."""
        self._through_rest = True
        pending, self._pending = self._pending, []
        answer = MessagingResponse()
        for _to, body, media_urls in pending:
            # The reply goes to the sender of the webhook's message: no `to` needed.
            message = answer.message(body) if body and not media_urls else answer.message()
            if media_urls:
                if body:
                    message.body(body)
                for url in media_urls:
                    message.media(url)
        return str(answer.to_xml())

    async def fall_back(self) -> None:
        """Send what was collected through REST, and everything after it too."""
        async with self._lock:
            self._through_rest = True
            pending, self._pending = self._pending, []
            for to, body, media_urls in pending:
                await self.rest.deliver(to, body, media_urls)


class TwilioSmsOutput(OutputChannel):
    """Rasa's output channel for SMS through Twilio."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``twilio``."""
        return CHANNEL

    def __init__(self, config: SmsConfig, store: SenderStore, delivery: Delivery) -> None:
        self.config = config
        self.store = store
        self.delivery = delivery

    @staticmethod
    def _number(recipient_id: str) -> Optional[str]:
        """The phone number of a conversation of this channel; None (logged) for another's."""
        return recipient(CHANNEL, recipient_id)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Send ``text`` to the recipient's number, split into SMS segments."""
        number = self._number(recipient_id)
        if number is not None:
            await self._send(number, text)

    # Rasa's OutputChannel.send_text_with_buttons signature, alike in every channel.
    async def send_text_with_buttons(
        self,
        recipient_id: str,
        text: str,
        buttons: List[Dict[str, Any]],
        **kwargs: Any,
    ) -> None:
        """Send ``text`` with the buttons as numbered options the customer answers with."""
        number = self._number(recipient_id)
        if number is None:
            return
        body, options = self.numbered(text, buttons)
        if await self._send(number, body) and options:
            await self.store.remember_options(number, options)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        """Send the image at the URL ``image`` as MMS media."""
        number = self._number(recipient_id)
        if number is not None:
            await self._send(number, "", media_urls=(image,))

    async def send_attachment(self, recipient_id: str, attachment: str, **kwargs: Any) -> None:
        """Send the attachment as text."""
        number = self._number(recipient_id)
        if number is not None:
            await self._send(number, str(attachment))

    async def send_elements(
        self, recipient_id: str, elements: Iterable[Dict[str, Any]], **kwargs: Any
    ) -> None:
        """A carousel as text: each element's title and subtitle, then all its buttons."""
        number = self._number(recipient_id)
        if number is None:
            return
        lines: List[str] = []
        media: List[str] = []
        buttons: List[Dict[str, Any]] = []
        for element in elements:
            lines.extend(str(element[key]) for key in ("title", "subtitle") if element.get(key))
            if element.get("image_url"):
                media.append(str(element["image_url"]))
            buttons.extend(element.get("buttons") or [])
        body, options = self.numbered("\n".join(lines), buttons)
        if await self._send(number, body, media_urls=media[:10]) and options:
            await self.store.remember_options(number, options)

    async def send_custom_json(
        self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any
    ) -> None:
        """``{"body": ..., "media_url": ...}`` (the keys of the stock channel) as one message."""
        number = self._number(recipient_id)
        if number is None:
            return
        body = json_message.get("body") or json_message.get("text") or ""
        media = json_message.get("media_url") or []
        media_urls = [media] if isinstance(media, str) else [str(url) for url in media]
        if not body and not media_urls:
            logger.warning("%s: custom reply without body or media_url not sent", CHANNEL)
            return
        await self._send(number, str(body), media_urls=media_urls)

    async def send_notice(self, recipient_id: str, text: str) -> None:
        """A compliance answer (HELP, STOP, START): sent even to an opted-out number.

        Carriers require HELP to be answered whatever the subscription state.
        """
        number = self._number(recipient_id)
        if number is not None:
            await self._send(number, text, respect_opt_out=False)

    # ---------------------------------------------------------------- helpers
    def numbered(self, text: str, buttons: Sequence[Dict[str, Any]]) -> Tuple[str, List[Option]]:
        """The text with one numbered line per button, and the options they stand for."""
        options: List[Option] = []
        lines = [text.strip()] if text and text.strip() else []
        for button in buttons:
            title = " ".join(str(button.get("title") or "").split())
            if button.get("url"):  # a link button: the link itself is the best SMS can do
                lines.append(f"{title}: {button['url']}" if title else str(button["url"]))
                continue
            payload = button.get("payload")
            if not title or payload is None:
                continue
            options.append(Option(title, str(payload)))
            lines.append(f"{len(options)}. {title}")
        if options:
            titles = " ".join(option.title for option in options)
            prompt = self.config.options_prompt.said_in(reply_language(text or "", titles))
            if prompt:
                lines.append(prompt)
        return "\n".join(lines), options

    async def _send(
        self,
        number: str,
        text: str,
        *,
        media_urls: Sequence[str] = (),
        respect_opt_out: bool = True,
    ) -> bool:
        """Deliver ``text`` (split to segments) and the media to ``number``; True if all
        went out.
        """
        if respect_opt_out and await self.store.is_opted_out(number):
            logger.info("%s: reply not sent, the recipient opted out (STOP)", CHANNEL)
            return False
        pieces = split_sms(
            text,
            max_segments=self.config.max_segments,
            smart_encoding=self.config.smart_encoding,
        )
        media: Optional[Sequence[str]] = media_urls
        if not pieces and media:
            pieces = [""]
        delivered = bool(pieces)
        for piece in pieces:
            # An MMS carries its media once, with the first part of the text.
            delivered &= await self.delivery.deliver(number, piece, media or ())
            media = None
        return delivered
