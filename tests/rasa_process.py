"""Moved to :mod:`bench.support.rasa_process` (the benchmarks use it too): many imports."""

from bench.support.rasa_process import *  # noqa: F401,F403
