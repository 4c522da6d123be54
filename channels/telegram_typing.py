"""Telegram's "typing…" in a chat while the bot's turn on a message runs.

Telegram shows a chat action for 5 seconds, or until the bot's next message arrives.
:class:`ChatTyping` sends ``sendChatAction`` with ``typing`` when the turn starts and
again every :data:`REPEAT_SECONDS` while it runs, and stops for good at the first
reply of the turn (:meth:`TelegramBot.call` stops it before any other Bot API call) or
when the turn ends, whichever comes first, so the customer never sees "typing…" after
the answer.

It is bounded on every side and costs the reply nothing it cannot spare:

- it runs beside the turn, never in front of it: a slow or failing Bot API holds up
  only the indicator;
- an action still on its way when the reply is ready is waited for at most
  :data:`SETTLE_SECONDS` (so Telegram gets the action first and the reply clears it),
  then given up;
- a failed action is logged once, with Telegram's reason (never a chat's words or the
  token), and the indicator stops for that turn: no retries, which after a back-off
  could only land after the reply, and nothing that adds to flood control.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Optional

from telegram import Bot
from telegram.constants import ChatAction

from channels.telegram_config import CHANNEL

logger = logging.getLogger(__name__)

# Telegram shows an action for 5 s: say it again a little before that.
REPEAT_SECONDS = 4.0
# The longest a reply waits for an action already on its way.
SETTLE_SECONDS = 1.0
# One action's own time limits (connect, write, read): a slow one is dropped before
# the next is due.
ACTION_TIMEOUT_SECONDS = 3.0

SendAction = Callable[[], Awaitable[Any]]
Describe = Callable[[BaseException], str]


def typing_action(bot: Bot, chat_id: str) -> SendAction:
    """``sendChatAction`` with ``typing`` for ``chat_id``, with short time limits."""

    async def send() -> Any:
        return await bot.send_chat_action(
            chat_id,
            ChatAction.TYPING,
            read_timeout=ACTION_TIMEOUT_SECONDS,
            write_timeout=ACTION_TIMEOUT_SECONDS,
            connect_timeout=ACTION_TIMEOUT_SECONDS,
            pool_timeout=ACTION_TIMEOUT_SECONDS,
        )

    return send


class ChatTyping:
    """Repeats one chat's typing action from :meth:`start` until :meth:`stop`."""

    def __init__(
        self,
        send_action: SendAction,
        *,
        describe: Describe = lambda error: type(error).__name__,
        repeat_s: Optional[float] = None,
        settle_s: Optional[float] = None,
    ) -> None:
        self._send_action = send_action
        self._describe = describe  # a failure as a reason safe to log
        self.repeat_s = REPEAT_SECONDS if repeat_s is None else repeat_s
        self.settle_s = SETTLE_SECONDS if settle_s is None else settle_s
        self._task: Optional[asyncio.Task] = None
        self._sending = False
        self._stopping = False
        self.sent = 0  # actions Telegram took

    async def start(self) -> None:
        """Send the first action beside the caller, and come back once it is on its way."""
        if self._task is not None or self._stopping:
            return
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0)  # let it begin: a reply from now on waits for it (stop)

    async def stop(self) -> None:
        """No action after this returns; one on its way gets ``settle_s`` to arrive."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if self._sending:
            done, _ = await asyncio.wait({task}, timeout=self.settle_s)
            if done:
                return
        task.cancel()
        await asyncio.wait({task})  # never raises, also when this caller is cancelled

    async def _run(self) -> None:
        while not self._stopping:
            self._sending = True
            try:
                await self._send_action()
            except Exception as error:  # noqa: BLE001 - the reply must go on whatever this is
                logger.warning(
                    "%s: sendChatAction failed (%s); the reply is sent without it",
                    CHANNEL,
                    self._describe(error),
                )
                return
            finally:
                self._sending = False
            self.sent += 1
            if self._stopping:
                return
            await asyncio.sleep(self.repeat_s)
