import pytest

from rasa_llm.server.bearer_tokens import bearer_token, refusal

TOKEN = "bearer-unit-token-0123456789"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer   {TOKEN} ", TOKEN),
        ("Bearer ", None),
        (f"Basic {TOKEN}", None),
        (TOKEN, None),
        ("", None),
    ],
)
def test_the_token_of_a_bearer_header(header, token):
    assert bearer_token({"authorization": header}) == token


def test_missing_is_401_another_token_403_the_right_one_passes():
    assert refusal({}, TOKEN) == (401, "missing bearer token")
    assert refusal({"authorization": "Bearer x" * 3}, TOKEN) == (403, "wrong bearer token")
    assert refusal({"authorization": f"Bearer {TOKEN}"}, TOKEN) is None
