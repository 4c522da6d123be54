"""Questions answered, tasks started (issue 24): the running bot, one message per customer.

    .venv/bin/python -m bench.question_routing [--model bot/models/customer-service.tar.gz]
        [--data bench/data/question_routing.yml] [--limit N] [--out bench/results]

Starts the trained bot as `make run` does: `rasa run actions` in bot/ (on a fresh copy
of the sample store, the fallback's model loading as the server starts) and `rasa run`
with the REST channel and the HTTP API, with the tokens of bench/support/rasa_process.py. Each
message of the data file is sent once through the REST channel as a new customer (a
fresh sender: no history), and the turn is read back from the tracker (HTTP API).

Reports, over the questions (about topics that also have a task):
- answered correctly: no form started and a reply contains one of the question's facts;
- wrongly started a form: the turn activated a form;
and over the requests: the share whose task started (the action in `starts` ran in the
turn), which must stay at 100 %. Also who answered the questions (the generative
fallback or another action) and how many answers offered the task. Writes
<out>/question_routing.json (every message with its replies and actions) and prints a
Markdown table. To measure another checkout (the commit before a change), run this
file from that checkout: everything it starts comes from the checkout it runs in.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from bench.fallback_data import BenchDataError
from bench.fallback_detectors import find_any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "question_routing.yml"
FALLBACK_ACTION = "action_generative_fallback"
_QUESTION_KEYS = {"id", "topic", "text", "source", "facts"}
_REQUEST_KEYS = {"id", "text", "starts"}


@dataclass(frozen=True)
class RoutingQuestion:
    """A question about a topic that also has a task; ``facts`` are alternatives."""

    id: str
    topic: str
    text: str
    source: str
    facts: Tuple[str, ...]


@dataclass(frozen=True)
class TaskRequest:
    """A request that must start its task: ``starts`` is the action that must run."""

    id: str
    text: str
    starts: str


@dataclass
class QuestionResult:
    """What one question got."""

    id: str
    topic: str
    correct: bool
    form: Optional[str]
    by_fallback: bool
    offered: bool
    replies: List[str] = field(default_factory=list)
    actions: List[str] = field(default_factory=list)
    seconds: float = 0.0
    buttons: List[str] = field(default_factory=list)


@dataclass
class RequestResult:
    """What one request got."""

    id: str
    started: bool
    replies: List[str] = field(default_factory=list)
    actions: List[str] = field(default_factory=list)
    seconds: float = 0.0


# ------------------------------------------------------------------ data


def _entries(data: Mapping[str, Any], key: str, allowed: set, path: Path) -> List[Dict[str, Any]]:
    entries = data.get(key)
    if not isinstance(entries, list) or not entries:
        raise BenchDataError(f"{path}: '{key}' must be a non-empty list")
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BenchDataError(f"{path}: {key}[{n}] must be a mapping")
        unknown, missing = set(entry) - allowed, allowed - set(entry)
        if unknown or missing:
            raise BenchDataError(
                f"{path}: {key}[{n}] has unknown keys {sorted(unknown)} or lacks {sorted(missing)}"
            )
        if not all(isinstance(entry[k], (str, list)) and entry[k] for k in allowed):
            raise BenchDataError(f"{path}: {key}[{n}] has an empty value")
    return entries


def load_routing(*, path: Path = DATA) -> Tuple[List[RoutingQuestion], List[TaskRequest]]:
    """The questions and requests of ``path``; malformed data raises :class:`BenchDataError`."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("version") != 1:
        raise BenchDataError(f"{path}: expected a mapping with 'version: 1'")
    questions = []
    for entry in _entries(data, "questions", _QUESTION_KEYS, path):
        facts = entry["facts"]
        if not isinstance(facts, list) or not all(isinstance(f, str) and f for f in facts):
            raise BenchDataError(f"{path}: {entry['id']}: facts must be a list of strings")
        questions.append(
            RoutingQuestion(
                str(entry["id"]),
                str(entry["topic"]),
                str(entry["text"]),
                str(entry["source"]),
                tuple(facts),
            )  # fmt: skip
        )
    requests = [
        TaskRequest(str(e["id"]), str(e["text"]), str(e["starts"]))
        for e in _entries(data, "requests", _REQUEST_KEYS, path)
    ]
    ids = [q.id for q in questions] + [r.id for r in requests]
    if len(set(ids)) != len(ids):
        raise BenchDataError(f"{path}: duplicate ids")
    return questions, requests


