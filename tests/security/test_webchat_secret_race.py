"""Issue 23, finding 10: web chat workers starting at once must agree on one secret.

With no ``session_secret`` configured, every Sanic worker loads or creates the
generated secret in ``session_secret_file`` as it starts. A worker that finds the file
already created must read the whole secret, never a file another worker has created
and not yet written, or it refuses to start (a secret "of fewer than 32 characters").
"""

from __future__ import annotations

import multiprocessing
import tempfile
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from channels.webchat_config import MIN_SECRET_CHARS
from channels.webchat_session import load_or_create_secret

WORKERS = 6
ROUNDS = 500
# Memory-backed where there is one: the race is the same, and each round's fsync is
# instant instead of waiting for a disk that other jobs keep busy.
SHARED_MEMORY = Path("/dev/shm")


@pytest.fixture
def fresh_root(tmp_path: Path) -> Iterator[Path]:
    if not SHARED_MEMORY.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=SHARED_MEMORY) as root:
        yield Path(root)


def _start_together(barrier: Any, folders: List[str], results: Any, worker: int) -> None:
    """One worker: in each fresh folder, load or create the secret at the same moment."""
    for round_, folder in enumerate(folders):
        barrier.wait()
        try:
            found = load_or_create_secret(Path(folder) / "webchat_session_secret")
        except Exception as error:  # the test reports every failure, not just the first
            found = f"refused to start: {type(error).__name__}: {error}"
        results.put((round_, worker, found))


def test_workers_starting_at_once_on_a_fresh_folder_all_read_one_whole_secret(
    fresh_root: Path,
):
    folders = []
    for round_ in range(ROUNDS):
        folder = fresh_root / f"start-{round_}"
        folder.mkdir()
        folders.append(str(folder))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    workers = [
        context.Process(target=_start_together, args=(barrier, folders, results, worker))
        for worker in range(WORKERS)
    ]
    for process in workers:
        process.start()
    found = [results.get(timeout=120) for _ in range(WORKERS * ROUNDS)]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    by_round: dict = {}
    for round_, _, secret in found:
        by_round.setdefault(round_, []).append(secret)
    failures = [
        secret
        for secrets_ in by_round.values()
        for secret in secrets_
        if len(secret) < MIN_SECRET_CHARS or secret.startswith("refused")
    ]
    assert failures == [], f"{len(failures)} of {WORKERS * ROUNDS} worker starts failed"
    assert all(len(set(secrets_)) == 1 for secrets_ in by_round.values()), "one secret each"
    stored = {(Path(folder) / "webchat_session_secret").read_text().strip() for folder in folders}
    assert stored == {secrets_[0] for secrets_ in by_round.values()}
    leftovers = [p.name for folder in folders for p in Path(folder).iterdir()]
    assert set(leftovers) == {"webchat_session_secret"}, "no temporary files left behind"
