"""Files the web chat keeps: how many one session may store, and for how long.

Both are read from the files themselves, whose modification time is when they were
stored: every worker of a host counts the same files, and a restart forgets nothing.

- The quota: a session may store ``max_files`` files and ``max_bytes`` bytes in any
  ``window_s`` seconds (a day). An upload is refused before its body is read when the
  quota is already spent; a stored file that turns out to be over it (two uploads at
  once on two workers) is deleted again, judged in the order the files were stored,
  so the workers agree on which one goes. The refusal is a 429 whose ``Retry-After``
  is when enough of the session's files have left the window.
- Retention: :class:`RetentionTask` deletes stored files older than the retention when
  the server starts and every hour, off the event loop, and then the session folders
  it leaves empty. It only touches what the web chat writes (session folders of 32 hex
  digits, files with random hex names), so a misconfigured ``attachment_dir`` cannot
  lose anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Tuple

from channels.webhook_guard import WebhookRejected

__all__ = ["QuotaExceeded", "RetentionTask", "UploadQuota", "remove_expired"]

logger = logging.getLogger(__name__)

QUOTA_WINDOW_SECONDS = 24 * 60 * 60
CLEANUP_INTERVAL_SECONDS = 60 * 60
# What webchat_uploads.store writes: <session id>/<24 hex digits>.<extension>.
SESSION_FOLDER = re.compile(r"[0-9a-f]{32}")
STORED_FILE = re.compile(r"[0-9a-f]{24}\.[a-z]{3,4}")


class QuotaExceeded(WebhookRejected):
    """An upload over the session's quota: 429, and when there will be room again."""

    def __init__(self, reason: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(429, f"{reason}; you can send more {_in_about(seconds)}")
        self.retry_after = seconds


class _Stored(NamedTuple):
    mtime_ns: int
    name: str
    size: int


@dataclass(frozen=True)
class UploadQuota:
    """``max_files`` files and ``max_bytes`` bytes per session folder per ``window_s``."""

    max_files: int
    max_bytes: int
    window_s: float = QUOTA_WINDOW_SECONDS

    def check(self, folder: Path, incoming_bytes: int, *, now: float) -> None:
        """Refuse, before it is read, a file of ``incoming_bytes`` the quota has no room for."""
        files = self._in_window(folder, now)
        self._judge(files, incoming_bytes, now)

    def admit(self, path: Path, *, now: float) -> None:
        """Keep the just stored ``path`` if the files stored before it leave it room.

        Otherwise delete it and refuse.
        """
        files = self._in_window(path.parent, now)
        position = next((i for i, f in enumerate(files) if f.name == path.name), None)
        if position is None:  # already gone, or stored with a clock far off
            return
        try:
            self._judge(files[:position], files[position].size, now)
        except QuotaExceeded:
            path.unlink(missing_ok=True)
            raise

    def _judge(self, earlier: List[_Stored], incoming_bytes: int, now: float) -> None:
        count, used = len(earlier), sum(f.size for f in earlier)
        if count + 1 <= self.max_files and used + incoming_bytes <= self.max_bytes:
            return
        if count + 1 > self.max_files:
            reason = f"this chat has sent its {self.max_files} files for today"
        else:
            reason = f"this chat has sent {_size(self.max_bytes)} of files today"
        # Room comes back as the oldest files leave the window, one after another.
        for oldest in earlier:
            count, used = count - 1, used - oldest.size
            if count + 1 <= self.max_files and used + incoming_bytes <= self.max_bytes:
                raise QuotaExceeded(reason, oldest.mtime_ns / 1e9 + self.window_s - now)
        raise QuotaExceeded(reason, self.window_s)

    def _in_window(self, folder: Path, now: float) -> List[_Stored]:
        """The session's stored files of the window, in the order they were stored."""
        since_ns = int((now - self.window_s) * 1e9)
        return sorted(f for f in _stored_files(folder) if f.mtime_ns > since_ns)


def _stored_files(folder: Path) -> List[_Stored]:
    found: List[_Stored] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        if not STORED_FILE.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # deleted meanwhile
        if stat.S_ISREG(info.st_mode):
            found.append(_Stored(info.st_mtime_ns, entry.name, info.st_size))
    return found


def remove_expired(directory: Path, max_age_s: float, *, now: float) -> Tuple[int, int]:
    """Delete stored files older than ``max_age_s`` and the session folders left empty.

    Returns how many files and folders were removed. Anything the web chat did not
    write is left alone.
    """
    files = folders = 0
    oldest_kept_ns = int((now - max_age_s) * 1e9)
    try:
        sessions = [e for e in os.scandir(directory) if SESSION_FOLDER.fullmatch(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return 0, 0
    for session in sessions:
        if not session.is_dir(follow_symlinks=False):
            continue
        folder = Path(session.path)
        for stored in _stored_files(folder):
            if stored.mtime_ns < oldest_kept_ns:
                with contextlib.suppress(FileNotFoundError):
                    (folder / stored.name).unlink()
                    files += 1
        try:
            folder.rmdir()  # only if empty; an upload that lost the race makes it again
            folders += 1
        except OSError:
            pass
    return files, folders


class RetentionTask:
    """Runs :func:`remove_expired` at start and every ``interval_s`` in this process."""

    def __init__(
        self,
        directory: Path,
        max_age_s: float,
        *,
        interval_s: float = CLEANUP_INTERVAL_SECONDS,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        self.directory = directory
        self.max_age_s = max_age_s
        self.interval_s = interval_s
        self._clock = clock or time.time
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        """Start the periodic clean-up in the running loop, unless it already runs."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the clean-up and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> Tuple[int, int]:
        """One clean-up, on a thread: the files and folders removed."""
        removed = await asyncio.to_thread(
            remove_expired, self.directory, self.max_age_s, now=self._clock()
        )
        if removed[0]:
            logger.info(
                "webchat: deleted %d stored file(s) older than %g days",
                removed[0],
                self.max_age_s / 86400,
            )
        return removed

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as error:  # a full or read-only disk must not stop the chat
                # The type only: an OSError's text names a session's folder.
                logger.warning(
                    "webchat: clean-up of stored files failed (%s)", type(error).__name__
                )
            await asyncio.sleep(self.interval_s)


def _in_about(seconds: int) -> str:
    if seconds < 90:
        return f"in {seconds} seconds"
    if seconds < 90 * 60:
        return f"in about {round(seconds / 60)} minutes"
    return f"in about {round(seconds / 3600)} hours"


def _size(count: int) -> str:
    return f"{count / 1048576:g} MiB" if count >= 1048576 else f"{count} bytes"
