"""``python -m training grounded-data``: examples that teach answering from a passage.

Every example is the fallback's own prompt (:class:`~rasa_llm.fallback.prompt_builder.
PromptBuilder`: instructions, the sentences :class:`~rasa_llm.fallback.sentence_selector.
SentenceSelector` keeps from the passages, the customer's message) and the reply to
learn: a short answer made of the passage's own sentences, or
:data:`~rasa_llm.fallback.prompt_builder.REFUSAL` when the sentences the prompt shows do
not hold the answer. The label follows what the prompt shows: a question whose answer
sentence the selector left out is a refusal, as it must be at run time.

Sources (counts in the written ``report.json``):

* SQuAD 2.0 (half dev): a Wikipedia paragraph and a question. Answerable: the reply is
  the selected sentence holding the answer. Unanswerable (``is_impossible``): written to
  look answerable from that very paragraph, the right kind of near miss; the reply is
  the refusal. Whole articles are held out for evaluation (``--squad-heldout``).
* ConditionalQA (train; dev is held out): a customer's scenario and question about a UK
  government help page, with the evidence sentences. Yes/no answers become "Yes." or
  "No." and the evidence sentence closest to the question; span answers the evidence
  sentence holding the span. Not answerable: the refusal, and near misses made by
  pairing a question with the evidence of another question on the same page that does
  not contain its answer.
* The bot's own knowledge base: ``training/data/knowledge_answers.yml`` (questions
  written for this, each with its section and the answer, or none), with the passages
  the retriever finds for the question, as at run time.

Nothing is taken from ``bench/data/``: :func:`copied_from_evaluation` compares every
question with the evaluation sets and the command stops if one matches.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import yaml

from rasa_llm.fallback.prompt_builder import REFUSAL, PromptBuilder
from rasa_llm.fallback.sentence_selector import SentenceSelector, SourcePassage
from training.arguments import GroundedDataArguments
from training.errors import TrainingInputError

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
KNOWLEDGE_ANSWERS = ROOT / "training" / "data" / "knowledge_answers.yml"
EVALUATION_DIR = ROOT / "bench" / "data"
# Businesses named in the instructions of public-data examples, so the model does not
# tie answering to one name; the bot's own examples use its business_name.
_BUSINESSES = ("our company", "Acme Stores", "Harbour Bank", "Greenleaf Clinic", "City Travel")
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"\w+")
_MAX_ANSWER_WORDS = 45
# A training question this close to an evaluation text is a copy.
_COPY_NGRAM = 6
_COPY_JACCARD = 0.6


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


# ------------------------------------------------------------------ no copies


def evaluation_texts(*, directory: Path = EVALUATION_DIR) -> List[str]:
    """Every ``text`` of every YAML file in the evaluation directory."""
    texts: List[str] = []
    for path in sorted(directory.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for value in data.values():
            if isinstance(value, list):
                texts.extend(str(i["text"]) for i in value if isinstance(i, dict) and "text" in i)
    return texts


def _tokens(text: str) -> List[str]:
    return _WORD.findall(text.lower())


def _bigrams(words: List[str]) -> Set[Tuple[str, ...]]:
    pairs: Set[Tuple[str, ...]] = set(zip(words, words[1:], strict=False))
    return pairs or {tuple(words)}


def copied_from_evaluation(
    questions: Iterable[str], evaluation: Sequence[str]
) -> List[Tuple[str, str]]:
    """(question, evaluation text) pairs where a question copies an evaluation text.

    A copy is the same words (punctuation and case aside), a shared run of
    ``_COPY_NGRAM`` words, or word-bigram Jaccard similarity of at least 0.6.
    """
    index: Dict[Tuple[str, ...], str] = {}
    bigrams = []
    for text in evaluation:
        words = _tokens(text)
        for i in range(len(words) - _COPY_NGRAM + 1):
            index.setdefault(tuple(words[i : i + _COPY_NGRAM]), text)
        bigrams.append((text, _bigrams(words)))
    exact = {tuple(_tokens(t)): t for t in evaluation}
    found = []
    for question in questions:
        words = _tokens(question)
        hit = exact.get(tuple(words))
        for i in range(len(words) - _COPY_NGRAM + 1):
            hit = hit or index.get(tuple(words[i : i + _COPY_NGRAM]))
        if hit is None:
            mine = _bigrams(words)
            for text, theirs in bigrams:
                if len(mine & theirs) / len(mine | theirs) >= _COPY_JACCARD:
                    hit = text
                    break
        if hit is not None:
            found.append((question, hit))
    return found


# ------------------------------------------------------------------ the command


def add_grounded_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``python -m training grounded-data``."""
    parser.add_argument("--out", required=True, metavar="DIR", help="where the files go")
    parser.add_argument("--data", default=str(SHARED_DATA), metavar="DIR", help="public data")
    parser.add_argument("--bot-dir", default=str(ROOT / "bot"), metavar="DIR")
    parser.add_argument("--knowledge-answers", default=str(KNOWLEDGE_ANSWERS), metavar="FILE")
    parser.add_argument("--squad-answerable", type=int, default=600, metavar="N")
    parser.add_argument("--squad-unanswerable", type=int, default=350, metavar="N")
    parser.add_argument("--conditionalqa", type=int, default=450, metavar="N")
    parser.add_argument("--conditionalqa-near-misses", type=int, default=150, metavar="N")
    parser.add_argument(
        "--knowledge-repeats", type=int, default=2, metavar="N", help="copies of the bot's own"
    )
    parser.add_argument("--heldout-per-set", type=int, default=150, metavar="N")
    parser.add_argument("--squad-heldout-articles", type=int, default=4, metavar="N")
    parser.add_argument("--validation-fraction", type=float, default=0.05, metavar="F")
    parser.add_argument("--max-sentences", type=int, default=4, metavar="N")
    parser.add_argument("--seed", type=int, default=13, metavar="N")


