"""The bot's turns on a web chat session's messages: in the order they came, out of band.

A message taken from a page (socket or upload) is queued behind the session's earlier
ones and answered in a task of its own, so the socket goes on reading meanwhile. Each
turn is shown to the session's open pages between a ``typing`` frame that starts the
indicator and one that stops it, also when the turn fails.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import OutputChannel, UserMessage

from channels.attachments import Said
from channels.conversation_ids import conversation_id
from channels.webchat_config import CHANNEL
from channels.webchat_frames import typing_frame
from channels.webchat_output import SessionHub

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class SessionTurns:
    """Each session's queued and running turns; ``session_id in turns`` while it has one."""

    def __init__(self, hub: SessionHub, output: Callable[[], OutputChannel]) -> None:
        self.hub = hub
        self.output = output
        # The last queued task of each session: the next one waits for it (order), and
        # holding it keeps it from being garbage-collected while it runs.
        self._tails: Dict[str, asyncio.Task] = {}

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._tails

    def __len__(self) -> int:
        return len(self._tails)

    def enqueue(
        self,
        session_id: str,
        messages: List[Said],
        on_new_message: OnNewMessage,
    ) -> None:
        """Hand messages to the bot after the session's earlier ones, out of band."""
        output = self.output()
        sender_id = conversation_id(CHANNEL, session_id)
        user_messages_ = [said.user_message(output, sender_id, CHANNEL) for said in messages]
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
