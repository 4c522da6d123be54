"""What a customer writes stays out of the server's log, even at debug level."""

from __future__ import annotations

import uuid

import pytest

from tests.production.conftest import Production
from tests.production.test_scale_out import say

pytestmark = pytest.mark.integration


def test_a_debug_log_holds_no_customer_text_email_or_phone(production: Production):
    server = production.servers[1]  # started with --debug
    text = "my parcel for dana.quokka@example.com never came, ring me on +44 7700 900123"
    before = len(server.log())
    assert say(server.url, f"privacy-{uuid.uuid4()}", text)
    log = server.log()[before:]
    # Rasa did log this message at debug level, with the customer's part taken out.
    assert "processor.message.parse" in log and "[redacted]" in log, log[-3000:]
    for secret in (text, "parcel for", "never came", "dana.quokka", "7700 900123"):
        assert secret not in log, f"{secret!r} is in the debug log"
