"""A passage of the knowledge base, and a passage found for a question."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Passage:
    """One section of a knowledge-base file: what retrieval finds and the prompt quotes."""

    # Stable id: "<file relative to the knowledge directory>#<section slug>".
    id: str
    # The file it came from, relative to the knowledge directory.
    source: str
    # The section heading (or the file name when the file has no headings).
    title: str
    # The section's text, without the heading line.
    text: str


@dataclass(frozen=True)
class RetrievedPassage:
    """A passage with its cosine similarity to the question (higher is closer)."""

    passage: Passage
    score: float
