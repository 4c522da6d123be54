"""Bot replies to the web chat: every open page of a session, in this process.

Rasa hands each bot message to :class:`WebChatOutput`, which reduces it to the known
bubble fields (:func:`channels.webchat_frames.render_bot_message`) and sends each as a
``{"type": "bot", "message": {...}}`` frame to the session's pages in
:class:`SessionHub`. A page that is closed or stalls is dropped from the hub; it sees
the reply in the history it gets when it comes back.

Rasa names the recipient by its conversation id, ``webchat:<session id>``; a reply for
any other id (another channel's conversation, or a bare id) is refused with one log
line that names the channels, not the id, and reaches no page.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, Iterable, List, Set

from rasa.core.channels.channel import OutputChannel
from sanic.exceptions import WebsocketClosed
from websockets.exceptions import ConnectionClosed

from channels.conversation_ids import recipient
from channels.webchat_config import CHANNEL
from channels.webchat_frames import render_bot_message

SEND_TIMEOUT_SECONDS = 10
CLOSE_TOO_SLOW = 1013  # "try again later"


def dumps(frame: Dict[str, Any]) -> str:
    """A frame as compact JSON text, non-ASCII characters kept."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


class SessionHub:
    """The open sockets of each session in this process."""

    def __init__(self) -> None:
        self._sockets: Dict[str, Set[Any]] = {}

    def add(self, session_id: str, socket: Any) -> None:
        """Register an open socket of the session."""
        self._sockets.setdefault(session_id, set()).add(socket)

    def discard(self, session_id: str, socket: Any) -> None:
        """Forget a socket of the session (closed or dropped)."""
        sockets = self._sockets.get(session_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[session_id]

    def count(self, session_id: str) -> int:
        """How many sockets the session has open in this process."""
        return len(self._sockets.get(session_id, ()))

    async def send(self, session_id: str, frame: Dict[str, Any]) -> int:
        """Send to every open page of the session; how many got it."""
        data = dumps(frame)
        delivered = 0
        for socket in list(self._sockets.get(session_id, ())):
            try:
                await asyncio.wait_for(socket.send(data), SEND_TIMEOUT_SECONDS)
                delivered += 1
            except (ConnectionClosed, WebsocketClosed, OSError):
                # A page that went away gets the reply from the history when it is back.
                self.discard(session_id, socket)
            except asyncio.TimeoutError:
                # A page that stalls would miss replies while looking connected: close
                # it, so that it reconnects and gets them from the history.
                self.discard(session_id, socket)
                fail = getattr(socket, "fail_connection", None)
                if fail is not None:
                    fail(CLOSE_TOO_SLOW, "the page did not take a reply in time")
        return delivered


class WebChatOutput(OutputChannel):
    """Bot messages as ``{"type": "bot", "message": {...}}`` frames to the session's pages."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``webchat``."""
        return CHANNEL

    def __init__(self, hub: SessionHub, *, max_reply_chars: int) -> None:
        self.hub = hub
        self.max_reply_chars = max_reply_chars

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """Send the bot's message, as the page's bubbles, to the session's open pages."""
        session_id = recipient(CHANNEL, recipient_id)
        if session_id is None:
            return
        for bubble in render_bot_message(message, max_chars=self.max_reply_chars):
            await self.hub.send(session_id, {"type": "bot", "message": bubble})

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Send ``text`` to the session's open pages."""
        await self.send_response(recipient_id, {"text": text})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        """Send ``text`` with its buttons to the session's open pages."""
        await self.send_response(recipient_id, {"text": text, "buttons": buttons})

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        """Send ``text`` with the quick replies as buttons."""
        await self.send_response(recipient_id, {"text": text, "buttons": quick_replies})

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        """Send the image at the URL ``image``."""
        await self.send_response(recipient_id, {"image": image})

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        """Send the attachment."""
        await self.send_response(recipient_id, {"attachment": attachment})

    async def send_elements(
        self, recipient_id: str, elements: Iterable[Dict[str, Any]], **kwargs: Any
    ) -> None:
        """Send the elements (cards)."""
        await self.send_response(recipient_id, {"elements": list(elements)})

    async def send_custom_json(
        self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any
    ) -> None:
        """Send a custom JSON message for the page to show."""
        await self.send_response(recipient_id, {"custom": json_message})
