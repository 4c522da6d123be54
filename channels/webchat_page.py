"""The chat page and its two assets, served from ``channels/static`` with a strict CSP.

The page loads nothing from another host: its script and style come from the same
routes, and the Content-Security-Policy forbids inline script, plugins, framing by
other sites and any connection but to this server. Bot images may come from any
http(s) URL the bot's responses name. Settings the script needs (where to connect,
the upload limits) travel as ``data-`` attributes, escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Dict

from sanic.response import HTTPResponse
from sanic.response import raw as raw_response

from channels.webchat_config import WebChatConfig

STATIC = Path(__file__).with_name("static")
_CONTENT_TYPES = {
    "webchat.js": "text/javascript; charset=utf-8",
    "webchat.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https: http:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Page:
    """The rendered page and assets, read once at start-up (a missing file fails then)."""

    def __init__(self, config: WebChatConfig) -> None:
        self._template = (STATIC / "webchat.html").read_text(encoding="utf-8")
        self._assets: Dict[str, bytes] = {
            name: (STATIC / name).read_bytes() for name in _CONTENT_TYPES
        }
        self._values = {
            "title": config.title,
            "max_attachment_bytes": str(config.max_attachment_bytes),
            "attachment_types": ",".join(config.attachment_types),
            "max_message_chars": str(config.max_message_chars),
            "max_frame_bytes": str(config.max_frame_bytes),
        }

    def html(self, *, base: str) -> HTTPResponse:
        """The chat page, its settings filled in escaped, its asset URLs under ``base``."""
        page = self._template
        for key, value in {**self._values, "base": base}.items():
            page = page.replace("{{" + key + "}}", html.escape(value, quote=True))
        return raw_response(
            page.encode("utf-8"),
            content_type="text/html; charset=utf-8",
            headers={**_SECURITY_HEADERS, "Cache-Control": "no-store"},
        )

    def asset(self, name: str) -> HTTPResponse:
        """The named script or style sheet, with the security headers."""
        return raw_response(
            self._assets[name],
            content_type=_CONTENT_TYPES[name],
            headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )
