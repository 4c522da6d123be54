"""Instruction→response pairs for the generative model: read, check, tokenise, batch.

Each pair becomes one chat: the tokenizer's own chat template turns a system message
and the user's instruction into the prompt (ending with the assistant's turn opening,
exactly as the fallback prompts the model at run time), and the response follows with
the token that ends an assistant turn. Only the response and that end token are
supervised: every prompt and padding position has the label ``-100``, which the loss
ignores, so the model learns to answer rather than to write customer questions.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from training.errors import TrainingInputError

IGNORE_INDEX = -100  # the label torch's cross-entropy skips
# Tokens that chat templates put after an assistant message; the same list the
# fallback's local backend stops generating at.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>")
# Bitext writes entity slots as {{Order Number}}; they are kept as text.
PLACEHOLDER = re.compile(r"\{\{[^{}]+\}\}")
SUFFIXES = (".csv", ".json", ".jsonl")


@dataclass(frozen=True)
class InstructionPair:
    """One instruction and the response to learn, with where it came from.

    ``messages``, when set, is the whole chat before the reply (system and user
    messages, as the fallback's prompt builder writes them: see
    :mod:`training.grounded_data`); ``prompt`` is then its last user message, and the
    ``--system-prompt`` flag does not apply.
    """

    prompt: str
    response: str
    where: str  # "row 7", "item 3", "line 12": for error messages
    messages: Optional[Tuple[Tuple[Tuple[str, str], ...], ...]] = None

    def chat(self, system_prompt: str) -> List[Dict[str, str]]:
        """The chat messages the model reads before the response."""
        if self.messages is not None:
            return [dict(message) for message in self.messages]
        chat = [{"role": "user", "content": self.prompt}]
        if system_prompt:
            chat.insert(0, {"role": "system", "content": system_prompt})
        return chat


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids of prompt + response and their labels (``-100`` where not learned)."""

    input_ids: List[int]
    labels: List[int]
    truncated: bool  # the response was cut to fit max_length

    @property
    def supervised_tokens(self) -> int:
        """How many tokens are learned (labels other than ``-100``)."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def read_pairs(path: Path, prompt_column: str, response_column: str) -> List[InstructionPair]:
    """Every pair in a CSV, JSON list or JSON-lines file; errors name the row and the fix."""
    records, columns = _read_records(path)
    missing = [c for c in (prompt_column, response_column) if c not in columns]
    if missing:
        flag = "--prompt-column" if prompt_column in missing else "--response-column"
        raise TrainingInputError(
            path,
            f"there is no column {', '.join(repr(c) for c in missing)}; the columns are "
            f"{', '.join(repr(c) for c in columns) or '(none)'}",
            f"pass {flag} naming the column that holds the "
            f"{'instructions' if flag == '--prompt-column' else 'responses'}",
        )
    pairs = []
    for where, record in records:
        if isinstance(record.get(prompt_column), list):
            pairs.append(_chat_pair(path, where, record[prompt_column], record, response_column))
            continue
        for column in (prompt_column, response_column):
            value = record.get(column)
            if value is None or not str(value).strip():
                raise TrainingInputError(
                    path,
                    f"{where} has an empty {column!r}",
                    "fill it in or delete the row: every example needs an instruction and "
                    "a response",
                )
        pairs.append(
            InstructionPair(str(record[prompt_column]), str(record[response_column]), where)
        )
    return pairs


def _chat_pair(
    path: Path, where: str, messages: List[Any], record: Dict[str, Any], response_column: str
) -> InstructionPair:
    """A pair whose prompt is a list of chat messages (a JSON file's ``messages``)."""
    valid = all(
        isinstance(m, dict)
        and m.get("role") in ("system", "user", "assistant")
        and isinstance(m.get("content"), str)
        for m in messages
    )
    if not messages or not valid or messages[-1]["role"] != "user":
        raise TrainingInputError(
            path,
            f"{where} has a list of messages that is not a chat ending with the user's",
            'write [{"role": "system", "content": "..."}, {"role": "user", "content": '
            '"..."}], as python -m training grounded-data does',
        )
    response = record.get(response_column)
    if response is None or not str(response).strip():
        raise TrainingInputError(
            path, f"{where} has an empty {response_column!r}", "fill it in or delete the row"
        )
    frozen = tuple(tuple(sorted((k, str(v)) for k, v in m.items())) for m in messages)
    return InstructionPair(str(messages[-1]["content"]), str(response), where, frozen)


def _read_records(path: Path) -> Tuple[List[Tuple[str, Dict[str, Any]]], List[str]]:
    """(where, record) for every row, and the column names, for any supported format."""
    if path.suffix.lower() not in SUFFIXES:
        raise TrainingInputError(
            path,
            f"is not a CSV or JSON file (the name ends in {path.suffix or 'nothing'!r})",
            "give a .csv file with a header row, a .json file holding a list of objects, "
            "or a .jsonl file with one object per line",
        )
    if not path.is_file():
        raise TrainingInputError(path, "the file does not exist", "check the path")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise TrainingInputError(path, "is not UTF-8 text", "save it as UTF-8 CSV or JSON") from e
    if path.suffix.lower() == ".csv":
        return _read_csv(path, text)
    return _read_json(path, text)


def _read_csv(path: Path, text: str) -> Tuple[List[Tuple[str, Dict[str, Any]]], List[str]]:
    reader = csv.DictReader(text.splitlines(keepends=True), strict=True)
    records = []
    try:
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        started_at = reader.line_num + 1
        for number, row in enumerate(reader, start=1):
            # A quoted field may span lines, so the file line is said as well.
            records.append((f"row {number} (line {started_at} of the file)", row))
            started_at = reader.line_num + 1
    except csv.Error as e:
        raise TrainingInputError(
            path,
            f"is not valid CSV near line {reader.line_num} ({e})",
            "export it again as CSV with a header row and quoted multi-line fields",
        ) from e
    return records, columns


def _read_json(path: Path, text: str) -> Tuple[List[Tuple[str, Dict[str, Any]]], List[str]]:
    items: List[Tuple[str, Any]]
    if path.suffix.lower() == ".jsonl":
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((f"line {number}", json.loads(line)))
            except ValueError as e:
                raise TrainingInputError(
                    path,
                    f"line {number} is not JSON ({e})",
                    "write one JSON object per line",
                ) from e
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise TrainingInputError(
                path,
                f"is not valid JSON ({e})",
                "give a JSON list of objects, or name a JSON-lines file .jsonl",
            ) from e
        if not isinstance(data, list):
            raise TrainingInputError(
                path,
                f"holds a JSON {type(data).__name__}, not a list of examples",
                'give a list such as [{"instruction": "...", "response": "..."}, ...]',
            )
        items = [(f"item {number}", item) for number, item in enumerate(data, start=1)]
    columns: Dict[str, None] = {}
    for where, item in items:
        if not isinstance(item, dict):
            raise TrainingInputError(
                path,
                f"{where} is a JSON {type(item).__name__}, not an object",
                'write every example as an object such as {"instruction": "...", '
                '"response": "..."}',
            )
        columns.update(dict.fromkeys(item))
    return list(items), list(columns)


def sample_pairs(pairs: Sequence[InstructionPair], n: int, seed: int) -> List[InstructionPair]:
    """``n`` pairs drawn without replacement with ``seed``, in file order; all if fewer."""
    if n >= len(pairs):
        return list(pairs)
    chosen = np.random.default_rng(seed).choice(len(pairs), size=n, replace=False)
    return [pairs[i] for i in sorted(chosen.tolist())]


def split_validation(n: int, fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """Seeded indices for training and validation; each part keeps at least one."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_validation = min(max(1, round(fraction * n)), n - 1)
    return sorted(order[n_validation:]), sorted(order[:n_validation])


def count_with_placeholders(pairs: Sequence[InstructionPair]) -> int:
    """How many responses hold a ``{{placeholder}}`` (kept as text in training)."""
    return sum(1 for pair in pairs if PLACEHOLDER.search(pair.response))


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that ends an assistant turn in this tokenizer's chat template.

    That is the chat's end-of-turn token where the template uses one (ChatML's
    ``<|im_end|>``), else the tokenizer's EOS. They differ for SmolLM2's GGUF
    tokenizer, whose EOS is ``<|im_start|>``: the model must learn to close its turn.
    """
    template = str(getattr(tokenizer, "chat_template", "") or "")
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in vocab and token in template:
            return int(vocab[token])
    if tokenizer.eos_token_id is None:
        raise TrainingInputError(
            getattr(tokenizer, "name_or_path", "the tokenizer"),
            "the tokenizer names no end-of-sequence token",
            "set eos_token in the model's tokenizer_config.json",
        )
    return int(tokenizer.eos_token_id)


def prompt_ids(tokenizer: Any, messages: List[Dict[str, str]]) -> List[int]:
    """The chat-template tokens of the messages and the assistant's opening.

    The same call, on the same messages, as the fallback's local backend makes.
    """
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # a BatchEncoding
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def tokenize_pair(
    tokenizer: Any,
    pair: InstructionPair,
    *,
    system_prompt: str,
    max_length: int,
    end_id: int,
) -> Optional[TokenizedExample]:
    """Prompt and response ids with labels on the response only; None if no room left.

    A sequence longer than ``max_length`` loses the end of its response (the prompt is
    kept whole, since the model always sees all of it); a prompt that fills
    ``max_length`` by itself leaves nothing to learn and gives None.
    """
    prompt = prompt_ids(tokenizer, pair.chat(system_prompt))
    response = [int(i) for i in tokenizer(pair.response, add_special_tokens=False)["input_ids"]]
    response.append(end_id)
    room = max_length - len(prompt)
    if room < 1:
        return None
    truncated = len(response) > room
    response = response[:room]
    return TokenizedExample(
        input_ids=prompt + response,
        labels=[IGNORE_INDEX] * len(prompt) + response,
        truncated=truncated,
    )


def tokenize_pairs(
    tokenizer: Any,
    pairs: Sequence[InstructionPair],
    *,
    system_prompt: str,
    max_length: int,
    end_id: int,
) -> Tuple[List[TokenizedExample], int]:
    """Tokenised examples, and how many were left out because the prompt filled them."""
    examples = []
    for pair in pairs:
        example = tokenize_pair(
            tokenizer, pair, system_prompt=system_prompt, max_length=max_length, end_id=end_id
        )
        if example is not None:
            examples.append(example)
    return examples, len(pairs) - len(examples)


def pad_batch(examples: Sequence[TokenizedExample], pad_id: int) -> Dict[str, torch.Tensor]:
    """Right-pad to the batch's longest example: ids with ``pad_id``, labels with -100."""
    longest = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
