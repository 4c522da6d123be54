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

The frames and close codes of the socket: :mod:`channels.webchat_socket`.

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
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from rasa.core.channels.channel import InputChannel, OutputChannel
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels.attachments import user_messages
from channels.delivery_log import DeliveryLog
from channels.rate_limits import client_address
from channels.verification import SessionRejected, SessionSigner
from channels.webchat_config import CHANNEL, WebChatConfig
from channels.webchat_frames import MESSAGE_ID
from channels.webchat_limits import WebChatLimits
from channels.webchat_output import SessionHub, WebChatOutput
from channels.webchat_page import Page
from channels.webchat_session import OriginPolicy, load_or_create_secret
from channels.webchat_socket import WebChatSocket
from channels.webchat_storage import RetentionTask, UploadQuota
from channels.webchat_turns import OnNewMessage, SessionTurns
from channels.webchat_uploads import clean_file_name, describe, store
from channels.webhook_guard import WebhookRejected, reject

__all__ = ["WebChatInput", "WebChatOutput"]

logger = logging.getLogger(__name__)


class WebChatInput(InputChannel):
    """The web chat channel: the routes of the module docstring, the socket's protocol."""

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
        self.turns = SessionTurns(self.hub, self.get_output_channel)
        self.socket = WebChatSocket(
            config,
            signer=self.signer,
            limits=self.limits,
            deliveries=self.deliveries,
            hub=self.hub,
            turns=self.turns,
        )

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
            # Each socket's limit is also set when it opens (WebChatSocket).
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
            await self.socket.serve(request, ws, on_new_message)

        @webchat.post("/upload", stream=True, ctx_max_body_bytes=self.config.max_attachment_bytes)
        async def upload(request: Request) -> HTTPResponse:
            try:
                return await self._upload(request, on_new_message)
            except WebhookRejected as error:
                return reject(CHANNEL, error)

        return webchat

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
        self.turns.enqueue(session_id, messages, on_new_message)
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
