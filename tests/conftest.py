"""Fixtures shared across test modules."""

import pytest
from sim_helpers import session_cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The session's Verilator build cache (see sim_helpers.session_cache)."""
    return session_cache(tmp_path_factory)
