"""Shared helpers of the gateware unit tests."""

from __future__ import annotations

import gc
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable


def refused(make, error, match):
    """`make()` raises `error`. The component its constructor leaves half built is collected here: its
    UnusedElaboratable warning is expected, and left to the collector would surface in some later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(error, match=match):
            make()
        gc.collect()
