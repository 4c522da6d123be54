"""A Sanic app on a loopback port in this process, and a stand-in for Rasa's agent.

For tests of what Rasa's server and its channels answer over real HTTP, without
loading a model: :func:`serving` runs the app's event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional

from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from tests.rasa_process import free_port


class MessageRecorder:
    """Stands in for Rasa's agent: no model is loaded, and the REST channel's messages
    are kept. Anything else Rasa asks of it fails the request, and so the test."""

    def __init__(self, reply: Optional[str] = None) -> None:
        self.messages: List[UserMessage] = []
        self.reply = reply  # said back to every message, when given

    def is_ready(self) -> bool:
        return False

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        if self.reply is not None and message.output_channel is not None:
            await message.output_channel.send_text_message(message.sender_id, self.reply)


@contextmanager
def serving(app: Sanic, agent: Optional[Any] = None) -> Iterator[str]:
    """``app`` on a loopback port, its event loop in a thread; yields its URL.

    ``agent`` (default a :class:`MessageRecorder`) is ``app.ctx.agent``.
    """
    # Sanic rewrites its own methods when a first app starts ("touch-up"), which breaks
    # every later app in the same process; test mode leaves them alone.
    Sanic.test_mode = True
    port = free_port()
    loop = asyncio.new_event_loop()
    app.ctx.agent = agent if agent is not None else MessageRecorder()

    async def start() -> Any:
        server = await app.create_server(
            host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
        )
        await server.startup()
        await server.before_start()
        await server.after_start()
        return server

    server = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(server.close())
        # Open connections' tasks end here, not in a closed loop.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()

        async def drain() -> None:
            await asyncio.gather(*pending, return_exceptions=True)

        loop.run_until_complete(drain())
        loop.close()


def without_server_guards(monkeypatch: Any) -> None:
    """Make Rasa's and rasa_sdk's apps in this test as Sanic registers them, without
    rasa_llm's automatic guards (rasa_llm.server.server_guards), to apply them by hand."""
    monkeypatch.setattr(Sanic, "test_mode", True)
    registration = Sanic.__dict__["register_app"].__func__
    unguarded = getattr(registration, "__wrapped__", registration)
    monkeypatch.setattr(Sanic, "register_app", classmethod(unguarded))