def run_grounded_data(args: GroundedDataArguments) -> int:
    """Write ``train.jsonl``, ``validation.jsonl``, the held-out sets and ``report.json``."""
    from rasa_llm.fallback.knowledge_base import KnowledgeBase
    from rasa_llm.fallback.passage_retriever import PassageRetriever

    # First, and cheaply: the bot's own questions must not copy the evaluation set.
    evaluation = evaluation_texts()
    _check_no_copies(Path(args.knowledge_answers), evaluation)
    rng = random.Random(args.seed)
    out = Path(args.out)
    data = Path(args.data)
    bot_dir = Path(args.bot_dir)
    fallback = _fallback_settings(bot_dir)
    knowledge = KnowledgeBase.from_directory(bot_dir / fallback["knowledge_dir"])
    retriever = PassageRetriever(knowledge)
    selector = SentenceSelector(_cached(retriever.embed), max_sentences=args.max_sentences)
    builder = Builder(selector, business=fallback["business_name"])

    squad_path = data / "squad_v2_dev" / "dev-v2.0.json"
    titles = sorted(a["title"] for a in json.loads(squad_path.read_text())["data"])
    heldout_titles = set(random.Random(args.seed).sample(titles, args.squad_heldout_articles))
    squad = squad_examples(
        squad_path,
        builder,
        heldout_titles=heldout_titles,
        heldout=False,
        rng=rng,
        answerable=args.squad_answerable,
        unanswerable=args.squad_unanswerable,
    )
    cqa = conditionalqa_examples(
        data / "conditionalqa" / "train.json",
        builder,
        rng=rng,
        near_misses=args.conditionalqa_near_misses,
        answerable=args.conditionalqa,
    )
    own = knowledge_examples(
        Path(args.knowledge_answers), bot_dir / fallback["knowledge_dir"], builder, retriever, 2
    )
    # Public questions that happen to share a phrase with an evaluation text are left out.
    copies = {q for q, _ in copied_from_evaluation([e.question for e in squad + cqa], evaluation)}
    squad = [e for e in squad if e.question not in copies]
    cqa = [e for e in cqa if e.question not in copies]
    train = squad + cqa + own * args.knowledge_repeats
    rng.shuffle(train)
    n_validation = max(1, round(args.validation_fraction * len(train)))
    # Validation examples are distinct prompts: no copy of a held-out one trains.
    validation_ids = {e.id for e in train[:n_validation]}
    validation = _unique(e for e in train if e.id in validation_ids)
    train = [e for e in train if e.id not in validation_ids]

    n = args.heldout_per_set
    heldout = {
        "squad_heldout": squad_examples(
            squad_path,
            builder,
            heldout_titles=heldout_titles,
            heldout=True,
            rng=rng,
            answerable=n,
            unanswerable=n,
        ),
        "conditionalqa_dev": conditionalqa_examples(
            data / "conditionalqa" / "dev.json", builder, rng=rng, near_misses=n, answerable=n
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "train.jsonl", train)
    _write(out / "validation.jsonl", validation)
    for name, examples in heldout.items():
        _write(out / f"{name}.jsonl", examples)
    report = {
        "seed": args.seed,
        "max_sentences": args.max_sentences,
        "squad_heldout_articles": sorted(heldout_titles),
        "train": _counts(train),
        "validation": _counts(validation),
        **{name: _counts(examples) for name, examples in heldout.items()},
        "skipped": builder.skipped,
        "public_questions_left_out_as_close_to_evaluation_texts": len(copies),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


def _cached(embed: Any) -> Any:
    """``embed`` remembering every text: a paragraph is embedded once, not per question."""
    import torch

    cache: Dict[str, Any] = {}

    def cached(texts: Sequence[str]) -> Any:
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            cache.update(zip(missing, embed(missing), strict=True))
        return torch.stack([cache[t] for t in texts])

    return cached


def _check_no_copies(path: Path, evaluation: Sequence[str]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    questions = [str(e.get("question", "")) for e in data.get("examples") or []]
    copies = copied_from_evaluation(questions, evaluation)
    if copies:
        shown = "; ".join(f"{q!r} ~ {t!r}" for q, t in copies[:5])
        raise TrainingInputError(
            path,
            f"{len(copies)} training questions copy bench/data evaluation texts: {shown}",
            "write different questions: the evaluation set must stay unseen",
        )


def _fallback_settings(bot_dir: Path) -> Dict[str, Any]:
    from rasa_llm.fallback.generative_fallback import merged_config

    path = bot_dir / "fallback.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return merged_config(config or {})


def _unique(examples: Iterable[GroundedExample]) -> List[GroundedExample]:
    seen: Set[str] = set()
    kept = []
    for example in examples:
        if example.id not in seen:
            seen.add(example.id)
            kept.append(example)
    return kept


def _counts(examples: Sequence[GroundedExample]) -> Dict[str, Any]:
    counts: Dict[str, Any] = {"total": len(examples)}
    for example in examples:
        key = f"{example.source}_{'answer' if example.answerable else 'refusal'}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _write(path: Path, examples: Sequence[GroundedExample]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
