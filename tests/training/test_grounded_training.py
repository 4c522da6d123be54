"""Grounded-answer fine-tuning: the training prompt is the fallback's prompt, byte for
byte; a tiny model learns to copy a fact from its passage and to refuse without one;
adapters saved by training and merged at load compute what training ended with."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
import torch
from transformers import AutoModelForCausalLM

from rasa_llm.errors import ModelLoadError
from rasa_llm.fallback.adapter import merge_adapter, save_adapter
from rasa_llm.fallback.backend_factory import get_default_config
from rasa_llm.fallback.generation_backend import ChatMessage
from rasa_llm.fallback.generative_fallback import FallbackRequest, GenerativeFallback
from rasa_llm.fallback.local_transformers_backend import LocalTransformersBackend
from rasa_llm.fallback.prompt_builder import REFUSAL, PromptBuilder
from rasa_llm.fallback.sentence_selector import PromptPassage, SentenceSelector, SourcePassage
from tests.rasa_llm.fallback.test_local_transformers_backend import build_tiny_model
from training import grounded_data, grounded_sources
from training import instruction_data as data
from training.cli import main
from training.lora import LoRALinear, add_lora

FILLER = "Our shop opens at 9:00 on weekdays."


def _messages(question: str, sentences: Sequence[str]) -> List[Dict[str, str]]:
    passage = PromptPassage("kb.md#x", "kb", tuple(enumerate(sentences)))
    return [dict(m) for m in PromptBuilder(business_name="shop").build(question, [passage])]


def test_the_training_prompt_is_byte_for_byte_the_prompt_the_fallback_sends(
    tmp_path: Path,
) -> None:
    class Recorder:
        name = "recorder"

        def __init__(self) -> None:
            self.messages: List[ChatMessage] = []

        async def generate(self, messages: List[ChatMessage], **_: Any) -> str:
            self.messages = messages
            return REFUSAL

        async def close(self) -> None:
            pass

    bot = Path(__file__).resolve().parents[2] / "bot"
    fallback = GenerativeFallback.from_config({}, bot_dir=bot)
    recorder = Recorder()
    fallback.backend = recorder  # type: ignore[assignment]
    question = "how much is delivery to switzerland"
    asyncio.run(fallback.answer(FallbackRequest(text=question)))

    # The training data's builder, with the same selector and retrieval.
    builder = grounded_sources.Builder(
        SentenceSelector(fallback.retriever.embed, max_sentences=fallback.selector.max_sentences),
        business=fallback.config["business_name"],
    )
    found = [r.passage for r in fallback.retriever.retrieve(question, top_k=2)]
    example = builder.example(
        "x",
        "knowledge",
        question,
        [SourcePassage(p.id, p.title, p.text) for p in found],
        business=fallback.config["business_name"],
        pick=lambda shown: None,
    )
    assert example is not None
    assert json.dumps(example.messages) == json.dumps(recorder.messages)
    assert "Switzerland" in example.messages[0]["content"]


# A tiny random Llama cannot learn to copy in a test's budget (copying needs induction
# heads, which form late in training; 240 steps left it guessing the number), so this
# fine-tunes the packaged SmolLM2-135M, which can copy but was never taught the refusal
# form or to answer from KNOWLEDGE alone, on a handful of invented facts.
GADGETS = ["Zorblat", "Quibbix", "Plonkett", "Vexmoor", "Drizzle", "Tamberly"]


def _gadget_examples(names: Sequence[str], years: Sequence[int]) -> List[Dict[str, Any]]:
    rows = []
    for n, (name, year) in enumerate(zip(names, years, strict=True)):
        fact = f"The {name} warranty lasts {year} years."
        other = "Our shop opens at 9:00 on weekdays."
        question = f"how long is the warranty on the {name}?"
        if n % 3 == 2:  # no fact about this gadget: refuse
            rows.append({"messages": _messages(question, [other]), "response": REFUSAL})
        else:
            rows.append({"messages": _messages(question, [other, fact]), "response": fact})
    return rows


@pytest.fixture(scope="module")
def copy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRA on SmolLM2 (converted once into ~/.cache/rasa-llm/models, as `make run` does)."""
    root = tmp_path_factory.mktemp("grounded")
    rows = _gadget_examples(GADGETS * 2, [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5])
    with (root / "train.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    argv = [
        "generate", "--train", str(root / "train.jsonl"), "--prompt-column", "messages",
        "--out", str(root / "run"), "--save", "adapter", "--lora-rank", "8",
        "--lora-targets", "q_proj,k_proj,v_proj,o_proj", "--epochs", "8", "--batch-size", "4",
        "--lr", "1e-3", "--warmup-ratio", "0", "--patience", "0", "--seed", "3",
        "--device", "cpu", "--no-progress", "--validation-fraction", "0.1",
    ]  # fmt: skip
    assert main(argv) == 0
    return root / "run" / "adapter"


