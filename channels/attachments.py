"""What a customer attached, in one shape for every channel.

A photo of a damaged item, a voice note or a document reaches the tracker as message
metadata (``attachments``: kind, MIME type, platform file id or URL, name, size), and
the bot is told by a message ``/send_attachment{...}`` with the entities
``attachment_kind`` and ``attachment_supported``, so that its domain decides
what to say. Channels download nothing: the metadata says where the file is, for an
action or an agent that needs it.

That notice is the channel's own words, not the customer's: it reaches Rasa already
parsed (:attr:`Said.parse_data`, Rasa's own reading of the intent shortcut), so it
needs no intent shortcut in text, which customers may not use
(:mod:`rasa_llm.server.intent_shortcuts`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from rasa.core.channels.channel import OutputChannel, UserMessage

# The kinds the bot accepts, and the words it uses for them in replies.
SUPPORTED_KINDS = {
    "image": "photo",
    "audio": "voice note",
    "video": "video",
    "document": "document",
}
# Kinds a customer can send on some platform that the bot cannot use.
UNSUPPORTED_WORDS = {
    "sticker": "sticker",
    "location": "location",
    "contact": "contact card",
    "animation": "animation",
    "other": "file",
}

INTENT = "send_attachment"


@dataclass(frozen=True)
class Attachment:
    """One file or object a customer sent."""

    kind: str  # a key of SUPPORTED_KINDS or UNSUPPORTED_WORDS
    mime_type: Optional[str] = None
    url: Optional[str] = None
    file_id: Optional[str] = None
    name: Optional[str] = None
    size: Optional[int] = None

    @property
    def supported(self) -> bool:
        """Whether the bot can use this kind of attachment."""
        return self.kind in SUPPORTED_KINDS

    @property
    def word(self) -> str:
        """The word the bot's replies use for this kind ("photo", "voice note", ...)."""
        return SUPPORTED_KINDS.get(self.kind) or UNSUPPORTED_WORDS.get(self.kind, "file")


def kind_from_mime(mime_type: Optional[str]) -> str:
    """image/*, audio/*, video/* by MIME family; PDFs, text and office files are documents."""
    if not mime_type:
        return "other"
    family, _, subtype = mime_type.lower().partition("/")
    if family in ("image", "audio", "video"):
        return family
    if family == "text" or subtype in {
        "pdf",
        "msword",
        "rtf",
        "vnd.openxmlformats-officedocument.wordprocessingml.document",
        "vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "vnd.ms-excel",
        "vnd.oasis.opendocument.text",
    }:
        return "document"
    return "other"


@dataclass(frozen=True)
class Said:
    """One message to hand Rasa: its text, metadata, and, for a message the channel
    makes itself, its parse (Rasa then skips NLU for it).
    """

    text: str
    metadata: Dict[str, Any] = field(default_factory=dict)
    parse_data: Optional[Dict[str, Any]] = None

    def with_metadata(self, extra: Dict[str, Any]) -> Said:
        """The same message with ``extra`` added to its metadata (``extra`` wins)."""
        return Said(self.text, {**self.metadata, **extra}, self.parse_data)

    def user_message(self, output: OutputChannel, sender_id: str, channel: str) -> UserMessage:
        """The message as Rasa takes it from ``channel``, answered through ``output``."""
        return UserMessage(
            self.text,
            output,
            sender_id,
            parse_data=self.parse_data,
            input_channel=channel,
            metadata=self.metadata,
        )


def channel_intent(payload: str) -> Dict[str, Any]:
    """Rasa's parse of an intent payload (``/intent{"entity": ...}``) that a channel,
    not a customer, produced: an attachment notice, an operator's Telegram command.
    """
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import (
        YAMLStoryReader,
    )
    from rasa.shared.nlu.training_data.message import Message

    parsed = YAMLStoryReader.unpack_regex_message(
        Message(data={"text": payload}), None, entity_extractor_name="channel"
    )
    intent = parsed.get("intent")
    if not isinstance(intent, dict) or not intent.get("name"):
        raise ValueError("not an intent payload (/intent or /intent{...})")
    return dict(parsed.as_dict(only_output_properties=True))


def user_messages(text: Optional[str], attachments: Sequence[Attachment]) -> List[Said]:
    """The messages to hand Rasa for one customer message.

    With attachments, the first message tells the bot what arrived (the first
    attachment decides the wording), parsed by the channel; a caption follows as its
    own message so NLU reads it. Metadata of both carries every attachment.
    """
    metadata: Dict[str, Any] = {}
    messages: List[Said] = []
    if attachments:
        metadata = {"attachments": [asdict(item) for item in attachments]}
        first = attachments[0]
        entities = {"attachment_kind": first.word, "attachment_supported": first.supported}
        notice = f"/{INTENT}{json.dumps(entities)}"
        messages.append(Said(notice, metadata, channel_intent(notice)))
    if text and text.strip():
        messages.append(Said(text, metadata))
    return messages
