"""Low-rank adapters on disk: the few megabytes that turn SmolLM2 into the bot's model.

``python -m training generate --save adapter`` writes a directory with
``adapter.safetensors`` (for every adapted linear layer ``<name>.lora_a`` and
``<name>.lora_b``, float16) and ``adapter.json`` (rank, alpha, the base model it was
trained on, and the training data's fingerprint). The local backend merges it into the
base model's weights when it loads them (``W += B·A·alpha/rank``), so serving costs
nothing extra per token and never imports the training code.

This module owns the format: training saves through :func:`save_adapter`, serving
loads through :func:`merge_adapter`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import torch

from rasa_llm.errors import ModelLoadError

WEIGHTS = "adapter.safetensors"
SETTINGS = "adapter.json"
FORMAT_VERSION = 1
# The adapter that ships with the package: trained on grounded answers for the
# packaged SmolLM2-135M-Instruct (the command that reproduces it is in its adapter.json).
PACKAGED_ADAPTER = Path(__file__).resolve().parent / "adapters" / "smollm2-grounded"


def save_adapter(
    directory: Path,
    weights: Mapping[str, Tuple[torch.Tensor, torch.Tensor]],
    *,
    rank: int,
    alpha: float,
    base_model: str,
    extra: Mapping[str, Any],
) -> None:
    """Write ``{module name: (lora_a, lora_b)}`` and the settings into ``directory``."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors: Dict[str, torch.Tensor] = {}
    for name, (a, b) in weights.items():
        tensors[f"{name}.lora_a"] = a.detach().to(torch.float16).contiguous().cpu()
        tensors[f"{name}.lora_b"] = b.detach().to(torch.float16).contiguous().cpu()
    save_file(tensors, str(directory / WEIGHTS))
    settings = {
        "format_version": FORMAT_VERSION,
        "rank": rank,
        "alpha": alpha,
        "base_model": base_model,
        "modules": sorted(weights),
        **dict(extra),
    }
    (directory / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def read_settings(directory: Path) -> Dict[str, Any]:
    """``adapter.json`` of ``directory``; :class:`ModelLoadError` if it is not an adapter."""
    path = directory / SETTINGS
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            directory,
            f"is not a readable adapter directory ({type(e).__name__} reading {SETTINGS})",
            "give a directory written by python -m training generate --save adapter, or "
            "set local.adapter to null for the un-tuned model",
        ) from e
    if settings.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            directory,
            f"has adapter format {settings.get('format_version')!r}, not {FORMAT_VERSION}",
            "train it again with this version of python -m training generate",
        )
    return dict(settings)


def merge_adapter(model: torch.nn.Module, directory: Path, base_model: str) -> Dict[str, Any]:
    """Add the adapter in ``directory`` to ``model``'s weights; returns its settings.

    Raises :class:`ModelLoadError` when the adapter was trained on another base model or
    names layers the model does not have (nothing is changed then).
    """
    from safetensors.torch import load_file

    settings = read_settings(directory)
    if settings.get("base_model") != base_model:
        raise ModelLoadError(
            directory,
            f"was trained on {settings.get('base_model')!r}, not on {base_model!r}",
            "use the adapter with the model it was trained on, train one for this model, "
            "or set local.adapter to null",
        )
    try:
        tensors = load_file(str(directory / WEIGHTS))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ModelLoadError(
            directory / WEIGHTS,
            f"cannot be read ({type(e).__name__})",
            "restore the file from the repository or train the adapter again",
        ) from e
    modules = dict(model.named_modules())
    scaling = float(settings["alpha"]) / int(settings["rank"])
    updates = []
    for name in settings["modules"]:
        layer = modules.get(name)
        a, b = tensors.get(f"{name}.lora_a"), tensors.get(f"{name}.lora_b")
        weight = getattr(layer, "weight", None)
        if weight is None or a is None or b is None:
            raise ModelLoadError(
                directory, f"names layer {name!r}, which the model lacks", "train it again"
            )
        delta = (b.float() @ a.float()) * scaling
        if tuple(delta.shape) != tuple(weight.shape):
            raise ModelLoadError(
                directory,
                f"has a {tuple(delta.shape)} update for {name!r}, whose weight is "
                f"{tuple(weight.shape)}",
                "use the adapter with the model it was trained on",
            )
        updates.append((weight, delta))
    with torch.no_grad():
        for weight, delta in updates:
            weight.add_(delta.to(weight.dtype).to(weight.device))
    return settings
