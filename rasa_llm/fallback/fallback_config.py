"""The fallback's settings: every key of ``bot/fallback.yml`` with its default, checked.

Errors name the key and the fix (:class:`InvalidComponentConfigError`). The settings of
a language with a knowledge base of its own (``other_languages``) are checked by
:mod:`rasa_llm.fallback.language_shelves`.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

from rasa_llm.config_validation import validate_config
from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback.language_shelves import check_other_languages

__all__ = ["COMPONENT", "get_default_config", "merged_config"]

COMPONENT = "action_generative_fallback"


def get_default_config() -> Dict[str, Any]:
    """The fallback's settings (``bot/fallback.yml`` overrides any of them)."""
    return {
        # Directory of Markdown files, relative to the bot directory.
        "knowledge_dir": "knowledge",
        # Named in the instructions: "the customer-service assistant of <name>".
        "business_name": "our company",
        # How many passages the sentences of the prompt are taken from.
        "top_k": 2,
        # Sentences of those passages that go into the prompt, closest to the question
        # first (SentenceSelector). Whole passages are ~150 tokens each, and reading the
        # prompt is most of a reply's time on a CPU.
        "prompt_sentences": 4,
        # Passages below this cosine similarity are not used; with none left, the
        # scripted reply is sent without asking the model.
        "min_relevance": 0.35,
        # When generation fails, the best passage is sent verbatim if at least this close.
        # 0.45 was chosen on bench/data/fallback_eval.yml
        # (docs/decisions/fallback-thresholds.md).
        "passage_relevance": 0.45,
        # Earlier turns (customer and bot) shown to the model.
        "history_turns": 4,
        # Length of a generated reply, in tokens; and the instruction's sentence limit.
        "max_new_tokens": 60,
        "max_sentences": 3,
        # Seconds from the customer's message to a checked reply, queueing included.
        "deadline_s": 8.0,
        # Replies that may wait for the model while it writes others (local:
        # max_concurrent at a time; openai: one counts as being written). One more is
        # answered at once without the model (the best passage or the scripted reply),
        # logged as reason=busy, so a burst of messages cannot queue without bound.
        "max_queued": 4,
        # Longest generated reply per channel name; "default" for the others.
        "reply_max_chars": {"default": 600, "twilio": 320},
        # The knowledge base's language: its passages are only sent verbatim to
        # customers writing in it (or in a language that cannot be told).
        "knowledge_language": "en",
        # Languages with a knowledge base of their own, e.g. {zh: {knowledge_dir:
        # knowledge/zh, encoder: multilingual-e5-small}}: a conversation in one (the
        # `language` slot, else the message's language) is answered from it with the
        # best passage, never by the language model, which writes knowledge_language
        # only. Keys: rasa_llm.fallback.language_shelves.get_default_config.
        "other_languages": {},
        # Mask person names (spaCy NER) besides emails, phones, cards and IBANs.
        "mask_names": True,
        # Share of each reply sentence's content words that must appear in the passage
        # sentences supporting it (sentence grounding; docs/benchmarks.md).
        "min_support": 0.75,
        # A generated reply must share a content word with the customer's message (the
        # business name aside) and be at least this close to it (cosine, retrieval
        # encoder): a true sentence about something else is not an answer. 0.5 chosen
        # on bench/data (docs/decisions/fallback-thresholds.md).
        "min_answer_relevance": 0.5,
        # Sent when nothing better can be; the action sends the domain response
        # `utter_cannot_answer` instead when the domain has one.
        "scripted_reply": (
            "Sorry, I can't answer that myself. Would you like me to connect you with "
            "a member of our team?"
        ),
        # Encoder for retrieval: null is the shipped MiniLM; or a local model directory.
        "encoder": None,
        # Where the encoder runs: auto (cuda when available), cpu or cuda.
        "device": "auto",
        # The language model: see rasa_llm.fallback.backend_factory.get_default_config.
        "generation": {},
    }


_TYPES: Dict[str, Any] = {
    "knowledge_dir": str,
    "business_name": str,
    "top_k": int,
    "prompt_sentences": int,
    "min_relevance": (int, float),
    "passage_relevance": (int, float),
    "history_turns": int,
    "max_new_tokens": int,
    "max_sentences": int,
    "deadline_s": (int, float),
    "max_queued": int,
    "reply_max_chars": dict,
    "knowledge_language": str,
    "other_languages": dict,
    "mask_names": bool,
    "min_support": (int, float),
    "min_answer_relevance": (int, float),
    "scripted_reply": str,
    "encoder": (str, type(None)),
    "device": str,
    "generation": dict,
}


def merged_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Defaults overlaid with ``config``, validated; errors name the key and the fix."""
    defaults = get_default_config()
    validate_config(COMPONENT, config, defaults, _TYPES)
    merged = {**defaults, **config}
    if merged["max_queued"] < 0:
        raise InvalidComponentConfigError(
            COMPONENT,
            "max_queued",
            f"is {merged['max_queued']}",
            "use 0 (no reply waits for the model) or more, e.g. 4.",
        )
    for key in ("top_k", "prompt_sentences", "history_turns", "max_new_tokens", "max_sentences"):
        if merged[key] < 0 or (key != "history_turns" and merged[key] == 0):
            raise InvalidComponentConfigError(
                COMPONENT, key, f"is {merged[key]}", "use a positive whole number."
            )
    if not 0 < merged["deadline_s"]:
        raise InvalidComponentConfigError(
            COMPONENT, "deadline_s", "must be positive", "give seconds, e.g. 6.0."
        )
    for key in ("min_relevance", "passage_relevance", "min_support", "min_answer_relevance"):
        if not -1.0 <= float(merged[key]) <= 1.0:
            raise InvalidComponentConfigError(
                COMPONENT, key, f"is {merged[key]}", "use a number between 0 and 1."
            )
    limits = merged["reply_max_chars"]
    if not all(isinstance(v, int) and v > 0 for v in limits.values()):
        raise InvalidComponentConfigError(
            COMPONENT,
            "reply_max_chars",
            "must map channel names to positive whole numbers",
            "write e.g. {default: 600, twilio: 320}.",
        )
    check_other_languages(merged["other_languages"], main_language=merged["knowledge_language"])
    return merged
