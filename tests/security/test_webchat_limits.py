"""Issue 23, findings 4 and 5 on the web chat, against `rasa run` with the real bot.

What one caller can cost: messages and uploads per session, requests and new sessions
per client address (429 with ``Retry-After``, a ``rate_limited`` frame, or a close with
1013), the files a session may store a day, how long stored files are kept; and a
WebSocket frame over ``max_frame_bytes`` refused from its header, before its payload is
read.

Two servers, one after the other: one with the web chat's defaults (every test there
runs on a stock configuration), and one with tight rate limits, so that a limit is
reached with a few messages instead of hundreds.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from websockets.exceptions import ConnectionClosed

from tests.channels.webchat_cdp import Browser
from tests.channels.webchat_client import (
    Frame,
    connect,
    open_session,
    recv,
    run,
    say,
    until,
    upload,
    webchat_id,
)
from tests.rasa_process import RasaServer

pytestmark = pytest.mark.integration

SECRET = "security-webchat-secret-0123456789abcdefghij"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
DAY = 24 * 60 * 60
# The defaults (channels/webchat_config.py) that the stock server runs with.
FILES_PER_DAY = 20
NEW_SESSIONS_PER_HOUR = 200
RETENTION_DAYS = 30
MAX_FRAME_BYTES = 16 * 1024
# The limited server's limits.
MESSAGES_PER_MINUTE = 6
REQUESTS_PER_MINUTE = 40


def start(bot_model: Path, workdir: Path, settings: str) -> RasaServer:
    credentials = workdir / "credentials.yml"
    credentials.write_text(
        f'channels.webchat.WebChatInput:\n  session_secret: "{SECRET}"\n{settings}'
    )
    return RasaServer(bot_model, workdir, credentials=credentials).start()


async def first_answer_to_a_hello(server: RasaServer) -> Tuple[Frame, Optional[int]]:
    """What a new page hears first, and the close code if the server then closes."""
    ws = await connect(server)
    try:
        await ws.send(json.dumps({"type": "hello"}))
        first = await recv(ws)
        if first["type"] == "session":
            return first, None
        with pytest.raises(ConnectionClosed):
            await recv(ws, 15)
        return first, ws.close_code
    finally:
        await ws.close()


def aged(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when))


# ================================================================ stock settings
OLD_SESSION, RECENT_SESSION, EMPTY_SESSION = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture(scope="class")
def stock(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("webchat-stock")
    uploads = workdir / "webchat_uploads"
    for session in (OLD_SESSION, RECENT_SESSION, EMPTY_SESSION):
        (uploads / session).mkdir(parents=True)
    old = uploads / OLD_SESSION / "0123456789abcdef01234567.png"
    old.write_bytes(PNG)
    aged(old, RETENTION_DAYS + 1)
    recent = uploads / RECENT_SESSION / "76543210fedcba9876543210.png"
    recent.write_bytes(PNG)
    aged(recent, RETENTION_DAYS - 1)
    for session in (OLD_SESSION, RECENT_SESSION, EMPTY_SESSION):
        aged(uploads / session, RETENTION_DAYS + 1)
    server = start(bot_model, workdir, "")
    yield server
    server.stop()


class TestStockSettings:
    def test_stored_files_past_the_retention_are_deleted_with_their_empty_folders(
        self, stock: RasaServer
    ):
        uploads = stock.workdir / "webchat_uploads"
        deadline = time.monotonic() + 60
        while (uploads / OLD_SESSION).exists() or (uploads / EMPTY_SESSION).exists():
            assert time.monotonic() < deadline, (
                f"files older than {RETENTION_DAYS} days still stored 60 s after the start: "
                f"{sorted(p.name for p in uploads.rglob('*'))}"
            )
            time.sleep(0.5)
        kept = list((uploads / RECENT_SESSION).iterdir())
        assert [p.read_bytes() for p in kept] == [PNG], "a file within the retention stays"

    def test_a_session_past_its_daily_file_quota_gets_429_and_nothing_is_stored(
        self, stock: RasaServer
    ):
        async def scenario() -> None:
            ws, session, _ = await open_session(stock)
            for number in range(FILES_PER_DAY):
                answer = upload(
                    stock,
                    session,
                    PNG,
                    **{"Content-Type": "image/png", "X-Webchat-Message-Id": f"file-{number:04d}"},
                )
                assert answer.status_code == 202, (number, answer.text)
            over = upload(
                stock,
                session,
                PNG,
                **{"Content-Type": "image/png", "X-Webchat-Message-Id": "file-over-quota"},
            )
            assert over.status_code == 429, over.text
            retry_after = int(over.headers["Retry-After"])
            assert DAY - 600 < retry_after <= DAY, "room again when the first file is a day old"
            assert f"{FILES_PER_DAY} files" in over.json()["error"]
            stored = list((stock.workdir / "webchat_uploads" / session[0]).iterdir())
            assert len(stored) == FILES_PER_DAY
            events = stock.user_events(webchat_id(session[0]), count=FILES_PER_DAY)
            assert len(events) == FILES_PER_DAY
            await ws.close()

        run(scenario())

    def test_a_frame_over_max_frame_bytes_is_refused_from_its_header(self, stock: RasaServer):
        async def scenario() -> None:
            ws, session, _ = await open_session(stock)
            # A masked text frame that declares 64 KiB (over the 16 KiB limit, well under
            # Sanic's 1 MiB), and only its first bytes: the server must not wait for the rest.
            header = bytes([0x81, 0xFF]) + (4 * MAX_FRAME_BYTES).to_bytes(8, "big") + os.urandom(4)
            ws.transport.write(header + b"x" * 100)
            with pytest.raises(ConnectionClosed):
                await recv(ws, 15)
            assert ws.close_code == 1009
            # A frame within the limit is still a message: 4000 characters (the longest
            # message) of three bytes each.
            ws, _, _ = await open_session(stock, session)
            message = {"type": "message", "id": "big-but-fine", "text": "\N{EURO SIGN}" * 4000}
            await ws.send(json.dumps(message, ensure_ascii=False))  # as the page sends it
            frames = await until(ws, lambda f: f["type"] in ("ack", "error"))
            assert frames[-1] == {"type": "ack", "id": "big-but-fine", "duplicate": False}
            await ws.close()

        run(scenario())

    def test_new_sessions_from_one_address_past_the_limit_are_closed_with_1013(
        self, stock: RasaServer
    ):
        async def scenario() -> None:
            for attempt in range(NEW_SESSIONS_PER_HOUR + 20):
                first, close_code = await first_answer_to_a_hello(stock)
                if first["type"] == "session":
                    continue
                assert first["type"] == "error" and first["code"] == "rate_limited", first
                assert first["retry_after"] >= 1 and close_code == 1013
                # Earlier tests of this class opened a few sessions of the budget.
                assert attempt > NEW_SESSIONS_PER_HOUR - 10
                return
            pytest.fail(f"{NEW_SESSIONS_PER_HOUR + 20} new sessions from one address, none refused")

        run(scenario())


# ================================================================ tight limits
@pytest.fixture(scope="class")
def limited(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServer]:
    server = start(
        bot_model,
        tmp_path_factory.mktemp("webchat-limited"),
        "  rate_limits:\n"
        f'    conversation: "{MESSAGES_PER_MINUTE}/minute"\n'
        f'    address: "{REQUESTS_PER_MINUTE}/minute"\n'
        '    new_sessions: "1000/hour"\n',
    )
    yield server
    server.stop()


class TestTightLimits:
    def test_a_message_over_the_sessions_rate_is_not_taken_until_sent_again_later(
        self, limited: RasaServer
    ):
        ids = [f"rate-{n:04d}" for n in range(MESSAGES_PER_MINUTE + 1)]

        async def scenario() -> None:
            ws, session, _ = await open_session(limited)
            for message_id in ids:
                await say(ws, "thanks", message_id=message_id)
            acks: List[str] = []
            refused: Frame = {}
            while not refused or len(acks) < len(ids) - 1:
                frame = await recv(ws)
                if frame["type"] == "ack":
                    acks.append(frame["id"])
                elif frame["type"] == "error":
                    refused = frame
            assert refused["code"] == "rate_limited" and refused["id"] == ids[-1], refused
            assert 1 <= refused["retry_after"] <= 60 // MESSAGES_PER_MINUTE
            assert acks == ids[:-1], "the messages within the limit are taken, in order"
            taken = limited.user_events(webchat_id(session[0]), count=MESSAGES_PER_MINUTE)
            assert len(taken) == MESSAGES_PER_MINUTE
            # Not taken, so the page sends it again after retry_after; then it is.
            await asyncio.sleep(refused["retry_after"] + 0.5)
            await say(ws, "thanks", message_id=ids[-1])
            answer = await until(ws, lambda f: f.get("id") == ids[-1] and f["type"] != "user")
            assert answer[-1] == {"type": "ack", "id": ids[-1], "duplicate": False}
            await ws.close()
            taken = limited.user_events(webchat_id(session[0]), count=len(ids))
            assert len(taken) == len(ids)

        run(scenario())
        assert "thanks" not in limited.log(), "a refusal's log line quotes no customer text"

    def test_an_upload_over_the_sessions_rate_gets_429_with_retry_after(self, limited: RasaServer):
        async def scenario() -> None:
            ws, session, _ = await open_session(limited)
            for number in range(MESSAGES_PER_MINUTE):
                await say(ws, "thanks", message_id=f"fill-{number:04d}")
            await until(ws, lambda f: f.get("id") == f"fill-{MESSAGES_PER_MINUTE - 1:04d}")
            headers = {"Content-Type": "image/png", "X-Webchat-Message-Id": "photo-0001"}
            over = upload(limited, session, PNG, **headers)
            assert over.status_code == 429, over.text
            retry_after = int(over.headers["Retry-After"])
            assert 1 <= retry_after <= 60 // MESSAGES_PER_MINUTE
            assert "try again" in over.json()["error"]
            assert not (limited.workdir / "webchat_uploads" / session[0]).exists()
            await asyncio.sleep(retry_after + 0.5)
            assert upload(limited, session, PNG, **headers).status_code == 202
            await ws.close()

        run(scenario())

    def test_the_page_waits_as_told_and_sends_the_refused_message_again(
        self, limited: RasaServer, tmp_path: Path
    ):
        texts = [f"thank you number {n}" for n in range(MESSAGES_PER_MINUTE + 1)]
        status = "document.getElementById('webchat-status').textContent"
        states = (
            "Array.from(document.querySelectorAll('.webchat-user'))"
            ".map(e => [e.textContent, e.dataset.state || ''])"
        )
        session: List[Any] = []

        async def scenario() -> None:
            browser = await Browser(tmp_path / "profile").start()
            try:
                await browser.open(f"{limited.url}/webhooks/webchat/")
                await browser.wait_for(f"{status} === 'Connected'")
                await browser.click("document.getElementById('webchat-input')")
                for text in texts:
                    await browser.type(text)
                notice = await browser.wait_for(
                    f"{status}.includes('seconds') && {status}", what="the notice", timeout=20
                )
                assert "send" in notice, notice
                await browser.wait_for(
                    f"{states}.length === {len(texts)} && {states}.every(s => s[1] === '')",
                    what="every message sent",
                    timeout=60,
                )
                assert await browser.evaluate(f"{status}") == "Connected"
                assert browser.errors == []
                stored = await browser.evaluate("localStorage.getItem('webchat.session')")
                session.append(json.loads(stored)["id"])
            finally:
                await browser.close()

        run(scenario())
        taken = limited.user_events(webchat_id(session[0]), count=len(texts))
        assert [e["text"] for e in taken] == texts, "every message once, in the order typed"

    def test_requests_from_one_address_past_the_limit_are_refused(self, limited: RasaServer):
        async def scenario() -> None:
            for _ in range(REQUESTS_PER_MINUTE * 3):
                first, close_code = await first_answer_to_a_hello(limited)
                if first["type"] == "session":
                    continue
                assert first["code"] == "rate_limited" and "address" in first["reason"], first
                assert close_code == 1013
                return
            pytest.fail(f"{REQUESTS_PER_MINUTE * 3} hellos from one address, none refused")

        run(scenario())
