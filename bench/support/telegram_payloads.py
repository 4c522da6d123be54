"""Telegram's shapes: webhook Updates as the Bot API posts them, and a fake Bot API.

The updates follow https://core.telegram.org/bots/api#update field by field (what a
private chat with a customer sends); the fake answers the Bot API methods the channel
calls with the ``{"ok": true, "result": …}`` bodies Telegram returns, so
python-telegram-bot parses them as it parses Telegram's.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from bench.support.fake_platform import Call, FakePlatform, Reply, take_failure_or_wait

TOKEN = "7352614:AAH4xTestTokenForTheFakeBotApi_0k"
SECRET = "s3cr3t-Token_for_tests-0123456789"
BOT_ID = 7352614
BOT_USERNAME = "northwind_help_bot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Northwind", "username": BOT_USERNAME}
# The chat action every turn sends first ("typing…"): every fake Bot API answers it.
CHAT_ACTION = "sendChatAction"
METHODS = (
    CHAT_ACTION,
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "answerCallbackQuery",
    "editMessageText",
    "editMessageReplyMarkup",
)

_ids = itertools.count(int(time.time() * 1000) % 10**8 * 100)


def next_id() -> int:
    return next(_ids)


def path(method: str) -> str:
    return f"/bot{TOKEN}/{method}"


def customer(chat_id: int) -> Dict[str, Any]:
    return {
        "id": chat_id,
        "is_bot": False,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "username": f"ada{chat_id}",
        "language_code": "en",
    }


def private_chat(chat_id: int) -> Dict[str, Any]:
    return {"id": chat_id, "first_name": "Ada", "username": f"ada{chat_id}", "type": "private"}


def message(chat_id: int, *, update_id: Optional[int] = None, **fields: Any) -> Dict[str, Any]:
    """An update with a customer's message; ``fields`` are the message's content."""
    return {
        "update_id": next_id() if update_id is None else update_id,
        "message": {
            "message_id": next_id() % 100000,
            "from": customer(chat_id),
            "chat": private_chat(chat_id),
            "date": int(time.time()),
            **fields,
        },
    }


# What Telegram marks as a command at the start of a message: "/" and a name, with an
# optional "@bot" (so in '/inform{"a": 1}' only "/inform" is the command).
_COMMAND = re.compile(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?")


def text_message(chat_id: int, text: str, **kw: Any) -> Dict[str, Any]:
    fields: Dict[str, Any] = {"text": text}
    command = _COMMAND.match(text)
    if command:
        length = command.end()
        fields["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
    return message(chat_id, **fields, **kw)


def photo(*, file_id: str = "AgACAgQAAxkBAAIBZ2Zp") -> List[Dict[str, Any]]:
    """A photo as Telegram lists it: the same picture in sizes, smallest first."""
    return [
        {
            "file_id": f"{file_id}_{width}",
            "file_unique_id": f"AQAD{width}",
            "file_size": width * 12,
            "width": width,
            "height": width * 3 // 4,
        }
        for width in (90, 320, 1280)
    ]


def keyboard_message(chat_id: int, text: str, rows: List[List[Tuple[str, str]]]) -> Dict[str, Any]:
    """The bot's own message with an inline keyboard, as a callback_query carries it."""
    return {
        "message_id": next_id() % 100000,
        "from": BOT_USER,
        "chat": private_chat(chat_id),
        "date": int(time.time()),
        "text": text,
        "reply_markup": {
            "inline_keyboard": [
                [{"text": title, "callback_data": data} for title, data in row] for row in rows
            ]
        },
    }


def callback_query(
    chat_id: int, data: str, *, keyboard: Optional[Dict[str, Any]] = None, **kw: Any
) -> Dict[str, Any]:
    return {
        "update_id": kw.get("update_id", next_id()),
        "callback_query": {
            "id": str(next_id() * 1000 + 7),
            "from": customer(chat_id),
            "message": keyboard or keyboard_message(chat_id, "Choose", [[("Go", data)]]),
            "chat_instance": f"-{chat_id}42",
            "data": data,
        },
    }


