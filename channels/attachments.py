"""What a customer attached, in one shape for every channel.

A photo of a damaged item, a voice note or a document reaches the tracker as message
metadata (``attachments``: kind, MIME type, platform file id or URL, name, size), and
the bot is told by a message ``/send_attachment{...}`` with the entities
``attachment_kind`` and ``attachment_supported``, so that its domain decides
what to say. Channels download nothing: the metadata says where the file is, for an
action or an agent that needs it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
        return self.kind in SUPPORTED_KINDS

    @property
    def word(self) -> str:
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


def user_messages(
    text: Optional[str], attachments: Sequence[Attachment]
) -> List[Tuple[str, Dict[str, Any]]]:
    """The (text, metadata) messages to hand Rasa for one customer message.

    With attachments, the first message tells the bot what arrived (the first
    attachment decides the wording); a caption follows as its own message so NLU reads
    it. Metadata of both carries every attachment.
    """
    metadata: Dict[str, Any] = {}
    messages: List[Tuple[str, Dict[str, Any]]] = []
    if attachments:
        metadata = {"attachments": [asdict(item) for item in attachments]}
        first = attachments[0]
        entities = {"attachment_kind": first.word, "attachment_supported": first.supported}
        messages.append((f"/{INTENT}{json.dumps(entities)}", metadata))
    if text and text.strip():
        messages.append((text, metadata))
    return messages
