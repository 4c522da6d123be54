"""The web chat against the real bot: `rasa run` with the channel from credentials.yml,
spoken to with the `websockets` client and, once, with headless Chromium.

One server serves the whole module (each start costs half a minute or more); the test
that restarts it runs last.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest
import requests
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from channels.webchat_config import get_default_config
from channels.webchat_session import SessionSigner
from tests.channels.bot_replies import DECLINED, GREETING, OFFER, WELCOME, rasa_with
from tests.channels.webchat_cdp import Browser
from tests.channels.webchat_client import (
    bot_text,
    open_session,
    recv,
    run,
    say,
    until,
    upload,
    webchat_id,
    ws_url,
)
from tests.rasa_process import RasaServer

pytestmark = pytest.mark.integration

SECRET = "webchat-test-secret-0123456789abcdefghijklmnop"
MAX_ATTACHMENT = 64 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
MAX_FRAME_BYTES = 4096


@pytest.fixture(scope="module")
def server(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("webchat")
    yield from rasa_with(
        bot_model,
        workdir,
        "channels.webchat.WebChatInput:\n"
        f'  session_secret: "{SECRET}"\n'
        f"  max_frame_bytes: {MAX_FRAME_BYTES}\n"
        "  attachment_dir: uploads\n"
        f"  max_attachment_bytes: {MAX_ATTACHMENT}\n",
    )


# ---------------------------------------------------------------- page
def test_the_page_and_its_assets_are_served_with_a_strict_policy(server: RasaServer):
    page = requests.get(f"{server.url}/webhooks/webchat/", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'src="/webhooks/webchat/webchat.js"' in page.text
    assert 'aria-live="polite"' in page.text and '<label for="webchat-input"' in page.text
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    script = requests.get(f"{server.url}/webhooks/webchat/webchat.js", timeout=30)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    style = requests.get(f"{server.url}/webhooks/webchat/webchat.css", timeout=30)
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]


# ---------------------------------------------------------------- conversation
def test_a_new_visitor_gets_a_session_and_the_bots_reply(server: RasaServer):
    async def scenario() -> None:
        ws, (session_id, token), history = await open_session(server)
        assert history == []
        await say(ws, "hello", message_id="greet-0001")
        frames = await until(ws, lambda f: f["type"] == "bot")
        assert frames[0] == {"type": "ack", "id": "greet-0001", "duplicate": False}
        assert {"type": "user", "id": "greet-0001", "text": "hello"} in frames
        assert bot_text(frames[-1]).startswith(GREETING)
        await ws.close()
        assert [e["text"] for e in server.user_events(webchat_id(session_id), count=1)] == ["hello"]

    run(scenario())


def test_buttons_carry_titles_and_payloads_and_the_payload_continues_the_story(
    server: RasaServer,
):
    async def scenario() -> None:
        ws, session, _ = await open_session(server)
        await say(ws, "this is the worst service I have ever had", message_id="complain-01")
        frames = await until(ws, lambda f: "buttons" in f.get("message", {}))
        offer = frames[-1]["message"]
        assert offer["text"] == OFFER
        assert offer["buttons"] == [
            {"title": "Yes, connect me", "payload": "/affirm"},
            {"title": "No thanks", "payload": "/deny"},
        ]
        await say(ws, "/deny", message_id="deny-001", display="No thanks")
        frames = await until(ws, lambda f: bot_text(f).startswith(DECLINED))
        assert {"type": "user", "id": "deny-001", "text": "No thanks"} in frames
        await ws.close()
        # A reload shows the button's title, not its payload.
        ws, _, history = await open_session(server, session)
        assert {"from": "user", "text": "No thanks", "id": "deny-001"} in history
        await ws.close()

    run(scenario())


# ---------------------------------------------------------------- verification
def test_forged_missing_stale_and_foreign_sessions_are_refused(server: RasaServer):
    genuine = SessionSigner(SECRET, ttl_seconds=3600)
    session_id = "ab" * 16
    now = time.time()
    refused = {
        "forged": (session_id, SessionSigner("x" * 40, ttl_seconds=3600).issue(session_id)),
        "missing": (session_id, None),
        "for another session": (session_id, genuine.issue("cd" * 16)),
        "stale": (
            session_id,
            SessionSigner(SECRET, ttl_seconds=3600, clock=lambda: now - 40 * 86400).issue(
                session_id
            ),
        ),
    }

    async def scenario() -> None:
        for case, (sid, token) in refused.items():
            async with websockets.connect(ws_url(server), origin=server.url) as ws:
                hello = {"type": "hello", "session_id": sid}
                if token:
                    hello["token"] = token
                await ws.send(json.dumps(hello))
                error = await recv(ws)
                assert error["type"] == "error" and error["code"] == "unauthorized", case
                with pytest.raises(ConnectionClosed):
                    await say(ws, "hello", message_id="forged-001")
                    await recv(ws, 10)
                assert ws.close_code == 4401, case
        assert server.user_events(webchat_id(session_id)) == []

    run(scenario())
    assert "forged-001" not in server.log()


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_a_page_from_a_foreign_origin_gets_403(server: RasaServer, origin: str):
    async def scenario() -> None:
        with pytest.raises(InvalidStatusCode) as refused:
            await websockets.connect(ws_url(server), origin=origin, open_timeout=30)
        assert refused.value.status_code == 403

    run(scenario())
    upload = requests.post(
        f"{server.url}/webhooks/webchat/upload",
        data=PNG,
        headers={"Origin": origin, "Content-Type": "image/png"},
        timeout=30,
    )
    assert upload.status_code == 403 and upload.json() == {"error": "origin not allowed"}


# ---------------------------------------------------------------- malformed frames
def test_malformed_frames_get_an_error_and_the_chat_goes_on(server: RasaServer):
    marker = "CUSTOMER-SECRET-7731"
    bad_frames: List[Any] = [
        f"{marker} is not json",
        json.dumps([marker]),
        json.dumps({"type": "message", "id": "x", "text": marker}),
        json.dumps({"type": "message", "id": "abcdefgh", "text": 42}),
        json.dumps({"type": "message", "id": "abcdefgh", "text": marker, "extra": True}),
        json.dumps({"type": "shout", "text": marker}),
        json.dumps({"type": "hello"}),
        # A text over max_message_chars in a frame within max_frame_bytes.
        json.dumps({"type": "message", "id": "toolong01", "text": marker + "x" * 3990}),
        marker.encode() + b"\xff",
    ]

    async def scenario() -> None:
        ws, session, _ = await open_session(server)
        for frame in bad_frames:
            await ws.send(frame)
            error = await recv(ws)
            assert error["type"] == "error" and error["code"] == "bad_frame", frame
            assert marker not in error["reason"]
        await say(ws, "/thank", message_id="after-bad-1")
        frames = await until(ws, lambda f: f["type"] == "bot")
        assert bot_text(frames[-1]).startswith(WELCOME)
        # A text frame that is not UTF-8 breaks the protocol: close 1007, as RFC 6455 asks.
        await ws.write_frame(True, 0x1, marker.encode() + b"\xff\xfe")
        with pytest.raises(ConnectionClosed):
            await recv(ws, 30)
        assert ws.close_code == 1007
        # Bigger than max_frame_bytes: the protocol closes with 1009 (from the header).
        for size in (MAX_FRAME_BYTES + 1, 2**20 + 10):
            ws, _, _ = await open_session(server)
            await ws.send("x" * size)
            with pytest.raises(ConnectionClosed):
                await recv(ws, 30)
            assert ws.close_code == 1009, size
        # Nothing of that stopped the server.
        ws, _, history = await open_session(server, session)
        assert history[-1]["text"].startswith(WELCOME)
        await ws.close()

    run(scenario())
    assert marker not in server.log(), "log lines must not quote customer text"
    assert "frame rejected: frame is not valid JSON" in server.log()


def test_a_page_that_keeps_sending_garbage_is_closed(server: RasaServer):
    async def scenario() -> None:
        ws, _, _ = await open_session(server)
        for _ in range(20):
            await ws.send("garbage")
        with pytest.raises(ConnectionClosed):
            while True:
                await recv(ws, 30)
        assert ws.close_code == 1008

    run(scenario())


# ---------------------------------------------------------------- duplicates
def test_a_retried_message_id_gets_exactly_one_reply(server: RasaServer):
    async def scenario() -> None:
        ws, session, _ = await open_session(server)
        await say(ws, "hello", message_id="retry-00001")
        await say(ws, "hello", message_id="retry-00001")
        frames = await until(ws, lambda f: f["type"] == "ack" and f["duplicate"])
        assert [f for f in frames if f["type"] == "ack"] == [
            {"type": "ack", "id": "retry-00001", "duplicate": False},
            {"type": "ack", "id": "retry-00001", "duplicate": True},
        ]
        # The retry again from a second connection, as after a reconnect.
        other, _, _ = await open_session(server, session)
        await say(other, "hello", message_id="retry-00001")
        answer = await until(other, lambda f: f["type"] == "ack")
        assert answer[-1] == {"type": "ack", "id": "retry-00001", "duplicate": True}
        # Replies of one session come in order, so any reply to a retry would come
        # before the reply to this marker.
        await say(ws, "/thank", message_id="marker-0001")
        frames += await until(ws, lambda f: bot_text(f).startswith(WELCOME))
        greetings = [f for f in frames if bot_text(f).startswith(GREETING)]
        assert len(greetings) == 1
        # The second page of the session saw the conversation live too.
        seen = await until(other, lambda f: bot_text(f).startswith(WELCOME))
        assert any(f.get("id") == "marker-0001" and f["type"] == "user" for f in seen)
        await ws.close()
        await other.close()
        assert [e["text"] for e in server.user_events(webchat_id(session[0]), count=2)] == [
            "hello",
            "/thank",
        ]

    run(scenario())


# ---------------------------------------------------------------- attachments
def test_an_attached_photo_is_stored_privately_and_the_bot_says_so(server: RasaServer):
    async def scenario() -> None:
        ws, session, _ = await open_session(server)
        answer = upload(
            server,
            session,
            PNG,
            **{
                "Content-Type": "image/png",
                "X-Webchat-Message-Id": "photo-00001",
                "X-Webchat-File-Name": "broken%20mug.png",
            },
        )
        assert answer.status_code == 202, answer.text
        frames = await until(ws, lambda f: f["type"] == "bot")
        assert {
            "type": "user",
            "id": "photo-00001",
            "text": "\N{PAPERCLIP} broken mug.png",
        } in frames
        assert bot_text(frames[-1]).startswith("Thanks, I've received your photo.")
        # A retried upload is dropped.
        again = upload(server, session, PNG, **{"X-Webchat-Message-Id": "photo-00001"})
        assert again.json() == {"status": "duplicate", "id": "photo-00001"}
        # Something the bot cannot use gets a polite answer and is not stored.
        zip_file = upload(
            server,
            session,
            b"PK\x03\x04" + bytes(32),
            **{"Content-Type": "application/zip", "X-Webchat-Message-Id": "zip-0000001"},
        )
        assert zip_file.status_code == 202
        frames = await until(ws, lambda f: f["type"] == "bot")
        assert bot_text(frames[-1]).startswith("Thanks, but I can't open a file here.")
        await ws.close()
        stored = list((server.workdir / "uploads" / session[0]).iterdir())
        assert len(stored) == 1 and stored[0].read_bytes() == PNG
        attachments = [
            e["metadata"]["attachments"][0]
            for e in server.user_events(webchat_id(session[0]), count=2)
        ]
        assert attachments[0]["kind"] == "image" and attachments[0]["mime_type"] == "image/png"
        assert attachments[0]["name"] == "broken mug.png"
        assert attachments[0]["file_id"] == stored[0].relative_to(server.workdir).as_posix()
        assert attachments[1]["kind"] == "other" and attachments[1]["file_id"] is None
        # Uploaded files are never served back.
        leaked = requests.get(f"{server.url}/webhooks/webchat/{attachments[0]['file_id']}")
        assert leaked.status_code == 404

    run(scenario())


def test_uploads_without_a_valid_token_or_too_big_are_refused(server: RasaServer):
    genuine = SessionSigner(SECRET, ttl_seconds=3600).new_session()
    forged = (genuine[0], SessionSigner("y" * 40, ttl_seconds=3600).issue(genuine[0]))
    headers = {"Content-Type": "image/png", "X-Webchat-Message-Id": "upload-0001"}
    assert upload(server, forged, PNG, **headers).status_code == 401
    assert upload(server, ("", ""), PNG, **headers).status_code == 401
    too_big = upload(server, genuine, PNG + bytes(MAX_ATTACHMENT), **headers)
    assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]
    no_id = upload(server, genuine, PNG, **{"Content-Type": "image/png"})
    assert no_id.status_code == 400
    assert upload(server, genuine, b"", **headers).status_code == 400
    assert server.user_events(webchat_id(genuine[0])) == []
    assert not (server.workdir / "uploads" / genuine[0]).exists()


# ---------------------------------------------------------------- browser
def test_a_customer_chats_in_headless_chromium_and_a_reload_keeps_the_conversation(
    server: RasaServer, tmp_path: Path
):
    """Typing, Enter, a button click, an attachment and a reload, in a real browser."""
    page_url = f"{server.url}/webhooks/webchat/"
    bot_texts = "Array.from(document.querySelectorAll('.webchat-bot')).map(e => e.textContent)"
    stored_session: List[str] = []
    photo = tmp_path / "damaged.png"
    photo.write_bytes(PNG)

    async def scenario() -> None:
        browser = await Browser(tmp_path / "profile").start()
        try:
            await browser.open(page_url)
            await browser.wait_for(
                "document.getElementById('webchat-status').textContent === 'Connected'"
            )
            await browser.click("document.getElementById('webchat-input')")
            await browser.type("hello")
            await browser.wait_for(
                f"{bot_texts}.some(t => t.includes({json.dumps(GREETING)}))", what="the greeting"
            )
            assert await browser.evaluate("document.getElementById('webchat-input').value") == ""
            await browser.type("this is the worst service I have ever had")
            no_thanks = (
                "Array.from(document.querySelectorAll('.webchat-button'))"
                ".find(b => b.textContent === 'No thanks')"
            )
            await browser.wait_for(f"Boolean({no_thanks})", what="the 'No thanks' button")
            await browser.click(no_thanks)
            await browser.wait_for(
                f"{bot_texts}.some(t => t.includes({json.dumps(DECLINED)}))", what="the answer"
            )
            users = "Array.from(document.querySelectorAll('.webchat-user')).map(e => e.textContent)"
            assert "You said: No thanks" in await browser.evaluate(users)
            assert await browser.evaluate(f"{no_thanks}.disabled")
            session_before = await browser.evaluate("localStorage.getItem('webchat.session')")
            stored_session.append(session_before)

            await browser.attach_file("#webchat-file", photo)
            await browser.wait_for(
                f'{bot_texts}.some(t => t.includes("I\'ve received your photo"))',
                what="the reply to the photo",
            )

            await browser.reload()
            await browser.wait_for(
                f"{bot_texts}.some(t => t.includes({json.dumps(DECLINED)}))",
                what="the conversation after the reload",
            )
            shown = await browser.evaluate("document.getElementById('webchat-log').innerText")
            for text in ("hello", GREETING, OFFER, "No thanks", DECLINED, "damaged.png"):
                assert text in shown, text
            assert "/deny" not in shown
            answered = await browser.evaluate(f"{no_thanks}.disabled")
            assert answered, "an answered question stays answered"
            # Same session, freshly signed token.
            after = json.loads(await browser.evaluate("localStorage.getItem('webchat.session')"))
            assert after["id"] == json.loads(session_before)["id"]
            before = len(await browser.evaluate(bot_texts))
            await browser.click("document.getElementById('webchat-input')")
            await browser.type(
                "<img src=x onerror=window.pwned=1> thank you, see https://shop.example/o/1."
            )
            await browser.wait_for(
                f"{bot_texts}.length > {before}", what="a reply after the reload"
            )
            assert (
                await browser.evaluate("document.querySelectorAll('#webchat-log img').length") == 0
            )
            assert await browser.evaluate("window.pwned === undefined")
            # Text is text, links are links (opened in a new tab, without a referrer).
            link = await browser.evaluate(
                "(() => { const a = document.querySelector('.webchat-user a');"
                " return a && [a.getAttribute('href'), a.rel, a.target]; })()"
            )
            assert link == ["https://shop.example/o/1", "noopener noreferrer nofollow", "_blank"]
            assert browser.errors == []
            origin = server.url.split("//", 1)[1]
            strangers = [
                u for u in browser.requests if u.split("//", 1)[-1].split("/")[0] != origin
            ]
            assert strangers == [], "the page must not reach any other host"
        finally:
            await browser.close()

    run(scenario())
    # The reloaded page went on as the same sender.
    session_id = json.loads(stored_session[0])["id"]
    texts = [e["text"] for e in server.user_events(webchat_id(session_id), count=3)]
    assert texts[0] == "hello" and texts[2] == "/deny"
    assert texts[-1].startswith("<img src=x") and texts[-1].endswith("/o/1.")


def test_a_new_visitor_is_greeted_and_a_suggested_question_is_answered_after_typing(
    server: RasaServer, tmp_path: Path
):
    """The greeting's buttons send their question as text; the page shows the typing
    indicator before the bot's answer; a reload shows the conversation, no greeting."""
    question = get_default_config()["suggested_questions"][2]
    suggestions = "Array.from(document.querySelectorAll('.webchat-greeting button'))"
    bot_texts = "Array.from(document.querySelectorAll('.webchat-bot')).map(e => e.textContent)"
    # The order in which the indicator and the bot's bubbles come (moves are not news).
    watch = (
        "(() => { window.seen = []; let on = false; const log = "
        "document.getElementById('webchat-log'); new MutationObserver((records) => {"
        " for (const r of records) { r.addedNodes.forEach((n) => {"
        " if (n.id === 'webchat-typing' && !on) { on = true; window.seen.push('+typing'); }"
        " if (n.classList && n.classList.contains('webchat-bot')) window.seen.push('+bot'); });"
        " r.removedNodes.forEach((n) => { if (n.id === 'webchat-typing' && !n.isConnected)"
        " { on = false; window.seen.push('-typing'); } }); } })"
        ".observe(log, {childList: true}); return true; })()"
    )
    stored_session: List[str] = []

    async def scenario() -> None:
        browser = await Browser(tmp_path / "profile").start()
        try:
            await browser.open(f"{server.url}/webhooks/webchat/")
            await browser.wait_for(f"{suggestions}.length === 3", what="the greeting")
            await browser.evaluate(watch)
            await browser.click(f"{suggestions}[2]")
            await browser.wait_for(f"{bot_texts}.length > 1", what="the answer")
            await browser.wait_for(
                "!document.getElementById('webchat-typing')", what="the turn's end"
            )
            seen = await browser.evaluate("window.seen")
            assert seen[:2] == ["+typing", "+bot"] and seen[-1] == "-typing", seen
            stored_session.append(await browser.evaluate("localStorage.getItem('webchat.session')"))
            await browser.reload()
            await browser.wait_for(f"{bot_texts}.length >= 1", what="the conversation")
            assert (
                await browser.evaluate("document.querySelectorAll('.webchat-greeting').length") == 0
            )
            shown = await browser.evaluate("document.getElementById('webchat-log').innerText")
            assert question in shown
            assert browser.errors == []
        finally:
            await browser.close()

    run(scenario())
    session_id = json.loads(stored_session[0])["id"]
    [event] = server.user_events(webchat_id(session_id), count=1)
    assert event["text"] == question, "the customer's words, not a payload"
    assert event["metadata"]["webchat"]["display"] is None


