"""Where the grounded-answer examples come from: SQuAD 2.0, ConditionalQA, the bot's own.

:class:`Builder` turns a question, its passages and the answer into a
:class:`GroundedExample` with the fallback's own prompt, and a refusal when the
sentences the prompt shows do not hold the answer; :func:`squad_examples`,
:func:`conditionalqa_examples` and :func:`knowledge_examples` read each source.
"""

from __future__ import annotations

import html
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

import yaml

from rasa_llm.fallback.prompt_builder import REFUSAL, PromptBuilder
from rasa_llm.fallback.sentence_selector import SentenceSelector, SourcePassage
from training.errors import TrainingInputError

# Businesses named in the instructions of public-data examples, so the model does not
# tie answering to one name; the bot's own examples use its business_name.
_BUSINESSES = ("our company", "Acme Stores", "Harbour Bank", "Greenleaf Clinic", "City Travel")
_TAG = re.compile(r"<[^>]+>")
_MAX_ANSWER_WORDS = 45


@dataclass
class GroundedExample:
    """One prompt and the reply to learn, with where it came from."""

    id: str
    source: str  # squad | conditionalqa | knowledge
    messages: List[Dict[str, str]]
    response: str
    answerable: bool  # the prompt holds the answer (the response is not the refusal)
    question: str
    # Gold answer strings (SQuAD spans, ConditionalQA answers) for held-out scoring.
    answers: List[str] = field(default_factory=list)


@dataclass
class Builder:
    """Turns (question, passages, answer) into examples with the fallback's prompt."""

    selector: SentenceSelector
    business: str = "Northwind Goods"
    max_sentences_reply: int = 3
    skipped: Dict[str, int] = field(default_factory=dict)

    def example(
        self,
        id: str,
        source: str,
        question: str,
        passages: Sequence[SourcePassage],
        *,
        business: str,
        pick: Any,
        answers: Sequence[str] = (),
    ) -> Optional[GroundedExample]:
        """The example, with ``pick(selected_sentences) -> reply or None (refuse)``."""
        selected = self.selector.select(question, passages)
        shown = [s for p in selected for _, s in p.sentences]
        reply = pick(shown) if shown else None
        if reply is not None and len(reply.split()) > _MAX_ANSWER_WORDS:
            self.skipped["answer too long"] = self.skipped.get("answer too long", 0) + 1
            return None
        messages = PromptBuilder(business_name=business).build(question, selected)
        return GroundedExample(
            id=id,
            source=source,
            messages=[{"role": str(m["role"]), "content": str(m["content"])} for m in messages],
            response=reply if reply is not None else REFUSAL,
            answerable=reply is not None,
            question=question,
            answers=list(answers),
        )


# --------------------------------------------------------------------------- SQuAD


def squad_examples(
    path: Path,
    builder: Builder,
    *,
    heldout_titles: Set[str],
    heldout: bool,
    rng: random.Random,
    answerable: int,
    unanswerable: int,
) -> List[GroundedExample]:
    """Examples from SQuAD 2.0: articles in ``heldout_titles`` only when ``heldout``;
    ``answerable`` and ``unanswerable`` questions drawn with ``rng`` (before the
    selector runs, so a refusal made by the selector counts among the answerable).
    """
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    pools: Dict[bool, List[str]] = {True: [], False: []}
    for article in data:
        if (article["title"] in heldout_titles) == heldout:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    pools[not qa["is_impossible"]].append(qa["id"])
    wanted = set()
    for kind, n in ((True, answerable), (False, unanswerable)):
        rng.shuffle(pools[kind])
        wanted.update(pools[kind][:n])
    examples = []
    for article in data:
        if (article["title"] in heldout_titles) != heldout:
            continue
        title = article["title"].replace("_", " ")
        contexts = [p["context"] for p in article["paragraphs"]]
        for n, paragraph in enumerate(article["paragraphs"]):
            own = SourcePassage(f"{title}#{n}", title, paragraph["context"])
            passages = [own]
            if len(contexts) > 1 and rng.random() < 0.5:
                other = rng.choice([i for i in range(len(contexts)) if i != n])
                passages.append(SourcePassage(f"{title}#{other}", title, contexts[other]))
            for qa in paragraph["qas"]:
                if qa["id"] not in wanted:
                    continue
                spans = [a["text"] for a in qa["answers"]]
                example = builder.example(
                    qa["id"],
                    "squad",
                    qa["question"].strip(),
                    passages,
                    business=rng.choice(_BUSINESSES),
                    pick=_sentence_holding(spans) if not qa["is_impossible"] else _refuse,
                    answers=spans,
                )
                if example is not None:
                    examples.append(example)
    return examples


def _refuse(_shown: Sequence[str]) -> None:
    return None


def _sentence_holding(spans: Sequence[str]) -> Any:
    def pick(shown: Sequence[str]) -> Optional[str]:
        for sentence in shown:
            if any(span and span.lower() in sentence.lower() for span in spans):
                return sentence
        return None  # the selector left the answer out: refusing is right

    return pick


# ------------------------------------------------------------------ ConditionalQA


