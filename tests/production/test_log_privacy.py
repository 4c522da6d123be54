"""What a customer writes stays out of the server's log, even at debug level."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.production.conftest import Production
from tests.production.test_scale_out import say
from tests.rasa_process import REST_CREDENTIALS, RasaServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def debug_server(
    bot_model: Path, production: Production, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaServer]:
    """`rasa run --debug` apart from the production pair: at debug level Rasa also turns
    on asyncio's debug mode, far too slow for the load test."""
    workdir = tmp_path_factory.mktemp("debug-log")
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "{production.actions.url}/webhook"\n'
        "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: rasa.db\n"
    )
    credentials = workdir / "credentials.yml"
    credentials.write_text(REST_CREDENTIALS)
    server = RasaServer(
        bot_model, workdir, credentials=credentials, endpoints=endpoints, extra_args=["--debug"]
    )
    with server:
        yield server


def test_a_debug_log_holds_no_customer_text_email_or_phone(debug_server: RasaServer):
    text = "my parcel for dana.quokka@example.com never came, ring me on +44 7700 900123"
    before = len(debug_server.log())
    assert say(debug_server.url, f"privacy-{uuid.uuid4()}", text)
    log = debug_server.log()[before:]
    # Rasa did log this message at debug level, with the customer's part taken out.
    assert "processor.message.parse" in log and "[redacted]" in log, log[-3000:]
    for secret in (text, "parcel for", "never came", "dana.quokka", "7700 900123"):
        assert secret not in log, f"{secret!r} is in the debug log"
