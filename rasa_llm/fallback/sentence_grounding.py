"""Match every sentence of a generated reply to the passage sentences that support it.

A reply is a list of claims, and a claim is true here only if a sentence of the
knowledge base says it. For each reply sentence this module finds the one or two
passage sentences (of those the prompt showed) that share most of its content words,
then checks what a bag of words cannot:

* ``unsupported_sentence``: fewer than ``min_support`` of the sentence's content words
  occur in its evidence (an invented topic, or words the passages never use);
* ``changed_fact``: a number, price, time, date, URL, e-mail or phone that its evidence
  sentences do not state, even if another passage sentence does ("€9.95 to
  Switzerland" when €9.95 is the EU's price);
* ``changed_name``: a proper name (capitalised mid-sentence: "Switzerland", "DHL")
  that its evidence does not contain;
* ``negation``: the sentence denies what its evidence affirms, or affirms what it
  denies ("returns are not free" against "returns are free").

A sentence may pick its evidence among all passage sentences that cover it; it fails
only if none passes every check. The result (:class:`Grounding`) goes with the bot's
reply into the event's metadata, so an operator sees which sentence backs each claim.
Short answer words ("Yes.", "No, sorry.") carry no claim of their own and pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from rasa_llm.fallback.content_words import content_words, words
from rasa_llm.fallback.reply_facts import extract_facts, source_keys
from rasa_llm.fallback.sentence_selector import PromptPassage
from rasa_llm.fallback.sentences import split_sentences

PROBLEMS = ("unsupported_sentence", "changed_fact", "changed_name", "negation")
_NEGATION = re.compile(
    r"\b(?:not|never|cannot|can't|won't|don't|doesn't|didn't|isn't|aren't|wasn't|weren't|"
    r"haven't|hasn't|shouldn't|wouldn't|couldn't|mustn't|no\s+longer|none|nothing|nobody|"
    r"neither|nor)\b|n't\b|\bno\b(?!\s*[,.!])",
    re.IGNORECASE,
)
# "No, ..." / "Yes." at the start answer the question; they are not a negation.
_ANSWER_WORD = re.compile(r"^\s*(?:yes|no|yep|nope|sorry)\b[\s,.!:;-]*", re.IGNORECASE)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*)")
_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:and|but|or|so|while|whereas)\b", re.IGNORECASE)
_NEGATION_WORDS = frozenset({"never", "none", "nothing", "nobody", "neither", "longer"})
_NOT_NAMES = frozenset({"i", "i'm", "i'll", "i've", "i'd", "ok", "okay"})


@dataclass(frozen=True)
class Evidence:
    """One passage sentence that supports a reply sentence."""

    passage_id: str
    sentence_index: int  # position in the whole passage (see PromptPassage)
    text: str


@dataclass(frozen=True)
class SentenceCheck:
    """One reply sentence, its evidence and what is wrong with it (None: nothing)."""

    sentence: str
    evidence: Tuple[Evidence, ...]
    support: float
    problem: Optional[str]
    detail: str = ""


@dataclass(frozen=True)
class Grounding:
    """Every sentence of a reply with its evidence."""

    sentences: Tuple[SentenceCheck, ...]

    @property
    def failures(self) -> List[SentenceCheck]:
        """The reply sentences that failed their check."""
        return [s for s in self.sentences if s.problem is not None]

    def as_metadata(self) -> List[Dict[str, Any]]:
        """JSON-ready: for each reply sentence, the passage sentences that back it."""
        return [
            {
                "sentence": s.sentence,
                "support": round(s.support, 3),
                "problem": s.problem,
                "evidence": [
                    {"passage": e.passage_id, "sentence": e.sentence_index, "text": e.text}
                    for e in s.evidence
                ],
            }
            for s in self.sentences
        ]


def ground(
    reply: str, passages: Sequence[PromptPassage], *, min_support: float = 0.75
) -> Grounding:
    """Check every sentence of ``reply`` against the sentences of ``passages``."""
    candidates = [Evidence(p.id, index, text) for p in passages for index, text in p.sentences]
    stems = [set(content_words(e.text)) for e in candidates]
    checks = [
        _check(sentence, candidates, stems, min_support) for sentence in split_sentences(reply)
    ]
    return Grounding(tuple(checks))


def _check(
    sentence: str,
    candidates: Sequence[Evidence],
    stems: Sequence[Set[str]],
    min_support: float,
) -> SentenceCheck:
    claim = _ANSWER_WORD.sub("", sentence)
    mine = content_words(claim)
    if not mine:
        return SentenceCheck(sentence, (), 1.0, None)  # "Yes." / "No, sorry."
    # Evidence sets to try: every single sentence and every pair, best covered first.
    options: List[Tuple[float, Tuple[int, ...]]] = []
    for i in range(len(candidates)):
        options.append((_coverage(mine, stems[i]), (i,)))
    best_single = sorted(options, reverse=True)[:6]
    for (_, (i,)), (_, (j,)) in combinations(best_single, 2):
        options.append((_coverage(mine, stems[i] | stems[j]) - 0.01, (i, j)))
    # Equal cover: the evidence that states the claim's facts ("it costs €14.95" is
    # backed by the sentence with that price, not by its neighbour).
    facts = [keys for _, _, keys in extract_facts(claim)]
    keys = [source_keys(e.text) for e in candidates] if facts else []

    def stated(chosen: Tuple[int, ...]) -> int:
        known = set().union(*(keys[k] for k in chosen)) if facts else set()
        return sum(1 for fact in facts if fact & known)

    options.sort(key=lambda o: (-o[0], -stated(o[1]), len(o[1])))
    first: Optional[SentenceCheck] = None
    for support, chosen in options:
        evidence = tuple(candidates[k] for k in sorted(chosen))
        problem, detail = _problem(claim, evidence, candidates, support, min_support)
        result = SentenceCheck(sentence, evidence, max(support, 0.0), problem, detail)
        if problem is None:
            return result
        first = first or result
        if support < min_support:
            break  # the rest cover even less
    if first is None:
        return SentenceCheck(sentence, (), 0.0, "unsupported_sentence", "no passage sentence")
    return first


def _coverage(mine: Sequence[str], theirs: Set[str]) -> float:
    return sum(w in theirs for w in mine) / len(mine)


def _problem(
    claim: str,
    evidence: Sequence[Evidence],
    shown: Sequence[Evidence],
    support: float,
    min_support: float,
) -> Tuple[Optional[str], str]:
    """What is wrong with ``claim`` backed by ``evidence``; facts and negations are
    compared with the closest of all ``shown`` sentences, clause by clause.
    """
    text = " ".join(e.text for e in evidence)
    if support < min_support:
        return "unsupported_sentence", f"{support:.2f} of content words < {min_support:.2f}"
    changed = _changed_fact(claim, shown)
    if changed:
        return "changed_fact", changed
    have = {w.lower() for w in words(text)}
    for name in sorted(_proper_names(claim) - _common(claim)):
        if not all(part in have for part in name.split()):
            return "changed_name", name[:30]
    if _negation_differs(claim, shown):
        return "negation", "a clause and its evidence disagree on a negation"
    return None, ""


def _changed_fact(claim: str, evidence: Sequence[Evidence]) -> Optional[str]:
    """A fact of ``claim`` that the evidence sentence closest to its clause lacks.

    Clause by clause: in "delivery to Switzerland costs €9.95" the price must come from
    the sentence about Switzerland, not from the EU's sentence beside it.
    """
    whole = set(content_words(claim))
    sentences = [(set(content_words(e.text)), source_keys(e.text)) for e in evidence]
    for part in _CLAUSE_BREAK.split(claim):
        facts = extract_facts(part)
        if not facts:
            continue
        mine = set(content_words(part))
        overlap = [(len(mine & theirs), len(whole & theirs)) for theirs, _ in sentences]
        top = max(overlap, default=(0, 0))
        known: Set[Tuple[Any, ...]] = set()
        for (_, keys), n in zip(sentences, overlap, strict=True):
            if n == top:
                known |= keys
        for code, token, keys in facts:
            if not keys & known:
                return f"{code}: {token[:30]}"
    return None


def _clauses(text: str) -> List[Tuple[Set[str], bool]]:
    """(content words, negated) of each clause of ``text``."""
    parts = _CLAUSE_BREAK.split(_ANSWER_WORD.sub("", text))
    return [
        (set(content_words(p)) - _NEGATION_WORDS, bool(_NEGATION.search(p)))
        for p in parts
        if p.strip()
    ]


def _negation_differs(claim: str, shown: Sequence[Evidence]) -> bool:
    """Whether ``claim`` denies what the sentences closest to it affirm, or the reverse.

    Closest: the shown sentences sharing most content words with the whole claim. A
    negated clause of the claim needs a negated clause there about the same thing; an
    affirmative clause fails when a negated clause there is wholly about it. So "costs
    €14.95 and is never free" supports "we deliver to Switzerland" but not "delivery to
    Switzerland is free", and "returns are free" does not support "returns are not free".
    """
    whole = set(content_words(claim))
    overlaps = [len(whole & set(content_words(e.text))) for e in shown]
    top = max(overlaps, default=0)
    if top == 0:
        return False
    closest = [
        c for e, n in zip(shown, overlaps, strict=True) if n == top for c in _clauses(e.text)
    ]
    for words_, negated in _clauses(claim):
        if not words_:
            continue
        if negated:
            if not any(neg and words_ & theirs for theirs, neg in closest):
                return True
        elif any(neg and theirs and theirs <= words_ for theirs, neg in closest):
            return True
    return False


def _proper_names(text: str) -> Set[str]:
    """Lower-cased words written with a capital inside a sentence: names, places, brands."""
    names: Set[str] = set()
    for sentence in split_sentences(text):
        body = _ANSWER_WORD.sub("", sentence)
        for match in _CAPITALISED.finditer(body):
            if match.start() == 0:
                continue  # a sentence's first word is capitalised anyway
            for word in match.group(1).split():
                if word.lower() not in _NOT_NAMES:
                    names.add(word.lower())
    return names


def _common(claim: str) -> Set[str]:
    """Capitalised words of ``claim`` that are ordinary words written in title case."""
    return {w.lower() for w in words(claim) if w.lower() in _TITLE_CASE_WORDS}


_TITLE_CASE_WORDS = frozenset(
    "orders order account settings payments returns help delivery monday tuesday wednesday "
    "thursday friday saturday sunday".split()
)
