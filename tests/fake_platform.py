"""Moved to :mod:`bench.support.fake_platform` (the benchmarks use it too): many imports."""

from bench.support.fake_platform import *  # noqa: F401,F403
