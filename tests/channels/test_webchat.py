"""The web chat's parts without a server: config, tokens, origins, frames, rendering,
history, uploads, the output channel and per-session ordering."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.core.channels.channel import UserMessage

from channels.attachments import Said
from channels.rate_limits import Rate, RateLimited
from channels.webchat import WebChatInput, WebChatOutput
from channels.webchat_config import (
    DEFAULT_ATTACHMENT_TYPES,
    WebChatConfig,
    WebChatConfigError,
    normalize_origin,
)
from channels.webchat_frames import (
    ChatMessage,
    FrameRejected,
    Hello,
    history_from_events,
    parse_client_frame,
    render_bot_message,
    safe_url,
)
from channels.webchat_limits import WebChatLimits
from channels.webchat_output import SessionHub
from channels.webchat_page import STATIC
from channels.webchat_session import (
    OriginPolicy,
    SessionRejected,
    SessionSigner,
    load_or_create_secret,
)
from channels.webchat_storage import QuotaExceeded, RetentionTask, UploadQuota, remove_expired
from channels.webchat_uploads import clean_file_name, describe, sniff_type, store
from tests.channels.webchat_fakes import BrokenTrackerStore, Request

SECRET = "s" * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.7\n" + b"\x00" * 32


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(tmp_path: Path, **overrides: Any) -> WebChatConfig:
    values: Dict[str, Any] = {
        "session_secret": SECRET,
        "dedup_db": str(tmp_path / "d.db"),
        "attachment_dir": str(tmp_path / "uploads"),
    }
    values.update(overrides)
    return WebChatConfig.from_credentials(values)


# ---------------------------------------------------------------- config
def test_no_keys_is_a_working_config():
    loaded = WebChatConfig.from_credentials(None)
    assert loaded.session_secret is None
    assert loaded.allowed_origins == ()
    assert loaded.attachment_types == DEFAULT_ATTACHMENT_TYPES
    assert loaded.max_attachment_bytes == 5 * 1024 * 1024


@pytest.mark.parametrize(
    "credentials, key, words",
    [
        ({"alowed_origins": []}, "alowed_origins", "unknown key"),
        ({"jwt_key": "x"}, "jwt_key", "socket.io"),
        ({"session_secret": "short"}, "session_secret", "at least 32"),
        ({"session_secret": 12345}, "session_secret", "at least 32"),
        ({"max_frame_bytes": "big"}, "max_frame_bytes", "number"),
        ({"max_frame_bytes": True}, "max_frame_bytes", "number"),
        ({"history_limit": -1}, "history_limit", "at least 0"),
        ({"allowed_origins": ["shop.example.com"]}, "allowed_origins", "not an origin"),
        ({"allowed_origins": ["https://shop.example.com/chat"]}, "allowed_origins", "origin"),
        ({"allowed_origins": ["https://h:99999"]}, "allowed_origins", "origin"),
        ({"allowed_origins": {"a": 1}}, "allowed_origins", "list"),
        ({"attachment_types": ["png"]}, "attachment_types", "MIME"),
        ({"title": ""}, "title", "non-empty"),
    ],
)
def test_bad_keys_fail_naming_channel_key_and_fix(credentials, key, words):
    with pytest.raises(WebChatConfigError) as raised:
        WebChatConfig.from_credentials(credentials)
    message = str(raised.value)
    assert raised.value.key == key
    assert f"`{key}`" in message and "webchat" in message and words in message


def test_origins_are_normalized_and_attachment_storage_can_be_off():
    loaded = WebChatConfig.from_credentials(
        {"allowed_origins": ["HTTPS://Shop.Example.com:443", "*"], "attachment_dir": None}
    )
    assert loaded.allowed_origins == ("https://shop.example.com", "*")
    assert loaded.attachment_dir is None
    assert normalize_origin("http://[::1]:80") == "http://[::1]"


def test_a_generated_secret_is_private_and_kept(tmp_path: Path):
    path = tmp_path / "secret"
    first = load_or_create_secret(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first, "a restart keeps the tokens valid"
    path.write_text("short\n")
    with pytest.raises(WebChatConfigError, match="session_secret_file"):
        load_or_create_secret(path)


# ---------------------------------------------------------------- tokens
def test_a_token_verifies_for_its_session_only():
    signer = SessionSigner(SECRET, ttl_seconds=3600)
    session_id, token = signer.new_session()
    assert re.fullmatch(r"[0-9a-f]{32}", session_id)
    assert signer.verify(session_id, token) == session_id
    other, _ = signer.new_session()
    with pytest.raises(SessionRejected, match="signature"):
        signer.verify(other, token)
    with pytest.raises(SessionRejected, match="signature"):
        SessionSigner("t" * 40, ttl_seconds=3600).verify(session_id, token)


@pytest.mark.parametrize(
    "token, reason",
    [
        (None, "missing"),
        (7, "missing"),
        ("", "malformed"),
        ("v2.1.abc", "malformed"),
        ("v1.1800000000." + "A" * 43, "signature"),
    ],
)
def test_missing_malformed_and_forged_tokens_are_refused(token, reason):
    signer = SessionSigner(SECRET, ttl_seconds=3600, clock=Clock())
    with pytest.raises(SessionRejected, match=reason):
        signer.verify("0" * 32, token)


@pytest.mark.parametrize("session_id", [None, "", "0" * 31, "G" * 32, "../" + "0" * 29, 12])
def test_malformed_session_ids_are_refused(session_id):
    signer = SessionSigner(SECRET, ttl_seconds=3600)
    with pytest.raises(SessionRejected, match="session id"):
        signer.verify(session_id, signer.issue("0" * 32))


def test_tokens_expire_and_tokens_from_the_future_are_refused():
    clock = Clock()
    signer = SessionSigner(SECRET, ttl_seconds=3600, clock=clock)
    session_id, token = signer.new_session()
    clock.now += 3600
    assert signer.verify(session_id, token) == session_id
    clock.now += 1
    with pytest.raises(SessionRejected, match="expired"):
        signer.verify(session_id, token)
    future = SessionSigner(SECRET, ttl_seconds=3600, clock=Clock(clock.now + 600)).issue(session_id)
    with pytest.raises(SessionRejected, match="future"):
        signer.verify(session_id, future)


# ---------------------------------------------------------------- origins
def test_by_default_only_the_servers_own_host_and_port_may_connect():
    policy = OriginPolicy(())
    same = {"host": "localhost:5005", "scheme": "http"}
    assert policy.allows("http://localhost:5005", **same)
    assert policy.allows(None, **same), "programs send no Origin; they still need a token"
    assert not policy.allows("http://localhost:5006", **same)
    assert not policy.allows("http://evil.example", **same)
    assert not policy.allows("null", **same)
    assert not policy.allows("http://localhost:5005", host=None, scheme="http")
    # TLS ended by a proxy: the page is https, the server sees http on the same host.
    assert policy.allows("https://shop.example.com", host="shop.example.com", scheme="http")


def test_configured_origins_replace_the_default():
    policy = OriginPolicy(("https://shop.example.com",))
    assert policy.allows("https://SHOP.example.com:443", host="chat.internal:5005", scheme="http")
    assert not policy.allows("http://chat.internal:5005", host="chat.internal:5005", scheme="http")
    assert OriginPolicy(("*",)).allows("http://anything", host="x", scheme="http")


# ---------------------------------------------------------------- client frames
def parse(raw: Any, max_bytes: int = 1024, max_text_chars: int = 100) -> Any:
    return parse_client_frame(raw, max_bytes=max_bytes, max_text_chars=max_text_chars)


def test_valid_frames_parse():
    assert parse('{"type": "hello"}') == Hello(None, None)
    assert parse('{"type": "hello", "session_id": "a", "token": "b"}') == Hello("a", "b")
    assert parse('{"type": "hello", "session_id": "a"}') == Hello("a", None)
    message = parse('{"type": "message", "id": "abcdefgh", "text": "/affirm", "display": "Yes"}')
    assert message == ChatMessage("abcdefgh", "/affirm", "Yes")


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"type": "hello"}', "binary"),
        ("x" * 1025, "larger than 1024"),
        ("é" * 600, "larger than 1024"),  # bytes, not characters
        ("SECRET-TEXT not json", "not valid JSON"),
        ('["SECRET-TEXT"]', "JSON list"),
        ('{"text": "SECRET-TEXT"}', "frame type"),
        ('{"type": 3}', "must be a string"),
        ('{"type": "typing"}', "frame type"),
        ('{"type": "hello", "token": "t"}', "no session_id"),
        ('{"type": "hello", "extra": 1}', "unknown field(s): extra"),
        ('{"type": "message", "text": "SECRET-TEXT"}', "message id"),
        ('{"type": "message", "id": "short", "text": "SECRET-TEXT"}', "message id"),
        ('{"type": "message", "id": "abcdefgh"}', "non-empty string"),
        ('{"type": "message", "id": "abcdefgh", "text": 5}', "non-empty string"),
        ('{"type": "message", "id": "abcdefgh", "text": "   "}', "non-empty string"),
        ('{"type": "message", "id": "abcdefgh", "text": "' + "a" * 101 + '"}', "longer than 100"),
        ('{"type": "message", "id": "abcdefgh", "text": "a", "display": 3}', "display"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason_free_of_customer_text(raw, reason):
    with pytest.raises(FrameRejected) as raised:
        parse(raw)
    assert reason in raised.value.reason
    assert "SECRET" not in raised.value.reason


@pytest.mark.parametrize(
    "raw, reason",
    [("[" * 5000 + "]" * 5000, "nested too deeply"), ('{"id": ' + "7" * 5000 + "}", "too long")],
    ids=["deep", "long-int"],
)
def test_json_python_refuses_to_parse_is_a_rejected_frame(raw: str, reason: str):
    # Found by tests/production/test_fuzz.py: each ended the socket handler with an
    # exception (close 1000) instead of an error frame.
    with pytest.raises(FrameRejected) as raised:
        parse(raw, max_bytes=16 * 1024)
    assert raised.value.reason.startswith("frame is JSON") and reason in raised.value.reason


def test_a_rejected_message_names_its_id_so_the_page_can_mark_it():
    with pytest.raises(FrameRejected) as raised:
        parse('{"type": "message", "id": "abcdefgh", "text": 5}')
    assert raised.value.message_id == "abcdefgh"


# ---------------------------------------------------------------- bot messages
def test_text_with_buttons_keeps_titles_and_payloads():
    bubbles = render_bot_message(
        {
            "text": "Would you like me to connect you?",
            "buttons": [
                {"title": "Yes, connect me", "payload": "/affirm"},
                {"title": "Help page", "url": "https://example.com/help"},
                {"title": "Bad", "url": "javascript:alert(1)"},
                "not a button",
            ],
        },
        max_chars=1000,
    )
    assert bubbles == [
        {
            "text": "Would you like me to connect you?",
            "buttons": [
                {"title": "Yes, connect me", "payload": "/affirm"},
                {"title": "Help page", "url": "https://example.com/help"},
            ],
        }
    ]


def test_long_text_is_split_at_sentences_with_buttons_on_the_last_bubble():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    bubbles = render_bot_message(
        {"text": text, "quick_replies": [{"title": "OK", "payload": "/affirm"}]}, max_chars=200
    )
    assert len(bubbles) > 1
    assert all(len(b["text"]) <= 200 and b["text"].endswith(".") for b in bubbles)
    assert " ".join(b["text"] for b in bubbles) == text
    assert [("buttons" in b) for b in bubbles] == [False] * (len(bubbles) - 1) + [True]


def test_images_attachments_elements_and_custom():
    assert render_bot_message({"image": "https://cdn.example/a.png"}, max_chars=100) == [
        {"image": "https://cdn.example/a.png"}
    ]
    assert render_bot_message({"image": "javascript:alert(1)"}, max_chars=100) == []
    assert render_bot_message({"attachment": "https://x.example/f.pdf"}, max_chars=100) == [
        {"link": "https://x.example/f.pdf"}
    ]
    fb_image = {"type": "image", "payload": {"src": "https://x.example/i.png"}}
    assert render_bot_message({"attachment": fb_image}, max_chars=100) == [
        {"image": "https://x.example/i.png"}
    ]
    assert render_bot_message({"attachment": "invoice sent by email"}, max_chars=100) == [
        {"text": "invoice sent by email"}
    ]
    assert render_bot_message({"attachment": {"type": "file", "payload": {}}}, max_chars=100) == []
    elements = [{"title": "Order 1", "subtitle": "Shipped", "image_url": "/img/1.png"}]
    assert render_bot_message({"elements": elements}, max_chars=100) == [
        {"image": "/img/1.png"},
        {"text": "Order 1\nShipped"},
    ]
    assert render_bot_message({"custom": {"map": [1, 2]}}, max_chars=100) == [
        {"custom": {"map": [1, 2]}}
    ]


@pytest.mark.parametrize(
    "url, safe",
    [
        ("https://x.example/a", True),
        ("/relative/a.png", True),
        ("//evil.example/a", False),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("http://", False),
        (None, False),
        ("https://x.example/" + "a" * 3000, False),
    ],
)
def test_only_http_and_same_site_urls_pass(url, safe):
    assert (safe_url(url) is not None) == safe


# ---------------------------------------------------------------- history
def test_history_shows_what_the_customer_saw_and_the_bots_buttons():
    events = [
        {"event": "action", "name": "action_session_start"},
        {"event": "user", "text": "hello", "metadata": {"webchat": {"message_id": "m0000001"}}},
        {"event": "bot", "text": "Hi!", "data": {"custom": {"x": 1}}},
        {
            "event": "bot",
            "text": "Connect you?",
            "data": {"buttons": [{"title": "Yes, connect me", "payload": "/affirm"}]},
        },
        {
            "event": "user",
            "text": "/affirm",
            "metadata": {"webchat": {"message_id": "m0000002", "display": "Yes, connect me"}},
        },
        {"event": "user", "text": "from another channel", "metadata": None},
        {"event": "slot", "name": "x", "value": 1},
    ]
    history = history_from_events(events, max_chars=1000, limit=100)
    assert history == [
        {"from": "user", "text": "hello", "id": "m0000001"},
        {"from": "bot", "text": "Hi!"},
        {
            "from": "bot",
            "text": "Connect you?",
            "buttons": [{"title": "Yes, connect me", "payload": "/affirm"}],
        },
        {"from": "user", "text": "Yes, connect me", "id": "m0000002"},
        {"from": "user", "text": "from another channel"},
    ]
    assert history_from_events(events, max_chars=1000, limit=2) == history[-2:]
    assert history_from_events(events, max_chars=1000, limit=0) == []


# ---------------------------------------------------------------- uploads
def test_the_first_bytes_decide_the_type():
    assert sniff_type(PNG) == "image/png"
    assert sniff_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_type(b"GIF89a") == "image/gif"
    assert sniff_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_type(PDF) == "application/pdf"
    assert sniff_type(b"PK\x03\x04") is None


def test_a_file_is_described_by_what_it_is_not_what_it_claims():
    allowed = DEFAULT_ATTACHMENT_TYPES
    photo = describe(PNG, declared_type="image/jpeg", name="a.jpg", allowed_types=allowed)
    assert (photo.kind, photo.mime_type, photo.size, photo.supported) == (
        "image",
        "image/png",
        len(PNG),
        True,
    )
    assert describe(PDF, declared_type=None, name=None, allowed_types=allowed).kind == "document"
    fake = describe(b"MZ\x90\x00", declared_type="image/png", name="x.png", allowed_types=allowed)
    assert (fake.kind, fake.supported) == ("other", False)
    not_allowed = describe(PDF, declared_type="application/pdf", name=None, allowed_types=())
    assert not_allowed.kind == "other"


@pytest.mark.parametrize(
    "raw, name",
    [
        ("d%C3%A4mage.png", "dämage.png"),
        ("..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
        ("a%00b%0A.png", "ab.png"),
        ("", None),
        (None, None),
        ("x" * 500, "x" * 120),
    ],
)
def test_file_names_lose_paths_and_control_characters(raw, name):
    assert clean_file_name(raw) == name


def test_stored_files_are_private_and_inside_the_directory(tmp_path: Path):
    attachment = describe(PNG, declared_type="image/png", name="a.png", allowed_types=["image/png"])
    file_id = asyncio.run(store(tmp_path / "uploads", "0" * 32, attachment, PNG))
    path = Path(file_id)
    assert path.parent == tmp_path / "uploads" / ("0" * 32)
    assert path.suffix == ".png" and path.read_bytes() == PNG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---------------------------------------------------------------- output channel
class FakeSocket:
    def __init__(self, closed: bool = False) -> None:
        self.sent: List[Dict[str, Any]] = []
        self.closed = closed

    async def send(self, data: str) -> None:
        if self.closed:
            from websockets.exceptions import ConnectionClosedOK

            raise ConnectionClosedOK(None, None)
        self.sent.append(json.loads(data))


def test_replies_reach_every_open_page_of_the_session_only():
    async def scenario() -> None:
        hub = SessionHub()
        first, second, gone, stranger = FakeSocket(), FakeSocket(), FakeSocket(True), FakeSocket()
        for socket in (first, second, gone):
            hub.add("s1", socket)
        hub.add("s2", stranger)
        output = WebChatOutput(hub, max_reply_chars=1000)
        await output.send_response(
            "webchat:s1",
            {
                "text": "Connect you?",
                "buttons": [{"title": "Yes, connect me", "payload": "/affirm"}],
                "image": "https://x.example/i.png",
            },
        )
        expected = [
            {
                "type": "bot",
                "message": {
                    "text": "Connect you?",
                    "buttons": [{"title": "Yes, connect me", "payload": "/affirm"}],
                },
            },
            {"type": "bot", "message": {"image": "https://x.example/i.png"}},
        ]
        assert first.sent == expected and second.sent == expected
        assert stranger.sent == []
        assert hub.count("s1") == 2, "a closed page is dropped"
        await output.send_text_message("webchat:s2", "a <b>bold</b> claim")
        assert stranger.sent == [{"type": "bot", "message": {"text": "a <b>bold</b> claim"}}]

    asyncio.run(scenario())


def test_messages_of_one_session_reach_the_bot_in_order_and_a_failure_does_not_stop_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    channel = WebChatInput(config(tmp_path))
    handled: List[str] = []

    async def on_new_message(message: UserMessage) -> None:
        # Earlier messages take longer: without ordering they would finish last.
        await asyncio.sleep(0.05 if message.text.endswith("1") else 0.0)
        if message.text == "boom 2":
            raise RuntimeError("the bot failed on boom 2")
        handled.append(message.text)
        assert message.input_channel == "webchat"
        assert message.sender_id == "webchat:s1"

    async def scenario() -> None:
        for index in range(1, 4):
            channel.turns.enqueue("s1", [Said(f"message {index}")], on_new_message)
        channel.turns.enqueue("s1", [Said("boom 2"), Said("after the failure 1")], on_new_message)
        channel.turns.enqueue("s1", [Said("last 1")], on_new_message)
        while channel.turns:
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, logger="channels.webchat_turns"):
        asyncio.run(scenario())
    assert handled == ["message 1", "message 2", "message 3", "after the failure 1", "last 1"]
    assert "RuntimeError" in caplog.text and "boom" not in caplog.text


# ---------------------------------------------------------------- page
def test_the_page_escapes_settings_and_forbids_outside_resources(tmp_path: Path):
    channel = WebChatInput(config(tmp_path, title='Help <script>alert("x")</script>'))
    response = channel.page.html(base="/webhooks/webchat/")
    body = response.body.decode()
    assert "<script>alert" not in body and "&lt;script&gt;" in body
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert 'src="/webhooks/webchat/webchat.js"' in body
    assert "{{" not in body


def test_static_files_load_nothing_from_outside_and_never_use_inner_html():
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        # No absolute URL in an attribute, a CSS url() or an import.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path.name
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), path.name
        assert "@import" not in text
    script = (STATIC / "webchat.js").read_text(encoding="utf-8")
    code = re.sub(r"^\s*//.*$", "", script, flags=re.M)  # the comments may name them
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "eval(", "document.write"):
        assert sink not in code, sink


# ---------------------------------------------------------------- greeting
class ScriptedSocket(FakeSocket):
    """A page that sends the given frames (None: silence until the timeout)."""

    def __init__(self, *incoming: Any) -> None:
        super().__init__()
        self.incoming = list(incoming)
        self.close_code: Any = None

    async def recv(self, timeout: Any = None) -> Any:
        return self.incoming.pop(0)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code


def test_a_silent_or_rude_page_is_closed_and_a_store_outage_still_greets(tmp_path: Path):
    channel = WebChatInput(config(tmp_path))
    request = Request(BrokenTrackerStore())

    async def greet(socket: ScriptedSocket) -> Any:
        return await channel.socket._greet(request, socket, "127.0.0.1")  # type: ignore[arg-type]

    silent = ScriptedSocket(None)
    assert asyncio.run(greet(silent)) is None and silent.close_code == 1008
    assert "no hello" in silent.sent[0]["reason"]
    rude = ScriptedSocket(json.dumps({"type": "message", "id": "abcdefgh", "text": "hi"}))
    assert asyncio.run(greet(rude)) is None and rude.close_code == 1008
    fine = ScriptedSocket(json.dumps({"type": "hello"}))
    session_id = asyncio.run(greet(fine))
    assert fine.close_code is None
    assert [f["type"] for f in fine.sent] == ["session", "history"]
    assert fine.sent[0]["session_id"] == session_id and fine.sent[1]["messages"] == []


def test_without_a_configured_secret_one_is_generated_and_survives_a_restart(tmp_path: Path):
    secret_file = tmp_path / "webchat_session_secret"
    settings = config(tmp_path, session_secret=None, session_secret_file=str(secret_file))
    first = WebChatInput(settings)
    session_id, token = first.signer.new_session()
    assert secret_file.exists()
    restarted = WebChatInput(settings)
    assert restarted.signer.verify(session_id, token) == session_id


def test_a_stalled_page_is_closed_so_it_reconnects_and_gets_the_history(
    monkeypatch: pytest.MonkeyPatch,
):
    import channels.webchat_output as webchat_output

    monkeypatch.setattr(webchat_output, "SEND_TIMEOUT_SECONDS", 0.05)

    class Stalled(FakeSocket):
        failed: Any = None

        async def send(self, data: str) -> None:
            await asyncio.sleep(60)

        def fail_connection(self, code: int, reason: str) -> None:
            self.failed = code

    async def scenario() -> None:
        hub = SessionHub()
        stalled, fine = Stalled(), FakeSocket()
        hub.add("s1", stalled)
        hub.add("s1", fine)
        assert await hub.send("s1", {"type": "bot", "message": {"text": "hi"}}) == 1
        assert stalled.failed == 1013 and hub.count("s1") == 1
        assert fine.sent == [{"type": "bot", "message": {"text": "hi"}}]

    asyncio.run(scenario())


# ---------------------------------------------------------------- limits
def test_limits_and_quotas_have_defaults_and_strict_keys():
    loaded = WebChatConfig.from_credentials(None)
    assert (loaded.conversation_rate, loaded.address_rate, loaded.new_session_rate) == (
        Rate(30, 60.0),
        Rate(1200, 60.0),
        Rate(200, 3600.0),
    )
    assert loaded.max_attachments_per_session == 20
    assert loaded.attachment_quota_bytes == 50 * 1024 * 1024
    assert loaded.attachment_retention_seconds == 30 * 86400
    tuned = WebChatConfig.from_credentials(
        {"rate_limits": {"conversation": "5/second", "address": "off", "new_sessions": None}}
    )
    assert tuned.conversation_rate == Rate(5, 1.0)
    assert tuned.address_rate is None and tuned.new_session_rate is None


@pytest.mark.parametrize(
    "credentials, key, words",
    [
        ({"rate_limits": {"conversaton": "1/second"}}, "rate_limits.conversaton", "unknown"),
        ({"rate_limits": {"address": "lots"}}, "rate_limits.address", "COUNT/PERIOD"),
        ({"rate_limits": {"new_sessions": "0/hour"}}, "rate_limits.new_sessions", "at least 1"),
        ({"rate_limits": "30/minute"}, "rate_limits", "mapping"),
        ({"max_attachments_per_session": 0}, "max_attachments_per_session", "at least 1"),
        ({"attachment_quota_bytes": 1000}, "attachment_quota_bytes", "max_attachment_bytes"),
        ({"attachment_retention_days": 0}, "attachment_retention_days", "at least 1"),
    ],
)
def test_bad_limits_fail_naming_the_key_and_the_fix(credentials, key, words):
    with pytest.raises(WebChatConfigError) as raised:
        WebChatConfig.from_credentials(credentials)
    assert raised.value.key == key and words in str(raised.value)


def test_the_default_limits_let_a_hundred_customers_behind_one_address_chat_at_once(
    tmp_path: Path,
):
    # tests/production/test_load.py: 100 sessions from one loopback address, each sending
    # its ten messages at once, all at the same moment.
    limits = WebChatLimits(config(tmp_path), clock=Clock())
    for session in range(100):
        limits.check_hello("127.0.0.1", new_session=True)
        for _ in range(10):
            limits.check_message("127.0.0.1", f"{session:032x}")


def test_each_limit_refuses_at_its_rate_and_a_refusal_spends_nothing(tmp_path: Path):
    clock = Clock()
    limits = WebChatLimits(
        config(
            tmp_path,
            rate_limits={
                "conversation": "2/minute",
                "address": "6/minute",  # the 7th request of 10.0.0.1 is refused
                "new_sessions": "1/hour",
            },
        ),
        clock=clock,
    )
    limits.check_hello("10.0.0.1", new_session=True)
    with pytest.raises(RateLimited, match="new chats from your address") as raised:
        limits.check_hello("10.0.0.1", new_session=True)
    assert raised.value.status == 429 and raised.value.retry_after == 3600
    limits.check_hello("10.0.0.1", new_session=False)  # its existing session still connects
    limits.check_message("10.0.0.1", "s1")
    limits.check_message("10.0.0.1", "s1")
    with pytest.raises(RateLimited, match="messages in this chat") as raised:
        limits.check_message("10.0.0.1", "s1")
    assert raised.value.retry_after == 30
    limits.check_message("10.0.0.2", "s2")  # another session, another address
    with pytest.raises(RateLimited, match="requests from your address"):
        limits.check_message("10.0.0.1", "s3")
    clock.now += 30
    limits.check_message("10.0.0.1", "s1")


# ---------------------------------------------------------------- upload quota
def stored(folder: Path, name: str, size: int, age_s: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"x" * size)
    when = NOW - age_s
    os.utime(path, (when, when))
    return path


NOW = 1_800_000_000.0
HOUR = 3600.0


def test_the_quota_counts_the_sessions_files_of_the_last_day_from_disk(tmp_path: Path):
    folder = tmp_path / ("0" * 32)
    quota = UploadQuota(max_files=3, max_bytes=1000)
    quota.check(folder, 1000, now=NOW)  # no folder yet: room for a whole quota
    stored(folder, "a" * 24 + ".png", 100, age_s=30 * HOUR)  # older than a day: not counted
    stored(folder, "b" * 24 + ".png", 100, age_s=5 * HOUR)
    stored(folder, "c" * 24 + ".png", 100, age_s=2 * HOUR)
    (folder / "notes.txt").write_text("not ours")  # not a stored file: not counted
    quota.check(folder, 100, now=NOW)
    stored(folder, "d" * 24 + ".png", 100, age_s=1 * HOUR)
    with pytest.raises(QuotaExceeded, match="its 3 files for today") as raised:
        quota.check(folder, 100, now=NOW)
    # Room again when the oldest counted file ("b", 5 hours old) is a day old.
    assert raised.value.status == 429 and raised.value.retry_after == 19 * HOUR
    assert "in about 19 hours" in raised.value.reason
    big = UploadQuota(max_files=10, max_bytes=500)
    with pytest.raises(QuotaExceeded, match="500 bytes of files today") as raised:
        big.check(folder, 250, now=NOW)
    assert raised.value.retry_after == 19 * HOUR  # "b" leaves: 200 + 250 fit


def test_of_two_files_stored_at_once_past_the_quota_the_later_one_is_deleted(tmp_path: Path):
    folder = tmp_path / ("0" * 32)
    quota = UploadQuota(max_files=2, max_bytes=10_000)
    first = stored(folder, "a" * 24 + ".png", 10, age_s=HOUR)
    # Two uploads both passed the check (on two workers) and were stored.
    earlier = stored(folder, "f" * 24 + ".png", 10, age_s=2.0)
    later = stored(folder, "0" * 24 + ".png", 10, age_s=1.0)
    quota.admit(earlier, now=NOW)
    with pytest.raises(QuotaExceeded):
        quota.admit(later, now=NOW)
    assert sorted(p.name for p in folder.iterdir()) == [first.name, earlier.name]


# ---------------------------------------------------------------- retention
def test_the_clean_up_deletes_old_files_and_empty_folders_and_nothing_else(tmp_path: Path):
    uploads = tmp_path / "uploads"
    old = stored(uploads / ("a" * 32), "1" * 24 + ".pdf", 10, age_s=31 * 24 * HOUR)
    kept = stored(uploads / ("b" * 32), "2" * 24 + ".png", 10, age_s=29 * 24 * HOUR)
    old_too = stored(uploads / ("b" * 32), "3" * 24 + ".png", 10, age_s=40 * 24 * HOUR)
    (uploads / ("c" * 32)).mkdir()  # empty
    foreign = stored(uploads / "not-a-session", "4" * 24 + ".png", 10, age_s=99 * 24 * HOUR)
    unknown = stored(uploads / ("d" * 32), "keep-me.png", 10, age_s=99 * 24 * HOUR)
    assert remove_expired(uploads, 30 * 24 * HOUR, now=NOW) == (2, 2)
    assert not old.exists() and not old.parent.exists() and not old_too.exists()
    assert kept.exists() and foreign.exists() and unknown.exists()
    assert not (uploads / ("c" * 32)).exists()
    assert remove_expired(tmp_path / "missing", 1.0, now=NOW) == (0, 0)


def test_the_clean_up_runs_when_started_and_again_after_its_interval(tmp_path: Path):
    uploads = tmp_path / "uploads"
    clock = Clock(NOW)

    async def scenario() -> None:
        task = RetentionTask(uploads, 24 * HOUR, interval_s=0.05, clock=clock)
        first = stored(uploads / ("a" * 32), "1" * 24 + ".png", 10, age_s=25 * HOUR)
        task.start()
        while first.exists():
            await asyncio.sleep(0.01)
        second = stored(uploads / ("a" * 32), "2" * 24 + ".png", 10, age_s=23 * HOUR)
        await asyncio.sleep(0.15)
        assert second.exists(), "within the retention"
        clock.now += 2 * HOUR
        while second.exists():
            await asyncio.sleep(0.01)
        await task.stop()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_an_upload_remakes_a_session_folder_the_clean_up_just_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import channels.webchat_uploads as uploads

    real_open = os.open
    removed: List[Path] = []

    def open_after_the_clean_up(path: Any, *args: Any) -> int:
        folder = Path(path).parent
        if not removed:  # the clean-up removes the empty folder between mkdir and open
            folder.rmdir()
            removed.append(folder)
        return real_open(path, *args)

    monkeypatch.setattr(uploads.os, "open", open_after_the_clean_up)
    attachment = describe(PNG, declared_type="image/png", name="a.png", allowed_types=["image/png"])
    file_id = asyncio.run(store(tmp_path / "uploads", "0" * 32, attachment, PNG))
    assert removed and Path(file_id).read_bytes() == PNG


# ---------------------------------------------------------------- frame size
def test_each_socket_refuses_frames_over_max_frame_bytes_from_their_header(tmp_path: Path):
    channel = WebChatInput(config(tmp_path, max_frame_bytes=4096))

    class Connection:
        max_size: Any = 2**20

    socket = type("Socket", (), {"connection": Connection()})()
    channel.socket._limit_frames(socket)
    assert socket.connection.max_size == 4096
    socket.connection.max_size = None  # unlimited
    channel.socket._limit_frames(socket)
    assert socket.connection.max_size == 4096
    socket.connection.max_size = 1024  # an operator's stricter WEBSOCKET_MAX_SIZE stays
    channel.socket._limit_frames(socket)
    assert socket.connection.max_size == 1024


def test_the_page_knows_the_frame_limit_to_check_long_messages_before_sending(tmp_path: Path):
    body = WebChatInput(config(tmp_path)).page.html(base="/").body.decode()
    assert 'data-max-frame-bytes="16384"' in body


def test_a_secret_that_cannot_be_published_names_the_key_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import channels.webchat_session as webchat_session

    def no_hard_links(source: Any, target: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(webchat_session.os, "link", no_hard_links)
    with pytest.raises(WebChatConfigError, match="session_secret_file") as raised:
        load_or_create_secret(tmp_path / "secret")
    assert "session_secret" in str(raised.value) and list(tmp_path.iterdir()) == []


def test_the_apps_websocket_limit_is_max_frame_bytes_before_the_workers_start(tmp_path: Path):
    from sanic import Sanic

    app = Sanic(f"webchat_frames_{os.getpid()}")
    channel = WebChatInput(config(tmp_path, max_frame_bytes=4096))

    async def on_new_message(message: UserMessage) -> None:
        raise AssertionError("no message in this test")

    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/webchat")
    assert app.config.WEBSOCKET_MAX_SIZE == 2**20, "Sanic's default, which buffers 1 MiB"
    for listener in app.listeners["main_process_start"]:
        listener(app, None)
    assert app.config.WEBSOCKET_MAX_SIZE == 4096
    upload = next(r for r in app.router.routes if r.path.endswith("upload"))
    assert upload.ctx.max_body_bytes == channel.config.max_attachment_bytes
