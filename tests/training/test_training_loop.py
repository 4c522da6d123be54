"""The one training loop: it learns, stops early, accumulates, resumes and stops on time."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest
import torch
from torch import nn

from rasa_llm.models.training_loop import (
    CHECKPOINT_FILE,
    LoopSettings,
    adamw,
    epoch_batches,
    param_groups,
    train_loop,
)

CPU = torch.device("cpu")


class Regression:
    """Least squares on fixed data; validation score = -held-out loss (or scripted)."""

    def __init__(
        self,
        model: nn.Module,
        n: int = 32,
        scores: Optional[List[float]] = None,
        fail_at_call: Optional[int] = None,
    ) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
        self.model, self.scores, self.fail_at_call, self.calls = model, scores, fail_at_call, 0

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        self.calls += 1
        if self.fail_at_call is not None and self.calls == self.fail_at_call:
            raise KeyboardInterrupt  # the operator presses Ctrl-C mid-epoch
        return ((self.model(self.x[list(batch)]).squeeze(-1) - self.y[list(batch)]) ** 2).mean()

    def validate(self) -> Dict[str, float]:
        if self.scores is not None:
            return {"score": self.scores.pop(0)} if self.scores else {"score": -1e9}
        val = ((self.model(self.x).squeeze(-1) - self.y) ** 2).mean().item()
        return {"val_loss": val, "score": -val}


def make(lr: float = 0.2) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    return model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)


def test_the_loss_falls_and_the_best_weights_are_kept() -> None:
    model, optimizer = make()
    task = Regression(model)
    result = train_loop(
        model, task, 32, optimizer, LoopSettings(epochs=15, batch_size=8, show_progress=False), CPU
    )
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0] / 5
    assert result.epochs_run == 15 and result.steps == 15 * 4
    best = max(result.history, key=lambda r: r["score"])
    assert result.best_epoch == best["epoch"]
    assert task.validate()["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_early_stopping_stops_after_patience_validations_without_improvement() -> None:
    model, optimizer = make()
    scores = [0.1, 0.5, 0.4, 0.3, 0.9]  # the 0.9 must never be reached
    result = train_loop(
        model,
        Regression(model, scores=scores),
        32,
        optimizer,
        LoopSettings(epochs=10, batch_size=8, early_stopping_patience=2, show_progress=False),
        CPU,
    )
    assert result.stopped_early
    assert result.epochs_run == 4 and result.best_epoch == 2
    assert [r["score"] for r in result.history] == [0.1, 0.5, 0.4, 0.3]


def test_patience_zero_never_stops_early() -> None:
    model, optimizer = make()
    result = train_loop(
        model,
        Regression(model, scores=[0.5, 0.1, 0.1, 0.1, 0.1]),
        32,
        optimizer,
        LoopSettings(epochs=5, batch_size=8, early_stopping_patience=0, show_progress=False),
        CPU,
    )
    assert result.epochs_run == 5 and not result.stopped_early and result.best_epoch == 1


def test_accumulating_two_batches_of_four_equals_one_batch_of_eight() -> None:
    runs = []
    for batch_size, accumulation in ((8, 1), (4, 2)):
        model, optimizer = make()
        settings = LoopSettings(
            epochs=3,
            batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            early_stopping_patience=0,
            show_progress=False,
        )
        result = train_loop(model, Regression(model), 32, optimizer, settings, CPU)
        runs.append((result.steps, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0] == 12
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_max_steps_ends_the_run_and_validates_there() -> None:
    model, optimizer = make()
    settings = LoopSettings(epochs=10, batch_size=8, max_steps=6, show_progress=False)
    result = train_loop(model, Regression(model), 32, optimizer, settings, CPU)
    assert result.steps == 6 and result.epochs_run == 2
    assert [r["step"] for r in result.history] == [4.0, 6.0]


def test_eval_every_steps_validates_inside_epochs() -> None:
    model, optimizer = make()
    settings = LoopSettings(
        epochs=2, batch_size=4, eval_every_steps=3, early_stopping_patience=0, show_progress=False
    )
    result = train_loop(model, Regression(model), 32, optimizer, settings, CPU)
    assert [r["step"] for r in result.history] == [3.0, 6.0, 8.0, 9.0, 12.0, 15.0, 16.0]


@pytest.mark.parametrize("ema_decay", [0.0, 0.8])
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(
    tmp_path: Path, ema_decay: float
) -> None:
    settings = LoopSettings(
        epochs=5, batch_size=8, early_stopping_patience=0, show_progress=False, ema_decay=ema_decay
    )
    model, optimizer = make()
    straight = train_loop(model, Regression(model), 32, optimizer, settings, CPU)
    expected = [p.detach().clone() for p in model.parameters()]

    model, optimizer = make()
    with pytest.raises(KeyboardInterrupt):  # stopped in epoch 3, after two checkpoints
        train_loop(
            model,
            Regression(model, fail_at_call=10),
            32,
            optimizer,
            settings,
            CPU,
            checkpoint_dir=tmp_path,
        )
    assert (tmp_path / CHECKPOINT_FILE).is_file()

    model, optimizer = make()  # a fresh process: new model, new optimizer
    resumed = train_loop(
        model, Regression(model), 32, optimizer, settings, CPU, checkpoint_dir=tmp_path, resume=True
    )
    assert resumed.resumed_from_epoch == 2
    assert resumed.steps == straight.steps == 20
    assert [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in straight.history]
    )
    # The weight average is checkpointed too: it validates as if never interrupted.
    assert [r.get("ema_score") for r in resumed.history] == pytest.approx(
        [r.get("ema_score") for r in straight.history]
    )
    assert resumed.averaged == straight.averaged
    for a, b in zip(expected, model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


class Snapshots(Regression):
    """Regression that remembers the weights at every loss and validation call."""

    def __init__(self, model: nn.Module, scores: Optional[List[float]] = None) -> None:
        super().__init__(model, scores=scores)
        self.at_loss: List[torch.Tensor] = []
        self.at_validate: List[torch.Tensor] = []

    def weights(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten().clone() for p in self.model.parameters()])

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        self.at_loss.append(self.weights())
        return super().loss(batch)

    def validate(self) -> Dict[str, float]:
        self.at_validate.append(self.weights())
        return super().validate()


class NoValidation(Snapshots):
    def validate(self) -> Dict[str, float]:
        return {}


def test_the_weight_average_is_the_hand_computed_one_and_does_not_change_training() -> None:
    settings = LoopSettings(epochs=6, batch_size=32, early_stopping_patience=0, show_progress=False)
    model, optimizer = make()
    plain = NoValidation(model)
    train_loop(model, plain, 32, optimizer, settings, CPU)
    trained = plain.weights()
    # One batch per epoch: the weights after step k are the ones the (k+1)th loss saw.
    after_step = [*plain.at_loss[1:], trained]

    model, optimizer = make()
    averaged = NoValidation(model)
    decay = 0.9
    result = train_loop(
        model, averaged, 32, optimizer, LoopSettings(**{**vars(settings), "ema_decay": decay}), CPU
    )
    # Averaging only watches: the trained trajectory is the same step for step.
    for a, b in zip(plain.at_loss, averaged.at_loss, strict=True):
        assert torch.equal(a, b)
    expected = plain.at_loss[0].clone()
    for step, weights in enumerate(after_step, start=1):
        rate = min(decay, (1 + step) / (10 + step))
        expected = rate * expected + (1 - rate) * weights
    # With nothing to validate on, the average is the result.
    assert result.averaged
    assert torch.allclose(averaged.weights(), expected, atol=1e-6)
    assert not torch.allclose(expected, trained, atol=1e-3)


@pytest.mark.parametrize(
    ("scores", "chosen", "averaged"),
    [
        # raw, average for epochs 1 and 2: the average of epoch 1 is the best.
        ([0.1, 0.5, 0.2, 0.3], 1, True),
        # The raw weights of epoch 2 beat every average.
        ([0.1, 0.2, 0.6, 0.3], 2, False),
    ],
)
def test_each_validation_scores_the_average_beside_the_weights_and_keeps_the_better(
    scores: List[float], chosen: int, averaged: bool
) -> None:
    model, optimizer = make()
    task = Snapshots(model, scores=list(scores))
    settings = LoopSettings(
        epochs=2, batch_size=8, early_stopping_patience=0, show_progress=False, ema_decay=0.5
    )
    result = train_loop(model, task, 32, optimizer, settings, CPU)
    assert [r["score"] for r in result.history] == scores[0::2]
    assert [r["ema_score"] for r in result.history] == scores[1::2]
    assert result.best_epoch == chosen
    assert result.averaged is averaged
    # Validation calls alternate: raw weights, then the average.
    expected = task.at_validate[(chosen - 1) * 2 + int(averaged)]
    assert torch.equal(task.weights(), expected)
    assert not torch.equal(task.at_validate[0], task.at_validate[1])


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_a_weight_average_decay_outside_0_to_1_is_refused_with_the_fix(decay: float) -> None:
    model, optimizer = make()
    with pytest.raises(ValueError, match="0.998"):
        train_loop(
            model,
            Regression(model),
            32,
            optimizer,
            LoopSettings(epochs=1, show_progress=False, ema_decay=decay),
            CPU,
        )


def test_param_groups_put_heads_at_their_rate_and_skip_decay_on_biases_and_norms() -> None:
    net = nn.ModuleDict({"body": nn.Linear(2, 2), "norm": nn.LayerNorm(2), "head": nn.Linear(2, 1)})
    net["norm"].requires_grad_(False)
    groups = param_groups(
        net.named_parameters(),
        learning_rate=0.1,
        weight_decay=0.01,
        head_prefixes=("head.",),
        head_learning_rate=1.0,
    )
    found = {(g["lr"], g["weight_decay"]): len(g["params"]) for g in groups}
    # body weight; body bias; head weight; head bias. The frozen norm is left out.
    assert found == {(0.1, 0.01): 1, (0.1, 0.0): 1, (1.0, 0.01): 1, (1.0, 0.0): 1}


def mean_spread(batches: List[List[int]], lengths: List[int]) -> float:
    """Mean difference between a batch's longest and shortest example."""
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    return sum(spreads) / len(spreads)


