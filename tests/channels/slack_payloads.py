"""Moved to :mod:`bench.support.slack_payloads` (the benchmarks use it too): many imports."""

from bench.support.slack_payloads import *  # noqa: F401,F403