def conditionalqa_examples(
    path: Path, builder: Builder, *, rng: random.Random, near_misses: int, answerable: int
) -> List[GroundedExample]:
    """Examples from ConditionalQA: every not-answerable question, ``answerable`` others
    drawn with ``rng``, and ``near_misses`` mismatched-evidence refusals.
    """
    items = json.loads(path.read_text(encoding="utf-8"))
    by_url: Dict[str, List[Dict[str, Any]]] = {}
    for item in items:
        if _evidence(item):
            by_url.setdefault(item["url"], []).append(item)
    drawn = [i for i in items if _evidence(i) and not i["not_answerable"] and i["answers"]]
    rng.shuffle(drawn)
    keep = {i["id"] for i in drawn[:answerable]} | {
        i["id"] for i in items if i["not_answerable"] or not i["answers"]
    }
    examples = []
    for item in items:
        evidence = _evidence(item)
        if not evidence or item["id"] not in keep:
            continue
        question = _customer_message(item)
        answers = [str(a[0]) for a in item["answers"] if a and a[0]]
        passage = SourcePassage(item["url"], _page_title(item["url"]), evidence)
        if item["not_answerable"] or not answers:
            pick = _refuse
        else:
            pick = _conditionalqa_reply(answers[0], builder.selector, question)
        example = builder.example(
            item["id"],
            "conditionalqa",
            question,
            [passage],
            business=rng.choice(_BUSINESSES),
            pick=pick,
            answers=answers,
        )
        if example is not None:
            examples.append(example)
    # Near misses: the question with the evidence of another question on its page.
    candidates = []
    for page in by_url.values():
        for item in page:
            answers = [str(a[0]) for a in item["answers"] if a and a[0]]
            span = answers[0] if answers else ""
            if item["not_answerable"] or span.lower() in ("yes", "no", ""):
                continue  # only a span shows for sure that other evidence lacks it
            for other in page:
                evidence = _evidence(other)
                if other is not item and span.lower() not in evidence.lower():
                    candidates.append((item, other, evidence))
    rng.shuffle(candidates)
    for item, other, evidence in candidates[:near_misses]:
        example = builder.example(
            f"{item['id']}~{other['id']}",
            "conditionalqa",
            _customer_message(item),
            [SourcePassage(other["url"], _page_title(other["url"]), evidence)],
            business=rng.choice(_BUSINESSES),
            pick=_refuse,
        )
        if example is not None:
            examples.append(example)
    return examples


def _evidence(item: Dict[str, Any]) -> str:
    lines = [" ".join(html.unescape(_TAG.sub(" ", e)).split()) for e in item["evidences"]]
    return "\n".join(line for line in lines if line)


def _customer_message(item: Dict[str, Any]) -> str:
    return f"{item['scenario'].strip()} {item['question'].strip()}".strip()


def _page_title(url: str) -> str:
    slug = url.rstrip("/").rsplit("/", 1)[-1]
    return slug.replace("-", " ").capitalize()


def _conditionalqa_reply(answer: str, selector: SentenceSelector, question: str) -> Any:
    def pick(shown: Sequence[str]) -> Optional[str]:
        if answer.lower() in ("yes", "no"):
            # The shown sentence closest to the question explains the yes or no.
            best = selector.select(question, [SourcePassage("q", "", "\n".join(shown))])
            reason = best[0].sentences[0][1] if best else ""
            return f"{answer.capitalize()}. {_capitalised(reason)}".strip()
        return _sentence_holding([answer])(shown)

    return pick


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------ the bot's own


def knowledge_examples(
    path: Path, knowledge_dir: Path, builder: Builder, retriever: Any, top_k: int
) -> List[GroundedExample]:
    """Examples from ``knowledge_answers.yml``: the passages the retriever finds."""
    from rasa_llm.fallback.knowledge_base import KnowledgeBase

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise TrainingInputError(path, "has no list under 'examples'", "see its header")
    knowledge = KnowledgeBase.from_directory(knowledge_dir)
    by_section = {(p.source, p.title.split(" › ")[-1]): p for p in knowledge.passages}
    examples = []
    for n, item in enumerate(data["examples"], start=1):
        file, _, heading = str(item["source"]).partition("#")
        section = by_section.get((file, heading))
        if section is None:
            raise TrainingInputError(
                path, f"example {n} names {item['source']!r}, which is not a section", "fix it"
            )
        found = [r.passage for r in retriever.retrieve(item["question"], top_k=top_k)]
        # The section the answer comes from is always shown (first, as the best match);
        # for a question without an answer it is the near miss the customer would get.
        ordered = [section] + [p for p in found if p.id != section.id][: top_k - 1]
        passages = [SourcePassage(p.id, p.title, p.text) for p in ordered]
        answer = item.get("answer")
        example = builder.example(
            f"knowledge-{n}",
            "knowledge",
            str(item["question"]),
            passages,
            business=builder.business,
            pick=_knowledge_reply(answer),
        )
        if example is None:
            continue
        if answer is not None and not example.answerable:
            builder.skipped["facts not selected"] = builder.skipped.get("facts not selected", 0) + 1
            continue
        examples.append(example)
    return examples


_FACT = re.compile(r"[£€$]?\d[\d.,:-]*%?|https?://\S+|\S+@\S+")


def _knowledge_reply(answer: Optional[str]) -> Any:
    def pick(shown: Sequence[str]) -> Optional[str]:
        if answer is None:
            return None
        text = " ".join(shown)
        # The written answer only if the shown sentences hold its facts.
        facts = [f.rstrip(".,") for f in _FACT.findall(answer)]
        return answer if all(f in text for f in facts) else None

    return pick