def padded_tokens(batches: List[List[int]], lengths: List[int]) -> int:
    """What a batch costs: every row is padded to the batch's longest."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)


def test_length_grouped_batches_hold_every_example_once_pad_little_and_stay_random() -> None:
    lengths = torch.randint(1, 61, (1000,), generator=torch.Generator().manual_seed(3)).tolist()

    def batches(seed: int, groups: int) -> List[List[int]]:
        return epoch_batches(
            1000, 8, torch.Generator().manual_seed(seed), lengths=lengths, length_groups=groups
        )

    grouped, plain = batches(0, 10), batches(0, 0)
    for drawn in (grouped, plain):
        assert sorted(i for batch in drawn for i in batch) == list(range(1000))
        assert [len(b) for b in drawn] == [8] * 125
    # Random batches of 8 pad to about their longest (~53 of 60); grouped, to ~their mean.
    assert padded_tokens(grouped, lengths) < 0.65 * padded_tokens(plain, lengths)
    assert mean_spread(grouped, lengths) < 8 < 40 < mean_spread(plain, lengths)
    # The batches are not served longest first, and a seed draws its own groups.
    # Served group by group, the longest texts would fall from each group's first batch
    # to its last: at most 12 rises in 125 batches. Shuffled, about half of them rise.
    longest = [max(lengths[i] for i in b) for b in grouped]
    assert sum(b > a for a, b in zip(longest[:-1], longest[1:], strict=True)) > 40
    assert batches(0, 10) == grouped and batches(1, 10) != grouped
    # Without lengths (or with groups of one batch) the batches are the plain ones.
    assert epoch_batches(1000, 8, torch.Generator().manual_seed(0)) == plain
    assert batches(0, 1) == plain


class Recording(Regression):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, n=64)
        self.batches: List[List[int]] = []

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        self.batches.append(list(batch))
        return super().loss(batch)


@pytest.mark.parametrize("groups", [4, 0])
def test_the_loop_trains_on_length_grouped_batches_when_given_lengths(groups: int) -> None:
    lengths = [(7 * i) % 50 + 1 for i in range(64)]
    model, optimizer = make()
    task = Recording(model)
    settings = LoopSettings(epochs=2, batch_size=4, show_progress=False, length_groups=groups)
    train_loop(model, task, 64, optimizer, settings, CPU, lengths=lengths)
    generator = torch.Generator().manual_seed(settings.seed)
    expected = [
        batch
        for _ in range(2)
        for batch in epoch_batches(64, 4, generator, lengths=lengths, length_groups=groups)
    ]
    assert task.batches == expected
    # Groups of 4 batches of 4: a batch spans a quarter of a group's length range.
    assert (mean_spread(task.batches, lengths) < 15) == (groups > 1)


def test_lengths_that_do_not_match_the_examples_are_refused() -> None:
    model, optimizer = make()
    with pytest.raises(ValueError, match="3 lengths for 32 examples"):
        train_loop(
            model,
            Regression(model),
            32,
            optimizer,
            LoopSettings(show_progress=False),
            CPU,
            lengths=[1, 2, 3],
        )


def test_adamw_is_fused_and_steps_as_the_plain_one_does() -> None:
    torch.manual_seed(0)
    fused_net, plain_net = nn.Linear(6, 3), nn.Linear(6, 3)
    plain_net.load_state_dict(fused_net.state_dict())
    groups = [{"params": list(fused_net.parameters()), "weight_decay": 0.01}]
    fused = adamw(groups, 1e-2)
    plain = torch.optim.AdamW(plain_net.parameters(), lr=1e-2, weight_decay=0.01, fused=False)
    assert fused.defaults["fused"] is True
    x = torch.randn(16, 6)
    for _ in range(5):
        for net, optimizer in ((fused_net, fused), (plain_net, plain)):
            optimizer.zero_grad()
            net(x).pow(2).mean().backward()
            optimizer.step()
    for a, b in zip(fused_net.parameters(), plain_net.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(fused_net.weight, torch.zeros(3, 6))
