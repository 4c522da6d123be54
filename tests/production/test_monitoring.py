"""The health endpoint and the Prometheus metrics of the production servers."""

from __future__ import annotations

import uuid
from typing import Dict

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.production.conftest import Production
from tests.production.test_scale_out import say
from tests.rasa_process import api_headers

pytestmark = pytest.mark.integration


def health(url: str) -> requests.Response:
    return requests.get(f"{url}/webhooks/monitoring/health", timeout=30)


def samples(url: str) -> Dict[str, float]:
    """Every sample of a scrape, keyed ``name{label=value,...}``."""
    text = requests.get(
        f"{url}/webhooks/monitoring/metrics", headers=api_headers(), timeout=30
    ).text
    result: Dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "pid")
            key = f"{sample.name}{{{labels}}}"
            result[key] = result.get(key, 0.0) + sample.value
    return result


def test_health_is_ok_when_every_part_answers(production: Production):
    for url in production.urls:
        answer = health(url)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "status": "ok",
            "checks": {
                "model": "ok", "tracker_store": "ok", "lock_store": "ok", "action_server": "ok",
            },
        }  # fmt: skip


def test_metrics_count_messages_sentiment_and_latency(production: Production):
    url = production.urls[1]
    before = samples(url)
    sender = f"metrics-{uuid.uuid4()}"
    for text in ("hello there", "this is the worst service I have ever had", "goodbye"):
        assert say(url, sender, text)
    after = samples(url)

    def grew(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("rasa_llm_messages_total{channel=rest}") == 3
    assert grew("rasa_llm_response_seconds_count{}") == 3
    assert grew("rasa_llm_sentiment_total{label=negative}") >= 1
    assert sum(grew(k) for k in after if k.startswith("rasa_llm_sentiment_total")) == 3
    assert 0 < grew("rasa_llm_response_seconds_sum{}") < 3 * 60


def test_the_metrics_of_two_workers_add_up_in_one_scrape(production: Production):
    url = production.urls[0]  # two Sanic workers, PROMETHEUS_MULTIPROC_DIR set
    key = "rasa_llm_messages_total{channel=rest}"
    before = samples(url).get(key, 0.0)
    for index in range(8):
        assert say(url, f"workers-{index}-{uuid.uuid4()}", "hello there")
    # Whichever worker answers the scrape, it reports both workers' messages.
    for _ in range(6):
        assert samples(url)[key] - before == 8


def test_health_says_unavailable_while_the_database_is_down_and_recovers(
    production: Production,
):
    url = production.urls[1]
    production.postgres.pause()
    try:
        answer = health(url)
        assert answer.status_code == 503, answer.text
        checks = answer.json()["checks"]
        assert checks["tracker_store"].startswith("unreachable"), checks
        assert checks["lock_store"] == "ok" and checks["model"] == "ok"
    finally:
        production.postgres.resume()
    answer = health(url)
    assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text
