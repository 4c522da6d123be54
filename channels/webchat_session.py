"""Who may talk to the web chat: server-issued session tokens and the pages allowed in.

A session id is chosen by the server and travels with an HMAC-SHA256 token over the id
and the time it was issued. The page keeps both in ``localStorage``; on every
(re)connection it presents them, the server checks the token before reading anything
else and hands out a fresh one, so an open chat never expires while a forgotten one
does after ``session_ttl_seconds``. Nothing is stored per session on the server: any
worker holding the secret can verify any session. The tokens are made and checked by
:class:`channels.verification.SessionSigner` (importable from here too), with a
secret from ``credentials.yml`` or one generated once into a file
(:func:`load_or_create_secret`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterable, Optional

from channels.verification import SessionRejected, SessionSigner
from channels.webchat_config import MIN_SECRET_CHARS, WebChatConfigError, normalize_origin

__all__ = ["OriginPolicy", "SessionRejected", "SessionSigner", "load_or_create_secret"]


class OriginPolicy:
    """Which pages may open the chat's WebSocket or upload to it.

    Browsers always send ``Origin`` on a WebSocket handshake and on a cross-site POST, so
    a page on another site cannot borrow the chat. A request without ``Origin`` comes
    from a program, not from a page; it is let through, because it still needs a
    session token to say anything.
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    def allows(self, origin: Optional[str], *, host: Optional[str], scheme: str) -> bool:
        """Whether a request from ``origin`` may open the chat (no Origin: not a browser)."""
        if origin is None:
            return True
        if "*" in self.allowed:
            return True
        if origin == "null":  # a sandboxed frame or a file: page
            return False
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            return False
        if self.allowed:
            return normalized in self.allowed
        if not host:
            return False
        # Default: the page must come from the host and port that serve this chat. The
        # scheme is compared too, except http against https (a proxy ending TLS in front
        # of the server makes the server see http).
        try:
            own = normalize_origin(f"{scheme}://{host}")
        except ValueError:
            return False
        return _without_scheme(normalized) == _without_scheme(own)


def _without_scheme(origin: str) -> str:
    return origin.split("://", 1)[1]


def load_or_create_secret(path: Path) -> str:
    """The secret in ``path``, created (mode 0600) with 256 random bits if missing.

    Workers starting at once must agree on one secret, and none may read a file another
    has created but not yet written. So the secret is written whole to a temporary file
    beside ``path`` and published with ``os.link``, which fails if ``path`` exists: the
    first worker's file appears complete, and every other worker reads that one.
    """
    if not path.exists():
        candidate = secrets.token_urlsafe(32)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(candidate + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker published first: use its secret
        except OSError as error:  # a file system without hard links
            raise WebChatConfigError(
                "session_secret_file",
                f"cannot publish a generated secret in {path.parent} ({error.strerror})",
                "Set `session_secret` (e.g. ${WEBCHAT_SESSION_SECRET}), or point "
                "`session_secret_file` at a local file system.",
            ) from error
        finally:
            temporary.unlink(missing_ok=True)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise WebChatConfigError(
            "session_secret_file",
            f"{path} holds fewer than {MIN_SECRET_CHARS} characters",
            "Delete the file to have a new secret generated (open chats start over).",
        )
    return secret
