"""PostgreSQL stops for a moment: messages wait for it, and no conversation loses anything."""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.production.conftest import Production
from tests.production.test_scale_out import assert_conversation, say

pytestmark = pytest.mark.integration


def test_a_message_during_a_short_outage_is_answered_and_kept_in_order(production: Production):
    sender = f"outage-{uuid.uuid4()}"
    assert say(production.urls[1], sender, "hello")
    production.postgres.pause()
    # Back after 3 s: inside the tracker store's 10 s of retries.
    restart = threading.Timer(3.0, production.postgres.resume)
    restart.start()
    try:
        replies = say(production.urls[1], sender, "where is order 10023?")
    finally:
        restart.join()
    assert any("10023" in (r.get("text") or "") for r in replies), replies
    # The other server's pooled connections all went stale in the restart: checked
    # before use, they are replaced instead of costing this conversation its context.
    assert say(production.urls[0], sender, "thank you")
    assert_conversation(production.urls[0], sender, ["hello", "where is order 10023?", "thank you"])
