"""The training loop's state and its checkpoint: everything a resumed run needs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

import torch
from torch import nn

if TYPE_CHECKING:
    from rasa_llm.models.training_loop import LoopResult

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class LoopState:
    """Where a run stands: its progress, the best weights so far and the weight average."""

    epoch: int = 0
    steps: int = 0
    steps_at_resume: int = 0
    best_score: float = -math.inf
    best_state: Optional[Dict[str, torch.Tensor]] = None
    stale: int = 0
    finished: bool = False
    stopped_early: bool = False
    # The moving average of the trainable parameters (``LoopSettings.ema_decay``).
    ema: Optional[Dict[str, torch.Tensor]] = None


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    state: LoopState,
    result: LoopResult,
) -> None:
    """Write everything a resumed run needs, atomically (a crash mid-write keeps the old)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "state": {k: v for k, v in vars(state).items() if k not in ("best_state", "ema")},
            "best_state": state.best_state,
            "ema": state.ema,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_metrics": result.best_metrics,
            "averaged": result.averaged,
        },
        tmp,
    )
    tmp.replace(path)


def restore_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    result: LoopResult,
) -> LoopState:
    """Put the model, optimizer, schedule, random state and progress back as saved."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    state = LoopState(**saved["state"])
    state.best_state = saved["best_state"]
    state.ema = saved.get("ema")
    state.steps_at_resume = state.steps
    result.history = list(saved["history"])
    result.best_epoch = saved["best_epoch"]
    result.best_metrics = saved["best_metrics"]
    result.averaged = bool(saved.get("averaged", False))
    result.resumed_from_epoch = state.epoch
    return state
