"""Content words: the words of a text that carry its meaning, lower-cased and stemmed.

Shared by the reply guard and by sentence grounding, so both compare words the same
way: stop-words and customer-service filler ("sorry", "help", "happy") are dropped, and
a light suffix stripper makes "refunds", "refunded" and "refunding" one word.
"""

from __future__ import annotations

import re
from typing import List

_WORD_PATTERN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each either else even ever every few for from
    further get gets getting got had hadn't has hasn't have haven't having he her here hers
    herself him himself his how however i i'd i'll i'm i've if in into is isn't it it's its
    itself just let let's like may me might more most must mustn't my myself no nor not now
    of off on once one only or other ought our ours ourselves out over own per please same
    shall she should shouldn't so some such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those
    through to too under until up upon us very via was wasn't we we'd we'll we're we've were
    weren't what what's when where which while who whom why will with within without won't
    would wouldn't yes yet you you'd you'll you're you've your yours yourself yourselves
    sorry thanks thank hello hi hey dear welcome glad happy help assist assistance
    apologise apologize apologies understand unfortunately certainly sure course kindly
    feel contact let know question questions anything else today great""".split()
)
# Longest first; "e" makes "charge" and "charged" meet at "charg".
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("ly", ""), ("e", ""))


def words(text: str) -> List[str]:
    """The lower-cased words of ``text``, with typographic apostrophes made plain."""
    return [w.replace("’", "'") for w in _WORD_PATTERN.findall(text.lower())]


def stem(word: str) -> str:
    """A light suffix stripper: "refunds", "refunded", "refunding" -> "refund"."""
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    if word.endswith("ery") and len(word) > 5:
        return word[:-1]  # "delivery" -> "deliver"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def content_words(text: str) -> List[str]:
    """The stemmed content words of ``text``, in order (repeats kept)."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]
