"""``python -m training generate`` on a tiny Llama: data, masking, training, saving, errors."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rasa_llm.fallback.backend_factory import get_default_config
from rasa_llm.fallback.generation_backend import ChatMessage
from rasa_llm.fallback.local_transformers_backend import LocalTransformersBackend
from rasa_llm.fallback.model_source import ModelSource
from tests.rasa_llm.fallback import test_local_transformers_backend as local_backend
from tests.rasa_llm.fallback.test_local_transformers_backend import WORDS, build_tiny_model
from training import instruction_data as data
from training.arguments import GenerateArguments, from_namespace
from training.causal_lm_task import CausalLMTask
from training.cli import main
from training.errors import TrainingInputError
from training.generation import add_generate_arguments, run_generate

SYSTEM = "you can help"
REPLY = "hello there you can help"  # the fixed reply the tiny model learns
QUESTIONS = [
    "where is my order",
    "where is my refund",
    "you can help my order",
    "where is the refund",
    "hello where is a refund",
    "help my refund",
    "hello there",
    "is my order there",
    "where is a order",
    "you can help",
    "help the order",
    "my refund",
]
REPORT_KEYS = {
    "train_seconds",
    "steps",
    "seconds_per_step",
    "examples_train",
    "examples_validation",
    "held_out_loss_before",
    "held_out_loss",
    "held_out_perplexity_before",
    "held_out_perplexity",
    "trainable_parameters",
    "total_parameters",
    "settings",
    "history",
}


# The local backend's tiny model, built once per module and copied for each test.
tiny_template = local_backend.tiny_template
tiny_dir = local_backend.tiny_dir


def test_the_examples_use_only_words_the_tiny_tokenizer_knows() -> None:
    words = set(" ".join(QUESTIONS + [SYSTEM, REPLY]).split())
    assert words <= set(WORDS)


def write_csv(path: Path, rows: Sequence[Dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def pairs_csv(path: Path, n: int = 24) -> Path:
    rows = [{"instruction": QUESTIONS[i % len(QUESTIONS)], "response": REPLY} for i in range(n)]
    return write_csv(path, rows)


def parse(*argv: str) -> GenerateArguments:
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    return from_namespace(GenerateArguments, parser.parse_args(list(argv)))


def tiny_run_args(tiny_dir: Path, train: Path, out: Path, *extra: str) -> List[str]:
    return [
        "--train", str(train), "--out", str(out), "--model", str(tiny_dir),
        "--system-prompt", SYSTEM, "--device", "cpu", "--no-progress",
        "--batch-size", "4", "--lr", "1e-2", "--warmup-ratio", "0", "--seed", "3",
        # float32 whatever the CPU: the figures below are compared exactly with a
        # float32 recomputation (auto picks bf16 on CPUs with AMX-BF16).
        "--precision", "fp32",
        *extra,
    ]  # fmt: skip


# ---- data and masking ----------------------------------------------------------------


def test_labels_supervise_exactly_the_response_and_the_end_of_turn(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    end = data.end_of_turn_id(tokenizer)
    pair = data.InstructionPair("where is my order", REPLY, "row 1")
    example = data.tokenize_pair(tokenizer, pair, system_prompt=SYSTEM, max_length=64, end_id=end)
    assert example is not None and not example.truncated
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "where is my order"}],
        tokenize=True,
        add_generation_prompt=True,
    )
    response = tokenizer.convert_tokens_to_ids(REPLY.split() + ["<|im_end|>"])
    assert example.input_ids == prompt + response
    assert example.labels == [-100] * len(prompt) + response
    assert tokenizer.convert_ids_to_tokens(prompt[-2:]) == ["<|im_start|>", "assistant"]
    assert example.supervised_tokens == 6


def test_padding_is_masked_and_right_aligned(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    end = data.end_of_turn_id(tokenizer)
    short, long = (
        data.tokenize_pair(
            tokenizer,
            data.InstructionPair(q, r, "row"),
            system_prompt="",
            max_length=64,
            end_id=end,
        )
        for q, r in (("hello", "you can help"), ("where is my refund", "the refund is there"))
    )
    assert short is not None and long is not None
    batch = data.pad_batch([short, long], pad_id=0)
    n = len(short.input_ids)
    assert batch["input_ids"].shape == (2, len(long.input_ids))
    assert batch["input_ids"][0, n:].tolist() == [0] * (len(long.input_ids) - n)
    assert batch["labels"][0, n:].eq(-100).all()
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (len(long.input_ids) - n)
    assert batch["labels"][0, :n].tolist() == short.labels
    assert batch["labels"][1].tolist() == long.labels


def test_the_end_of_turn_is_learned_even_where_the_tokenizer_calls_another_token_eos(
    tmp_path: Path,
) -> None:
    build_tiny_model(tmp_path, like_smollm2_gguf=True)  # EOS is <|im_start|>, as in SmolLM2
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    assert tokenizer.eos_token == "<|im_start|>"
    assert tokenizer.convert_ids_to_tokens(data.end_of_turn_id(tokenizer)) == "<|im_end|>"


def test_long_examples_lose_the_end_of_the_response(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    end = data.end_of_turn_id(tokenizer)
    pair = data.InstructionPair("hello", REPLY, "row 1")
    prompt_length = len(data.prompt_ids(tokenizer, pair.chat("")))
    cut = data.tokenize_pair(
        tokenizer, pair, system_prompt="", max_length=prompt_length + 2, end_id=end
    )
    assert cut is not None and cut.truncated
    assert tokenizer.convert_ids_to_tokens(cut.input_ids[-2:]) == ["hello", "there"]
    assert cut.supervised_tokens == 2
    none_left = data.tokenize_pair(
        tokenizer, pair, system_prompt="", max_length=prompt_length, end_id=end
    )
    assert none_left is None


def test_csv_json_and_jsonl_give_the_same_pairs(tmp_path: Path) -> None:
    rows = [
        {"instruction": "where is my order", "response": "line one\n\nline {{Order Number}}"},
        {"instruction": "refund, please", "response": 'say "hello"'},
    ]
    write_csv(tmp_path / "p.csv", [{**r, "intent": "x"} for r in rows])
    (tmp_path / "p.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "p.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8"
    )
    expected = [(r["instruction"], r["response"]) for r in rows]
    for name in ("p.csv", "p.json", "p.jsonl"):
        pairs = data.read_pairs(tmp_path / name, "instruction", "response")
        assert [(p.prompt, p.response) for p in pairs] == expected, name
    assert data.count_with_placeholders(pairs) == 1


def test_sampling_and_splitting_are_seeded_and_disjoint() -> None:
    pairs = [data.InstructionPair(str(i), "r", f"row {i}") for i in range(50)]
    sample = data.sample_pairs(pairs, 20, seed=1)
    assert sample == data.sample_pairs(pairs, 20, seed=1) != data.sample_pairs(pairs, 20, seed=2)
    assert len(set(p.prompt for p in sample)) == 20
    train, validation = data.split_validation(20, 0.1, seed=1)
    assert len(validation) == 2 and len(train) == 18
    assert sorted(train + validation) == list(range(20))
    assert data.split_validation(2, 0.1, seed=0)[1] != []  # at least one held out


# ---- training -------------------------------------------------------------------------


def test_generate_end_to_end_writes_a_model_the_fallback_loads(
    tiny_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train = pairs_csv(tmp_path / "train.csv")
    argv = tiny_run_args(tiny_dir, train, out, "--lora-rank", "0", "--epochs", "6")
    assert main(["generate", *argv]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert REPORT_KEYS <= set(report)
    assert report["examples_train"] + report["examples_validation"] == 24
    assert report["examples_validation"] == 2  # 10 % of 24, rounded
    assert report["held_out_loss"] < report["held_out_loss_before"] / 4
    assert report["held_out_perplexity"] == pytest.approx(math.exp(report["held_out_loss"]))
    assert report["held_out_perplexity_before"] == pytest.approx(
        math.exp(report["held_out_loss_before"])
    )
    assert report["trainable_parameters"] == report["total_parameters"]  # full fine-tuning
    assert report["steps"] == 6 * math.ceil(22 / 4)
    assert report["seconds_per_step"] > 0 and report["train_seconds"] > 0
    assert 0 < report["validation_seconds"] < report["train_seconds"]
    assert report["seconds_per_step_without_validation"] == pytest.approx(
        (report["train_seconds"] - report["validation_seconds"]) / report["steps"]
    )
    assert min(r["val_loss"] for r in report["history"]) == pytest.approx(report["held_out_loss"])
    assert report["settings"]["lora_rank"] == 0 and report["settings"]["lr"] == 1e-2
    assert (out / "curves.png").stat().st_size > 1000
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert f"{report['held_out_loss']:.4f}" in markdown
    assert str((out / "model").resolve()) in markdown
    assert not (out / "checkpoint").exists()

    model, tokenizer = ModelSource.resolve(str(out / "model"), None).load(tmp_path / "cache")
    assert tokenizer.chat_template
    backend = LocalTransformersBackend(
        **{**get_default_config()["local"], "model": str(out / "model"), "device": "cpu"}
    )
    messages: List[ChatMessage] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "my order"},
    ]
    reply = asyncio.run(backend.generate(messages, max_new_tokens=12, deadline_s=60))
    asyncio.run(backend.close())
    assert reply == REPLY  # learned, and it stopped at the end-of-turn token


def test_lora_run_trains_the_adapters_only_and_saves_a_plain_model(
    tiny_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train = pairs_csv(tmp_path / "train.csv")
    args = parse(
        *tiny_run_args(tiny_dir, train, out, "--lora-rank", "4", "--lora-targets", "q_proj,v_proj"),
        "--max-steps", "7", "--eval-every", "3", "--lr", "3e-2", "--lora-dropout", "0",
    )  # fmt: skip
    assert run_generate(args) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["steps"] == 7  # --max-steps stops inside the first epoch of 6 steps x 2
    assert [r["step"] for r in report["history"]] == [3, 6, 7]
    assert report["trainable_parameters"] == 2 * (4 * (32 + 32) + 4 * (32 + 16))
    assert report["total_parameters"] > 10 * report["trainable_parameters"]
    assert report["held_out_loss"] < report["held_out_loss_before"]
    original = AutoModelForCausalLM.from_pretrained(str(tiny_dir)).state_dict()
    saved = AutoModelForCausalLM.from_pretrained(str(out / "model")).state_dict()
    assert set(saved) == set(original)  # merged: no adapter weights left
    changed = {k for k in original if not torch.equal(original[k], saved[k])}
    assert changed == {
        f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(2) for p in ("q", "v")
    }
    # The saved (merged) model has the held-out loss the report gives.
    pairs = data.read_pairs(train, "instruction", "response")
    held_out = [pairs[i] for i in data.split_validation(len(pairs), 0.1, seed=3)[1]]
    tokenizer = AutoTokenizer.from_pretrained(str(out / "model"))
    examples, _ = data.tokenize_pairs(
        tokenizer,
        held_out,
        system_prompt=SYSTEM,
        max_length=512,
        end_id=data.end_of_turn_id(tokenizer),
    )
    model = AutoModelForCausalLM.from_pretrained(str(out / "model"))
    task = CausalLMTask(model, [], examples, pad_id=0, batch_size=4, device=torch.device("cpu"))
    assert task.held_out_loss() == pytest.approx(report["held_out_loss"], rel=1e-5)


def test_resume_continues_from_the_checkpoint(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train = pairs_csv(tmp_path / "train.csv")
    common = tiny_run_args(tiny_dir, train, out, "--lora-rank", "2", "--keep-checkpoint")
    assert run_generate(parse(*common, "--epochs", "1")) == 0
    assert (out / "checkpoint" / "checkpoint.pt").is_file()
    assert run_generate(parse(*common, "--epochs", "2", "--resume")) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in report["history"]] == [1, 2]
    assert report["steps"] == 2 * math.ceil(22 / 4)


def test_the_held_out_loss_is_a_mean_over_response_tokens(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir)).eval()
    end = data.end_of_turn_id(tokenizer)
    pairs = [
        data.InstructionPair(q, r, "row")
        for q, r in (("hello", "you can help"), ("where is my refund", "the refund is there"))
    ]
    examples, skipped = data.tokenize_pairs(
        tokenizer, pairs, system_prompt=SYSTEM, max_length=64, end_id=end
    )
    assert skipped == 0
    task = CausalLMTask(model, [], examples, pad_id=0, batch_size=1, device=torch.device("cpu"))
    nll, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            logits = model(input_ids=torch.tensor([example.input_ids])).logits[0]
            log_probs = torch.log_softmax(logits, dim=-1)
            for position, label in enumerate(example.labels[1:]):
                if label != -100:
                    nll -= float(log_probs[position, label])
                    count += 1
    assert count == 4 + 5
    assert task.held_out_loss() == pytest.approx(nll / count, rel=1e-5)
    task.batch_size = 2  # padding must not change it
    assert task.held_out_loss() == pytest.approx(nll / count, rel=1e-5)


# ---- errors ---------------------------------------------------------------------------


def run_error(tiny_dir: Path, tmp_path: Path, train: Path, *extra: str) -> str:
    args = parse(*tiny_run_args(tiny_dir, train, tmp_path / "out", *extra))
    with pytest.raises(TrainingInputError) as caught:
        run_generate(args)
    return str(caught.value)


def test_a_missing_column_lists_the_columns(tiny_dir: Path, tmp_path: Path) -> None:
    train = write_csv(tmp_path / "t.csv", [{"question": "hello", "answer": "hello there"}] * 3)
    message = run_error(tiny_dir, tmp_path, train)
    assert "no column 'instruction', 'response'" in message
    assert "'question', 'answer'" in message and "--prompt-column" in message


def test_an_empty_response_names_its_row(tiny_dir: Path, tmp_path: Path) -> None:
    rows = [{"instruction": "hello", "response": "hello there"}] * 3
    rows += [{"instruction": "where is my order", "response": "  "}]
    message = run_error(tiny_dir, tmp_path, write_csv(tmp_path / "t.csv", rows))
    assert "row 4 (line 5 of the file) has an empty 'response'" in message
    (tmp_path / "t.json").write_text(json.dumps([{"instruction": "", "response": "a"}]))
    message = run_error(tiny_dir, tmp_path, tmp_path / "t.json")
    assert "item 1 has an empty 'instruction'" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("t.txt", "hello", "is not a CSV or JSON file"),
        ("t.json", "{not json", "is not valid JSON"),
        ("t.json", '{"instruction": "hello"}', "holds a JSON dict, not a list"),
        ("t.jsonl", '{"instruction": "a", "response": "b"}\nnope\n', "line 2 is not JSON"),
        ("t.csv", 'instruction,response\n"hello,there\n', "is not valid CSV"),
    ],
)
def test_files_that_are_not_csv_or_json_are_refused(
    tiny_dir: Path, tmp_path: Path, name: str, content: str, expected: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    assert expected in run_error(tiny_dir, tmp_path, tmp_path / name)


def test_fewer_than_two_examples_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    train = write_csv(tmp_path / "t.csv", [{"instruction": "hello", "response": "hello there"}])
    message = run_error(tiny_dir, tmp_path, train)
    assert "has 1 example; at least 2 are needed" in message


def test_lora_targets_that_match_nothing_list_real_modules(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = pairs_csv(tmp_path / "t.csv")
    argv = tiny_run_args(tiny_dir, train, tmp_path / "out", "--lora-targets", "query,value")
    assert main(["generate", *argv]) == 2  # one line on stderr, no traceback
    error = capsys.readouterr().err
    assert error.startswith("error: --lora-targets: no nn.Linear module name ends with")
    assert "model.layers.0.self_attn.q_proj" in error


def test_a_model_directory_that_is_not_one_is_refused(tmp_path: Path) -> None:
    train = pairs_csv(tmp_path / "t.csv")
    args = parse(*tiny_run_args(tmp_path / "nowhere", train, tmp_path / "out"))
    with pytest.raises(TrainingInputError, match="no config.json"):
        run_generate(args)


def test_the_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    for flag in ("--train", "--lora-rank", "--max-steps", "--grad-accum", "--resume"):
        assert flag in text
    assert "0 trains every weight" in text and "default: 8" in text
