"""What a Telegram update says: the chat, the customer's words and attachments, a click.

Messages (text, commands, captions, photos, voice notes, audio, video, documents;
stickers, locations, contacts and the like as unsupported attachments) and clicks on
inline keyboards (``callback_query``) become an :class:`Incoming`; anything else
(edits unless ``answer_edited_messages`` is on, channel posts, membership changes, a
bot's own messages, a command for another bot in a group) is ignored. A command the
operator mapped in ``commands`` becomes what the mapping says; any other text stays the
customer's words for NLU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

from telegram import CallbackQuery, Message, MessageEntity, Update

from channels.attachments import Attachment, Said, channel_intent, kind_from_mime, user_messages
from channels.telegram_config import TelegramConfig
from channels.webhook_guard import WebhookRejected


@dataclass
class Incoming:
    """One Telegram update, ready for Rasa: the chat and what the customer said."""

    chat_id: str
    delivery_id: str
    messages: List[Said]
    # For a click: the query to answer, and the keyboard's message to show the choice in.
    click: Optional[CallbackQuery] = None
    click_notice: Optional[str] = None


def parse_update(data: Dict[str, Any]) -> Update:
    """The body as a ``telegram.Update``, or a 400 that says why it is not one."""
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise WebhookRejected(400, "body is not a Telegram Update (no integer update_id)")
    try:
        return Update.de_json(data, None)
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise WebhookRejected(
            400, f"body is not a Telegram Update ({type(error).__name__} while parsing)"
        ) from error


class UpdateReader:
    """Reads updates as the channel's settings say (``commands``, ``verify``, edits)."""

    def __init__(self, config: TelegramConfig) -> None:
        self.config = config
        self.commands = config.command_map()

    def incoming(self, update: Update) -> Optional[Incoming]:
        """What the customer said in ``update``, or None for an update to ignore."""
        try:
            if update.callback_query is not None:
                return self._click(update, update.callback_query)
            message = update.message
            if message is None and self.config.answer_edited_messages:
                message = update.edited_message
            if message is None:
                return None  # edits, channel posts, membership changes: nothing to answer
            return self._message(update, message)
        except (AttributeError, TypeError, ValueError) as error:
            raise WebhookRejected(
                400, f"update {update.update_id} is malformed ({type(error).__name__})"
            ) from error

    def _message(self, update: Update, message: Message) -> Optional[Incoming]:
        if message.from_user is not None and message.from_user.is_bot:
            return None
        words = self._words(message)
        if words is None:
            return None  # a command for another bot in a group
        if isinstance(words, Said):
            messages = [words]
        else:
            messages = user_messages(words, message_attachments(message))
        if not messages:
            return None  # a service message: someone joined, a pin, a new title
        metadata = self._metadata(update, message.chat.id, message.message_id, message.from_user)
        return Incoming(
            chat_id=str(message.chat.id),
            delivery_id=str(update.update_id),
            messages=[said.with_metadata({"telegram": metadata}) for said in messages],
        )

    def _words(self, message: Message) -> Union[Said, str, None]:
        """What the customer said: their text (or caption), or for a command the
        operator mapped, what ``commands`` makes of it; None for a command addressed to
        another bot in a group. Any other command stays the customer's text, without
        an ``@bot`` naming this bot ("/help@northwind_help_bot now" is "/help now").
        """
        text = message.text or message.caption or ""
        entities = message.entities or ()
        command = next(
            (e for e in entities if e.type == MessageEntity.BOT_COMMAND and e.offset == 0), None
        )
        if command is None or not message.text:
            return text
        name, _, addressee = text[1 : command.length].partition("@")
        if addressee and self.config.verify and addressee.lower() != self.config.verify.lower():
            return None
        mapped = self.commands.get(name.lower())
        if mapped is not None:
            return _command_said(mapped)
        return f"/{name}{text[command.length :]}"

    def _click(self, update: Update, query: CallbackQuery) -> Optional[Incoming]:
        chat = query.message.chat.id if query.message is not None else query.from_user.id
        if query.data is None:
            return None  # a game's button: nothing for the bot
        metadata = self._metadata(
            update, chat, query.message.message_id if query.message else None, query.from_user
        )
        return Incoming(
            chat_id=str(chat),
            delivery_id=str(update.update_id),
            messages=[Said(query.data, {"telegram": metadata})],
            click=query,
        )

    @staticmethod
    def _metadata(update: Update, chat_id: int, message_id: Optional[int], user: Any) -> Dict:
        return {
            "update_id": update.update_id,
            "chat_id": chat_id,
            "message_id": message_id,
            "user_id": user.id if user is not None else None,
            "language_code": user.language_code if user is not None else None,
        }


def _command_said(text: str) -> Said:
    """What an operator's ``commands`` entry makes: an intent, parsed by the channel,
    or words for NLU.
    """
    if text.startswith("/"):
        return Said(text, {}, channel_intent(text))
    return Said(text)


def message_attachments(message: Message) -> List[Attachment]:
    """What the customer attached, with Telegram's file id (never a URL: it holds the token)."""
    if message.photo:
        largest = message.photo[-1]  # Telegram lists sizes smallest first
        return [_file("image", largest, mime_type="image/jpeg")]
    # An animation (GIF) also comes with `document` set: look at it first.
    if message.animation:
        return [_file("animation", message.animation)]
    if message.voice:
        return [_file("audio", message.voice, mime_type=message.voice.mime_type or "audio/ogg")]
    if message.audio:
        return [_file("audio", message.audio)]
    if message.video:
        return [_file("video", message.video)]
    if message.video_note:
        return [_file("video", message.video_note, mime_type="video/mp4")]
    if message.document:
        return [_file(kind_from_mime(message.document.mime_type), message.document)]
    if message.sticker:
        return [_file("sticker", message.sticker)]
    if message.location or message.venue:
        return [Attachment("location")]
    if message.contact:
        return [Attachment("contact")]
    if message.poll or message.dice or message.game or message.story:
        return [Attachment("other")]
    return []


def _file(kind: str, item: Any, *, mime_type: Optional[str] = None) -> Attachment:
    return Attachment(
        kind,
        mime_type=mime_type or getattr(item, "mime_type", None),
        file_id=item.file_id,
        name=getattr(item, "file_name", None),
        size=item.file_size,
    )
