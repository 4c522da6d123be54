"""The web chat's wire format: what the page may send, and what the bot sends back.

Client frames are JSON text frames; each is checked here before anything reads its
content, and a bad one raises :class:`FrameRejected` with a reason that names the
problem, never the text. Bot messages are reduced to a small, known set of fields
(text, buttons, image, link, custom) with URLs limited to http(s), so the page renders
them with ``textContent`` and attributes only. The same reduction turns tracker events
back into the conversation a reloaded page shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

from channels.text_splitting import split_text
from channels.webhook_guard import WebhookRejected, load_json

MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_BUTTONS = 20
MAX_TITLE_CHARS = 200
MAX_URL_CHARS = 2048


class FrameRejected(Exception):
    """A client frame the chat refuses; ``reason`` is safe to log and to send back."""

    def __init__(self, reason: str, *, message_id: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id


@dataclass(frozen=True)
class Hello:
    """The first frame: an existing session to resume, or none for a new one."""

    session_id: Optional[str]
    token: Optional[str]


@dataclass(frozen=True)
class ChatMessage:
    """A customer message; ``display`` is the button title shown for a payload."""

    id: str
    text: str
    display: Optional[str] = None


def parse_client_frame(
    raw: Union[str, bytes], *, max_bytes: int, max_text_chars: int
) -> Union[Hello, ChatMessage]:
    """The hello or message a page sent; raise FrameRejected, saying why, for anything else."""
    if isinstance(raw, (bytes, bytearray)):
        raise FrameRejected("binary frames are not accepted; send JSON text frames")
    size = len(raw.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise FrameRejected(f"frame of {size} bytes is larger than {max_bytes} bytes")
    try:
        frame = load_json(raw, what="frame")
    except WebhookRejected as error:
        raise FrameRejected(error.reason) from error
    if not isinstance(frame, dict):
        raise FrameRejected(f"frame is JSON {type(frame).__name__}, expected an object")
    kind = frame.get("type")
    if kind == "hello":
        _only(frame, {"type", "session_id", "token"})
        session_id, token = frame.get("session_id"), frame.get("token")
        if session_id is None and token is not None:
            raise FrameRejected("hello has a token but no session_id")
        return Hello(session_id, token)
    if kind == "message":
        _only(frame, {"type", "id", "text", "display"})
        message_id = frame.get("id")
        if not isinstance(message_id, str) or not MESSAGE_ID.fullmatch(message_id):
            raise FrameRejected("message id must be 8 to 64 letters, digits, - or _")
        text = frame.get("text")
        if not isinstance(text, str) or not text.strip():
            raise FrameRejected("message text must be a non-empty string", message_id=message_id)
        if len(text) > max_text_chars:
            raise FrameRejected(
                f"message text longer than {max_text_chars} characters", message_id=message_id
            )
        display = frame.get("display")
        if display is not None and (not isinstance(display, str) or len(display) > MAX_TITLE_CHARS):
            raise FrameRejected(
                f"display must be a string of at most {MAX_TITLE_CHARS} characters",
                message_id=message_id,
            )
        return ChatMessage(message_id, text, display or None)
    raise FrameRejected(
        "frame type must be 'hello' or 'message'"
        if kind is None or isinstance(kind, str)
        else "frame type must be a string"
    )


def _only(frame: Mapping[str, Any], allowed: set) -> None:
    unknown = sorted(str(key)[:40] for key in frame if key not in allowed)
    if unknown:
        raise FrameRejected(f"unknown field(s): {', '.join(unknown)}")


# ---------------------------------------------------------------- bot messages
def safe_url(value: Any) -> Optional[str]:
    """``value`` if it is an http(s) or same-site URL, else None (no javascript: etc.)."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_CHARS:
        return None
    value = value.strip()
    if value.startswith("/") and not value.startswith("//"):
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def render_bot_message(message: Mapping[str, Any], *, max_chars: int) -> List[Dict[str, Any]]:
    """The bubbles for one bot message (Rasa's ``send_response`` dictionary).

    Long text becomes several bubbles, the buttons going with the last; then an
    image, a link to an attachment, carousel elements and custom JSON, each its own.
    """
    bubbles: List[Dict[str, Any]] = []
    text = message.get("text")
    buttons = _buttons(message.get("buttons") or message.get("quick_replies"))
    pieces = split_text(text, max_chars) if isinstance(text, str) else []
    if buttons and not pieces:
        pieces = [""]
    for index, piece in enumerate(pieces):
        bubble: Dict[str, Any] = {"text": piece}
        if buttons and index == len(pieces) - 1:
            bubble["buttons"] = buttons
        bubbles.append(bubble)
    image = safe_url(message.get("image"))
    if image:
        bubbles.append({"image": image})
    attachment = message.get("attachment")
    shown = _attachment(attachment, max_chars) if attachment is not None else None
    if shown:
        bubbles.append(shown)
    elements = message.get("elements")
    if isinstance(elements, list):
        for element in elements:
            if isinstance(element, Mapping):
                bubbles.extend(_element(element, max_chars))
    custom = message.get("custom")
    if custom is not None:
        bubbles.append({"custom": custom})
    return bubbles


