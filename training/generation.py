"""``python -m training generate``: fine-tune the fallback's chat model on instruction pairs.

Steps: read instruction→response pairs (:mod:`training.instruction_data`), load the
causal LM (the packaged SmolLM2 unless ``--model`` names a directory), wrap its
attention projections in low-rank adapters (:mod:`training.lora`; ``--lora-rank 0``
trains every weight instead), measure the held-out loss, train with the shared loop
(:func:`rasa_llm.models.training_loop.train_loop`) on the response tokens only, measure
again, merge the adapters and save ``OUT/model`` as a plain Hugging Face model that
the fallback loads with ``local.model: OUT/model`` (or, with ``--save adapter``, only
the adapters into ``OUT/adapter``, a few MB that the fallback merges into the base model
at load with ``local.adapter: OUT/adapter``), with ``report.json``, ``report.md`` and
``curves.png`` beside it. A ``--train`` file whose prompt column holds chat messages
(:mod:`training.grounded_data` writes them) is trained on those exact messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch

from rasa_llm.errors import InvalidComponentConfigError, ModelLoadError
from rasa_llm.fallback.adapter import save_adapter
from rasa_llm.fallback.model_source import DEFAULT_CACHE_DIR, ModelSource
from rasa_llm.models.device import cpu_has_bf16, resolve_device
from rasa_llm.models.training_loop import (
    LoopSettings,
    adamw,
    param_groups,
    seed_everything,
    train_loop,
)
from training import instruction_data as data
from training.arguments import GenerateArguments
from training.causal_lm_task import CausalLMTask, perplexity
from training.errors import TrainingInputError
from training.generation_arguments import add_generate_arguments
from training.generation_report import write_generation_report
from training.lora import LoRALinear, add_lora, merge_lora
from training.outputs import CHECKPOINT_DIR

# cli.py builds the sub-command from here; the flags live in their own module.
__all__ = ["CHECKPOINT_DIR", "add_generate_arguments", "run_generate"]

logger = logging.getLogger(__name__)


def run_generate(args: GenerateArguments) -> int:
    """Run ``python -m training generate`` with its ``args``; returns the exit code."""
    began = time.perf_counter()
    out = Path(args.out)
    device = _device(args.device)
    targets = args.targets
    train_pairs = data.read_pairs(Path(args.train), args.prompt_column, args.response_column)
    if args.max_examples is not None:
        train_pairs = data.sample_pairs(train_pairs, args.max_examples, args.seed)
    if args.test:
        _need_examples(train_pairs, args.train, 1, "to train on")
        validation_pairs = data.read_pairs(
            Path(args.test), args.prompt_column, args.response_column
        )
        _need_examples(validation_pairs, args.test, 1, "to measure the held-out loss on")
    else:
        _need_examples(train_pairs, args.train, 2, "to train on one and hold one out")
        train_ids, validation_ids = data.split_validation(
            len(train_pairs), args.validation_fraction, args.seed
        )
        validation_pairs = [train_pairs[i] for i in validation_ids]
        train_pairs = [train_pairs[i] for i in train_ids]

    model, tokenizer, model_name = _load_model(args.model)
    end_id = data.end_of_turn_id(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    tokenized = {}
    skipped = {}
    for part, pairs, source in (
        ("train", train_pairs, args.train),
        ("validation", validation_pairs, args.test or args.train),
    ):
        tokenized[part], skipped[part] = data.tokenize_pairs(
            tokenizer,
            pairs,
            system_prompt=args.system_prompt,
            max_length=args.max_length,
            end_id=end_id,
        )
        if not tokenized[part]:
            raise TrainingInputError(
                source,
                f"no {part} example fits in --max-length {args.max_length} tokens (the "
                "system prompt and instruction alone fill it)",
                "raise --max-length or shorten --system-prompt",
            )

    seed_everything(args.seed)  # the adapters' initial weights
    model.to(device)
    cpu_bf16 = device.type == "cpu" and (
        args.precision == "bf16" or (args.precision == "auto" and cpu_has_bf16())
    )
    if args.lora_rank > 0:
        try:
            add_lora(model, targets, args.lora_rank, args.lora_alpha, args.lora_dropout)
        except ValueError as e:
            raise TrainingInputError(
                "--lora-targets",
                str(e),
                "name the last part of some nn.Linear modules, e.g. q_proj,v_proj",
            ) from e
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    learning_rate = args.learning_rate
    task = CausalLMTask(
        model,
        tokenized["train"],
        tokenized["validation"],
        pad_id=pad_id,
        batch_size=args.batch_size,
        device=device,
        cpu_bf16=cpu_bf16,
    )
    logger.info(
        "generate: %d training and %d held-out examples, %s of %s parameters trainable, on %s",
        len(task.train),
        len(task.validation),
        f"{trainable:,}",
        f"{total:,}",
        device,
    )
    loss_before = task.held_out_loss()
    logger.info("held-out loss before training: %.4f", loss_before)
    optimizer = adamw(
        param_groups(
            model.named_parameters(), learning_rate=learning_rate, weight_decay=args.weight_decay
        ),
        learning_rate,
    )
    settings = LoopSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        warmup_ratio=args.warmup_ratio,
        early_stopping_patience=args.patience,
        max_steps=args.max_steps,
        eval_every_steps=args.eval_every,
        seed=args.seed,
        show_progress=not args.no_progress,
        cpu_bf16=cpu_bf16,
    )
    result = train_loop(
        model,
        task,
        len(task.train),
        optimizer,
        settings,
        device,
        checkpoint_dir=out / CHECKPOINT_DIR,
        resume=args.resume,
        lengths=[len(example.input_ids) for example in task.train],
    )
    # The loop restored the weights of its best validation, whose held-out loss it
    # recorded; measuring again would cost another pass over the held-out set.
    loss_after = float(result.best_metrics["val_loss"])

    if args.saves_adapter:
        _save_adapter(
            model,
            args,
            model_name,
            out / "adapter",
            loss_after,
            _settings(args, learning_rate, targets),
        )
    else:
        merge_lora(model)
        _save_model(model, tokenizer, end_id, out / "model")
    all_pairs = train_pairs + validation_pairs
    examples = tokenized["train"] + tokenized["validation"]
    report: Dict[str, Any] = {
        "model": model_name,
        "train_file": str(args.train),
        "test_file": str(args.test) if args.test else None,
        "examples_train": len(task.train),
        "examples_validation": len(task.validation),
        "examples_skipped_too_long": skipped["train"] + skipped["validation"],
        "examples_truncated": sum(1 for e in examples if e.truncated),
        "examples_with_placeholders": data.count_with_placeholders(all_pairs),
        "mean_tokens_per_example": sum(len(e.input_ids) for e in examples) / len(examples),
        "held_out_tokens": sum(e.supervised_tokens for e in task.validation),
        "held_out_loss_before": loss_before,
        "held_out_perplexity_before": perplexity(loss_before),
        "held_out_loss": loss_after,
        "held_out_perplexity": perplexity(loss_after),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "train_seconds": result.seconds,
        "total_seconds": time.perf_counter() - began,
        "steps": result.steps,
        "seconds_per_step": result.seconds_per_step,
        "validation_seconds": task.validation_seconds,
        # Without the held-out passes (checkpoint writing included): what a long run
        # with rare validations costs per step.
        "seconds_per_step_without_validation": (result.seconds - task.validation_seconds)
        * args.grad_accum
        / max(1, task.batches_trained),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "device": str(device),
        "cpu_bf16_autocast": cpu_bf16,
        "settings": _settings(args, learning_rate, targets),
        "history": result.history,
    }
    write_generation_report(out, report)
    if not args.keep_checkpoint:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    saved = "adapter" if args.saves_adapter else "model"
    print(
        f"held-out loss {loss_before:.4f} -> {loss_after:.4f} (perplexity "
        f"{perplexity(loss_before):.2f} -> {perplexity(loss_after):.2f}) after "
        f"{result.steps} steps in {result.seconds:.0f} s; "
        f"{saved} in {out / saved}, report in {out / 'report.md'}"
    )
    return 0


def _device(requested: str) -> torch.device:
    try:
        return resolve_device("training generate", requested)
    except InvalidComponentConfigError as e:
        raise TrainingInputError(
            "--device",
            f"asks for {requested!r}, which cannot be used here",
            "use --device auto or --device cpu",
        ) from e


def _need_examples(
    pairs: Sequence[data.InstructionPair], source: str, least: int, why: str
) -> None:
    if len(pairs) < least:
        raise TrainingInputError(
            source,
            f"has {len(pairs)} example{'s' if len(pairs) != 1 else ''}; at least {least} "
            f"{'is' if least == 1 else 'are'} needed {why}",
            "add more instruction/response rows (and give held-out pairs with --test)",
        )


def _load_model(model_dir: str | None) -> tuple[Any, Any, str]:
    """The causal LM, its tokenizer and a name for the report; errors say what to fix."""
    if model_dir is not None:
        path = Path(model_dir).expanduser()
        if not (path / "config.json").is_file():
            raise TrainingInputError(
                "--model",
                f"{path} is not a Hugging Face model directory (no config.json there)",
                "give a local directory saved with save_pretrained(), or leave --model out "
                "to fine-tune the packaged SmolLM2",
            )
    try:
        source = ModelSource.resolve(model_dir, None)
        model, tokenizer = source.load(Path(DEFAULT_CACHE_DIR).expanduser())
    except ModelLoadError as e:
        raise TrainingInputError(
            "--model",
            f"the model cannot be loaded ({e})",
            "give a local Hugging Face causal LM directory, or leave --model out",
        ) from e
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingInputError(
            "--model",
            f"the tokenizer of {source.path} has no chat template, so prompts cannot be "
            "written as the fallback writes them",
            "use an instruction-tuned chat model, or add chat_template to its "
            "tokenizer_config.json",
        )
    return model, tokenizer, source.name


def _save_model(model: Any, tokenizer: Any, end_id: int, path: Path) -> None:
    # Stopping at the end-of-turn token the model was trained to emit makes the saved
    # model end its replies with plain transformers too, not only in the fallback.
    eos = model.generation_config.eos_token_id
    ids: List[int] = list(eos) if isinstance(eos, list) else ([eos] if eos is not None else [])
    if end_id not in ids:
        model.generation_config.eos_token_id = ids + [end_id]
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


def _save_adapter(
    model: Any,
    args: GenerateArguments,
    model_name: str,
    path: Path,
    loss: float,
    settings: Dict[str, Any],
) -> None:
    weights = {
        name: (module.lora_a, module.lora_b)
        for name, module in model.named_modules()
        if isinstance(module, LoRALinear)
    }
    train_file = Path(args.train)
    save_adapter(
        path,
        weights,
        rank=args.lora_rank,
        alpha=args.lora_alpha,
        base_model=model_name,
        extra={
            "train_file": train_file.name,
            "train_file_sha256": hashlib.sha256(train_file.read_bytes()).hexdigest(),
            "held_out_loss": loss,
            "settings": {k: v for k, v in settings.items() if k not in ("out", "train", "test")},
        },
    )


def _settings(args: GenerateArguments, learning_rate: float, targets: List[str]) -> Dict:
    """The run's arguments as its report and adapter record them, with the rate it used."""
    return {
        **dataclasses.asdict(args),
        "lr": learning_rate,
        "lora_targets": ",".join(targets),
        "length_groups": LoopSettings.length_groups,
    }
