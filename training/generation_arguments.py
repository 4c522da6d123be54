"""The flags of ``python -m training generate``, typed as ``arguments.GenerateArguments``."""

from __future__ import annotations

import argparse

from training.flag_types import count, positive, share

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful customer-service assistant. Answer the customer's question "
    "politely, clearly and briefly."
)
# Ends a help text whose default is None or meaningless: it contains "%(default)", so
# cli.py's ArgumentDefaultsHelpFormatter adds no "(default: None)", and prints nothing.
_NO_DEFAULT = "%(default).0s"
LORA_LEARNING_RATE = 2e-4
FULL_LEARNING_RATE = 2e-5


def _open_fraction(value: str) -> float:
    number = float(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1 (exclusive)")
    return number


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``python -m training generate``."""
    # One add_argument call a flag: the calls look alike (flag, metavar, type, default,
    # help) because that is how argparse declares a flag, not repeated logic.
    group = parser.add_argument_group("data")
    group.add_argument(
        "--train",
        required=True,
        metavar="FILE",
        help="instruction/response pairs: a CSV file with a header row, a JSON list of "
        "objects, or JSON lines (.jsonl), e.g. the Bitext customer-support CSV" + _NO_DEFAULT,
    )
    group.add_argument(
        "--test",
        default=None,
        metavar="FILE",
        help="held-out pairs in the same format (default: --validation-fraction of TRAIN)"
        + _NO_DEFAULT,
    )
    group.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory for model/ (load it with local.model: DIR/model), report.json, "
        "report.md and curves.png" + _NO_DEFAULT,
    )
    group.add_argument(
        "--prompt-column", metavar="NAME", default="instruction", help="column of the requests"
    )
    group.add_argument(
        "--response-column", metavar="NAME", default="response", help="column of the answers"
    )
    group.add_argument(
        "--validation-fraction",
        metavar="F",
        type=_open_fraction,
        default=0.1,
        help="share of TRAIN held out (drawn with --seed) when there is no --test",
    )
    group.add_argument(
        "--max-examples",
        type=positive,
        default=None,
        metavar="N",
        help="train on N pairs of TRAIN drawn with --seed (short CPU runs)" + _NO_DEFAULT,
    )
    group.add_argument(
        "--system-prompt",
        metavar="TEXT",
        default=DEFAULT_SYSTEM_PROMPT,
        help="system message put before every instruction ('' for none)",
    )
    group.add_argument(
        "--max-length",
        metavar="N",
        type=positive,
        default=512,
        help="tokens per example, prompt included; longer responses lose their end",
    )
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="local Hugging Face causal LM directory with a chat template (default: the "
        "packaged SmolLM2-135M-Instruct, converted once into ~/.cache/rasa-llm/models)"
        + _NO_DEFAULT,
    )
    group.add_argument(
        "--lora-rank",
        metavar="R",
        type=count,
        default=8,
        help="rank of the low-rank adapters; 0 trains every weight (full fine-tuning)",
    )
    group.add_argument(
        "--save",
        choices=("model", "adapter"),
        default="model",
        help="model: the adapters merged into a whole model in OUT/model; adapter: only "
        "the adapters in OUT/adapter (a few MB; local.adapter loads them)",
    )
    group.add_argument(
        "--lora-alpha", metavar="A", type=float, default=16.0, help="adapter scale numerator"
    )
    group.add_argument(
        "--lora-dropout", metavar="P", type=share, default=0.05, help="adapter dropout"
    )
    group.add_argument(
        "--lora-targets",
        default="q_proj,v_proj",
        metavar="A,B,...",
        help="comma list of the ends of the nn.Linear module names that get adapters "
        "(Llama: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)",
    )
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", metavar="N", type=positive, default=3, help="passes over TRAIN")
    group.add_argument(
        "--max-steps",
        type=positive,
        default=None,
        metavar="N",
        help="stop after N optimizer steps (the schedule ends there too)" + _NO_DEFAULT,
    )
    group.add_argument(
        "--batch-size", metavar="N", type=positive, default=8, help="examples per batch"
    )
    group.add_argument(
        "--grad-accum",
        metavar="N",
        type=positive,
        default=1,
        help="batches per optimizer step (effective batch = batch size x this)",
    )
    group.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"AdamW learning rate (default: {LORA_LEARNING_RATE} with adapters, "
        f"{FULL_LEARNING_RATE} for full fine-tuning)" + _NO_DEFAULT,
    )
    group.add_argument(
        "--weight-decay", metavar="WD", type=float, default=0.01, help="AdamW weight decay"
    )
    group.add_argument(
        "--warmup-ratio",
        metavar="F",
        type=float,
        default=0.1,
        help="share of steps warming the rate up",
    )
    group.add_argument(
        "--eval-every",
        type=positive,
        default=None,
        metavar="N",
        help="also measure the held-out loss every N optimizer steps (not only per epoch)"
        + _NO_DEFAULT,
    )
    group.add_argument(
        "--patience",
        metavar="N",
        type=count,
        default=2,
        help="validations without a lower held-out loss before stopping (0: never)",
    )
    group = parser.add_argument_group("run")
    group.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto uses a CUDA GPU when present (bf16 autocast), else the CPU",
    )
    group.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 autocast on a GPU, and on a CPU with bf16 matrix instructions "
        "(AMX or AVX512-BF16: about 3x faster there); fp32 otherwise",
    )
    group.add_argument(
        "--seed", metavar="N", type=int, default=42, help="seed of sampling, split, init"
    )
    group.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint after a stop"
    )
    group.add_argument(
        "--keep-checkpoint", action="store_true", help="keep OUT/checkpoint after success"
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
