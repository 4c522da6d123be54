"""What the web chat's server tests do as a page does: open a socket, say hello, send
messages and files, and read the frames that come back."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests
import websockets

from channels.conversation_ids import conversation_id
from tests.rasa_process import RasaServer

Frame = Dict[str, Any]


def ws_url(server: RasaServer) -> str:
    return server.url.replace("http://", "ws://") + "/webhooks/webchat/webhook"


def webchat_id(session_id: str) -> str:
    """The conversation (tracker) id of a web chat session."""
    return conversation_id("webchat", session_id)


async def recv(ws: Any, timeout: float = 60) -> Frame:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def until(ws: Any, done: Callable[[Frame], bool], timeout: float = 60) -> List[Frame]:
    """Frames up to and including the first for which ``done`` holds."""
    frames: List[Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        frames.append(await recv(ws, max(0.1, deadline - time.monotonic())))
        if done(frames[-1]):
            return frames


def bot_text(frame: Frame) -> str:
    return str(frame.get("message", {}).get("text", "")) if frame.get("type") == "bot" else ""


async def connect(server: RasaServer, *, origin: Optional[str] = "same") -> Any:
    return await websockets.connect(
        ws_url(server), origin=server.url if origin == "same" else origin, open_timeout=30
    )


async def open_session(
    server: RasaServer,
    session: Optional[Tuple[str, str]] = None,
    *,
    origin: Optional[str] = "same",
) -> Tuple[Any, Tuple[str, str], List[Frame]]:
    """A connected socket, the (session id, token) it was given, and the history."""
    ws = await connect(server, origin=origin)
    hello: Frame = {"type": "hello"}
    if session:
        hello.update(session_id=session[0], token=session[1])
    await ws.send(json.dumps(hello))
    given = await recv(ws)
    assert given["type"] == "session", given
    history = await recv(ws)
    assert history["type"] == "history", history
    return ws, (given["session_id"], given["token"]), history["messages"]


async def say(ws: Any, text: str, *, message_id: str, display: Optional[str] = None) -> None:
    frame = {"type": "message", "id": message_id, "text": text}
    if display:
        frame["display"] = display
    await ws.send(json.dumps(frame))


def upload(
    server: RasaServer, session: Tuple[str, str], data: bytes, **headers: str
) -> requests.Response:
    return requests.post(
        f"{server.url}/webhooks/webchat/upload",
        data=data,
        headers={
            "Origin": server.url,
            "X-Webchat-Session": session[0],
            "X-Webchat-Token": session[1],
            **headers,
        },
        timeout=30,
    )


def run(scenario: Any, timeout: float = 240) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout))