# ------------------------------------------------------------------ scoring (plain functions)


def turn_events(events: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The events of the last turn: everything after the last customer message."""
    last_user = max((n for n, e in enumerate(events) if e.get("event") == "user"), default=-1)
    return list(events[last_user + 1 :])


def turn_actions(turn: Sequence[Mapping[str, Any]]) -> List[str]:
    """The actions the bot ran in ``turn``, without ``action_listen``."""
    return [
        str(e.get("name"))
        for e in turn
        if e.get("event") == "action" and e.get("name") not in (None, "action_listen")
    ]


def started_form(turn: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """The form ``turn`` activated, if any (Rasa records an ``active_loop`` event)."""
    for event in turn:
        if event.get("event") == "active_loop" and event.get("name"):
            return str(event["name"])
    return None


def reply_texts(replies: Sequence[Mapping[str, Any]]) -> List[str]:
    """The texts of the REST channel's replies (buttons' titles are not answers)."""
    return [str(r["text"]) for r in replies if r.get("text")]


def button_payloads(replies: Sequence[Mapping[str, Any]]) -> List[str]:
    """The payloads of the buttons of ``replies``, in order."""
    return [
        str(button.get("payload", ""))
        for reply in replies
        for button in reply.get("buttons") or ()
        if isinstance(button, Mapping)
    ]


def offered_a_task(replies: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a message after the answer carries a button that starts a task (``/intent``).

    The offer follows the answer as a message of its own; buttons on the answer itself
    (the scripted reply's "Talk to a person") are not an offer of the question's task.
    """
    return any(payload.startswith("/") for payload in button_payloads(replies[1:]))


def score_question(
    question: RoutingQuestion,
    replies: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    *,
    seconds: float = 0.0,
) -> QuestionResult:
    """Correct when no form started and a reply states one of the question's facts."""
    turn = turn_events(events)
    texts = reply_texts(replies)
    form = started_form(turn)
    actions = turn_actions(turn)
    correct = form is None and bool(find_any(" ".join(texts), question.facts))
    return QuestionResult(
        question.id, question.topic, correct, form, FALLBACK_ACTION in actions,
        offered_a_task(replies) and FALLBACK_ACTION in actions, texts, actions, seconds,
        button_payloads(replies),
    )  # fmt: skip


# The same inputs as score_question (one turn's replies and events), scored for a task.
def score_request(
    request: TaskRequest,
    replies: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    *,
    seconds: float = 0.0,
) -> RequestResult:
    """Started when the request's ``starts`` action ran in its turn."""
    actions = turn_actions(turn_events(events))
    return RequestResult(
        request.id, request.starts in actions, reply_texts(replies), actions, seconds
    )


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def summarise(
    questions: Sequence[QuestionResult], requests: Sequence[RequestResult]
) -> Dict[str, Any]:
    """The benchmark's figures: shares of questions and of requests, and per topic."""
    topics: Dict[str, List[QuestionResult]] = {}
    for result in questions:
        topics.setdefault(result.topic, []).append(result)
    n = len(questions)
    return {
        "questions": n,
        "answered_correctly": _share(sum(r.correct for r in questions), n),
        "wrongly_started_a_form": _share(sum(r.form is not None for r in questions), n),
        "answered_by_fallback": _share(sum(r.by_fallback for r in questions), n),
        "offered_the_task": _share(sum(r.offered for r in questions), n),
        "requests": len(requests),
        "requests_started_their_task": _share(sum(r.started for r in requests), len(requests)),
        "by_topic": {
            topic: {
                "questions": len(results),
                "answered_correctly": _share(sum(r.correct for r in results), len(results)),
                "wrongly_started_a_form": _share(
                    sum(r.form is not None for r in results), len(results)
                ),
            }
            for topic, results in sorted(topics.items())
        },
    }


