import pytest

from channels.rate_limits import (
    Rate,
    RateLimited,
    RateLimiter,
    RateSettingError,
    parse_rate,
    read_rates,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "rate"),
    [("30/minute", Rate(30, 60.0)), (" 5 / seconds", Rate(5, 1.0)), ("1/day", Rate(1, 86400.0))],
)
def test_rates_are_read(text, rate):
    assert parse_rate(text) == rate
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("off", [None, "off", " OFF "])
def test_off_means_no_limit(off):
    assert parse_rate(off) is None
    assert RateLimiter(parse_rate(off)).take("k") is None


@pytest.mark.parametrize("bad", ["30", "0/minute", "30/fortnight", 30, "-1/second", ["1/second"]])
def test_bad_rates_say_how_to_write_one(bad):
    with pytest.raises(ValueError, match="COUNT/PERIOD"):
        parse_rate(bad)


def test_a_burst_then_one_per_interval_and_refusals_cost_nothing():
    clock = Clock()
    limiter = RateLimiter(Rate(3, 60.0), clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    wait = limiter.take("a")
    assert wait == pytest.approx(20.0)
    assert limiter.take("b") is None  # other keys are not affected
    clock.now += 19.0
    assert limiter.take("a") == pytest.approx(1.0)  # the refusal above spent nothing
    clock.now += 1.0
    assert limiter.take("a") is None
    assert limiter.take("a") is not None


def test_check_raises_a_429_with_whole_seconds():
    limiter = RateLimiter(Rate(1, 10.0), clock=Clock())
    limiter.check("a", "messages")
    with pytest.raises(RateLimited) as refused:
        limiter.check("a", "messages")
    assert refused.value.status == 429
    assert refused.value.retry_after == 10
    assert "too many messages" in refused.value.reason


def test_the_table_forgets_the_least_recently_used_keys():
    limiter = RateLimiter(Rate(1, 60.0), clock=Clock(), max_keys=2)
    for key in ("a", "b", "c"):
        limiter.take(key)
    assert len(limiter) == 2
    assert limiter.take("a") is None  # forgotten, so a fresh bucket


def test_a_channels_rate_limits_are_read_over_its_defaults():
    defaults = {"conversation": "30/minute", "address": "600/minute"}
    rates = read_rates({"address": "off"}, defaults)
    assert rates == {"conversation": Rate(30, 60.0), "address": None}


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("30/minute", "rate_limits"),
        ({"conversations": "1/second"}, "rate_limits.conversations"),
        ({"conversation": "lots"}, "rate_limits.conversation"),
    ],
)
def test_bad_rate_limits_name_the_key_and_show_the_defaults(value, key):
    with pytest.raises(RateSettingError) as refused:
        read_rates(value, {"conversation": "30/minute"})
    assert refused.value.key == key
    assert 'conversation: "30/minute"' in refused.value.fix or "Valid keys" in refused.value.fix
