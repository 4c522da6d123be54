"""Low-rank adapters (LoRA, Hu et al. 2021) for the ``nn.Linear`` layers of any model.

:func:`add_lora` wraps the chosen layers in :class:`LoRALinear` and freezes every other
parameter, so only ``rank * (in + out)`` numbers per layer train; :func:`merge_lora`
folds the adapters back into plain ``nn.Linear`` layers, so the saved model is an
ordinary Hugging Face model that loads without this module (``peft`` is not needed).
"""

from __future__ import annotations

import math
from typing import List, Sequence

import torch
from torch import nn


class LoRALinear(nn.Module):
    """``base(x) + (alpha / rank) * B(A(dropout(x)))`` with ``base`` frozen.

    ``A`` starts random and ``B`` at zero, so a freshly wrapped model computes exactly
    what the original did and training moves it away from there.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, *, dropout: float = 0.0) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        weight = base.weight
        self.lora_a = nn.Parameter(
            torch.empty(rank, base.in_features, dtype=weight.dtype, device=weight.device)
        )
        self.lora_b = nn.Parameter(
            torch.zeros(base.out_features, rank, dtype=weight.dtype, device=weight.device)
        )
        # The initialisation nn.Linear uses for its own weight, as the LoRA paper does.
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        """The wrapped layer's input width."""
        return self.base.in_features

    @property
    def out_features(self) -> int:
        """The wrapped layer's output width."""
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen layer's output plus the scaled low-rank update of ``x``."""
        update = self.dropout(x) @ self.lora_a.t() @ self.lora_b.t()
        return self.base(x) + update * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The change the adapter makes to ``base.weight`` (same shape)."""
        return (self.lora_b @ self.lora_a) * self.scaling

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing what this module computes in eval mode."""
        base = self.base
        merged = nn.Linear(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        with torch.no_grad():
            merged.weight.copy_(base.weight + self.delta_weight().to(base.weight.dtype))
            if base.bias is not None:
                merged.bias.copy_(base.bias)
        merged.weight.requires_grad_(base.weight.requires_grad)
        return merged

    def extra_repr(self) -> str:
        """Rank and alpha, shown when the module is printed."""
        return f"rank={self.rank}, alpha={self.alpha}"


def linear_module_names(model: nn.Module) -> List[str]:
    """Dotted names of every ``nn.Linear`` in ``model`` (to show what ``targets`` can name)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def matches_target(name: str, targets: Sequence[str]) -> bool:
    """Whether a dotted module name ends with one of ``targets`` at a dot boundary.

    ``q_proj`` matches ``model.layers.0.self_attn.q_proj`` but not ``xq_proj``.
    """
    return any(name == t or name.endswith("." + t) for t in targets)


def add_lora(
    model: nn.Module, targets: Sequence[str], rank: int, alpha: float, dropout: float
) -> int:
    """Wrap the ``nn.Linear`` layers named by ``targets`` and freeze everything else.

    Returns the number of trainable parameters (the adapters'); raises ``ValueError``
    when no layer matches, naming some that exist.
    """
    chosen = [name for name in linear_module_names(model) if matches_target(name, targets)]
    if not chosen:
        available = linear_module_names(model)
        raise ValueError(
            f"no nn.Linear module name ends with any of {list(targets)}; some that exist: "
            f"{', '.join(available[:8]) or '(none)'}"
        )
    shared = _shared_weights(model)
    tied = [name for name in chosen if id(model.get_submodule(name).weight) in shared]
    if tied:
        # Merging would give the layer its own weight and untie it from its twin (an
        # output layer tied to the embeddings), and saving would then lose one of them.
        raise ValueError(
            f"{', '.join(tied)} shares its weight with another layer (tied embeddings); "
            "leave it out of the targets"
        )
    for param in model.parameters():
        param.requires_grad_(False)
    for name in chosen:
        parent, attribute = _parent_of(model, name)
        base = getattr(parent, attribute)
        setattr(parent, attribute, LoRALinear(base, rank, alpha, dropout=dropout))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_lora(model: nn.Module) -> int:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear``.

    Every parameter is trainable again afterwards (a plain model, as loaded from disk).
    Returns the number of layers merged.
    """
    wrapped = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in wrapped:
        parent, attribute = _parent_of(model, name)
        setattr(parent, attribute, getattr(parent, attribute).merged())
    for param in model.parameters():
        param.requires_grad_(True)
    return len(wrapped)


def _shared_weights(model: nn.Module) -> set[int]:
    seen: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        seen[id(param)] = seen.get(id(param), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def _parent_of(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attribute = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attribute
