"""Keeping only the vocabulary pieces a bot's languages can produce.

multilingual-e5-small's SentencePiece vocabulary has 250,002 pieces for about 100
languages, and its float32 embedding table is 384 MB: slow to load, to copy and to
fine-tune on two cores. A piece can only come out of the tokenizer for a text that
contains every one of its characters, so removing the pieces with a character outside
the bot's scripts changes nothing for text written in those scripts: the Unigram
model's best segmentation of such a text only ever uses pieces that are kept. Text in
another script (Cyrillic, Arabic, ...) then comes out as ``<unk>`` pieces instead.

The scripts of each language are ranges of code points, decided here:

* every language: ASCII (digits, punctuation, space), Latin-1 punctuation and symbols
  (``£ © ° ±``), general punctuation, super- and subscripts, currency, letter-like
  symbols, number forms, arrows, mathematical and technical symbols, enclosed
  alphanumerics, box drawing, shapes, dingbats and the other symbols, variation
  selectors and emoji, and SentencePiece's word marker ``▁``;
* ``en``: Latin letters with accents (Latin-1 Supplement, Latin Extended-A and -B,
  Latin Extended Additional, combining diacritics), so customers' names such as
  "Zoë", "Łukasz" or "Nguyễn" keep their pieces;
* ``zh``: Han (CJK unified ideographs with extensions A to F, compatibility
  ideographs, radicals, strokes), bopomofo, CJK symbols and punctuation (``。「」``),
  enclosed CJK and compatibility signs, CJK compatibility and vertical forms, and
  half-width and full-width forms (``，！？０-９``).

Japanese kana and Korean hangul are left out of ``zh``. Add a language to
``LANGUAGE_RANGES`` to keep its script. Special tokens are always kept, and kept pieces
keep their order, so ``<s> <pad> </s> <unk>`` stay ids 0 to 3.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np

from rasa_llm.errors import InvalidComponentConfigError

Ranges = Tuple[Tuple[int, int], ...]

COMMON_RANGES: Ranges = (
    (0x0020, 0x007E),  # ASCII
    (0x00A0, 0x00BF),  # Latin-1 punctuation and symbols
    (0x00D7, 0x00D7),  # ×
    (0x00F7, 0x00F7),  # ÷
    (0x2000, 0x209F),  # general punctuation, super- and subscripts
    (0x20A0, 0x20CF),  # currency symbols
    (0x2100, 0x23FF),  # letter-like, number forms, arrows, mathematical, technical
    (0x2460, 0x24FF),  # enclosed alphanumerics
    (0x2500, 0x27BF),  # box drawing, block elements, shapes, symbols, dingbats
    (0x2B00, 0x2BFF),  # miscellaneous symbols and arrows
    (0x2581, 0x2581),  # ▁, SentencePiece's word marker
    (0xFE00, 0xFE0F),  # variation selectors (emoji presentation)
    (0x1F000, 0x1FAFF),  # emoji, pictographs, regional indicators
)

LANGUAGE_RANGES: Mapping[str, Ranges] = {
    "en": (
        (0x00C0, 0x00D6),  # Latin-1 Supplement letters
        (0x00D8, 0x00F6),
        (0x00F8, 0x00FF),
        (0x0100, 0x024F),  # Latin Extended-A and -B
        (0x0300, 0x036F),  # combining diacritical marks
        (0x1E00, 0x1EFF),  # Latin Extended Additional
    ),
    "zh": (
        (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
        (0x3000, 0x303F),  # CJK symbols and punctuation
        (0x3100, 0x312F),  # bopomofo
        (0x31A0, 0x31EF),  # bopomofo extended, CJK strokes
        (0x3200, 0x33FF),  # enclosed CJK letters, CJK compatibility
        (0x3400, 0x4DBF),  # CJK extension A
        (0x4E00, 0x9FFF),  # CJK unified ideographs
        (0xF900, 0xFAFF),  # CJK compatibility ideographs
        (0xFE10, 0xFE1F),  # vertical forms
        (0xFE30, 0xFE4F),  # CJK compatibility forms
        (0xFF00, 0xFFEF),  # half-width and full-width forms
        (0x20000, 0x2FA1F),  # CJK extensions B to F, compatibility supplement
    ),
}


def script_ranges(languages: Sequence[str]) -> Ranges:
    """The code-point ranges kept for ``languages``, the common ones included."""
    unknown = [x for x in languages if x not in LANGUAGE_RANGES]
    if unknown or not languages:
        raise InvalidComponentConfigError(
            "vocabulary pruning",
            "languages",
            f"names {unknown or 'no language'}, which has no script ranges",
            f"use some of {sorted(LANGUAGE_RANGES)}, or add the language's ranges to "
            "LANGUAGE_RANGES in rasa_llm/models/vocab_pruning.py",
        )
    ranges = list(COMMON_RANGES)
    for language in languages:
        ranges.extend(LANGUAGE_RANGES[language])
    return tuple(sorted(ranges))


def kept_piece_ids(
    pieces: Sequence[str], *, languages: Sequence[str], always: Sequence[int]
) -> np.ndarray:
    """Sorted ids of the pieces whose characters all lie in ``languages``' scripts.

    ``always`` (the special tokens) are kept whatever they are made of.
    """
    ranges = script_ranges(languages)
    starts = np.array([a for a, _ in ranges])
    ends = np.array([b for _, b in ranges])
    allowed: Dict[str, bool] = {}

    def in_scripts(char: str) -> bool:
        if char not in allowed:
            code = ord(char)
            allowed[char] = bool(np.any((starts <= code) & (code <= ends)))
        return allowed[char]

    keep = {i for i, piece in enumerate(pieces) if piece and all(map(in_scripts, piece))}
    keep.update(always)
    return np.array(sorted(keep), dtype=np.int64)


def prune_tokenizer_json(tokenizer: Mapping[str, Any], kept: np.ndarray) -> Dict[str, Any]:
    """A copy of a Unigram ``tokenizer.json`` holding only the ``kept`` ids, renumbered.

    New id ``i`` is old id ``kept[i]``: the embedding rows are taken in the same order.
    Special tokens keep their pieces and get their new ids everywhere the file names
    them (the Unigram ``unk_id``, ``added_tokens`` and the post-processor's template).
    """
    model = tokenizer["model"]
    new_id = {int(old): new for new, old in enumerate(kept)}
    # Copies of the parts that change; the 250,000-row vocabulary is never deep-copied.
    pruned: Dict[str, Any] = dict(tokenizer)
    pruned["model"] = {**model, "vocab": [model["vocab"][int(old)] for old in kept]}
    if model.get("unk_id") is not None:
        pruned["model"]["unk_id"] = new_id[int(model["unk_id"])]
    pruned["added_tokens"] = [
        {**token, "id": new_id[int(token["id"])]} for token in tokenizer.get("added_tokens", [])
    ]
    processor = tokenizer.get("post_processor")
    if processor and "special_tokens" in processor:
        pruned["post_processor"] = {
            **processor,
            "special_tokens": {
                name: {**special, "ids": [new_id[int(i)] for i in special["ids"]]}
                for name, special in processor["special_tokens"].items()
            },
        }
    return pruned
