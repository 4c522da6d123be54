"""The one training loop behind every rasa-llm model: intent, sentiment and generation.

A task supplies two things, its loss on a batch of example indices and its validation
figures; the loop does the rest the same way for all of them: seeded shuffling,
batches (of examples of similar length, when the task says how long each is), gradient
accumulation, clipping, fused AdamW steps on a warm-up-then-linear-decay
schedule, bf16 autocast on a GPU, a progress bar, validation every epoch (and every N
steps when epochs are long), keeping the best weights, early stopping, and a
checkpoint after every epoch that ``resume`` continues from. Optionally it keeps an
exponential moving average of the trained weights (Polyak averaging) and validates it
beside the raw weights, keeping whichever validates better.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from rasa_llm.models.device import autocast
from rasa_llm.models.loop_checkpoint import (
    CHECKPOINT_FILE,
    LoopState,
    restore_checkpoint,
    save_checkpoint,
)
from rasa_llm.models.weight_average import averaged_weights, update_average

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class LoopSettings:
    """How long and in what steps to train; the task's own settings live with the task."""

    epochs: int = 10
    batch_size: int = 32
    # Batches whose gradients are summed before one optimizer step: the effective
    # batch is batch_size * gradient_accumulation_steps at the memory of one batch.
    gradient_accumulation_steps: int = 1
    # Share of the optimizer steps spent warming the learning rate up from zero;
    # it then decays linearly to zero at the last step.
    warmup_ratio: float = 0.1
    # Validations without a better score before stopping; 0 never stops early.
    early_stopping_patience: int = 3
    max_grad_norm: float = 1.0
    # Ends the run after this many optimizer steps (short runs on a CPU).
    max_steps: Optional[int] = None
    # Also validate every N optimizer steps, for epochs too long to wait for.
    eval_every_steps: Optional[int] = None
    seed: int = 42
    show_progress: bool = True
    # Decay of an exponential moving average of the trained weights, updated after every
    # optimizer step; 0 keeps none. Each validation then also scores the averaged
    # weights, and the better of the two can become the result. 0.998 averages over
    # roughly the last 500 steps.
    ema_decay: float = 0.0
    # When the task gives its examples' lengths, each epoch's shuffled examples are cut
    # into groups of this many batches, each group is sorted by length into batches, and
    # the batches are shuffled. A random batch pads to its longest text (Banking77: 2.8
    # times the real tokens at batch 32); grouped, padding is 4 % and a CPU step takes
    # about half the time. 0 or 1 keeps plain random batches.
    length_groups: int = 50
    # bf16 autocast on the CPU too (see cpu_has_bf16); a GPU always uses it.
    cpu_bf16: bool = False


class LoopTask(Protocol):
    """What a task gives the loop."""

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        """Mean loss over the training examples at these indices (train mode)."""
        ...

    def validate(self) -> Dict[str, float]:
        """Held-out figures with a ``score`` (higher is better); ``{}`` = none."""
        ...


@dataclass
class LoopResult:
    """What happened; the model holds the best weights when the loop returns."""

    best_epoch: int = 0
    epochs_run: int = 0
    steps: int = 0
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    history: List[Dict[str, float]] = field(default_factory=list)
    best_metrics: Dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    # True when the result is the moving average of the weights, not the trained ones.
    averaged: bool = False


