"""Bearer tokens: the one way every rasa-llm route reads and checks a caller's token.

``Authorization: Bearer <token>`` is read the same way everywhere (scheme in any case,
surrounding spaces ignored) and compared in constant time, so that no route answers a
guess faster when more of it is right.
"""

from __future__ import annotations

import hmac
from typing import Mapping, Optional, Tuple

__all__ = ["bearer_token", "refusal"]

MISSING = (401, "missing bearer token")
WRONG = (403, "wrong bearer token")


def bearer_token(headers: Mapping[str, str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def refusal(headers: Mapping[str, str], expected: str) -> Optional[Tuple[int, str]]:
    """None when the request's bearer token is ``expected``; else (status, reason):
    401 without a bearer token, 403 with another one.
    """
    given = bearer_token(headers)
    if given is None:
        return MISSING
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return WRONG
    return None
