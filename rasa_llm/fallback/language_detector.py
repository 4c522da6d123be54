"""Which language a short customer message or generated reply is written in.

Deterministic and free of dependencies, because it runs on every fallback turn and
its only job is a guardrail: "the customer wrote German, the model answered in
English". Two steps:

1. The writing system. A text that is mostly Cyrillic, Greek, Hebrew, Arabic,
   Devanagari, Hangul, kana or Han has its language (or the most likely one) at once.
2. For Latin script, a profile of function words ("the", "und", "est", "que") for
   en, es, fr, de, it, pt and nl. Such words are the most frequent and the least
   topical words of a language, so even a short message holds a few of them.

It answers ``None`` rather than guess: for one-word messages, for text with too few
function words, and when two languages score close (Spanish and Portuguese share many
words). Callers treat ``None`` as "unknown" and skip language checks.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Dict, FrozenSet, Optional

__all__ = ["detect_language", "LATIN_LANGUAGES"]

# A text needs at least this many function words of the winning language.
MIN_HITS = 2
# The winner's score must be at least this many times the runner-up's...
MIN_RATIO = 1.5
# ...and ahead by at least this much (scores are weighted, see _latin_language).
MIN_MARGIN = 1.0
# A non-Latin script decides only when it holds this share of the (weighted) letters.
MIN_SCRIPT_SHARE = 0.6
# Fewer letters than this in the dominant non-Latin script is too short to say.
MIN_SCRIPT_LETTERS = 2

# Han, kana and Hangul characters each stand for about a syllable or a word, where a
# Latin letter is a fraction of one: weigh them up so that a Chinese reply that names
# "iPhone" is still Chinese.
_WIDE_SCRIPT_WEIGHT = 3

_STOPWORDS: Dict[str, FrozenSet[str]] = {
    "en": frozenset(
        """the a an and or but is are was were be been being have has had do does did
        i you he she it we they me us him them my your our their its this that these
        those what where when why how who which can could would should will shall not no
        with for from to of in on at by about into there here please thanks thank hi
        hello if just any all yet still am than then so very too need want got get
        within after before during until over also only more most some each every
        other such same via per because while through again once off both many much
        now never always yours don't doesn't didn't can't won't i'm i've it's you're""".split()
    ),
    "es": frozenset(
        """el la los las un una unos unas de del y o que en a por para con sin mi mis tu
        tus su sus es son está están estoy estaba he ha han hemos hay no sí se me te lo
        le les nos cuando donde dónde cómo como qué cuál cuánto pero muy más ya todavía
        aún yo usted ustedes hola gracias quiero puedo puede necesito al este esta esto
        porque pedido tengo tiene""".split()
    ),
    "fr": frozenset(
        """le la les un une des du de et ou que qui est sont suis ai as a avez avons ont
        je tu il elle nous vous ils elles mon ma mes ton ta tes votre vos notre nos ce
        cette ces pour par avec sans dans sur pas ne plus très mais où quand comment
        pourquoi bonjour merci j qu c d l n au aux en y été était toujours encore
        commande reçu peux pouvez veux voudrais""".split()
    ),
    "de": frozenset(
        """der die das den dem des ein eine einen einem einer und oder aber ist sind bin
        war habe hat haben ich du er sie es wir ihr mein meine meinen meiner mir mich
        dein ihre nicht kein keine keinen mit für von zu auf an im bei aus noch schon
        wann wo wie was warum bitte danke hallo kann können möchte wurde wird werden
        nach nur auch sehr meinem bestellung""".split()
    ),
    "it": frozenset(
        """il lo la i gli le un uno una di del della dello dei delle e è o che non per con
        su da in nel nella mio mia miei mie tuo tua suo sua sono sei ho hai ha abbiamo
        avete hanno ma come dove quando perché cosa grazie ciao buongiorno vorrei posso
        può ancora già l anche molto questo questa mi ti ci si ordine ricevuto""".split()
    ),
    "pt": frozenset(
        """o a os as um uma de do da dos das e é ou que não para por com sem em no na nos
        nas meu minha meus minhas seu sua eu você ele ela está estou são foi tenho tem
        mas como onde quando porque obrigado obrigada olá ainda já muito quero posso pode
        ao aos pelo pela pedido recebi preciso""".split()
    ),
    "nl": frozenset(
        """de het een en of is zijn ben heb heeft hebben ik jij je u hij zij ze wij we
        mijn uw jouw ons onze niet geen met voor van naar op in aan bij uit nog al
        wanneer waar hoe wat waarom alstublieft bedankt dank hallo kan kunt wil wilt
        graag maar ook dat deze die dit er te om wordt bestelling ontvangen""".split()
    ),
}
LATIN_LANGUAGES = tuple(_STOPWORDS)

