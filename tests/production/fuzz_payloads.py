"""Hypothesis strategies for tests/production/test_fuzz.py: bad bodies, and platform
payloads signed for real but broken on purpose.

Every text a customer could have typed carries :data:`MARKER`, so the test can tell
whether any of it reached the server's log. Ids (users, chats, event ids) never carry
it: they are not customer text, and some are logged on purpose.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import string
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote, urlencode

from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from channels.webchat_session import SessionSigner
from tests.channels import slack_payloads as slack
from tests.channels import telegram_payloads as tg

# Upper case letters only: what the channels upper-case (SMS keywords) stays the marker,
# and the check can ignore case. Random per run so no earlier log can match it.
MARKER = "FUZZSECRET" + "".join(random.SystemRandom().choices(string.ascii_uppercase, k=12))

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = (
    JSON,
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    FORM,
    "text/plain",
    "text/xml",
    "multipart/form-data; boundary=fuzz",
    "application/octet-stream",
    "application/json; charset=latin-1",
    "",
    None,  # no Content-Type header at all
)

_ids = itertools.count(1)


def unique(prefix: str) -> str:
    """An id no other example uses, so de-duplication does not hide what follows."""
    return f"{prefix}{next(_ids):06d}"


# ------------------------------------------------------------------ text and JSON
# Lone surrogates are valid in JSON ("\ud800") but not in UTF-8: a classic crash.
# Stands for a number of 5,000 digits, over Python's limit for parsing an int: written
# into the JSON by dumps(), since hypothesis itself cannot print such an int.
BIG_NUMBER = "<big number>"
_BIG_DIGITS = "7" * 5000

_any_char = st.characters(exclude_categories=())
texts = st.text(_any_char, max_size=30)


@st.composite
def marked_text(draw: st.DrawFn) -> str:
    """Random text with the marker inside; sometimes long, sometimes multi-line.

    "Long" stays at 1,500 characters: the bot's email regex takes time quadratic in
    the length of a message (test_fuzz.py's test_a_long_message_does_not_stall_the_server).
    """
    before, after = draw(texts), draw(texts)
    padding = draw(st.sampled_from(["", "", "", "x" * 1500, "\n\t\u202e<b>&amp;"]))
    return f"{before}{MARKER}{padding}{after}"


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(BIG_NUMBER),
    st.floats(),  # NaN and Infinity too: Python's json writes and reads them
    texts,
    marked_text(),
)
_DELETE = object()
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: Tuple[Any, ...] = ()) -> Iterator[Tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


# Mostly a value of another type in place of the field; sometimes no field at all.
_replacements = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(texts, _scalars, max_size=3),
    json_values,
    st.just(_DELETE),
)


@st.composite
def mutated(
    draw: st.DrawFn,
    template: Any,
    *,
    focus: Tuple[Any, ...] = (),
    max_mutations: int = 3,
) -> Any:
    """``template`` with up to ``max_mutations`` fields deleted or of another type.

    Fields under ``focus`` (a path) are picked four times as often: the part the code
    reads, rather than the envelope around it.
    """
    value = copy.deepcopy(template)
    for _ in range(draw(st.integers(0, max_mutations))):
        # Not the whole body: junk_bodies covers bodies that are not an object.
        paths = [path for path in _paths(value) if path]
        if not paths:
            break
        if focus:
            paths += [path for path in paths if path[: len(focus)] == focus] * 3
        path = draw(st.sampled_from(paths))
        replacement = draw(_replacements)
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        if replacement is _DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    return value


class Blob(bytes):
    """A body that hypothesis prints short: a failing example stays readable."""

    def __repr__(self) -> str:
        if len(self) <= 400:
            return f"Blob({bytes(self)!r})"
        return f"Blob({bytes(self[:300])!r} + {len(self) - 300} more bytes)"


def dumps(value: Any) -> Blob:
    # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, as a broken
    # client would send them.
    text = json.dumps(value, ensure_ascii=False).replace(f'"{BIG_NUMBER}"', _BIG_DIGITS)
    return Blob(text.encode("utf-8", "surrogatepass"))


def dumps_ascii(value: Any) -> str:
    """JSON text with every non-ASCII character escaped (lone surrogates included)."""
    return json.dumps(value).replace(f'"{BIG_NUMBER}"', _BIG_DIGITS)


def form_body(fields: Dict[str, str]) -> Blob:
    """A form as a client encodes it; a lone surrogate becomes bytes that are not UTF-8."""
    return Blob(urlencode(fields, encoding="utf-8", errors="surrogatepass").encode())


# ------------------------------------------------------------------ raw bodies
def _nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


small_junk_bodies: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=40).map(lambda tail: MARKER.encode() + b"\xff\xfe\xc3" + tail),
    marked_text().map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(dumps),
    json_values.map(lambda value: dumps(value)[:-1]),  # cut short: malformed JSON
    st.integers(900, 60_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(900, 20_000).map(_nested),
    st.integers(4400, 9000).map(lambda digits: b'{"update_id": ' + b"7" * digits + b"}"),
    st.dictionaries(texts, marked_text(), max_size=4).map(form_body),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'""', b"0", b"NaN", b"\x00" * 64]),
).map(Blob)
# Over every channel's size limit. Rasa's own routes have none, and their NLU would
# spend minutes on its text (see marked_text): they get small_junk_bodies only.
OVERSIZED = Blob(b'{"text": "' + MARKER.encode() + b"x" * 300_000 + b'"}')
junk_bodies = st.one_of(small_junk_bodies, st.just(OVERSIZED))


def headers_for(content_type: Optional[str], **extra: str) -> Dict[str, str]:
    found = {} if content_type is None else {"Content-Type": content_type}
    return {**found, **extra}


# Header values the HTTP client can send: latin-1, no line breaks, no space around.
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
).map(str.strip)


# ------------------------------------------------------------------ Slack
@st.composite
def slack_events(draw: st.DrawFn) -> Dict[str, Any]:
    """An Events API envelope from a new customer, then mutated."""
    files = None
    if draw(st.booleans()):
        mime = draw(st.sampled_from(["image/png", "application/pdf", "application/zip"]))
        files = [{"id": unique("F"), "name": draw(marked_text()), "mimetype": mime, "size": 10}]
    envelope = slack.message_event(
        draw(marked_text()),
        user=unique("U"),
        channel=unique("D"),
        event_type=draw(st.sampled_from(["message", "app_mention"])),
        event_id=unique("Ev"),
        files=files,
    )
    return draw(mutated(envelope, focus=("event",)))


@st.composite
def slack_clicks(draw: st.DrawFn) -> Dict[str, Any]:
    """A block_actions payload (a button click) from a new customer, then mutated."""
    payload = slack.block_actions(
        draw(st.sampled_from(["/affirm", "/deny", MARKER])),
        draw(marked_text()),
        user=unique("U"),
        channel=unique("D"),
    )
    return draw(mutated(payload))


def slack_json(value: Any, secret: str = slack.SECRET) -> Tuple[bytes, Dict[str, str]]:
    body = dumps(value)
    return body, slack.signed_headers(body, JSON, secret=secret)


def slack_form(payload: Any) -> Tuple[bytes, Dict[str, str]]:
    raw = payload if isinstance(payload, str) else dumps(payload).decode("utf-8", "replace")
    body = urlencode({"payload": raw}).encode()
    return body, slack.signed_headers(body, FORM)


# ------------------------------------------------------------------ Telegram
@st.composite
def telegram_updates(draw: st.DrawFn) -> Dict[str, Any]:
    """A webhook Update of one of the kinds the channel handles, then mutated."""
    chat = tg.next_id()
    text = draw(marked_text())
    kind = draw(
        st.sampled_from(["text", "command", "photo", "document", "callback", "edit", "other"])
    )
    if kind == "text":
        update = tg.text_message(chat, text)
    elif kind == "command":
        update = tg.text_message(chat, f"/start@{tg.BOT_USERNAME} {text}")
    elif kind == "photo":
        update = tg.message(chat, photo=tg.photo(), caption=text)
    elif kind == "document":
        document = {"file_id": "BQAC", "file_unique_id": "AgAD", "file_name": text,
                    "mime_type": "application/pdf", "file_size": 1234}  # fmt: skip
        update = tg.message(chat, document=document)
    elif kind == "callback":
        update = tg.callback_query(chat, f"k:{text}")
    elif kind == "edit":
        update = tg.message(chat, text=text)
        update["edited_message"] = update.pop("message")
    else:
        update = tg.message(chat, location={"latitude": 51.5, "longitude": -0.1}, caption=text)
    return draw(mutated(update))


# ------------------------------------------------------------------ Twilio
TWILIO_ACCOUNT = "AC" + "f022" * 8
TWILIO_TOKEN = "fuzz-test-auth-token-5c1d"
TWILIO_NUMBER = "+15005550006"
TWILIO_URL = "https://sms.example.com/webhooks/twilio/webhook"
TWILIO_MESSAGES = f"/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Messages.json"


@st.composite
def twilio_forms(draw: st.DrawFn) -> Dict[str, str]:
    """The form Twilio posts for an SMS or MMS, then with fields dropped or changed."""
    sid = unique("SM").ljust(34, "0")
    fields = {
        "ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid,
        "SmsStatus": "received", "Body": draw(marked_text()), "To": TWILIO_NUMBER,
        "MessageSid": sid, "AccountSid": TWILIO_ACCOUNT,
        "From": f"+1555{next(_ids):07d}", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    if draw(st.booleans()):
        mime = draw(st.sampled_from(["image/jpeg", "text/vcard", ""]))
        fields.update(
            NumMedia="1", MediaUrl0="https://api.twilio.com/m/ME1", MediaContentType0=mime
        )
    keys = sorted(fields) + ["OptOutType", "MessageStatus", "Latitude", "Longitude", "NumMedia"]
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        value = draw(st.one_of(st.none(), texts, marked_text(), st.sampled_from(
            ["STOP", "start", "HELP", "99", "-1", "\u0663", "delivered", "1e3", ""])))  # fmt: skip
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def twilio_signature(
    fields: Dict[str, str], *, url: str = TWILIO_URL, token: str = TWILIO_TOKEN
) -> str:
    """``X-Twilio-Signature`` as Twilio computes it (a forger's, with another token)."""
    return RequestValidator(token).compute_signature(url, fields)


# ------------------------------------------------------------------ web chat
@st.composite
def webchat_frames(draw: st.DrawFn) -> Tuple[str, Any]:
    """One frame a page (or not a page) sends after its hello: (kind, data)."""
    message = {
        "type": "message",
        "id": unique("m").ljust(8, "0"),
        "text": draw(marked_text()),
        "display": draw(st.one_of(st.none(), marked_text())),
    }
    as_text = mutated(message).map(lambda frame: ("text", dumps_ascii(frame)))
    return draw(
        st.one_of(
            as_text,
            as_text,
            junk_bodies.map(lambda body: ("text", body.decode("utf-8", "replace")[:20_000])),
            junk_bodies.map(lambda body: ("binary", body[:20_000])),
            st.just(("bad-utf8", MARKER.encode() + b"\xff\xfe")),
        )
    )


WEBCHAT_SECRET = "fuzz-test-webchat-secret-0123456789abcdef"
SIGNER = SessionSigner(WEBCHAT_SECRET, ttl_seconds=3600)


def hello_frames() -> st.SearchStrategy[Tuple[str, Any]]:
    """The first frame of a session: a hello, new or resumed, broken, or no hello at all."""
    session_id, token = SIGNER.new_session()
    valid = json.dumps({"type": "hello", "session_id": session_id, "token": token})
    return st.one_of(
        st.just(("text", json.dumps({"type": "hello"}))),
        st.just(("text", valid)),
        mutated({"type": "hello", "session_id": session_id, "token": token}).map(
            lambda frame: ("text", dumps_ascii(frame))
        ),
        webchat_frames(),
    )


@st.composite
def uploads(draw: st.DrawFn) -> Tuple[Dict[str, str], bytes, Optional[int]]:
    """An upload's headers and file, and the status it must get when that is certain."""
    session_id, token = SIGNER.new_session()
    headers: Dict[str, str] = {}
    expected: Optional[int] = None
    auth = draw(st.sampled_from(["valid", "valid", "none", "forged", "junk"]))
    if auth == "valid":
        headers.update({"X-Webchat-Session": session_id, "X-Webchat-Token": token})
    elif auth == "forged":
        forged = SessionSigner("another-secret-0123456789abcdef", ttl_seconds=60).issue(session_id)
        headers.update({"X-Webchat-Session": session_id, "X-Webchat-Token": forged})
        expected = 401
    elif auth == "junk":
        headers.update(
            {"X-Webchat-Session": draw(header_values), "X-Webchat-Token": draw(header_values)}
        )
        expected = 401
    else:
        expected = 401
    headers["X-Webchat-Message-Id"] = draw(
        st.one_of(st.builds(unique, st.just("up-")).map(lambda i: i.ljust(8, "0")), header_values)
    )
    headers["X-Webchat-File-Name"] = draw(
        st.one_of(
            marked_text().map(lambda name: quote(name, errors="surrogatepass")), header_values
        )
    )
    content_type = draw(
        st.sampled_from(["image/png", "application/pdf", "", "text/html; x", "image/gif"])
    )
    if content_type:
        headers["Content-Type"] = content_type
    origin = draw(st.sampled_from([None, None, "same", "https://evil.example"]))
    if origin == "https://evil.example":
        headers["Origin"] = origin
        expected = 403
    elif origin == "same":
        headers["Origin"] = "same"  # filled in with the server's URL
    body = draw(st.one_of(
        st.binary(max_size=200).map(lambda tail: b"\x89PNG\r\n\x1a\n" + MARKER.encode() + tail),
        st.binary(max_size=200).map(lambda tail: b"%PDF-" + tail),
        st.just(b""),
        st.just(MARKER.encode() * 5000),  # over max_attachment_bytes
        junk_bodies.filter(lambda body: len(body) < 70_000),
    ))  # fmt: skip
    return headers, body, expected


# ------------------------------------------------------------------ Rasa's API
@st.composite
def tracker_events(draw: st.DrawFn) -> List[Dict[str, Any]]:
    """Events as POST /conversations/<id>/tracker/events takes them, then mutated."""
    text = draw(marked_text())
    user = {"event": "user", "text": text,
            "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": [],
                           "text": text}}  # fmt: skip
    choices = [
        user,
        {"event": "bot", "text": text},
        {"event": "slot", "name": "sentiment", "value": text},
        {"event": "action", "name": "action_listen"},
        {"event": "session_started"},
        {"event": "reminder", "intent": "greet", "date_time": "2025-01-01T00:00:00"},
    ]
    events = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=4))
    return draw(mutated(events))


def sender_ids() -> st.SearchStrategy[str]:
    """A conversation id: mostly plain, sometimes odd (slashes, dots, unicode)."""
    odd = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
    return st.one_of(st.builds(unique, st.just("fuzz-")), odd.map(lambda text: f"fuzz-{text}"))
