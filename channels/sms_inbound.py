"""One Twilio Messaging webhook, checked and read: signature, fields, media, keywords.

Twilio signs each webhook with HMAC-SHA1 over the URL it called plus the sorted form
fields (``X-Twilio-Signature``);
:class:`channels.verification.TwilioSignatureVerifier` checks it with twilio's
``RequestValidator``. The URL is the one *Twilio* called, which behind a proxy or a
tunnel is not the one the server sees: :func:`public_url` takes ``webhook_url`` from the
config, or rebuilds it from ``X-Forwarded-*`` headers only when the operator said the
proxy sets them (otherwise any client could pick the URL that is checked). The
signature has no timestamp, so a replayed webhook is caught by its ``MessageSid``
(:class:`channels.delivery_log.DeliveryLog`).

Keywords are Twilio's (STOP, START, HELP and their synonyms) and, for Chinese
customers, 帮助 for HELP and 退订, 取消订阅, TD and T for STOP: TD and T are what
Chinese carriers' messages ask for ("回TD退订"). Opting out is a compliance matter, so
an opt-out word is recognised more willingly than the others: in full-width letters
(ＳＴＯＰ) and with a full stop or exclamation mark after it. Opting back in stays
Twilio's words only, exactly: Twilio's own opt-out list, which refuses to send to a
number that texted STOP, is lifted by those and no others.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

from channels.attachments import Attachment, kind_from_mime
from channels.sms_config import CHINESE, reply_language
from channels.verification import TWILIO_SIGNATURE_HEADER, verify_twilio_signature
from channels.webhook_guard import WebhookRejected, require

SIGNATURE_HEADER = TWILIO_SIGNATURE_HEADER
# The signature check, by the name it had before it moved to channels.verification.
verify = verify_twilio_signature
# Twilio delivers at most 10 media items with one MMS.
MAX_MEDIA = 10

# Twilio's default keywords (its own opt-out management acts on the same words).
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
# YES also opts back in, but only an opted-out sender means that by it; everyone else
# is answering the bot.
OPT_IN_IF_OPTED_OUT = frozenset({"YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Chinese customers' keywords (Twilio does not know them: the channel confirms them in
# Chinese, see stop_text). T and TD are the carriers' "回T退订" / "回TD退订".
CHINESE_OPT_OUT_WORDS = frozenset({"退订", "取消订阅", "TD", "T"})
CHINESE_HELP_WORDS = frozenset({"帮助"})
# What may follow an opt-out word ("退订。", "STOP!").
_TRAILING_MARKS = ".!。！"

STOP, START, HELP = "STOP", "START", "HELP"


@dataclass(frozen=True)
class Inbound:
    """What one webhook says, once verified."""

    message_sid: str
    sender: str
    body: str
    attachments: Tuple[Attachment, ...] = ()
    # Twilio's Advanced Opt-Out sets OptOutType (STOP, START, HELP) when the body was
    # one of its keywords, including keywords configured in the console.
    opt_out_type: Optional[str] = None


def public_url(
    *,
    configured: Optional[str],
    trust_proxy_headers: bool,
    scheme: str,
    headers: Mapping[str, str],
    path: str,
    query: str,
) -> str:
    """The URL Twilio called, as it signed it."""
    if configured:
        return configured
    host = headers.get("host", "")
    if trust_proxy_headers:
        scheme = _first(headers.get("x-forwarded-proto")) or scheme
        host = _first(headers.get("x-forwarded-host")) or host
        port = _first(headers.get("x-forwarded-port"))
        if port and port.isdigit() and not _has_port(host):
            default = {"http": "80", "https": "443"}.get(scheme)
            host = host if port == default else f"{host}:{port}"
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def _first(value: Optional[str]) -> str:
    """The first (client-most) entry of a header that proxies append to."""
    return (value or "").split(",")[0].strip()


def _has_port(host: str) -> bool:
    return host.rsplit("]", 1)[-1].count(":") == 1 if host.startswith("[") else ":" in host


def is_status_callback(fields: Mapping[str, str]) -> bool:
    """A delivery report for a message we sent, not a message from a customer."""
    status = fields.get("MessageStatus") or fields.get("SmsStatus") or "received"
    return status.lower() != "received"


def parse_inbound(fields: Mapping[str, str]) -> Inbound:
    """The message in a verified webhook's form; a 400 when Twilio's fields are missing."""
    require(dict(fields), "From", "MessageSid", where="Twilio's form")
    attachments: List[Attachment] = []
    count = fields.get("NumMedia") or "0"
    if not count.isdigit() or not count.isascii() or int(count) > MAX_MEDIA:
        raise WebhookRejected(400, f"NumMedia must be a whole number from 0 to {MAX_MEDIA}")
    for index in range(int(count)):
        require(dict(fields), f"MediaUrl{index}", where="Twilio's form")
        mime = fields.get(f"MediaContentType{index}") or None
        attachments.append(
            Attachment(kind=kind_from_mime(mime), mime_type=mime, url=fields[f"MediaUrl{index}"])
        )
    if fields.get("Latitude") and fields.get("Longitude"):
        attachments.append(Attachment(kind="location"))  # WhatsApp locations via Twilio
    opt_out_type = (fields.get("OptOutType") or "").upper() or None
    return Inbound(
        message_sid=fields["MessageSid"],
        sender=fields["From"],
        body=fields.get("Body") or "",
        attachments=tuple(attachments),
        opt_out_type=opt_out_type if opt_out_type in (STOP, START, HELP) else None,
    )


def keyword(inbound: Inbound, *, opted_out: bool) -> Optional[str]:
    """STOP, START or HELP when the message is one of those keywords, else None.

    Like Twilio, the whole message must be the keyword (any case, spaces around).
    """
    word = " ".join(inbound.body.split()).upper()
    if inbound.opt_out_type == START and not opted_out and word not in OPT_IN_WORDS:
        return None  # an opt-in word such as YES from a subscribed customer answers the bot
    if inbound.opt_out_type:
        return inbound.opt_out_type
    if inbound.attachments:
        return None
    if _opt_out_word(inbound.body) in OPT_OUT_WORDS | CHINESE_OPT_OUT_WORDS:
        return STOP
    if word in OPT_IN_WORDS or (opted_out and word in OPT_IN_IF_OPTED_OUT):
        return START
    if word in HELP_WORDS | CHINESE_HELP_WORDS:
        return HELP
    return None


def keyword_language(inbound: Inbound) -> str:
    """The language to answer a keyword in: Chinese for a Chinese keyword, otherwise
    the message's own (Twilio's English words tell none: the main language).
    """
    if _opt_out_word(inbound.body) in CHINESE_OPT_OUT_WORDS | CHINESE_HELP_WORDS:
        return CHINESE
    return reply_language(inbound.body)


def _opt_out_word(body: str) -> str:
    """The message as an opt-out word would be written: full-width letters as ASCII
    (NFKC), any case, spaces collapsed, a full stop or exclamation mark after it dropped.
    """
    folded = " ".join(unicodedata.normalize("NFKC", body).split()).upper()
    return folded.rstrip(_TRAILING_MARKS).rstrip()
