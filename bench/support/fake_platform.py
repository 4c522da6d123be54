"""A stand-in for a platform's web API (Slack, Telegram, Twilio) on loopback.

It answers only the calls a test declared with :meth:`FakePlatform.expect`, records
every call, and answers anything else with HTTP 500 while recording it as unexpected:
:meth:`FakePlatform.assert_no_unexpected_calls` (run by the fixtures after each test)
turns those into a failure. Replies can be canned or computed, and a reply can be a
failure (429, 5xx) to test retries, or come late (``delay``): the call is taken and
recorded at once, as the platform would act on it, and answered only after the
client's timeout, as over a network that lost the answer.

:class:`TwilioMessageLog` is Twilio's Messages resource: it creates messages (201,
Twilio's JSON) and lists them with Twilio's filters (``To``, ``From``, ``DateSent>``),
so a client can look up a message whose answer it never got.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union
from urllib.parse import parse_qs, urlsplit

Reply = Tuple[int, Union[Dict[str, Any], str, bytes], Dict[str, str]]


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    @property
    def form(self) -> Dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}

    def fields(self) -> Dict[str, Any]:
        """The body as a dict whatever its encoding (JSON, form or multipart-free form)."""
        content_type = self.headers.get("content-type", "")
        if "json" in content_type:
            value = self.json
            return value if isinstance(value, dict) else {"_": value}
        return self.form


@dataclass
class _Expectation:
    method: str
    path: str
    reply: Union[Reply, Callable[[Call], Reply]]
    times: Optional[int]
    delay: float = 0.0
    used: int = 0


_T = TypeVar("_T")


def wait_for_count(
    get: Callable[[], List[_T]], count: int, timeout: float, *, failure: Callable[[], str]
) -> List[_T]:
    """``get()`` once it holds ``count`` items or more (asked every 50 ms); after
    ``timeout`` seconds an AssertionError saying ``failure()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = get()
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(failure())


def take_failure_or_wait(
    lock: threading.Lock, failures: Dict[str, List[Reply]], delays: Dict[str, float], key: str
) -> Optional[Reply]:
    """The reply queued first in ``failures[key]``, taken off the queue; with none queued,
    None once ``delays[key]`` seconds (0 when unset) have passed. ``lock`` guards both."""
    with lock:
        queued = failures.get(key)
        failure = queued.pop(0) if queued else None
        delay = delays.get(key, 0.0)
    if failure is None:
        time.sleep(delay)
    return failure


@dataclass
class FakePlatform:
    """A loopback HTTP server that fails any call it was not told to expect."""

    name: str = "platform"
    calls: List[Call] = field(default_factory=list)
    unexpected: List[Call] = field(default_factory=list)
    _expectations: List[_Expectation] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: Optional[ThreadingHTTPServer] = None

    def start(self) -> FakePlatform:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                call = Call(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                (status, payload, headers), delay = fake._answer(call)
                if delay:
                    time.sleep(delay)  # taken and recorded already: the answer comes late
                data = (
                    payload
                    if isinstance(payload, bytes)
                    else payload.encode()
                    if isinstance(payload, str)
                    else json.dumps(payload).encode()
                )
                self.send_response(status)
                if "content-type" not in {k.lower() for k in headers}:
                    self.send_header(
                        "Content-Type",
                        "application/json" if isinstance(payload, dict) else "text/plain",
                    )
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a deadline under test); nothing to tell

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output for failures

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def expect(
        self,
        method: str,
        path: str,
        reply: Union[Reply, Callable[[Call], Reply], Dict[str, Any]],
        *,
        times: Optional[int] = None,
        delay: float = 0.0,
    ) -> None:
        """Answer ``method path`` with ``reply`` (a dict means 200 with that JSON).

        ``times`` limits how often; a later call beyond it is unexpected. Earlier
        expectations for the same route win until they are used up. ``delay``: the
        reply is made (a computed one acts) at once, and sent that many seconds later.
        """
        if isinstance(reply, dict):
            reply = (200, reply, {})
        with self._lock:
            self._expectations.append(_Expectation(method.upper(), path, reply, times, delay))

    def _answer(self, call: Call) -> Tuple[Reply, float]:
        with self._lock:
            self.calls.append(call)
            for expectation in self._expectations:
                if (expectation.method, expectation.path) != (call.method, call.path):
                    continue
                if expectation.times is not None and expectation.used >= expectation.times:
                    continue
                expectation.used += 1
                reply, delay = expectation.reply, expectation.delay
                break
            else:
                self.unexpected.append(call)
                return (500, {"error": f"unexpected call {call.method} {call.path}"}, {}), 0.0
        return (reply(call) if callable(reply) else reply), delay

    def calls_to(self, path: str) -> List[Call]:
        with self._lock:
            return [call for call in self.calls if call.path == path]

    def wait_for_calls(self, path: str, *, count: int = 1, timeout: float = 30.0) -> List[Call]:
        """The calls to ``path`` once there are at least ``count``; fails after ``timeout``."""
        return wait_for_count(
            lambda: self.calls_to(path),
            count,
            timeout,
            failure=lambda: (
                f"{self.name}: expected {count} call(s) to {path} within {timeout} s, got "
                f"{len(self.calls_to(path))}; all calls: "
                f"{[(c.method, c.path) for c in self.calls]}"
            ),
        )

    def assert_no_unexpected_calls(self) -> None:
        if self.unexpected:
            listed = ", ".join(f"{c.method} {c.path}" for c in self.unexpected)
            raise AssertionError(f"{self.name} received calls nobody expected: {listed}")


