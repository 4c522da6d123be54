"""The web chat's WebSocket: greeting a page, reading its frames, taking its messages.

Frames, page to server: ``{"type": "hello", "session_id"?, "token"?}`` first, then
``{"type": "message", "id", "text", "display"?}`` (``display``: a button's title for
its payload). Server to page: ``session`` (id, fresh token), ``history`` (with a
``greeting``, text and suggested questions, when the conversation has no message yet:
the page shows it, the tracker never holds it, so a reload after the first message
shows no second one), ``ack`` (id, duplicate), ``user`` (a message from this session,
for its other pages), ``typing`` (``active`` true when the bot's turn on a message
starts, false when it ends, failed or not: the page shows a typing indicator between
them, and drops it when the socket closes or after a minute without a word), ``bot``
(text, buttons, image, link or custom) and ``error`` (code, reason, and the message's
id when it is about one). Close codes: 4401 token refused, 1008 no or bad hello or too
many bad or refused frames, 1007 a text frame that is not UTF-8, 1009 a frame over
``max_frame_bytes``, 1013 a page too slow to take a reply, or a hello over a rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from sanic.exceptions import WebsocketClosed
from sanic.request import Request
from websockets.exceptions import ConnectionClosed

from channels.attachments import Said
from channels.conversation_ids import conversation_id
from channels.delivery_log import DeliveryLog
from channels.rate_limits import RateLimited, client_address
from channels.verification import SessionRejected, SessionSigner
from channels.webchat_config import CHANNEL, WebChatConfig
from channels.webchat_frames import (
    ChatMessage,
    FrameRejected,
    Hello,
    greeting_frame,
    history_from_events,
    parse_client_frame,
    typing_frame,
)
from channels.webchat_limits import WebChatLimits
from channels.webchat_output import SessionHub, dumps
from channels.webchat_turns import OnNewMessage, SessionTurns

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_SECONDS = 10
# A page that keeps sending broken frames is broken or hostile: stop listening to it.
MAX_REJECTED_FRAMES = 20
# Close codes (4000-4999 are the application's): the token did not verify.
CLOSE_UNAUTHORIZED = 4401
CLOSE_POLICY = 1008
CLOSE_BAD_UTF8 = 1007
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
# Messages refused in a row (over a rate limit) before the socket is closed: a page
# waits as told after the first, so only the ones it already sent follow it.
MAX_REFUSED_MESSAGES = 200
# Messages read from one socket and not yet taken; past this the socket waits (a page
# sends as fast as a person types, so only a misbehaving client gets here).
MAX_PENDING_MESSAGES = 32


@dataclass(frozen=True)
class WebChatSocket:
    """Serves the channel's sockets: one hello, then the page's messages, in order."""

    config: WebChatConfig
    signer: SessionSigner
    limits: WebChatLimits
    deliveries: DeliveryLog
    hub: SessionHub
    turns: SessionTurns

    async def serve(self, request: Request, ws: Any, on_new_message: OnNewMessage) -> None:
        """Greet the page, then read its frames until it goes away."""
        _close_on_bad_utf8(ws)
        self._limit_frames(ws)
        address = client_address(request)
        try:
            session_id = await self._greet(request, ws, address)
            if session_id is None:
                return
            self.hub.add(session_id, ws)
            try:
                await self._listen(ws, session_id, address, on_new_message)
            finally:
                self.hub.discard(session_id, ws)
        except (ConnectionClosed, WebsocketClosed):
            return

    def _limit_frames(self, ws: Any) -> None:
        """Refuse a frame over ``max_frame_bytes`` from its header (close 1009).

        The protocol reads its limit before each frame, so this socket's limit holds
        whatever the app's ``WEBSOCKET_MAX_SIZE`` (Sanic's default buffers up to 1 MiB).
        """
        connection = getattr(ws, "connection", None)
        if connection is not None and hasattr(connection, "max_size"):
            current = connection.max_size
            limit = self.config.max_frame_bytes
            connection.max_size = limit if current is None else min(current, limit)

    async def _greet(self, request: Request, ws: Any, address: str) -> Optional[str]:
        raw = await ws.recv(timeout=HELLO_TIMEOUT_SECONDS)
        if raw is None:
            return await _refuse(ws, CLOSE_POLICY, f"no hello within {HELLO_TIMEOUT_SECONDS} s")
        try:
            hello = self._parse(raw)
        except FrameRejected as error:
            return await _refuse(ws, CLOSE_POLICY, error.reason)
        if not isinstance(hello, Hello):
            return await _refuse(ws, CLOSE_POLICY, "the first frame must be a hello")
        try:
            self.limits.check_hello(address, new_session=hello.session_id is None)
        except RateLimited as error:
            return await _refuse(
                ws,
                CLOSE_TRY_AGAIN_LATER,
                error.reason,
                code="rate_limited",
                retry_after=error.retry_after,
            )
        if hello.session_id is None:
            session_id, token = self.signer.new_session()
        else:
            try:
                session_id = self.signer.verify(hello.session_id, hello.token)
            except SessionRejected as error:
                return await _refuse(ws, CLOSE_UNAUTHORIZED, str(error), code="unauthorized")
            token = self.signer.issue(session_id)
        await ws.send(dumps({"type": "session", "session_id": session_id, "token": token}))
        history, begun = await self._history(request, session_id, new=hello.session_id is None)
        frame: Dict[str, Any] = {"type": "history", "messages": history}
        if not begun and self.config.greeting is not None:
            frame["greeting"] = greeting_frame(
                self.config.greeting, self.config.suggested_questions
            )
        await ws.send(dumps(frame))
        if session_id in self.turns:
            # A reply is being written (the page reloaded meanwhile): say so here too.
            await ws.send(dumps(typing_frame(True)))
        return session_id

    async def _listen(
        self, ws: Any, session_id: str, address: str, on_new_message: OnNewMessage
    ) -> None:
        # Frames are read as they come and taken in order by a task of their own. Sanic
        # stops reading a socket (pongs included) while a complete frame waits for the
        # handler; a handler that read, then took the message (a SQLite write on a
        # thread that a busy server queues), then read again left the page's pongs
        # unread long enough under load for Sanic's keepalive to close it (1011).
        pending: asyncio.Queue[Optional[ChatMessage]] = asyncio.Queue(MAX_PENDING_MESSAGES)
        taker = asyncio.get_running_loop().create_task(
            self._take_in_order(ws, session_id, pending, on_new_message)
        )
        try:
            await self._read(ws, session_id, address, pending)
        finally:
            # Everything read is still taken (and acknowledged while the page is there).
            await pending.put(None)
            await taker

    async def _read(
        self,
        ws: Any,
        session_id: str,
        address: str,
        pending: asyncio.Queue[Optional[ChatMessage]],
    ) -> None:
        rejected = refused = 0
        while True:
            raw = await ws.recv()
            if raw is None:
                continue
            try:
                frame = self._parse(raw)
                if isinstance(frame, Hello):
                    raise FrameRejected("this connection already said hello")
            except FrameRejected as error:
                rejected += 1
                logger.warning("webchat socket: frame rejected: %s", error.reason)
                rejection = _error_frame("bad_frame", error.reason, message_id=error.message_id)
                await ws.send(dumps(rejection))
                if rejected >= MAX_REJECTED_FRAMES:
                    await ws.close(CLOSE_POLICY, "too many malformed frames")
                    return
                continue
            try:
                self.limits.check_message(address, session_id)
            except RateLimited as error:
                # Not taken and not acknowledged: the page sends it again when told.
                refused += 1
                logger.warning("webchat socket: message refused: %s", error.reason)
                refusal = _error_frame("rate_limited", error.reason, message_id=frame.id)
                await ws.send(dumps({**refusal, "retry_after": error.retry_after}))
                if refused >= MAX_REFUSED_MESSAGES:
                    await ws.close(CLOSE_POLICY, "too many messages over the rate limit")
                    return
                continue
            refused = 0
            await pending.put(frame)

    async def _take_in_order(
        self,
        ws: Any,
        session_id: str,
        pending: asyncio.Queue[Optional[ChatMessage]],
        on_new_message: OnNewMessage,
    ) -> None:
        """Take each read message in turn, until the reader says there are no more."""
        while (message := await pending.get()) is not None:
            try:
                await self._accept(ws, session_id, message, on_new_message)
            except (ConnectionClosed, WebsocketClosed):
                pass  # the page went away: the message was still taken (see _accept)
            except Exception as error:
                # Not acknowledged, so the page sends it again when it reconnects;
                # closing makes it reconnect.
                logger.error(
                    "webchat socket: a message could not be taken (%s)", type(error).__name__
                )
                with contextlib.suppress(Exception):
                    await ws.close(CLOSE_INTERNAL_ERROR, "message not taken; send it again")

    def _parse(self, raw: Any) -> Any:
        return parse_client_frame(
            raw,
            max_bytes=self.config.max_frame_bytes,
            max_text_chars=self.config.max_message_chars,
        )

    async def _accept(
        self, ws: Any, session_id: str, message: ChatMessage, on_new_message: OnNewMessage
    ) -> None:
        first = await self.deliveries.first_time(CHANNEL, f"{session_id}/{message.id}")
        if not first:
            logger.info("webchat: duplicate message id dropped")
        try:
            await ws.send(dumps({"type": "ack", "id": message.id, "duplicate": not first}))
            if first:  # the session's other pages show it too
                shown = message.display or message.text
                await self.hub.send(session_id, {"type": "user", "id": message.id, "text": shown})
        finally:
            # Queued after the echo so no reply overtakes it, and also when the page
            # went away meanwhile: the id is taken, so a retry would be dropped.
            if first:
                metadata = {"webchat": {"message_id": message.id, "display": message.display}}
                self.turns.enqueue(session_id, [Said(message.text, metadata)], on_new_message)

    async def _history(
        self, request: Request, session_id: str, *, new: bool
    ) -> Tuple[List[Dict[str, Any]], bool]:
        """The conversation as the page shows it, and whether it has begun.

        A conversation has begun when its tracker holds a message of the customer or
        the bot (also one older than ``history_limit`` shows); a new session has not,
        and one whose tracker cannot be read is taken to have begun (no greeting).
        """
        if new:
            return [], False
        agent = getattr(request.app.ctx, "agent", None)
        store_ = getattr(agent, "tracker_store", None)
        if store_ is None:
            return [], False
        try:
            tracker = await store_.retrieve(conversation_id(CHANNEL, session_id))
        except Exception as error:  # a tracker store outage must not break the chat
            logger.warning("webchat: history unavailable (%s)", type(error).__name__)
            return [], True
        if tracker is None:
            return [], False
        events = [event.as_dict() for event in tracker.events]
        begun = any(event.get("event") in ("user", "bot") for event in events)
        history = history_from_events(
            events, max_chars=self.config.max_reply_chars, limit=self.config.history_limit
        )
        return history, begun


async def _refuse(
    ws: Any,
    close_code: int,
    reason: str,
    *,
    code: str = "bad_frame",
    retry_after: Optional[int] = None,
) -> Optional[str]:
    """Tell the page why (and when to come back), close, and give no session."""
    logger.warning("webchat socket: closed with %d: %s", close_code, reason)
    frame = _error_frame(code, reason)
    if retry_after is not None:
        frame["retry_after"] = retry_after
    await ws.send(dumps(frame))
    await ws.close(close_code, reason[:120])
    return None


def _error_frame(code: str, reason: str, *, message_id: Optional[str] = None) -> Dict[str, Any]:
    frame: Dict[str, Any] = {"type": "error", "code": code, "reason": reason}
    if message_id:
        frame["id"] = message_id
    return frame


def _close_on_bad_utf8(ws: Any) -> None:
    """Close with 1007 on a text frame that is not UTF-8, as RFC 6455 asks.

    Sanic 21.12 decodes text frames in a background task that drops the exception, so
    such a frame would vanish and leave the page waiting: wrap that step.
    """
    process = getattr(ws, "process_events", None)
    if process is None:
        return

    async def process_or_fail(events: Any) -> None:
        try:
            await process(events)
        except UnicodeDecodeError:
            logger.warning(
                "webchat socket: closed with %d: text frame is not UTF-8", CLOSE_BAD_UTF8
            )
            ws.fail_connection(CLOSE_BAD_UTF8, "text frame is not UTF-8")

    ws.process_events = process_or_fail
