"""The report of a generation fine-tuning run: ``report.json``, ``report.md``, ``curves.png``.

The JSON holds every figure and setting; the Markdown shows the held-out loss and
perplexity before and after training, the data and the run, and how to point the
fallback at the model; the plot shows the training and held-out loss per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping

from training.report import start_report
from training.report_plots import plot_training_curves


def write_generation_report(out_dir: Path, report: Mapping[str, Any]) -> Dict[str, Path]:
    """Write the three report files into ``out_dir`` (created if missing); return their paths."""
    paths, plain = start_report(out_dir, report, ("curves",))
    paths["markdown"].write_text(_markdown(plain, out_dir), encoding="utf-8")
    # The held-out loss before training is drawn at step 0, so the curve starts there.
    start = {"epoch": 0.0, "step": 0.0, "val_loss": plain["held_out_loss_before"]}
    plot_training_curves([start, *plain["history"]], paths["curves"], f"{plain['model']}")
    return paths


def _title(report: Mapping[str, Any]) -> str:
    return f"generation: {report['model']} on {Path(report['train_file']).name}"


def _markdown(report: Mapping[str, Any], out_dir: Path) -> str:
    share = report["trainable_parameters"] / max(1, report["total_parameters"])
    held_out = report["test_file"] or "a held-out part of the training file"
    lines: List[str] = [
        f"# {_title(report)}",
        "",
        f"Held out: {held_out} ({report['examples_validation']} examples, "
        f"{report['held_out_tokens']} response tokens). Lower is better.",
        "",
        "| Held out | Before training | After training |",
        "|---|---:|---:|",
        f"| Loss (cross-entropy per response token) | {report['held_out_loss_before']:.4f} "
        f"| {report['held_out_loss']:.4f} |",
        f"| Perplexity | {report['held_out_perplexity_before']:.2f} "
        f"| {report['held_out_perplexity']:.2f} |",
        "",
        "## Data",
        "",
        f"- {report['examples_train']} training and {report['examples_validation']} held-out "
        f"examples, {report['mean_tokens_per_example']:.0f} tokens each on average",
        f"- {report['examples_truncated']} responses cut to fit `--max-length`, "
        f"{report['examples_skipped_too_long']} examples left out (prompt alone too long)",
        f"- {report['examples_with_placeholders']} responses hold `{{{{placeholders}}}}` "
        "such as `{{Order Number}}`, kept as text: the model learns to write them",
        "",
        "## Run",
        "",
        f"- {report['steps']} optimizer steps, {report['epochs_run']} epoch(s), "
        f"{report['train_seconds']:.0f} s on {report['device']} "
        f"({report['seconds_per_step']:.2f} s per step; "
        f"{report['seconds_per_step_without_validation']:.2f} s without the held-out passes, "
        f"which took {report['validation_seconds']:.0f} s)"
        + (", stopped early" if report["stopped_early"] else ""),
        f"- {report['trainable_parameters']:,} of {report['total_parameters']:,} parameters "
        f"trained ({share:.2%})",
        "",
        "| Step | Epoch | Training loss | Held-out loss | Held-out perplexity |",
        "|---:|---:|---:|---:|---:|",
    ]
    for record in report["history"]:
        lines.append(
            f"| {record['step']:.0f} | {record['epoch']:.0f} | {record['train_loss']:.4f} "
            f"| {record.get('val_loss', float('nan')):.4f} "
            f"| {record.get('val_perplexity', float('nan')):.2f} |"
        )
    lines += [
        "",
        "![Training curves](curves.png)",
        "",
        "## Use it",
        "",
        "In the fallback's configuration (bot/fallback.yml):",
        "",
        "```yaml",
        "generation:",
        "  backend: local",
        "  local:",
        (
            f"    adapter: {(out_dir / 'adapter').resolve()}"
            if (out_dir / "adapter").is_dir()
            else f"    model: {(out_dir / 'model').resolve()}"
        ),
        "```",
        "",
        "## Settings",
        "",
        "| Setting | Value |",
        "|---|---|",
    ]
    settings = report["settings"]
    lines += [f"| `{key}` | {_cell(settings[key])} |" for key in sorted(settings)]
    lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")
