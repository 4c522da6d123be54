"""Grounded-answer fine-tuning: the training prompt is the fallback's prompt, byte for
byte; a tiny model learns to copy a fact from its passage and to refuse without one;
adapters saved by training and merged at load compute what training ended with."""

from __future__ import annotations

import asyncio
import json
import random
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
from tests.rasa_llm.fallback.test_local_transformers_backend import WORDS, build_tiny_model
from training import grounded_data
from training import instruction_data as data
from training.cli import main
from training.lora import LoRALinear, add_lora

NUMBERS = ["two", "three", "four"]
FILLER = ["the order ships today .", "the shop is open .", "you can help ."]
VOCAB = list(
    dict.fromkeys(
        [
            *WORDS,
            *NUMBERS,
            *"refund takes days ships today shop open how long does take . , ' [ ] 1 2 :".split(),
            *"Sorry I don t have that information".split(),
        ]
    )
)


def _messages(question: str, sentences: Sequence[str]) -> List[Dict[str, str]]:
    passage = PromptPassage("kb.md#x", "kb", tuple(enumerate(sentences)))
    return [dict(m) for m in PromptBuilder(business_name="shop").build(question, [passage])]


def _examples(rng: random.Random, n: int) -> List[Dict[str, Any]]:
    rows = []
    for _ in range(n):
        filler = rng.sample(FILLER, 2)
        if rng.random() < 0.3:
            rows.append(
                {"messages": _messages("how long does a refund take", filler), "response": REFUSAL}
            )
            continue
        fact = f"the refund takes {rng.choice(NUMBERS)} days ."
        sentences = filler[:1] + [fact] + filler[1:] if rng.random() < 0.5 else [fact, *filler]
        rows.append(
            {"messages": _messages("how long does a refund take", sentences), "response": fact}
        )
    return rows


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
    builder = grounded_data.Builder(
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


@pytest.fixture(scope="module")
def copy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama fine-tuned on passages whose answer sentence it must copy."""
    root = tmp_path_factory.mktemp("grounded")
    build_tiny_model(root / "tiny", words=VOCAB, hidden_size=64)
    rng = random.Random(5)
    for name, n in (("train", 160), ("test", 16)):
        with (root / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for row in _examples(rng, n):
                f.write(json.dumps(row) + "\n")
    argv = [
        "generate", "--train", str(root / "train.jsonl"), "--test", str(root / "test.jsonl"),
        "--prompt-column", "messages", "--out", str(root / "run"), "--model", str(root / "tiny"),
        "--lora-rank", "0", "--epochs", "12", "--batch-size", "8", "--lr", "1e-2",
        "--warmup-ratio", "0", "--patience", "0", "--seed", "3", "--device", "cpu",
        "--no-progress", "--max-length", "512",
    ]  # fmt: skip
    assert main(argv) == 0
    return root / "run" / "model"


def _ask(model: Path, sentences: Sequence[str]) -> str:
    backend = LocalTransformersBackend(
        **{**get_default_config()["local"], "model": str(model), "device": "cpu"}
    )
    try:
        messages: List[ChatMessage] = _messages("how long does a refund take", sentences)  # type: ignore[assignment]
        return asyncio.run(backend.generate(messages, max_new_tokens=12, deadline_s=60))
    finally:
        asyncio.run(backend.close())


@pytest.mark.parametrize("number", NUMBERS)
def test_a_tiny_model_learns_to_copy_the_fact_its_passage_states(
    copy_model: Path, number: str
) -> None:
    fact = f"the refund takes {number} days ."
    # The question is always the same: only reading the passage tells the number.
    assert _ask(copy_model, ["the shop is open .", fact]) == fact


def test_a_tiny_model_learns_to_refuse_when_the_passage_lacks_the_fact(copy_model: Path) -> None:
    assert _ask(copy_model, ["the order ships today .", "you can help ."]) == REFUSAL


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
