"""The bot serves the fine-tuned model: its adapter is in git, and it answers in its own words."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import yaml

from rasa_llm.fallback.adapter import PACKAGED_ADAPTER, read_settings
from rasa_llm.fallback.generative_fallback import FallbackRequest, GenerativeFallback

ROOT = Path(__file__).resolve().parents[3]
BOT = ROOT / "bot"


def test_the_shipped_adapter_is_in_git_so_a_fresh_clone_serves_it() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", str(PACKAGED_ADAPTER.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert sorted(Path(p).name for p in tracked) == ["adapter.json", "adapter.safetensors"]
    settings = read_settings(PACKAGED_ADAPTER)
    assert settings["base_model"] == "SmolLM2-135M-Instruct.Q4_1"
    # What reproduces it is written down with it (make adapter runs the same).
    assert settings["settings"]["seed"] == 42 and settings["train_file_sha256"]
    assert (PACKAGED_ADAPTER / "adapter.safetensors").stat().st_size < 8_000_000


@pytest.mark.integration
def test_the_bot_s_fallback_answers_with_the_fine_tuned_model_and_shows_its_evidence() -> None:
    config = yaml.safe_load((BOT / "fallback.yml").read_text(encoding="utf-8"))
    fallback = GenerativeFallback.from_config(config, bot_dir=BOT)
    assert fallback.backend.name == "local:SmolLM2-135M-Instruct.Q4_1+smollm2-grounded"
    try:
        reply = asyncio.run(
            fallback.answer(FallbackRequest("what does standard delivery in the UK cost?"))
        )
    finally:
        asyncio.run(fallback.close())
    assert reply.kind == "generated", reply
    assert "£3.95" in reply.text, reply.text
    assert reply.grounding is not None and not reply.grounding.failures
    for sentence in reply.grounding.sentences:
        if sentence.evidence:
            assert sentence.evidence[0].passage_id.startswith("shipping.md#")
