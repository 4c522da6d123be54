"""Moved to :mod:`bench.support.telegram_payloads` (the benchmarks use it too): many imports."""

from bench.support.telegram_payloads import *  # noqa: F401,F403
