"""Files a customer attaches in the web chat: what they really are, and where they go.

The browser's declared type comes from the file name, so the first bytes decide: a
file is stored only when they show one of the configured types. Anything else is not
stored and reaches the bot as an unsupported kind, so it answers politely instead of
keeping a file it cannot use. Stored files go under the configured directory in the
server's working directory, one folder per session, with random names; no route
serves them back. How many a session may store, and for how long, is
:mod:`channels.webchat_storage`'s part.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import unicodedata
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import unquote

from channels.attachments import Attachment, kind_from_mime

# First bytes of each type the web chat can store, and the extension it gets.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
    (b"%PDF-", "application/pdf", "pdf"),
)
_EXTENSIONS = {mime: ext for _, mime, ext in _SIGNATURES} | {"image/webp": "webp"}
MAX_NAME_CHARS = 120


def sniff_type(head: bytes) -> Optional[str]:
    """The MIME type the first bytes of a file show, for the types we can store."""
    for signature, mime_type, _ in _SIGNATURES:
        if head.startswith(signature):
            return mime_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def clean_file_name(raw: Optional[str]) -> Optional[str]:
    """A display name from a percent-encoded header: no path, no control characters."""
    if not raw:
        return None
    name = unquote(raw, errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:MAX_NAME_CHARS] or None


def describe(
    data: bytes,
    *,
    declared_type: Optional[str],
    name: Optional[str],
    allowed_types: Iterable[str],
) -> Attachment:
    """What the customer sent; ``file_id`` is filled in by :func:`store` when stored."""
    sniffed = sniff_type(data[:16])
    if sniffed and sniffed in set(allowed_types):
        return Attachment(
            kind=kind_from_mime(sniffed), mime_type=sniffed, name=name, size=len(data)
        )
    # Not a type we keep: say what the browser called it, and that the bot cannot use it.
    declared = (declared_type or "").split(";")[0].strip().lower()[:100] or None
    return Attachment(kind="other", mime_type=declared, name=name, size=len(data))


async def store(directory: Path, session_id: str, attachment: Attachment, data: bytes) -> str:
    """Write the file; its path relative to the working directory becomes ``file_id``."""
    extension = _EXTENSIONS.get(attachment.mime_type or "", "bin")
    folder = directory / session_id
    path = folder / f"{secrets.token_hex(12)}.{extension}"
    await asyncio.to_thread(_write_private, folder, path, data)
    return path.as_posix()


def _write_private(folder: Path, path: Path, data: bytes) -> None:
    for attempt in range(2):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileNotFoundError:
            # The clean-up removed the session's empty folder in between: make it again.
            if attempt:
                raise
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