def _ask(adapter: Path, question: str, sentences: Sequence[str]) -> str:
    config = get_default_config()["local"]
    backend = LocalTransformersBackend(**{**config, "adapter": str(adapter), "device": "cpu"})
    try:
        messages: List[ChatMessage] = _messages(question, sentences)  # type: ignore[assignment]
        return asyncio.run(backend.generate(messages, max_new_tokens=24, deadline_s=120))
    finally:
        asyncio.run(backend.close())


@pytest.mark.integration
def test_a_small_model_learns_to_copy_the_fact_its_passage_states(copy_model: Path) -> None:
    # A gadget and a number it never saw with each other in training.
    fact = "The Brindle warranty lasts 11 years."
    reply = _ask(copy_model, "how long is the warranty on the Brindle?", [FILLER, fact])
    assert "11 years" in reply and "Brindle" in reply, reply


@pytest.mark.integration
def test_a_small_model_learns_to_refuse_when_the_passage_lacks_the_fact(copy_model: Path) -> None:
    reply = _ask(copy_model, "how long is the warranty on the Brindle?", [FILLER])
    assert reply == REFUSAL


def test_adapters_saved_by_training_and_merged_at_load_give_the_trained_outputs(
    tmp_path: Path,
) -> None:
    build_tiny_model(tmp_path / "tiny")
    trained = AutoModelForCausalLM.from_pretrained(str(tmp_path / "tiny")).eval()
    add_lora(trained, ["q_proj", "v_proj"], 2, 4.0, 0.0)
    torch.manual_seed(1)
    weights = {}
    for name, module in trained.named_modules():
        if isinstance(module, LoRALinear):
            torch.nn.init.normal_(module.lora_b, std=0.5)
            weights[name] = (module.lora_a, module.lora_b)
    save_adapter(
        tmp_path / "adapter", weights, rank=2, alpha=4.0, base_model="tiny", extra={"seed": 1}
    )
    served = AutoModelForCausalLM.from_pretrained(str(tmp_path / "tiny")).eval()
    merge_adapter(served, tmp_path / "adapter", "tiny")
    ids = torch.tensor([[4, 5, 6, 7, 8]])
    with torch.no_grad():
        # Saved in float16: the same logits to float16 precision.
        assert torch.allclose(trained(ids).logits, served(ids).logits, atol=2e-2)
        assert not torch.allclose(
            AutoModelForCausalLM.from_pretrained(str(tmp_path / "tiny"))(ids).logits,
            served(ids).logits,
            atol=2e-2,
        )
    with pytest.raises(ModelLoadError, match="trained on 'tiny'"):
        merge_adapter(served, tmp_path / "adapter", "another-model")
    (tmp_path / "adapter" / "adapter.json").write_text("{", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="local.adapter to null"):
        merge_adapter(served, tmp_path / "adapter", "tiny")


def test_a_chat_messages_column_must_end_with_the_user(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "system", "content": "x"}], "response": "y"}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(Exception, match="not a chat ending with the user's"):
        data.read_pairs(path, "messages", "response")


def test_training_questions_that_copy_the_evaluation_set_are_found() -> None:
    evaluation = [
        "how much do you charge to pick up a big sofa I'm returning",
        "wats ur phone number",
    ]
    copies = grounded_data.copied_from_evaluation(
        [
            "how much do you charge to pick up a sofa i'm returning",  # one word less
            "WATS UR PHONE NUMBER!",  # the same words
            "what's the fee for collecting a couch I'm sending back",  # written anew
        ],
        evaluation,
    )
    assert [t for _, t in copies] == evaluation


def test_the_shipped_training_questions_copy_no_evaluation_text() -> None:
    import yaml

    examples = yaml.safe_load(grounded_data.KNOWLEDGE_ANSWERS.read_text(encoding="utf-8"))
    questions = [str(e["question"]) for e in examples["examples"]]
    evaluation = grounded_data.evaluation_texts()
    assert len(evaluation) >= 200  # both evaluation files were read
    assert grounded_data.copied_from_evaluation(questions, evaluation) == []
