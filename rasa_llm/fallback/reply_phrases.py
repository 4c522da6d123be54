"""Phrases no generated reply may contain: a request for a secret, a claim of an action.

The fallback can only answer; it cannot cancel an order or block a card, so a reply
that says it did is false whatever the passages say. And no honest assistant asks for a
password, PIN or card number ("we will never ask for your PIN" is fine). Both checks
are patterns over the reply's sentences; :class:`~rasa_llm.fallback.reply_guard.ReplyGuard`
turns a match into the ``asks_for_secret`` or ``claims_action`` failure.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["asks_for_secret", "claims_action"]

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_SECRET = re.compile(
    r"\b(?:pass(?:word|code|phrase)s?|pins?|pin\s+(?:code|number)|cvv2?|cvc2?|csc|"
    r"security\s+code|card\s+(?:number|details)|long\s+number|one[- ]time\s+(?:pass)?"
    r"(?:code|password)|otp|verification\s+code|sms\s+code|(?:code|number)\s+(?:we|i)\s+"
    r"(?:just\s+)?(?:sent|texted)|online[- ]banking|log[- ]?in\s+(?:details|credentials)|"
    r"memorable\s+(?:word|information))\b",
    re.I,
)
# Asking the customer for something. Verbs that are also nouns or describe using a
# secret in the app ("the email address and password", "confirm with your passcode",
# "enter your PIN at the till") count only in their asking form.
_REQUEST = re.compile(
    r"\b(?:send|provide|share|give|tell|confirm(?!\s+with\b)|reply\s+with|respond\s+with|"
    r"(?:text|write|e-?mail|message|dm)\s+(?:me|us)|submit|read\s+out|let\s+(?:me|us)\s+know|"
    r"require|ask(?:\s+you)?\s+for|(?:i|we)(?:'ll|\s+will|\s+would)?\s+need|what\s+(?:is|are)"
    r"\s+your|what's\s+your|(?:may|can|could)\s+(?:i|we)\s+(?:have|get)|(?:enter|type|paste)"
    # "Enter" asks the customer unless it says where else the secret goes (the app, a
    # cash machine, the sign-in page): "please enter your card number and PIN" asks.
    r"(?![^.!?]*\b(?:app|cash\s+machines?|atms?|sign-in|website|page|terminal|keypad|"
    r"card\s+reader)\b))\b",
    re.I,
)
_NEGATION = re.compile(
    r"\b(?:never|not|no\s+one|nobody|don't|do\s+not|doesn't|won't|wouldn't|shouldn't|"
    r"mustn't|cannot|can't|avoid|under\s+no\s+circumstances)\b",
    re.I,
)
_PARTIAL_CARD = re.compile(r"\blast\s+(?:four|4|two|2)\s+digits\b", re.I)

_DONE = (
    r"(?:cancell?ed|processed|issued|refunded|reset|escalated|updated|changed|blocked|froze|"
    r"frozen|unblocked|unfrozen|sent|submitted|arranged|booked|scheduled|credited|reversed|"
    r"approved|initiated|raised|forwarded|transferred|removed|replaced|activated|"
    r"deactivated|reactivated|fixed|resolved|reported|shipped|dispatched|deleted|flagged|"
    r"disputed|waived|corrected|renewed|upgraded|downgraded|verified|restored|unlocked|"
    r"locked|closed|passed\s+(?:it|this|that|your\s+\w+)\s+on|taken\s+care\s+of)"
)
_ADVERBS = r"(?:\s+(?:just|already|now|successfully|gone\s+ahead\s+and|went\s+ahead\s+and))*"
_CLAIMS = [
    # "I have cancelled your order", "I've processed your refund", "we sent you a code".
    re.compile(rf"\b(?:i|we)(?:'ve|\s+have|'d|\s+had)?{_ADVERBS}\s+{_DONE}\b", re.I),
    # "your refund has been issued", "your card is now blocked", "the order was cancelled".
    re.compile(
        rf"\b(?:your|the|this)\s+(?:[\w-]+\s+){{0,5}}?[\w-]+(?:\s+(?:has|have|had)|'s)"
        rf"{_ADVERBS}\s+been{_ADVERBS}\s+{_DONE}\b",
        re.I,
    ),
    re.compile(
        rf"\b(?:your|the|this)\s+(?:[\w-]+\s+){{0,5}}?[\w-]+(?:\s+(?:was|were)|(?:\s+is|\s+are|'s)"
        rf"(?=\s+(?:now|already|successfully)\b)){_ADVERBS}\s+{_DONE}\b",
        re.I,
    ),
    # "I'm cancelling it now", "we are processing your refund".
    re.compile(
        r"\b(?:i'm|i\s+am|we're|we\s+are)\s+(?:now\s+)?(?:cancell?ing|processing|issuing|"
        r"refunding|resetting|escalating|updating|changing|blocking|freezing|sending|"
        r"transferring|forwarding|arranging|unblocking|reversing)\s+(?:your|it|this|that|them)\b",
        re.I,
    ),
]
# "Your refund should have been issued" is a guess; "the items that were shipped" a
# description. Neither claims a deed.
_NOT_A_CLAIM = re.compile(
    r"\b(?:will|would|should|could|might|may|must|can|that|which|who|whose|where)\b", re.I
)
# Where the object of a request ends: a new clause with its own subject begins.
_CLAUSE_END = re.compile(
    r"[,;:]|\b(?:and|or|so|then|but|because|to|if|when|that)\s+(?:we|i|i'll|we'll|our|they|"
    r"it|you)\b",
    re.I,
)
# A claim in a clause that starts like this describes a policy, not a done deed.
_CONDITION = re.compile(
    r"\b(?:if|once|when|whenever|after|as\s+soon\s+as|until|unless|before|in\s+case|"
    r"provided)\b",
    re.I,
)


def _clauses_before(sentence: str, position: int) -> str:
    """The part of the clause that precedes ``position`` in ``sentence``."""
    head = sentence[:position]
    return re.split(r"[,;:]|\bbut\b|\band\b", head)[-1]


def asks_for_secret(reply: str) -> Optional[str]:
    """The secret a sentence of ``reply`` asks the customer for (lower-cased), or None."""
    for sentence in _SENTENCE.findall(reply):
        for request in _REQUEST.finditer(sentence):
            # The object of the request: the rest of its clause, up to a dozen words.
            rest = sentence[request.end() :]
            window = " ".join(_CLAUSE_END.split(rest, maxsplit=1)[0].split()[:12])
            secret = _SECRET.search(window)
            if not secret or _PARTIAL_CARD.search(window):
                continue
            if re.match(r"you\b", window, re.I):
                continue  # "we'll send you a one-time code" gives, it does not ask
            if _NEGATION.search(_clauses_before(sentence, request.start())):
                continue  # "we will never ask for your PIN", "don't share your password"
            return secret.group(0).lower()
    return None


def claims_action(reply: str, passages: str) -> Optional[str]:
    """The last words of an action ``reply`` claims was done, or None.

    A claim quoted from ``passages`` with its object is the business speaking, not the bot.
    """
    quoted = " ".join(passages.lower().split())
    for sentence in _SENTENCE.findall(reply):
        for pattern in _CLAIMS:
            for match in pattern.finditer(sentence):
                if _NOT_A_CLAIM.search(match.group(0)):
                    continue
                if _CONDITION.search(_clauses_before(sentence, match.start())):
                    continue  # "once we have processed your return, we refund you"
                # A claim quoted from a passage with its object ("we have updated our
                # returns policy") is the business speaking, not the bot acting.
                claim = " ".join(sentence[match.start() :].lower().split()[:6])
                if claim.rstrip(".!?") in quoted:
                    continue
                return " ".join(match.group(0).split()[-2:]).lower()
    return None