def headers(*, secret: Optional[str] = SECRET, content_type: str = "application/json") -> Dict:
    found = {"Content-Type": content_type}
    if secret is not None:
        found["X-Telegram-Bot-Api-Secret-Token"] = secret
    return found


def body(update: Dict[str, Any]) -> bytes:
    return json.dumps(update).encode()


class BotApi:
    """Telegram's answers to the channel's calls, with per-chat failures on demand."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: Dict[str, List[Reply]] = {}
        self.arrivals: Dict[str, List[float]] = {}
        # Seconds to wait before answering a chat's message: a slow Bot API.
        self.slow: Dict[str, float] = {}
        # The same for chat actions, which have failures of their own.
        self.action_failures: Dict[str, List[Reply]] = {}
        self.slow_actions: Dict[str, float] = {}

    def fail_next(self, chat_id: Any, *replies: Reply) -> None:
        with self.lock:
            self.failures.setdefault(str(chat_id), []).extend(replies)

    def fail_next_actions(self, chat_id: Any, *replies: Reply) -> None:
        with self.lock:
            self.action_failures.setdefault(str(chat_id), []).extend(replies)

    def answer(self, call: Call) -> Reply:
        fields = call.fields()
        method = call.path.rsplit("/", 1)[-1]
        if method == "answerCallbackQuery":
            return 200, {"ok": True, "result": True}, {}
        if method == CHAT_ACTION:
            return self._chat_action(str(fields.get("chat_id")))
        chat_id = str(fields.get("chat_id"))
        with self.lock:
            self.arrivals.setdefault(chat_id, []).append(time.monotonic())
        failure = take_failure_or_wait(self.lock, self.failures, self.slow, chat_id)
        if failure is not None:
            return failure
        sent: Dict[str, Any] = {
            "message_id": next_id() % 100000,
            "from": BOT_USER,
            "chat": private_chat(int(chat_id)),
            "date": int(time.time()),
        }
        if "text" in fields:
            sent["text"] = fields["text"]
        if method == "sendPhoto":
            sent["photo"] = photo()
        if "reply_markup" in fields:
            sent["reply_markup"] = json.loads(fields["reply_markup"])
        return 200, {"ok": True, "result": sent}, {}

    def _chat_action(self, chat_id: str) -> Reply:
        failure = take_failure_or_wait(self.lock, self.action_failures, self.slow_actions, chat_id)
        if failure is not None:
            return failure
        return 200, {"ok": True, "result": True}, {}


def flood(*, seconds: int = 1) -> Reply:
    return (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {seconds}",
            "parameters": {"retry_after": seconds},
        },
        {"Retry-After": str(seconds)},
    )


def server_error(*, status: int = 502) -> Reply:
    return status, {"ok": False, "error_code": status, "description": "Bad Gateway"}, {}


def refused(status: int, description: str) -> Reply:
    return status, {"ok": False, "error_code": status, "description": description}, {}


def fake_bot_api(*methods: str) -> Tuple[FakePlatform, BotApi]:
    """A started fake Bot API that answers ``methods`` (all the channel's by default),
    and always the chat action that starts every turn."""
    fake = FakePlatform("telegram").start()
    api = BotApi()
    for method in dict.fromkeys((CHAT_ACTION, *(methods or METHODS))):
        fake.expect("POST", path(method), api.answer)
    return fake, api


def calls_in_order(fake: FakePlatform, chat_id: Any) -> List[str]:
    """The Bot API methods called for ``chat_id``, in the order they arrived."""
    calls = list(fake.calls)
    return [
        call.path.rsplit("/", 1)[-1]
        for call in calls
        if str(call.fields().get("chat_id")) == str(chat_id)
    ]


def sent(fake: FakePlatform, chat_id: Any, *, method: str = "sendMessage") -> List[Dict[str, Any]]:
    return [
        fields
        for fields in (call.fields() for call in fake.calls_to(path(method)))
        if str(fields.get("chat_id")) == str(chat_id)
    ]