def seed_everything(seed: int) -> None:
    """Seed every generator training draws from, so a rerun gives the same model."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def param_groups(
    named: Iterable[tuple[str, nn.Parameter]],
    *,
    learning_rate: float,
    weight_decay: float,
    head_prefixes: Sequence[str] = (),
    head_learning_rate: Optional[float] = None,
) -> List[Dict[str, Any]]:
    """AdamW groups: heads at their own rate; no weight decay on biases and norms."""
    groups: Dict[tuple, List[nn.Parameter]] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        is_head = any(name.startswith(p) for p in head_prefixes)
        no_decay = name.endswith("bias") or "norm" in name.lower()
        groups.setdefault((is_head, no_decay), []).append(param)
    head_lr = learning_rate if head_learning_rate is None else head_learning_rate
    return [
        {
            "params": params,
            "lr": head_lr if is_head else learning_rate,
            "weight_decay": 0.0 if no_decay else weight_decay,
        }
        for (is_head, no_decay), params in sorted(groups.items())
    ]


def adamw(groups: List[Dict[str, Any]], learning_rate: float) -> torch.optim.AdamW:
    """AdamW as one fused kernel per step (torch has it for the CPU and CUDA since 2.4).

    The default multi-tensor AdamW spent about 0.11 s of a 1 s MiniLM step on 2 CPU
    cores; fused, 0.02 s. Same update rule, so checkpoints load either way.
    """
    return torch.optim.AdamW(groups, lr=learning_rate, fused=True)


def epoch_batches(
    n_examples: int,
    batch_size: int,
    generator: torch.Generator,
    *,
    lengths: Optional[Sequence[int]] = None,
    length_groups: int = 0,
) -> List[List[int]]:
    """One epoch's batches of example indices: every index once, in a seeded order.

    With ``lengths``, examples of similar length share a batch (see
    ``LoopSettings.length_groups``); which examples meet in a group, and the order of
    the batches, stay random.
    """
    order = torch.randperm(n_examples, generator=generator).tolist()
    if lengths is None or length_groups <= 1:
        return [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]
    span = batch_size * length_groups
    batches: List[List[int]] = []
    for start in range(0, n_examples, span):
        # A stable sort: equal lengths keep their random order.
        group = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def train_loop(
    model: nn.Module,
    task: LoopTask,
    n_examples: int,
    optimizer: torch.optim.Optimizer,
    settings: LoopSettings,
    device: torch.device,
    *,
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    lengths: Optional[Sequence[int]] = None,
) -> LoopResult:
    """Train ``model`` through ``task`` and leave it holding its best validated weights.

    ``lengths`` (one per example, e.g. its token count) lets the loop put examples of
    similar length in one batch (``LoopSettings.length_groups``).
    """
    if n_examples < 1:
        raise ValueError("train_loop needs at least one training example")
    if lengths is not None and len(lengths) != n_examples:
        raise ValueError(f"train_loop got {len(lengths)} lengths for {n_examples} examples")
    if not 0.0 <= settings.ema_decay < 1.0:
        raise ValueError(
            f"ema_decay must be at least 0 and below 1, not {settings.ema_decay!r}; "
            "0 turns the weight average off, 0.998 is a usual value"
        )
    started = time.perf_counter()
    seed_everything(settings.seed)
    accumulation = max(1, settings.gradient_accumulation_steps)
    batches_per_epoch = math.ceil(n_examples / settings.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / accumulation)
    total_steps = max(1, steps_per_epoch * settings.epochs)
    if settings.max_steps is not None:
        total_steps = max(1, min(total_steps, settings.max_steps))
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(settings.warmup_ratio * total_steps), total_steps
    )
    generator = torch.Generator().manual_seed(settings.seed)
    state = LoopState()
    result = LoopResult()
    checkpoint = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir else None
    if resume and checkpoint is not None and checkpoint.is_file():
        state = restore_checkpoint(checkpoint, model, optimizer, scheduler, generator, result)
        logger.info("resuming after epoch %d from %s", state.epoch, checkpoint)
    elif resume:
        logger.warning("nothing to resume: no %s; training from the start", checkpoint)

    if settings.ema_decay and state.ema is None:
        state.ema = {
            name: param.detach().clone()
            for name, param in model.named_parameters()
            if param.requires_grad
        }
    train_seconds = 0.0
    epoch = state.epoch
    while epoch < settings.epochs and not state.finished:
        epoch += 1
        model.train()
        batches = epoch_batches(
            n_examples,
            settings.batch_size,
            generator,
            lengths=lengths,
            length_groups=settings.length_groups,
        )
        progress = tqdm(
            batches, desc=f"epoch {epoch}/{settings.epochs}", disable=not settings.show_progress
        )
        running, seen, window = 0.0, 0, []
        epoch_started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(progress, start=1):
            with autocast(device, cpu_bf16=settings.cpu_bf16):
                loss = task.loss(batch)
            (loss.float() / accumulation).backward()
            running += float(loss.item()) * len(batch)
            seen += len(batch)
            window.append(float(loss.item()))
            if index % accumulation and index != len(batches):
                continue
            if settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.steps += 1
            if state.ema is not None:
                update_average(state.ema, model, settings.ema_decay, state.steps)
            progress.set_postfix(loss=f"{np.mean(window[-accumulation:]):.3f}")
            limit_hit = settings.max_steps is not None and state.steps >= settings.max_steps
            periodic = settings.eval_every_steps and state.steps % settings.eval_every_steps == 0
            if (periodic or limit_hit) and index != len(batches):
                paused = time.perf_counter()
                _validate(task, model, state, result, settings, epoch, state.steps, running / seen)
                model.train()
                # Step time is training time: validations inside the epoch do not count.
                epoch_started += time.perf_counter() - paused
            if limit_hit:
                state.finished = True
                break
        progress.close()
        train_seconds += time.perf_counter() - epoch_started
        _validate(task, model, state, result, settings, epoch, state.steps, running / max(1, seen))
        state.epoch = epoch
        result.epochs_run = epoch
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, generator, state, result)

    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    result.steps = state.steps
    result.stopped_early = state.stopped_early
    result.seconds = time.perf_counter() - started
    result.seconds_per_step = train_seconds / max(1, state.steps - state.steps_at_resume)
    return result


def _validate(
    task: LoopTask,
    model: nn.Module,
    state: LoopState,
    result: LoopResult,
    settings: LoopSettings,
    epoch: int,
    step: int,
    train_loss: float,
) -> None:
    """Validate, keep the best weights, and decide whether to stop early."""
    if result.history and result.history[-1]["step"] == step:
        return  # already validated at this step (max_steps at the end of an epoch)
    model.eval()
    with torch.no_grad():
        metrics = dict(task.validate())
        averaged: Dict[str, float] = {}
        if state.ema is not None:
            with averaged_weights(model, state.ema):
                averaged = dict(task.validate())
    record = {"epoch": float(epoch), "step": float(step), "train_loss": train_loss, **metrics}
    record.update({f"ema_{key}": value for key, value in averaged.items()})
    result.history.append(record)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "step"))
    logger.info("epoch %d step %d: %s", epoch, step, shown)
    score = metrics.get("score")
    if score is None:  # nothing to validate on: the latest weights are the result
        result.best_epoch, result.best_metrics = epoch, record
        state.best_state, result.averaged = None, state.ema is not None
        if state.ema is not None:  # the average is the result, as when it validates
            with averaged_weights(model, state.ema):
                state.best_state = copy.deepcopy(model.state_dict())
        return
    use_average = averaged.get("score", -math.inf) > score
    if use_average:
        score = averaged["score"]
    if score > state.best_score:
        state.best_score, state.stale = float(score), 0
        if use_average and state.ema is not None:
            with averaged_weights(model, state.ema):
                state.best_state = copy.deepcopy(model.state_dict())
        else:
            state.best_state = copy.deepcopy(model.state_dict())
        result.best_epoch, result.best_metrics = epoch, record
        result.averaged = use_average
        return
    state.stale += 1
    if settings.early_stopping_patience and state.stale >= settings.early_stopping_patience:
        logger.info("early stopping at epoch %d (best: epoch %d)", epoch, result.best_epoch)
        state.finished = state.stopped_early = True
