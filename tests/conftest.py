"""Fixtures shared across test modules."""

import os

import pytest
from sim_helpers import session_cache

from hwgen.simrunner import OPT_FAST_ENV

# the suite's cocotb designs each run a few thousand cycles: compiling them without C++
# optimization halves their CPU time (hwgen/simrunner.py)
os.environ.setdefault(OPT_FAST_ENV, "-O0")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The session's Verilator build cache (see sim_helpers.session_cache)."""
    return session_cache(tmp_path_factory)
