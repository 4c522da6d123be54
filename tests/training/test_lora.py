"""LoRA adapters on a tiny Llama: what trains, what stays, and merging back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from tests.rasa_llm.fallback.test_local_transformers_backend import build_tiny_model
from training.lora import LoRALinear, add_lora, linear_module_names, merge_lora

TARGETS = ["q_proj", "v_proj"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(path)
    return path


def load(path: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)


def ids() -> torch.Tensor:
    return torch.tensor([[2, 5, 16, 17, 18, 3, 2, 7, 10, 11, 12, 13, 3]])


def train_steps(model: nn.Module, steps: int = 5) -> None:
    torch.manual_seed(1)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids(), labels=ids()).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def test_a_fresh_adapter_changes_nothing() -> None:
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    wrapped = LoRALinear(base, rank=2, alpha=4.0)
    x = torch.randn(3, 6)
    assert torch.equal(wrapped(x), base(x))  # B starts at zero
    assert torch.count_nonzero(wrapped.lora_b) == 0
    assert torch.count_nonzero(wrapped.lora_a) == 2 * 6
    assert wrapped.scaling == 2.0


def test_the_adapter_adds_scaled_b_times_a() -> None:
    torch.manual_seed(0)
    base = nn.Linear(5, 3, bias=False)
    wrapped = LoRALinear(base, rank=2, alpha=1.0)
    with torch.no_grad():
        wrapped.lora_b.copy_(torch.randn(3, 2))
    x = torch.randn(4, 5)
    expected = x @ (base.weight + 0.5 * wrapped.lora_b @ wrapped.lora_a).t()
    torch.testing.assert_close(wrapped(x), expected)


def test_add_lora_trains_only_the_adapters(tiny_dir: Path) -> None:
    model = load(tiny_dir)
    wrapped_names = [n for n in linear_module_names(model) if n.endswith(tuple(TARGETS))]
    trainable = add_lora(model, TARGETS, rank=4, alpha=8.0, dropout=0.0)
    # 2 layers x (q: 32 -> 32, v: 32 -> 16 with 2 key-value heads of 8), each rank x (in + out).
    assert len(wrapped_names) == 4
    assert trainable == 2 * (4 * (32 + 32) + 4 * (32 + 16))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.endswith(("lora_a", "lora_b")) for n in names)
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 4


def test_training_moves_the_adapters_and_not_the_base_weights(tiny_dir: Path) -> None:
    model = load(tiny_dir)
    before: Dict[str, torch.Tensor] = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, TARGETS, rank=4, alpha=8.0, dropout=0.1)
    train_steps(model)
    after = model.state_dict()
    for key, value in before.items():
        # q_proj.weight is now q_proj.base.weight inside the wrapper.
        moved_key = key.replace("q_proj.", "q_proj.base.").replace("v_proj.", "v_proj.base.")
        assert torch.equal(after[moved_key], value), key
    adapters = [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert all(torch.count_nonzero(m.lora_b) > 0 for m in adapters)


def test_merged_model_gives_the_adapted_logits(tiny_dir: Path, tmp_path: Path) -> None:
    model = load(tiny_dir)
    original_keys = set(model.state_dict())
    add_lora(model, TARGETS, rank=4, alpha=8.0, dropout=0.1)
    train_steps(model)
    with torch.no_grad():
        adapted = model(input_ids=ids()).logits
        plain = load(tiny_dir)(input_ids=ids()).logits
    assert (adapted - plain).abs().max() > 1e-3  # the adapters did change the model
    assert merge_lora(model) == 4
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == original_keys  # a plain Llama again
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        merged = model(input_ids=ids()).logits
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=0)
    model.save_pretrained(str(tmp_path / "merged"))
    with torch.no_grad():
        reloaded = load(tmp_path / "merged")(input_ids=ids()).logits
    torch.testing.assert_close(reloaded, adapted, atol=1e-5, rtol=0)


def test_targets_match_whole_name_parts_only(tiny_dir: Path) -> None:
    model = load(tiny_dir)
    with pytest.raises(ValueError, match="no nn.Linear") as caught:
        add_lora(model, ["proj"], rank=2, alpha=2.0, dropout=0.0)
    assert "model.layers.0.self_attn.q_proj" in str(caught.value)  # names that exist
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen on failure


def test_a_tied_output_layer_is_refused(tiny_dir: Path) -> None:
    model = load(tiny_dir)
    model.lm_head.weight = model.model.embed_tokens.weight  # tie, as SmolLM2 does
    with pytest.raises(ValueError, match="lm_head shares its weight"):
        add_lora(model, ["lm_head"], rank=2, alpha=2.0, dropout=0.0)


def test_bad_rank_and_dropout_are_refused() -> None:
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), rank=0, alpha=1.0)
    with pytest.raises(ValueError, match="dropout"):
        LoRALinear(nn.Linear(2, 2), rank=1, alpha=1.0, dropout=1.0)
