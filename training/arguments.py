"""The typed arguments of each command, built once from the command line and passed down.

:mod:`training.cli` parses the flags (their defaults and help live with them: the
classifier flags in :mod:`training.cli`, the others in
:mod:`training.generation_arguments` and :mod:`training.grounded_data`), turns the
result into one of these frozen dataclasses with :func:`from_namespace`, and hands it to
the command; no module below the command line sees an ``argparse.Namespace``. A flag
without a field here (or a field without a flag) fails the first parse, not a run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Type, TypeVar, Union

# What sentiment runs use in place of the out-of-scope flags, which only ``intent`` has.
DEFAULT_TARGET_OOS_RECALL = 0.9
DEFAULT_OOS_SCORE = "softmax"


@dataclass(frozen=True, kw_only=True)
class ClassifierArguments:
    """``python -m training intent|sentiment``: the flags of ``cli.add_classifier_arguments``."""

    task: str  # "intent" or "sentiment"
    # data
    train: str
    test: str
    out: str
    text_column: str
    label_column: Optional[str]
    per_class: Optional[int]
    validation_fraction: float
    # out of scope (intent only; a sentiment run has no out-of-scope rows)
    oos_label: Optional[str] = None
    hold_out_labels: Optional[str] = None
    target_oos_recall: float = DEFAULT_TARGET_OOS_RECALL
    oos_train_fraction: float = 0.0
    oos_score: str = DEFAULT_OOS_SCORE
    # model and optimisation
    model: Optional[str]
    device: str
    epochs: int
    batch_size: int
    grad_accum: int
    lr: float
    head_lr: float
    weight_decay: float
    warmup_ratio: float
    dropout: float
    max_length: int
    freeze: str  # none, embeddings, encoder or a number of layers
    length_groups: int
    label_smoothing: float
    rdrop: float
    patience: int
    seed: int
    split_seed: Optional[int]
    ema_decay: float
    calibrate: bool
    eval_batch_size: int
    # soup
    soup: Optional[List[str]]
    soup_method: str
    # run
    resume: bool
    keep_checkpoint: bool
    no_progress: bool

    @property
    def data_seed(self) -> int:
        """The seed that samples and splits the data: ``--split-seed``, else ``--seed``.

        Kept apart from the training seed so that runs with different ``--seed`` can
        hold out the same validation rows, which a weight soup is chosen on.
        """
        return self.seed if self.split_seed is None else int(self.split_seed)

    def fine_tune_settings(self) -> Any:
        """The training loop's settings (:class:`rasa_llm.models.fine_tuning.FineTuneSettings`)."""
        from rasa_llm.models.fine_tuning import FineTuneSettings

        freeze = self.freeze
        return FineTuneSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.lr,
            head_learning_rate=self.head_lr,
            weight_decay=self.weight_decay,
            warmup_ratio=self.warmup_ratio,
            max_length=self.max_length,
            freeze_embeddings=freeze == "embeddings",
            freeze_layers=int(freeze) if freeze.isdigit() else 0,
            freeze_encoder=freeze == "encoder",
            early_stopping_patience=self.patience,
            gradient_accumulation_steps=self.grad_accum,
            seed=self.seed,
            show_progress=not self.no_progress,
            auxiliary_weight=0.0,
            ema_decay=self.ema_decay,
            length_groups=self.length_groups,
            label_smoothing=self.label_smoothing,
            rdrop_weight=self.rdrop,
        )


@dataclass(frozen=True, kw_only=True)
class GenerateArguments:
    """``python -m training generate``: the flags of :mod:`training.generation_arguments`.

    The fields are in the order of the flags: a run writes them, in this order, as the
    ``settings`` of its report and adapter (``dataclasses.asdict``).
    """

    # data
    train: str
    test: Optional[str]
    out: str
    prompt_column: str
    response_column: str
    validation_fraction: float
    max_examples: Optional[int]
    system_prompt: str
    max_length: int
    # model
    model: Optional[str]
    lora_rank: int
    save: str  # "model" or "adapter"
    lora_alpha: float
    lora_dropout: float
    lora_targets: str  # comma list
    # optimisation
    epochs: int
    max_steps: Optional[int]
    batch_size: int
    grad_accum: int
    lr: Optional[float]
    weight_decay: float
    warmup_ratio: float
    eval_every: Optional[int]
    patience: int
    # run
    device: str
    precision: str
    seed: int
    resume: bool
    keep_checkpoint: bool
    no_progress: bool

    @property
    def targets(self) -> List[str]:
        """``--lora-targets`` as a list."""
        return [t.strip() for t in self.lora_targets.split(",") if t.strip()]

    @property
    def learning_rate(self) -> float:
        """``--lr``, else the default for adapters or for full fine-tuning."""
        from training.generation_arguments import FULL_LEARNING_RATE, LORA_LEARNING_RATE

        if self.lr is not None:
            return self.lr
        return LORA_LEARNING_RATE if self.lora_rank > 0 else FULL_LEARNING_RATE

    @property
    def saves_adapter(self) -> bool:
        """Whether the run saves only the adapters (``--save adapter`` with adapters)."""
        return self.save == "adapter" and self.lora_rank > 0


@dataclass(frozen=True, kw_only=True)
class GroundedDataArguments:
    """``python -m training grounded-data``: the flags of its ``add_grounded_data_arguments``."""

    out: str
    data: str
    bot_dir: str
    knowledge_answers: str
    squad_answerable: int
    squad_unanswerable: int
    conditionalqa: int
    conditionalqa_near_misses: int
    knowledge_repeats: int
    heldout_per_set: int
    squad_heldout_articles: int
    validation_fraction: float
    max_sentences: int
    seed: int


Arguments = Union[ClassifierArguments, GenerateArguments, GroundedDataArguments]
_T = TypeVar("_T", ClassifierArguments, GenerateArguments, GroundedDataArguments)
# What the top-level parser adds to every command's namespace; not a command's argument.
_TOP_LEVEL = ("task", "verbose")


def from_namespace(kind: Type[_T], namespace: argparse.Namespace) -> _T:
    """``kind`` made from the parsed flags; a flag without a field is a ``TypeError``."""
    names = {f.name for f in fields(kind)}
    values: Dict[str, Any] = {
        key: value
        for key, value in vars(namespace).items()
        if key in names or key not in _TOP_LEVEL
    }
    return kind(**values)