class TwilioMessageLog:
    """Twilio's Messages resource: messages created (answered 201 with Twilio's JSON)
    and listed as ``GET .../Messages.json`` lists them, newest first.

    A created message counts as sent at once (its ``date_sent`` is its creation time).
    """

    def __init__(self, account_sid: str) -> None:
        self.account_sid = account_sid
        self.path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.created: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._sids = itertools.count(1)

    def create(self, call: Call) -> Reply:
        """``POST Messages.json``: the message, as Twilio answers a created one."""
        form = call.form
        media = parse_qs(call.body.decode("utf-8")).get("MediaUrl", [])
        now = datetime.now(timezone.utc)
        with self._lock:
            sid = f"SM{next(self._sids):032x}"
            message = {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body", ""),
                "num_media": str(len(media)),
                "status": "queued",
                "direction": "outbound-api",
                "date_created": format_datetime(now, usegmt=True),
                "date_updated": format_datetime(now, usegmt=True),
                "date_sent": format_datetime(now, usegmt=True),
                "uri": f"{self.path[: -len('.json')]}/{sid}.json",
            }
            self.created.append({**message, "_at": now})
        return 201, message, {}

    def list(self, call: Call) -> Reply:
        """``GET Messages.json`` with Twilio's filters ``To``, ``From`` and ``DateSent>``
        (sent at or after: a date, or a date and time), one page, newest first."""

        def first(name: str) -> Optional[str]:
            values = call.query.get(name)
            return values[0] if values else None

        to, sender, since = first("To"), first("From"), first("DateSent>")
        after = _twilio_time(since) if since else None
        size = int(first("PageSize") or 50)
        with self._lock:
            found = [
                {k: v for k, v in message.items() if k != "_at"}
                for message in reversed(self.created)
                if (to is None or message["to"] == to)
                and (sender is None or message["from"] == sender)
                and (after is None or message["_at"].replace(microsecond=0) >= after)
            ][:size]
        page = {
            "messages": found,
            "page": 0,
            "page_size": size,
            "first_page_uri": self.path,
            "next_page_uri": None,
            "previous_page_uri": None,
            "start": 0,
            "end": max(len(found) - 1, 0),
            "uri": self.path,
        }
        return 200, page, {}

    def sent_to(self, number: str) -> List[Dict[str, Any]]:
        """The messages created for ``number``, oldest first."""
        with self._lock:
            return [m for m in self.created if m["to"] == number]


def _twilio_time(value: str) -> datetime:
    """A ``DateSent`` filter's value: ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SSZ`` (GMT)."""
    layout = "%Y-%m-%dT%H:%M:%SZ" if "T" in value else "%Y-%m-%d"
    return datetime.strptime(value, layout).replace(tzinfo=timezone.utc)