# How many profiles hold each word: a word shared by k languages counts 1/k for each,
# so that "de" (five languages) says little and "the" (English only) says a lot.
_SHARED_BY: Counter[str] = Counter(w for words in _STOPWORDS.values() for w in words)

# Words, with apostrophes inside kept ("don't") and French/Italian elisions cut off
# ("j'ai" -> "j", "ai") by trying the whole word first, then its parts.
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def detect_language(text: str) -> Optional[str]:
    """The ISO 639-1 code of ``text``'s language, or ``None`` when too short or unclear."""
    script = _dominant_script(text)
    if script is None:
        return None
    if script != "latin":
        return script
    return _latin_language(text)


def _script_of(char: str) -> Optional[str]:
    """The language a letter's script points to, "latin", or None for other characters."""
    if not char.isalpha():
        return None
    code = ord(char)
    if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF:
        return "ja"  # hiragana and katakana: only Japanese writes them
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "ko"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "zh"  # Han: Chinese unless kana shows up (handled in _dominant_script)
    name = unicodedata.name(char, "")
    for prefix, language in (
        ("LATIN", "latin"),
        ("CYRILLIC", "ru"),  # the most common Cyrillic language; uk/bg/sr share it
        ("GREEK", "el"),
        ("HEBREW", "he"),
        ("ARABIC", "ar"),
        ("DEVANAGARI", "hi"),
        ("THAI", "th"),
    ):
        if name.startswith(prefix):
            return language
    return None


def _dominant_script(text: str) -> Optional[str]:
    weights: Counter[str] = Counter()
    letters: Counter[str] = Counter()
    for char in text:
        script = _script_of(char)
        if script is None:
            continue
        letters[script] += 1
        weights[script] += _WIDE_SCRIPT_WEIGHT if script in ("ja", "ko", "zh") else 1
    # Japanese mixes kana with Han (kanji): any kana makes the Han part Japanese too.
    if letters["ja"] and letters["zh"]:
        letters["ja"] += letters.pop("zh")
        weights["ja"] += weights.pop("zh")
    total = sum(weights.values())
    if not total:
        return None
    script, weight = weights.most_common(1)[0]
    if weight / total < MIN_SCRIPT_SHARE:
        return None  # mixed scripts: no honest single answer
    if script != "latin" and letters[script] < MIN_SCRIPT_LETTERS:
        return None
    return script


def _words(text: str) -> list[str]:
    words: list[str] = []
    for match in _WORD.finditer(text.lower().replace("’", "'")):
        word = match.group(0)
        if word in _SHARED_BY or "'" not in word:
            words.append(word)
        else:
            words.extend(word.split("'"))
    return words


def _latin_language(text: str) -> Optional[str]:
    hits: Counter[str] = Counter()
    scores: Dict[str, float] = {language: 0.0 for language in _STOPWORDS}
    for word in _words(text):
        shared_by = _SHARED_BY.get(word, 0)
        if not shared_by:
            continue
        for language, words in _STOPWORDS.items():
            if word in words:
                hits[language] += 1
                scores[language] += 1.0 / shared_by
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    if hits[best] < MIN_HITS:
        return None
    if best_score < MIN_RATIO * second_score or best_score - second_score < MIN_MARGIN:
        return None
    return best
