"""The generation config: defaults, strict validation, and the backend it makes."""

from __future__ import annotations

import asyncio
import copy
import inspect
import os
import re
from pathlib import Path
from typing import Any, Dict

import pytest

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback import backend_factory
from rasa_llm.fallback.backend_factory import create_backend, get_default_config, merged_config
from rasa_llm.fallback.local_transformers_backend import LocalTransformersBackend
from rasa_llm.fallback.openai_compatible_backend import OpenAICompatibleBackend

OPENAI = {"base_url": "http://localhost:8000/v1", "model": "Qwen/Qwen2.5-7B-Instruct"}


def config_error(config: Dict[str, Any]) -> InvalidComponentConfigError:
    with pytest.raises(InvalidComponentConfigError) as error:
        create_backend(config)
    assert error.value.component == "generation"
    assert "Fix:" in str(error.value)
    return error.value


def test_defaults_are_local_and_fresh_on_every_call() -> None:
    first = get_default_config()
    first["local"]["cpu_threads"] = 99
    first["openai"]["extra_headers"]["X"] = "y"

    second = get_default_config()

    assert second["backend"] == "local"
    assert second["local"]["cpu_threads"] is None and second["openai"]["extra_headers"] == {}
    assert second["local"]["quantize"] == "none" and second["openai"]["temperature"] == 0.0


def test_every_default_setting_has_a_comment_above_it() -> None:
    lines = [line.strip() for line in inspect.getsource(get_default_config).splitlines()]
    settings = [
        i
        for i, line in enumerate(lines)
        if re.match(r'"[a-z_]+": ', line) and line not in ('"local": {', '"openai": {')
    ]

    assert len(settings) == 1 + 10 + 5  # backend, the local keys, the openai keys
    for i in settings:
        assert lines[i - 1].startswith("#"), f"no comment above {lines[i]}"


def test_empty_config_makes_the_packaged_local_model_without_loading_it() -> None:
    backend = create_backend({})

    assert isinstance(backend, LocalTransformersBackend)
    # With the grounded-answer adapter shipped in the package (local.adapter: auto).
    assert backend.name == "local:SmolLM2-135M-Instruct.Q4_1+smollm2-grounded"
    assert not backend.loaded
    asyncio.run(backend.close())
    untuned = create_backend({"local": {"adapter": None}})
    assert untuned.name == "local:SmolLM2-135M-Instruct.Q4_1"
    asyncio.run(backend.close())


def test_local_settings_reach_the_backend(tmp_path: Path) -> None:
    backend = create_backend(
        {"local": {"model": str(tmp_path), "device": "cpu", "cpu_threads": 1, "max_concurrent": 3}}
    )

    assert isinstance(backend, LocalTransformersBackend)
    assert backend.name == f"local:{tmp_path.name}"
    assert backend._cpu_threads == 1 and backend._executor._max_workers == 3
    asyncio.run(backend.close())


def test_default_cpu_threads_leave_half_the_cores_free(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = {}
    for cores in (1, 2, 8):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        backend = create_backend({"local": {"device": "cpu"}})
        assert isinstance(backend, LocalTransformersBackend)
        threads[cores] = backend._cpu_threads
        asyncio.run(backend.close())
    backend = create_backend({"local": {"device": "cpu", "cpu_threads": 64}})

    assert threads == {1: 1, 2: 1, 8: 4}
    assert isinstance(backend, LocalTransformersBackend) and backend._cpu_threads == 8  # capped
    asyncio.run(backend.close())


def test_openai_backend_is_made_from_its_section() -> None:
    backend = create_backend({"backend": "openai", "openai": {**OPENAI, "temperature": 0.3}})

    assert isinstance(backend, OpenAICompatibleBackend)
    assert backend.name == "openai:Qwen/Qwen2.5-7B-Instruct"
    assert backend._url == "http://localhost:8000/v1/chat/completions"
    assert backend._temperature == 0.3 and "Authorization" not in backend._headers


def test_config_is_not_changed() -> None:
    config = {"backend": "openai", "openai": dict(OPENAI), "local": None}
    before = copy.deepcopy(config)

    merged = merged_config(config)

    assert config == before
    assert merged["local"] == get_default_config()["local"]  # "local:" left empty


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    error = config_error({"backnd": "openai"})
    assert error.key == "backnd" and "did you mean 'backend'?" in str(error)


def test_backend_setting_at_the_top_level_says_which_section_it_belongs_to() -> None:
    error = config_error({"backend": "openai", "base_url": "http://localhost:8000/v1"})
    assert error.key == "base_url" and "under 'openai:'" in str(error)


def test_unknown_key_inside_a_section_is_named_with_its_section() -> None:
    error = config_error({"local": {"modle": "/models/qwen"}})
    assert error.key == "local.modle" and "did you mean 'local.model'?" in str(error)


def test_typo_in_the_unused_section_is_still_caught() -> None:
    error = config_error({"backend": "local", "openai": {"temprature": 0.2}})
    assert error.key == "openai.temprature" and "openai.temperature" in str(error)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"local": {"cpu_threads": "two"}}, "local.cpu_threads"),
        ({"local": {"max_concurrent": True}}, "local.max_concurrent"),
        ({"local": {"repetition_penalty": "high"}}, "local.repetition_penalty"),
        ({"local": {"refusal_min_probability": "high"}}, "local.refusal_min_probability"),
        ({"local": {"model": 7}}, "local.model"),
        ({"openai": {"temperature": "0"}}, "openai.temperature"),
        ({"openai": {"extra_headers": ["X-A: b"]}}, "openai.extra_headers"),
        ({"local": "tiny"}, "local"),
    ],
)
def test_wrong_types_are_rejected(config: Dict[str, Any], key: str) -> None:
    assert config_error(config).key == key


