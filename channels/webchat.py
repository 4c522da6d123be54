"""A web chat served by the assistant itself: a page, a WebSocket, and file uploads.

``channels.webchat.WebChatInput:`` in ``credentials.yml`` serves

- ``GET  /webhooks/webchat/``        the chat page (no external resources, strict CSP)
- ``WS   /webhooks/webchat/webhook`` the conversation, as JSON text frames
- ``POST /webhooks/webchat/upload``  one attached file, raw body, session token in headers

The page opens the socket and says ``hello``, with the session id and token it keeps
in ``localStorage`` or with none; the server verifies the token (or issues a new
session), answers with a fresh token and the conversation so far, replayed from the
tracker store, so a reloaded page, or one reconnecting after a server restart, shows
the conversation and goes on as the same sender. The session's conversation in Rasa
is ``webchat:<session id>`` (:mod:`channels.conversation_ids`); the output channel
answers no other channel's conversation. Each customer message carries a
client id; a retried id is acknowledged and dropped (:class:`DeliveryLog`, so also
across a restart). Messages of one session reach the bot in the order they came.
Replies go to every open page of the session in this server process. With several
Sanic workers a reply to an upload may reach a page on another worker only on its
next reload; run one worker, or sticky sessions, for live delivery everywhere.

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

Limits (:mod:`channels.webchat_limits`, :mod:`channels.webchat_storage`): a message
over its session's or its address's rate gets ``{"type": "error", "code":
"rate_limited", "retry_after": N, "id": ...}`` and is not taken (no ack), so the page
sends it again after N seconds; a hello over a limit gets that frame without an id and
a close with 1013; an upload over a limit or over the session's daily quota gets 429
with ``Retry-After``. Sizes are refused before they are read: a WebSocket frame from
its header (the protocol's ``max_size`` is ``max_frame_bytes``), an upload from the
route's ``ctx_max_body_bytes`` and its ``Content-Length``, and while it streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint
from sanic.exceptions import WebsocketClosed
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response
from websockets.exceptions import ConnectionClosed

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels.attachments import Said, user_messages
from channels.conversation_ids import conversation_id
from channels.delivery_log import DeliveryLog
from channels.rate_limits import RateLimited, client_address
from channels.verification import SessionRejected, SessionSigner
from channels.webchat_config import CHANNEL, WebChatConfig, load_or_create_secret
from channels.webchat_frames import (
    MESSAGE_ID,
    ChatMessage,
    FrameRejected,
    Hello,
    greeting_frame,
    history_from_events,
    parse_client_frame,
    typing_frame,
)
from channels.webchat_limits import WebChatLimits
from channels.webchat_output import SessionHub, WebChatOutput, dumps
from channels.webchat_page import Page
from channels.webchat_session import OriginPolicy
from channels.webchat_storage import RetentionTask, UploadQuota
from channels.webchat_uploads import clean_file_name, describe, store
from channels.webhook_guard import WebhookRejected, reject

__all__ = ["WebChatInput", "WebChatOutput"]

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

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class WebChatInput(InputChannel):
    """The web chat channel; see the module docstring for the routes and the protocol."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``webchat``."""
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel as configured by its ``credentials.yml`` section."""
        return cls(WebChatConfig.from_credentials(credentials))

    def __init__(
        self, config: WebChatConfig, *, clock: Optional[Callable[[], float]] = None
    ) -> None:
        self.config = config
        secret = config.session_secret or load_or_create_secret(config.session_secret_file)
        self.signer = SessionSigner(secret, ttl_seconds=config.session_ttl_seconds, clock=clock)
        self.origins = OriginPolicy(config.allowed_origins)
        self.deliveries = DeliveryLog(config.dedup_db, window_seconds=config.dedup_window_seconds)
        self.hub = SessionHub()
        self.page = Page(config)
        self.limits = WebChatLimits(config, clock=None)
        self.quota = UploadQuota(config.max_attachments_per_session, config.attachment_quota_bytes)
        self.retention = (
            RetentionTask(config.attachment_dir, config.attachment_retention_seconds)
            if config.attachment_dir is not None
            else None
        )
        # The last queued task of each session: the next one waits for it (order), and
        # holding it keeps it from being garbage-collected while it runs.
        self._tails: Dict[str, asyncio.Task] = {}

    def get_output_channel(self) -> OutputChannel:
        """Replies to the open pages of the recipient's session."""
        return WebChatOutput(self.hub, max_reply_chars=self.config.max_reply_chars)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The Sanic routes: the page and its assets, the WebSocket and the upload."""
        webchat = Blueprint("webchat_webhook", __name__)
        guarded = {"socket", "upload"}

        @webchat.middleware("request")
        async def check_origin(request: Request) -> Optional[HTTPResponse]:
            # Runs before the WebSocket handshake, so a foreign page gets a plain 403.
            route = request.route.name.rsplit(".", 1)[-1] if request.route else ""
            if route in guarded and not self._origin_allowed(request):
                return reject(CHANNEL, WebhookRejected(403, "origin not allowed"))
            return None

        @webchat.listener("main_process_start")
        def limit_frames(app: Any, _: Any) -> None:
            # Sanic reads its WebSocket limit into each server before any listener of
            # a worker runs; the main process's value reaches the workers it forks.
            # Each socket's limit is also set when it opens (_limit_frames).
            app.config.WEBSOCKET_MAX_SIZE = min(
                app.config.WEBSOCKET_MAX_SIZE, self.config.max_frame_bytes
            )

        @webchat.listener("after_server_start")
        async def start_clean_up(_: Any, __: Any) -> None:
            if self.retention is not None:
                self.retention.start()

        @webchat.listener("before_server_stop")
        async def stop_clean_up(_: Any, __: Any) -> None:
            if self.retention is not None:
                await self.retention.stop()

        @webchat.get("/")
        async def page(request: Request) -> HTTPResponse:
            return self.page.html(base=request.path.rstrip("/") + "/")

        @webchat.get("/webchat.js")
        async def script(_: Request) -> HTTPResponse:
            return self.page.asset("webchat.js")

        @webchat.get("/webchat.css")
        async def style(_: Request) -> HTTPResponse:
            return self.page.asset("webchat.css")

        @webchat.websocket("/webhook")
        async def socket(request: Request, ws: Any) -> None:
            await self._serve_socket(request, ws, on_new_message)

        @webchat.post("/upload", stream=True, ctx_max_body_bytes=self.config.max_attachment_bytes)
        async def upload(request: Request) -> HTTPResponse:
            try:
                return await self._upload(request, on_new_message)
            except WebhookRejected as error:
                return reject(CHANNEL, error)

        return webchat

    # ------------------------------------------------------------ socket
    async def _serve_socket(self, request: Request, ws: Any, on_new_message: OnNewMessage) -> None:
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
        if session_id in self._tails:
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
                self._enqueue(session_id, [Said(message.text, metadata)], on_new_message)

    # ------------------------------------------------------------ upload
    async def _upload(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        headers = request.headers
        address = client_address(request)
        self.limits.per_address.check(address, "requests from your address")
        try:
            session_id = self.signer.verify(
                headers.get("x-webchat-session"), headers.get("x-webchat-token")
            )
        except SessionRejected as error:
            raise WebhookRejected(401, str(error)) from error
        message_id = headers.get("x-webchat-message-id") or ""
        if not MESSAGE_ID.fullmatch(message_id):
            raise WebhookRejected(400, "X-Webchat-Message-Id must be 8 to 64 letters or digits")
        self.limits.per_session.check(session_id, "messages in this chat")
        folder = (
            self.config.attachment_dir / session_id
            if self.config.attachment_dir is not None
            else None
        )
        if folder is not None:
            declared = headers.get("content-length") or ""
            await asyncio.to_thread(
                self.quota.check,
                folder,
                int(declared) if declared.isdigit() else 1,
                now=time.time(),
            )
        data = await self._read_capped(request)
        if not await self.deliveries.first_time(CHANNEL, f"{session_id}/{message_id}"):
            logger.info("webchat upload: duplicate message id dropped")
            return json_response({"status": "duplicate", "id": message_id})
        name = clean_file_name(headers.get("x-webchat-file-name"))
        attachment = describe(
            data,
            declared_type=headers.get("content-type"),
            name=name,
            allowed_types=self.config.attachment_types,
        )
        if attachment.supported and self.config.attachment_dir is not None:
            file_id = await store(self.config.attachment_dir, session_id, attachment, data)
            # Two uploads at once (on two workers) may both have passed the check above.
            await asyncio.to_thread(self.quota.admit, Path(file_id), now=time.time())
            attachment = replace(attachment, file_id=file_id)
        shown = f"\N{PAPERCLIP} {name or attachment.word}"
        messages = [
            said.with_metadata({"webchat": {"message_id": message_id, "display": shown}})
            for said in user_messages(None, [attachment])
        ]
        # The echo first, so no reply overtakes it; hub.send never raises.
        await self.hub.send(session_id, {"type": "user", "id": message_id, "text": shown})
        self._enqueue(session_id, messages, on_new_message)
        return json_response({"status": "accepted", "id": message_id}, status=202)

    async def _read_capped(self, request: Request) -> bytes:
        limit = self.config.max_attachment_bytes
        declared = request.headers.get("content-length") or ""
        if declared.isdigit() and int(declared) > limit:
            raise WebhookRejected(413, f"file larger than {limit} bytes")
        chunks: List[bytes] = []
        size = 0
        while True:
            chunk = await request.stream.read() if request.stream else None
            if chunk is None:
                break
            size += len(chunk)
            if size > limit:
                raise WebhookRejected(413, f"file larger than {limit} bytes")
            chunks.append(chunk)
        if not size:
            raise WebhookRejected(400, "empty file")
        return b"".join(chunks)

    # ------------------------------------------------------------ shared
    def _origin_allowed(self, request: Request) -> bool:
        scheme = "https" if request.scheme in ("https", "wss") else "http"
        return self.origins.allows(
            request.headers.get("origin"), host=request.headers.get("host"), scheme=scheme
        )

    def _enqueue(
        self,
        session_id: str,
        messages: List[Said],
        on_new_message: OnNewMessage,
    ) -> None:
        """Hand messages to the bot after the session's earlier ones, out of band."""
        output = self.get_output_channel()
        sender_id = conversation_id(CHANNEL, session_id)
        user_messages_ = [
            UserMessage(
                said.text,
                output,
                sender_id,
                parse_data=said.parse_data,
                input_channel=CHANNEL,
                metadata=said.metadata,
            )
            for said in messages
        ]
        previous = self._tails.get(session_id)
        task = asyncio.get_running_loop().create_task(
            self._run_after(previous, session_id, user_messages_, on_new_message)
        )
        self._tails[session_id] = task

        def forget(done: asyncio.Task) -> None:
            if self._tails.get(session_id) is done:
                del self._tails[session_id]

        task.add_done_callback(forget)

    async def _run_after(
        self,
        previous: Optional[asyncio.Task],
        session_id: str,
        messages: List[UserMessage],
        on_new_message: OnNewMessage,
    ) -> None:
        """The bot's turns on ``messages``, after ``previous``, each between a ``typing``
        frame that shows the indicator and one that hides it (also when the turn fails).

        Both go to the session's open pages through the hub, which never raises and
        drops a page that does not take a frame in time, so a page cannot hold the turn.
        """
        if previous is not None:
            await asyncio.wait([previous])
        for message in messages:
            await self.hub.send(session_id, typing_frame(True))
            try:
                await on_new_message(message)
            except Exception as error:
                # The type only: Rasa's errors can quote the customer's message.
                logger.error("webchat: the bot failed on a message (%s)", type(error).__name__)
                logger.debug("webchat: bot failure details", exc_info=True)
            finally:
                await self.hub.send(session_id, typing_frame(False))

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
