"""The DRAM model on its own: regions, counting, the address contract, timing profiles."""

from __future__ import annotations

import pytest

from sim.dram import OTHER, BusTiming, Dram, DramError, Region, ReqLayout


def make_dram() -> Dram:
    return Dram(4096, 8, [Region("weights", 0, 1024), Region("inputs", 1024, 512), Region("outputs", 2048, 1024)])


def test_region_lookup_covers_edges_and_gaps():
    d = make_dram()
    assert d.region_of(0) == "weights"
    assert d.region_of(1023) == "weights"
    assert d.region_of(1024) == "inputs"
    assert d.region_of(1535) == "inputs"
    assert d.region_of(1536) == OTHER  # the gap between inputs and outputs
    assert d.region_of(3071) == "outputs"
    assert d.region_of(3072) == OTHER


def test_beats_are_little_endian_and_counted_per_region():
    d = make_dram()
    d.load(1024, bytes(range(16)))
    d.check_burst(1024, 2, write=False)
    assert d.read_beat(1024) == int.from_bytes(bytes(range(8)), "little")
    assert d.read_beat(1032) == 0x0F0E0D0C0B0A0908
    d.check_burst(2048, 1, write=True)
    d.write_beat(2048, 0x1122334455667788)
    assert d.dump(2048, 8) == bytes([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    t = d.traffic_dict()
    assert t["inputs"] == {"read_bytes": 16, "write_bytes": 0, "read_bursts": 1, "write_bursts": 0}
    assert t["outputs"] == {"read_bytes": 0, "write_bytes": 8, "read_bursts": 0, "write_bursts": 1}
    assert "weights" not in t
    d.reset_traffic()
    assert d.traffic_dict() == {}


def test_host_access_is_not_counted():
    d = make_dram()
    d.load(0, b"\x01" * 64)
    assert d.dump(0, 64) == b"\x01" * 64
    assert d.traffic_dict() == {}


@pytest.mark.parametrize("addr, beats, match", [
    (1028, 1, "not aligned"),
    (0, 0, "length 0"),
    (4088, 2, "outside"),
])
def test_bad_bursts_are_rejected(addr, beats, match):
    with pytest.raises(DramError, match=match):
        make_dram().check_burst(addr, beats, write=False)


def test_overlapping_or_outside_regions_are_rejected():
    d = make_dram()
    with pytest.raises(DramError, match="overlaps"):
        d.add_region(Region("x", 1500, 100))
    with pytest.raises(DramError, match="outside"):
        d.add_region(Region("y", 4000, 200))
    with pytest.raises(DramError, match="multiple"):
        Dram(100, 8)


def test_request_layout_decodes_fields():
    lay = ReqLayout.from_dict({"addr": [0, 32], "len": [32, 16], "write": [48, 1]})
    assert lay.decode(0x1_0005_DEADBEEF) == (0xDEADBEEF, 5, True)
    assert lay.decode(0x0_0100_00000040) == (0x40, 0x100, False)


def test_timing_profiles_round_trip_and_reject_unknown():
    t = BusTiming.profile("hostile", 7)
    assert BusTiming.from_dict(t.as_dict()) == t
    assert t.req_ready < 1 and t.latency[1] > t.latency[0]
    with pytest.raises(DramError, match="unknown bus timing"):
        BusTiming.profile("gentle", 0)