@pytest.mark.parametrize(
    ("config", "key", "text"),
    [
        ({"backend": "llama"}, "backend", "'openai'"),
        ({"local": {"cpu_threads": 0}}, "local.cpu_threads", "at least 1"),
        ({"local": {"cpu_threads": 1.5}}, "local.cpu_threads", "an integer or null"),
        ({"local": {"max_concurrent": 0}}, "local.max_concurrent", "at least 1"),
        ({"local": {"repetition_penalty": 0}}, "local.repetition_penalty", "positive"),
        ({"local": {"refusal_min_probability": 0}}, "local.refusal_min_probability", "above 0"),
        ({"local": {"refusal_min_probability": 1.5}}, "local.refusal_min_probability", "at most"),
        ({"local": {"quantize": "auto"}}, "local.quantize", "no 'auto'"),
        ({"local": {"device": "tpu"}}, "device", "cuda"),
        ({"openai": {"temperature": 3}}, "openai.temperature", "between 0 and 2"),
        ({"openai": {"extra_headers": {"X-Retries": 3}}}, "openai.extra_headers", "X-Retries"),
    ],
)
def test_values_out_of_range_are_rejected(config: Dict[str, Any], key: str, text: str) -> None:
    error = config_error(config)
    assert error.key == key and text in str(error)


def test_openai_without_base_url_says_what_to_set() -> None:
    error = config_error({"backend": "openai", "openai": {"model": "m"}})
    assert error.key == "openai.base_url"
    assert "http://localhost:8000/v1" in str(error) and "Ollama" in str(error)


def test_openai_base_url_must_be_http() -> None:
    error = config_error({"backend": "openai", "openai": {**OPENAI, "base_url": "localhost:8000"}})
    assert error.key == "openai.base_url" and "'localhost:8000'" in str(error)


def test_openai_without_model_says_where_to_find_the_name() -> None:
    error = config_error({"backend": "openai", "openai": {"base_url": OPENAI["base_url"]}})
    assert error.key == "openai.model" and "/models" in str(error)


def test_api_key_comes_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUPPORT_LLM_KEY", raising=False)
    config = {"backend": "openai", "openai": {**OPENAI, "api_key_env": "SUPPORT_LLM_KEY"}}

    error = config_error(config)
    assert error.key == "openai.api_key_env" and "export SUPPORT_LLM_KEY=" in str(error)

    monkeypatch.setenv("SUPPORT_LLM_KEY", "sk-live-1")
    backend = create_backend(config)
    assert isinstance(backend, OpenAICompatibleBackend)
    assert backend._headers["Authorization"] == "Bearer sk-live-1"


def test_local_sections_are_ignored_for_required_openai_keys_when_backend_is_local() -> None:
    # base_url is only required when the openai backend is chosen.
    merged = merged_config({"backend": "local", "openai": {"model": "m"}})
    assert merged["openai"]["base_url"] is None and merged["backend"] == "local"


def test_backends_match_the_protocol_signature() -> None:
    from rasa_llm.fallback.generation_backend import GenerationBackend

    protocol = inspect.signature(GenerationBackend.generate)
    for cls in (LocalTransformersBackend, OpenAICompatibleBackend):
        assert inspect.signature(cls.generate) == protocol, cls
        assert inspect.iscoroutinefunction(cls.close)
    assert backend_factory.BACKENDS == ("local", "openai")
