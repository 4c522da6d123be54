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

:mod:`training.grounded_sources` reads the sources and builds the examples; this
module holds the copy check and the command.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Set, Tuple

import yaml

from rasa_llm.fallback.sentence_selector import SentenceSelector
from training.arguments import GroundedDataArguments
from training.errors import TrainingInputError
from training.grounded_sources import (
    Builder,
    GroundedExample,
    conditionalqa_examples,
    knowledge_examples,
    squad_examples,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
KNOWLEDGE_ANSWERS = ROOT / "training" / "data" / "knowledge_answers.yml"
EVALUATION_DIR = ROOT / "bench" / "data"
_WORD = re.compile(r"\w+")
# A training question this close to an evaluation text is a copy.
_COPY_NGRAM = 6
_COPY_JACCARD = 0.6


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
