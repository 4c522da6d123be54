"""The bot's knowledge base: plain Markdown files a bot builder edits, cut into passages.

Each ``## `` section of a file is one passage, so a bot builder controls what is
retrieved (and quoted verbatim when generation fails) by how they write sections. A
file without ``## `` headings is one passage. ``# `` titles name the file's subject and
are prefixed to its section titles, so "Cards › Replacement" reads well on its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from rasa_llm.errors import RasaLLMError
from rasa_llm.fallback.passage import Passage

SUFFIXES = (".md", ".markdown", ".txt")
_SECTION = re.compile(r"^##\s+(.+?)\s*#*\s*$")
_TITLE = re.compile(r"^#\s+(.+?)\s*#*\s*$")


class KnowledgeBaseError(RasaLLMError):
    """The knowledge directory is missing, empty or has a file that cannot be read."""


@dataclass(frozen=True)
class KnowledgeBase:
    """All passages of a knowledge directory, in file and section order."""

    directory: Path
    passages: Tuple[Passage, ...]

    @classmethod
    def from_directory(cls, directory: Path | str) -> KnowledgeBase:
        """Read every Markdown/text file under ``directory`` (recursively, sorted)."""
        root = Path(directory)
        if not root.is_dir():
            raise KnowledgeBaseError(
                f"Knowledge directory '{root}' does not exist. Fix: create it with one "
                f"Markdown file per topic (see bot/README.md), or point the fallback's "
                f"'knowledge_dir' at an existing directory."
            )
        passages: List[Passage] = []
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES):
            if not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise KnowledgeBaseError(
                    f"Cannot read knowledge file '{path}': {e}. Fix: save it as UTF-8 text."
                ) from e
            passages.extend(split_passages(text, source=path.relative_to(root).as_posix()))
        if not passages:
            raise KnowledgeBaseError(
                f"Knowledge directory '{root}' has no passages. Fix: add Markdown files "
                f"({', '.join(SUFFIXES)}) with '## ' sections."
            )
        return cls(root, tuple(passages))

    def fingerprint(self) -> str:
        """A hash of every passage: embeddings cached under it are stale once it changes."""
        digest = hashlib.sha256()
        for passage in self.passages:
            for part in (passage.id, passage.title, passage.text):
                digest.update(part.encode("utf-8"))
                digest.update(b"\0")
        return digest.hexdigest()[:16]


def split_passages(text: str, *, source: str) -> List[Passage]:
    """Cut one file into passages at ``## `` headings; text before the first is its own."""
    file_title = Path(source).stem.replace("_", " ").replace("-", " ").capitalize()
    sections: List[Tuple[str, List[str]]] = [("", [])]
    for line in text.splitlines():
        title_match = _TITLE.match(line)
        section_match = _SECTION.match(line)
        if title_match and not section_match and not sections[0][1] and len(sections) == 1:
            file_title = title_match.group(1)
        elif section_match:
            sections.append((section_match.group(1), []))
        else:
            sections[-1][1].append(line)
    passages: List[Passage] = []
    used: set[str] = set()
    for heading, lines in sections:
        body = _tidy("\n".join(lines))
        if not body:
            continue
        slug = _slug(heading) or "intro"
        while slug in used:
            slug += "-2"
        used.add(slug)
        title = f"{file_title} › {heading}" if heading else file_title
        passages.append(Passage(id=f"{source}#{slug}", source=source, title=title, text=body))
    return passages


def _tidy(text: str) -> str:
    # Keep paragraph breaks (lists read better), drop runs of blank lines.
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _slug(heading: str) -> str:
    # Han characters are kept: a Chinese heading ("退款时间") is its own id.
    return re.sub(r"[^a-z0-9\u3400-\u4dbf\u4e00-\u9fff]+", "-", heading.lower()).strip("-")