def markdown(summary: Mapping[str, Any], *, label: str = "this checkout") -> str:
    """The summary as a Markdown table (one column per run)."""

    def pct(value: float) -> str:
        return f"{100 * value:.1f} %"

    rows = [
        ("questions answered correctly", pct(summary["answered_correctly"])),
        ("questions that wrongly started a form", pct(summary["wrongly_started_a_form"])),
        ("questions answered by the generative fallback", pct(summary["answered_by_fallback"])),
        ("answers that offered the task (button)", pct(summary["offered_the_task"])),
        ("requests that started their task", pct(summary["requests_started_their_task"])),
    ]
    lines = [f"| {summary['questions']} questions, {summary['requests']} requests | {label} |"]
    lines.append("|---|---|")
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ the running bot


def _turn(server: Any, text: str) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], float]:
    """Send ``text`` as a new REST customer: the replies, the stored events, seconds."""
    from bench.support.rasa_process import rest_id

    sender = f"bench-{uuid.uuid4()}"
    started = time.perf_counter()
    answer = server.rest(sender, text, timeout=180)
    seconds = time.perf_counter() - started
    answer.raise_for_status()
    # Rasa sends the replies before it saves the turn: wait for the stored message.
    server.user_events(rest_id(sender), count=1)
    events = server.tracker(rest_id(sender)).get("events") or []
    return list(answer.json()), list(events), seconds


def run(
    model: Path, questions: Sequence[RoutingQuestion], requests: Sequence[TaskRequest]
) -> Tuple[List[QuestionResult], List[RequestResult]]:
    """Start the bot, send every message once, score each turn."""
    from bench.support.rasa_process import ActionServer, RasaServer, free_port, write_run_config

    with tempfile.TemporaryDirectory(prefix="bench-question-routing-") as tmp:
        workdir = Path(tmp)
        actions_port = free_port()
        endpoints, credentials = write_run_config(workdir, actions_port)
        actions = ActionServer(workdir, port=actions_port).start()
        try:
            with RasaServer(model, workdir, credentials=credentials, endpoints=endpoints) as server:
                question_results = []
                for n, question in enumerate(questions, 1):
                    replies, events, seconds = _turn(server, question.text)
                    result = score_question(question, replies, events, seconds=seconds)
                    question_results.append(result)
                    mark = "ok " if result.correct else ("FORM" if result.form else "miss")
                    print(f"[{n}/{len(questions)}] {mark} {question.id} {seconds:.1f}s", flush=True)
                request_results = []
                for request in requests:
                    replies, events, seconds = _turn(server, request.text)
                    result = score_request(request, replies, events, seconds=seconds)
                    request_results.append(result)
                    print(f"{'ok ' if result.started else 'MISS'} {request.id}", flush=True)
        finally:
            actions.stop()
    return question_results, request_results


def main(argv: Sequence[str]) -> int:
    from bench.support.rasa_process import MODEL

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="first N of each list")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)

    questions, requests = load_routing(path=args.data)
    if args.limit:
        questions, requests = questions[: args.limit], requests[: args.limit]
    started = time.monotonic()
    question_results, request_results = run(args.model, questions, requests)
    summary = summarise(question_results, request_results)
    report = {
        "benchmark": "question_routing",
        "command": " ".join([Path(sys.executable).name, "-m", "bench.question_routing", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "wall_s": round(time.monotonic() - started, 1),
        "summary": summary,
        "questions": [asdict(r) for r in question_results],
        "requests": [asdict(r) for r in request_results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "question_routing.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(markdown(summary, label=str(ROOT)))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
