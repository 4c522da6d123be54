"""ReplyGuard: the checks a generated reply must pass before a customer sees it.

Small language models write fluent text that is not always true: in our trials
SmolLM2 invented a 10 % discount, asked for a card number to reset a password and
called a refund of a double charge "highly unlikely" when the policy said otherwise.
The guard is deliberately strict, because failing is cheap here: the fallback then
sends the best passage verbatim, or offers a person.

Checks, each with a stable reason code for logs and metrics (:data:`CHECK_CODES`):

* ``empty``, ``too_long``: nothing to send, or more than the channel allows.
* ``unsupported_number`` / ``_time`` / ``_date`` / ``_url`` / ``_email`` / ``_phone``:
  every such fact in the reply (found by :mod:`rasa_llm.fallback.reply_facts`) must
  appear in the retrieved passages. Numbers from
  the customer's own message do not count: the model echoing "your refund of $49.99
  is on its way" would confirm what nobody checked. Spelled-out numbers in the reply
  ("ten") are not checked; in passages they support digits ("fourteen" -> 14).
  A percentage needs a percentage in the passages. Currencies are not compared.
* ``asks_for_secret``: asks for a password, PIN, card number, CVV, one-time code or
  banking login; "we will never ask for your PIN" passes.
* ``claims_action``: says something was done ("I have cancelled your order", "your
  card is now blocked"); the fallback can do nothing, so any such claim is false.
* ``wrong_language``: the reply is not in the customer's language (when both are known).
* ``leaks_instructions``: repeats 8+ consecutive words of the instructions, or dumps
  prompt markers.
* ``unsupported_sentence``, ``changed_fact``, ``changed_name``, ``negation``: sentence
  grounding (:mod:`rasa_llm.fallback.sentence_grounding`), when the context gives the
  passage sentences the model saw: every reply sentence needs passage sentences that
  cover ``min_support`` of its content words, state its facts and names, and agree with
  it on negation. The match is kept as evidence for the operator.
* ``unsupported_content`` (only without passage sentences): fewer than ``min_support``
  of the reply's content words
  occur in the passages, or the reply has too few content words to tell (a bare "No,
  no!"). Words the customer used are no evidence: a small model that echoes the
  question ("how many people work for Northwind? The customer wants to know how many
  people work for Northwind...") would otherwise pass. This is lexical: it catches
  invented topics and many paraphrased inversions ("highly unlikely to be refunded"),
  but not a negation that reuses the passage's own words ("refunds are not issued").

A failure's ``detail`` may quote a short token of the reply, never customer text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from rasa_llm.config_validation import TypeSpec, require, validate_config
from rasa_llm.fallback.content_words import STOPWORDS as _STOPWORDS
from rasa_llm.fallback.content_words import stem as _stem
from rasa_llm.fallback.content_words import words as _words
from rasa_llm.fallback.language_detector import detect_language
from rasa_llm.fallback.reply_facts import extract_facts, source_keys
from rasa_llm.fallback.reply_phrases import asks_for_secret, claims_action
from rasa_llm.fallback.sentence_grounding import Grounding, ground
from rasa_llm.fallback.sentence_selector import PromptPassage

__all__ = ["CHECK_CODES", "GuardContext", "GuardFailure", "ReplyGuard"]

CHECK_CODES = (
    "empty",
    "too_long",
    "unsupported_number",
    "unsupported_time",
    "unsupported_date",
    "unsupported_url",
    "unsupported_email",
    "unsupported_phone",
    "asks_for_secret",
    "claims_action",
    "wrong_language",
    "leaks_instructions",
    "unsupported_sentence",
    "changed_fact",
    "changed_name",
    "negation",
    "unsupported_content",
)

_CONFIG_TYPES: Dict[str, TypeSpec] = {
    "min_support": (int, float),
    "min_content_words": int,
    "leak_ngram_words": int,
    "leak_markers": list,
    "check_language": bool,
}


@dataclass(frozen=True)
class GuardContext:
    """What a reply is checked against."""

    # Texts of the retrieved passages: the only source of facts a reply may state.
    passages: Sequence[str]
    # The customer's message, already PII-masked.
    customer_text: str
    # The most characters the channel should get in one reply.
    max_chars: int
    # The system prompt the model saw, to detect a reply that repeats it.
    instructions: str
    # The customer's language (ISO 639-1), or None when unknown.
    language: Optional[str]
    # The passage sentences the model was shown: each reply sentence is grounded in
    # them. Empty: the older whole-reply content check runs instead.
    sentences: Sequence[PromptPassage] = ()


@dataclass(frozen=True)
class GuardFailure:
    """One failed check: a reason code from CHECK_CODES and a short detail."""

    check: str
    detail: str


# --- Facts: numbers, times, dates, URLs, e-mails, phones (found by reply_facts) ---


def _unsupported_facts(reply: str, passages: str, customer_text: str) -> List[GuardFailure]:
    known = source_keys(passages)
    bad: Dict[str, List[str]] = {}
    for code, token, keys in extract_facts(reply):
        if not keys & known:
            bad.setdefault(code, []).append(token)
    failures = []
    for code in CHECK_CODES:
        if code in bad:
            # Never quote what the model copied from the customer's message.
            shown = [t[:30] for t in bad[code] if t not in customer_text][:3]
            detail = f"{len(bad[code])} not in the passages"
            failures.append(GuardFailure(code, detail + (f": {', '.join(shown)}" if shown else "")))
    return failures


# --- Leaks and lexical support ----------------------------------------------------

_LEAK_MARKERS = ["system prompt", "my instructions", "<<<", ">>>", "KNOWLEDGE:", "CUSTOMER MESSAGE"]


def _ngrams(words: Sequence[str], n: int) -> Set[Tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


# --- The guard --------------------------------------------------------------------


class ReplyGuard:
    """Runs every check on a generated reply; the reply may be sent only if none fails."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """Every key the guard accepts, with its default."""
        return {
            # Share of the reply's content words (stop-words removed, stemmed) that must
            # occur in the passages or the customer's message.
            "min_support": 0.7,
            # Replies with fewer content words than this skip the support check:
            # "Yes, you can." says too little to measure.
            "min_content_words": 3,
            # This many consecutive words of the instructions in a reply is a leak.
            "leak_ngram_words": 8,
            # Text that only a prompt dump contains; all-caps markers match exactly,
            # the others in any case. Keep in step with the prompt builder's delimiters.
            "leak_markers": list(_LEAK_MARKERS),
            # Fail replies in another language than the customer's (when both known).
            "check_language": True,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> ReplyGuard:
        """A guard from a config dict, rejecting unknown keys, wrong types and ranges."""
        name, defaults = cls.__name__, cls.get_default_config()
        validate_config(name, config, defaults, _CONFIG_TYPES)
        merged = {**defaults, **config}
        require(name, "min_support", 0 <= merged["min_support"] <= 1, "must be in [0, 1]", 0.7)
        require(name, "min_content_words", merged["min_content_words"] >= 1, "must be >= 1", 3)
        require(name, "leak_ngram_words", merged["leak_ngram_words"] >= 3, "must be >= 3", 8)
        require(
            name,
            "leak_markers",
            all(isinstance(m, str) and m.strip() for m in merged["leak_markers"]),
            "must be a list of non-empty strings",
            defaults["leak_markers"],
        )
        return cls(**merged)

    def __init__(
        self,
        *,
        min_support: float = 0.7,
        min_content_words: int = 3,
        leak_ngram_words: int = 8,
        leak_markers: Sequence[str] = tuple(_LEAK_MARKERS),
        check_language: bool = True,
    ) -> None:
        self.min_support = float(min_support)
        self.min_content_words = min_content_words
        self.leak_ngram_words = leak_ngram_words
        self.leak_markers = tuple(leak_markers)
        self.check_language = check_language

    def ground(self, reply: str, context: GuardContext) -> Optional[Grounding]:
        """Each reply sentence with the passage sentences that support it (None when the
        context has no passage sentences).
        """
        if not context.sentences:
            return None
        return ground(reply.replace("’", "'"), context.sentences, min_support=self.min_support)

    def check(
        self, reply: str, context: GuardContext, *, grounding: Optional[Grounding] = None
    ) -> List[GuardFailure]:
        """Every failed check, in the order of CHECK_CODES; an empty list means send it.

        ``grounding`` is :meth:`ground`'s result when the caller already has it.
        """
        if not reply.strip():
            return [GuardFailure("empty", "the reply is blank")]
        failures: List[GuardFailure] = []
        if len(reply) > context.max_chars:
            failures.append(
                GuardFailure("too_long", f"{len(reply)} characters > {context.max_chars}")
            )
        passages = "\n\n".join(context.passages)
        failures.extend(_unsupported_facts(reply, passages, context.customer_text))
        reply = reply.replace("’", "'")
        secret = asks_for_secret(reply)
        if secret:
            failures.append(GuardFailure("asks_for_secret", f"asks for: {secret}"))
        claim = claims_action(reply, passages)
        if claim:
            failures.append(GuardFailure("claims_action", f"claims: {claim}"))
        if self.check_language and context.language:
            detected = detect_language(reply)
            if detected and detected != context.language:
                failures.append(
                    GuardFailure("wrong_language", f"reply in {detected}, not {context.language}")
                )
        leak = self._leak(reply, context.instructions, passages)
        if leak:
            failures.append(GuardFailure("leaks_instructions", leak))
        if context.sentences:
            grounding = grounding or self.ground(reply, context)
            assert grounding is not None
            for sentence in grounding.failures:
                assert sentence.problem is not None
                failures.append(GuardFailure(sentence.problem, sentence.detail))
            order = {code: n for n, code in enumerate(CHECK_CODES)}
            return sorted(failures, key=lambda f: order[f.check])
        support = self._support(reply, passages)
        if support is None:
            failures.append(GuardFailure("unsupported_content", "too few content words"))
        elif support < self.min_support:
            failures.append(
                GuardFailure(
                    "unsupported_content",
                    f"{support:.2f} of content words in passages < {self.min_support:.2f}",
                )
            )
        return failures

    def _leak(self, reply: str, instructions: str, passages: str) -> Optional[str]:
        for marker in self.leak_markers:
            found = marker in reply if marker.isupper() else marker.lower() in reply.lower()
            if found:
                return f"prompt marker {marker!r}"
        n = self.leak_ngram_words
        # A run the instructions share with the passages is quoted, not leaked: the
        # prompt may embed the passages in the instructions.
        leaked = (_ngrams(_words(reply), n) & _ngrams(_words(instructions), n)) - _ngrams(
            _words(passages), n
        )
        return f"{len(leaked)} runs of {n} words from the instructions" if leaked else None

    def _support(self, reply: str, passages: str) -> Optional[float]:
        """Share of the reply's content words found in the passages; None if too few."""
        content = [_stem(w) for w in _words(reply) if w not in _STOPWORDS and len(w) > 1]
        if len(content) < self.min_content_words:
            return None
        known = {_stem(w) for w in _words(passages)}
        return sum(w in known for w in content) / len(content)
