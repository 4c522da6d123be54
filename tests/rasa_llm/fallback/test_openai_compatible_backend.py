"""OpenAICompatibleBackend against a real local HTTP server speaking the wire format."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Iterator, List

import pytest

from rasa_llm.fallback.backend_factory import create_backend
from rasa_llm.fallback.generation_backend import ChatMessage, GenerationError, GenerationTimeout
from rasa_llm.fallback.openai_compatible_backend import OpenAICompatibleBackend
from tests.rasa_llm.fallback.openai_fake_server import FakeOpenAIServer

KEY = "sk-test-123"
CUSTOMER_TEXT = "my card 4111 1111 1111 1111 was charged twice"
MESSAGES: List[ChatMessage] = [
    {"role": "system", "content": "Answer from the passages only."},
    {"role": "user", "content": CUSTOMER_TEXT},
]


@pytest.fixture()
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as fake:
        yield fake
    # The client must not take any other route than POST /v1/chat/completions.
    assert fake.unexpected == []


def make_backend(server: FakeOpenAIServer, **overrides: Any) -> OpenAICompatibleBackend:
    settings = {
        "base_url": server.base_url,
        "model": server.served_model,
        "api_key": KEY,
        "temperature": 0.0,
        "extra_headers": {},
        **overrides,
    }
    return OpenAICompatibleBackend(**settings)


def generate_once(backend: Any, *, max_new_tokens: int = 50, deadline_s: float = 5.0) -> str:
    async def call() -> str:
        try:
            return str(
                await backend.generate(
                    MESSAGES, max_new_tokens=max_new_tokens, deadline_s=deadline_s
                )
            )
        finally:
            await backend.close()

    return asyncio.run(asyncio.wait_for(call(), 30))


def test_happy_path_sends_the_wire_format_through_the_factory(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    server.reply = "  Your refund arrives within 5 business days.\n"
    backend = create_backend(
        {
            "backend": "openai",
            "openai": {
                "base_url": server.base_url + "/",  # a trailing slash is harmless
                "model": "test-model",
                "api_key_env": "TEST_LLM_KEY",
                "extra_headers": {"X-Gateway": "support-bot"},
            },
        }
    )

    reply = generate_once(backend, max_new_tokens=64)

    assert reply == "Your refund arrives within 5 business days."
    assert backend.name == "openai:test-model"
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Answer from the passages only."},
            {"role": "user", "content": CUSTOMER_TEXT},
        ],
        "max_tokens": 64,
        "temperature": 0.0,
        "stream": False,
    }
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["X-Gateway"] == "support-bot"


def test_one_session_serves_many_requests(server: FakeOpenAIServer) -> None:
    backend = make_backend(server)

    async def three() -> List[str]:
        replies = [
            await backend.generate(MESSAGES, max_new_tokens=8, deadline_s=5) for _ in range(3)
        ]
        session = backend._session
        await backend.close()
        assert session is not None and session.closed
        return replies

    assert backend._session is None  # nothing is opened before the first request
    replies = asyncio.run(three())

    assert len(replies) == 3 and len(server.requests) == 3


def test_wrong_key_is_a_generation_error_with_the_status(server: FakeOpenAIServer) -> None:
    with pytest.raises(GenerationError) as error:
        generate_once(make_backend(server, api_key="sk-wrong"))

    assert "401" in str(error.value) and "invalid_api_key" in str(error.value)
    assert not isinstance(error.value, GenerationTimeout)


def test_missing_key_is_refused_by_a_server_that_wants_one(server: FakeOpenAIServer) -> None:
    with pytest.raises(GenerationError, match="401"):
        generate_once(make_backend(server, api_key=None))
    assert "Authorization" not in server.requests[0].headers


def test_server_error_names_the_status_but_not_the_body(server: FakeOpenAIServer) -> None:
    server.status = 500
    # Servers often quote the request in their error text: it must not reach our logs.
    server.error_body = {"error": {"message": f"failed on: {CUSTOMER_TEXT}", "code": 500}}

    with pytest.raises(GenerationError) as error:
        generate_once(make_backend(server))

    assert "500" in str(error.value)
    assert "4111" not in str(error.value) and "charged" not in str(error.value)


def test_unknown_model_is_a_404_with_the_hint(server: FakeOpenAIServer) -> None:
    with pytest.raises(GenerationError) as error:
        generate_once(make_backend(server, model="no-such-model"))
    assert "404" in str(error.value) and "model_not_found" in str(error.value)


def test_wrong_base_url_path_is_reported(server: FakeOpenAIServer) -> None:
    base_without_v1 = server.base_url.removesuffix("/v1")

    with pytest.raises(GenerationError, match="404.*/v1"):
        generate_once(make_backend(server, base_url=base_without_v1))

    # The fake saw the call it did not expect; that is what this test is about.
    assert server.unexpected == ["POST /chat/completions"]
    server.unexpected.clear()


@pytest.mark.parametrize(
    ("raw_body", "expected"),
    [
        ("{not json", "not JSON"),
        ('{"id": "x", "choices": []}', "no choices"),
        ('{"id": "x"}', "no choices"),
        ('["a list"]', "no choices"),
        ('{"choices": [{"message": {"role": "assistant", "content": null}}]}', "no text"),
        ('{"choices": [{"message": {"role": "assistant", "content": "  "}}]}', "empty"),
    ],
)
def test_malformed_replies_are_generation_errors(
    server: FakeOpenAIServer, raw_body: str, expected: str
) -> None:
    server.raw_body = raw_body
    with pytest.raises(GenerationError, match=expected):
        generate_once(make_backend(server))


def test_reply_cut_by_the_token_limit_is_still_returned(
    server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply = "Your refund arrives within"
    server.finish_reason = "length"

    with caplog.at_level("INFO"):
        reply = generate_once(make_backend(server), max_new_tokens=4)

    assert reply == "Your refund arrives within"
    assert "reason=finish_length" in caplog.text
    assert CUSTOMER_TEXT not in caplog.text and "refund" not in caplog.text


def test_slow_server_times_out_within_the_deadline(server: FakeOpenAIServer) -> None:
    server.delay_s = 5.0

    began = time.monotonic()
    with pytest.raises(GenerationTimeout):
        generate_once(make_backend(server), deadline_s=0.4)

    assert time.monotonic() - began < 0.4 + 0.5


def test_deadline_already_passed_sends_nothing(server: FakeOpenAIServer) -> None:
    with pytest.raises(GenerationTimeout):
        generate_once(make_backend(server), deadline_s=0)
    assert server.requests == []


def test_unreachable_server_is_a_generation_error() -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAICompatibleBackend(
        base_url=f"http://user:secret@127.0.0.1:{port}/v1",
        model="m",
        api_key=None,
        temperature=0.0,
        extra_headers={},
    )

    with pytest.raises(GenerationError) as error:
        generate_once(backend)

    assert not isinstance(error.value, GenerationTimeout)
    assert f"127.0.0.1:{port}" in str(error.value) and "secret" not in str(error.value)


def test_closed_backend_refuses_requests(server: FakeOpenAIServer) -> None:
    backend = make_backend(server)

    async def after_close() -> None:
        await backend.generate(MESSAGES, max_new_tokens=8, deadline_s=5)
        await backend.close()
        await backend.close()  # closing twice is harmless
        with pytest.raises(GenerationError, match="closed"):
            await backend.generate(MESSAGES, max_new_tokens=8, deadline_s=5)

    asyncio.run(after_close())
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, 400),  # no model
        ({"model": "test-model"}, 400),  # no messages
        ({"model": "test-model", "messages": [{"role": "robot", "content": "hi"}]}, 400),
        ({"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}, 200),
    ],
)
def test_fake_server_validates_requests_like_a_real_one(
    server: FakeOpenAIServer, body: Any, status: int
) -> None:
    import aiohttp

    async def post() -> int:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{server.base_url}/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {KEY}"},
            ) as response:
                return response.status

    assert asyncio.run(post()) == status