# ---------------------------------------------------------------- restart (last)
def test_after_a_restart_the_page_resumes_its_conversation_and_retries_are_still_dropped(
    server: RasaServer,
):
    async def before() -> Tuple[str, str]:
        ws, session, _ = await open_session(server)
        await say(ws, "hello", message_id="before-restart")
        await until(ws, lambda f: bot_text(f).startswith(GREETING))
        await ws.close()
        return session

    session = asyncio.run(before())
    server.restart()

    async def after() -> None:
        ws, renewed, history = await open_session(server, session)
        assert renewed[0] == session[0]
        assert history[0] == {"from": "user", "text": "hello", "id": "before-restart"}
        assert history[1]["from"] == "bot" and history[1]["text"].startswith(GREETING)
        # The greeting's buttons come back too, so the page can show them again.
        assert history[1]["buttons"][0] == {"title": "Track an order", "payload": "/order_status"}
        await say(ws, "hello", message_id="before-restart")
        assert await recv(ws) == {"type": "ack", "id": "before-restart", "duplicate": True}
        await say(ws, "/thank", message_id="after-restart")
        frames = await until(ws, lambda f: bot_text(f).startswith(WELCOME))
        assert not any(bot_text(f).startswith(GREETING) for f in frames)
        await ws.close()
        assert [e["text"] for e in server.user_events(webchat_id(session[0]), count=2)] == [
            "hello",
            "/thank",
        ]

    run(after())