def _buttons(value: Any) -> List[Dict[str, str]]:
    if not isinstance(value, list):
        return []
    buttons: List[Dict[str, str]] = []
    for button in value[:MAX_BUTTONS]:
        if not isinstance(button, Mapping):
            continue
        title = str(button.get("title") or button.get("payload") or "")[:MAX_TITLE_CHARS]
        url = safe_url(button.get("url"))
        payload = button.get("payload")
        if url:
            buttons.append({"title": title or url, "url": url})
        elif isinstance(payload, str) and payload:
            buttons.append({"title": title, "payload": payload})
    return buttons


def _attachment(value: Any, max_chars: int) -> Optional[Dict[str, Any]]:
    # Rasa passes a URL string; Facebook-style bots pass {"type": ..., "payload": {"src"}}.
    url = safe_url(value)
    if url is None and isinstance(value, Mapping):
        payload = value.get("payload")
        url = (
            safe_url(payload.get("src") or payload.get("url"))
            if isinstance(payload, Mapping)
            else None
        )
        if url and value.get("type") == "image":
            return {"image": url}
    if url:
        return {"link": url}
    if isinstance(value, str) and value.strip():  # a description, not a URL
        return {"text": split_text(value, max_chars)[0]}
    return None


def _element(element: Mapping[str, Any], max_chars: int) -> List[Dict[str, Any]]:
    title = str(element.get("title") or "")
    subtitle = str(element.get("subtitle") or "")
    text = f"{title}\n{subtitle}".strip()
    bubbles = render_bot_message(
        {"text": text, "buttons": element.get("buttons")}, max_chars=max_chars
    )
    image = safe_url(element.get("image_url"))
    if image:
        bubbles.insert(0, {"image": image})
    return bubbles


# ---------------------------------------------------------------- turn and greeting
def typing_frame(active: bool) -> Dict[str, Any]:
    """Shows (``active``) or hides the page's typing indicator: sent when the bot's turn
    on a message starts, and when it ends, however it ends.
    """
    return {"type": "typing", "active": active}


def greeting_frame(text: str, suggestions: Sequence[str]) -> Dict[str, Any]:
    """The ``greeting`` of a ``history`` frame: what the page shows a conversation that
    has not begun. Each suggestion is a question the page sends, when clicked, as the
    customer's text (never a payload), so it is shown and sent as the same words.
    """
    return {"text": text, "suggestions": list(suggestions)}


# ---------------------------------------------------------------- history
def history_from_events(
    events: Sequence[Mapping[str, Any]], *, max_chars: int, limit: int
) -> List[Dict[str, Any]]:
    """The conversation as the page shows it, from a tracker's events, last ``limit``.

    A customer's message shows what they saw when sending it (``display`` in its
    metadata: a button's title, an attachment's name), else its text.
    """
    entries: List[Dict[str, Any]] = []
    for event in events:
        kind = event.get("event")
        if kind == "user":
            metadata = event.get("metadata") or {}
            ours = metadata.get("webchat") if isinstance(metadata, Mapping) else None
            ours = ours if isinstance(ours, Mapping) else {}
            display = ours.get("display")
            text = display if isinstance(display, str) and display else event.get("text")
            if isinstance(text, str) and text:
                entry = {"from": "user", "text": text}
                if isinstance(ours.get("message_id"), str):
                    # The page matches it with a message it still thinks is unsent.
                    entry["id"] = ours["message_id"]
                entries.append(entry)
        elif kind == "bot":
            data = event.get("data") or {}
            message = {**(data if isinstance(data, Mapping) else {}), "text": event.get("text")}
            message.pop("custom", None)  # custom JSON drives a page once, live
            entries.extend(
                {"from": "bot", **bubble}
                for bubble in render_bot_message(message, max_chars=max_chars)
            )
    return entries[-limit:] if limit else []
