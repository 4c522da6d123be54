"""Polyak averaging for the training loop: an exponential moving average of the weights.

The loop keeps the average beside the trained weights, validates both and keeps whichever
validates better (``LoopSettings.ema_decay``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict

import torch
from torch import nn


def update_average(
    average: Dict[str, torch.Tensor], model: nn.Module, decay: float, step: int
) -> None:
    """One step of the weight average; its decay warms up so the start is forgotten.

    Without the warm-up (``(1 + step) / (10 + step)``, as TensorFlow's
    ExponentialMovingAverage does) the average would hold the pretrained weights for
    hundreds of steps and score worse than the raw ones at the first validations.
    """
    rate = min(decay, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in average:
                average[name].mul_(rate).add_(param.detach(), alpha=1.0 - rate)


@contextlib.contextmanager
def averaged_weights(model: nn.Module, average: Dict[str, torch.Tensor]) -> Any:
    """The model holds the averaged weights inside the block and its own after it."""
    params = dict(model.named_parameters())
    saved = {name: params[name].detach().clone() for name in average}
    with torch.no_grad():
        for name, value in average.items():
            params[name].copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)
