"""Architecture, energy and mapping files: presets load, user files work, bad keys are named."""

from __future__ import annotations

import pytest

from analysis_helpers import conv_layer
from hwgen.analysis import analyze_layer, load_arch, load_energy
from hwgen.analysis.mapping import FixedMappings
from hwgen.analysis.specfile import presets
from hwgen.errors import HwgenError

ARCH = """\
name: mine
dram: {bytes_per_cycle: 8}
glb: {kib: 64, width_bits: 128}
pe: {rf_bytes: 32}
mac_array: {rows: 8, cols: 4}
"""


def test_every_preset_loads_and_matches_every_energy_table():
    tables = [load_energy(name) for name in presets("energy")]
    assert {"horowitz45", "eyeriss", "lpddr4", "ddr3", "gddr5", "hbm2"} <= {t.name for t in tables}
    for t in tables:
        assert t.source
    for name in presets("arch"):
        arch = load_arch(name)
        for t in tables:
            arch.check_energy(t)


def test_dram_tables_inherit_horowitz_on_chip():
    base, ddr3 = load_energy("horowitz45"), load_energy("ddr3")
    assert ddr3.memory("dram", "t").pj_per_bit() == 70
    assert ddr3.memory("sram", "t") == base.memory("sram", "t")
    # SRAM energy follows capacity: Horowitz's 64-bit reads at 8 KB and 32 KB, interpolated between.
    sram = base.memory("sram", "t")
    assert sram.pj_per_bit(8) == 10 / 64 and sram.pj_per_bit(32) == 20 / 64
    assert 10 / 64 < sram.pj_per_bit(16) < 20 / 64


def test_user_arch_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(ARCH)
    arch = load_arch(str(path))
    assert (arch.name, arch.glb_kib, arch.glb_width_bits, arch.rows, arch.cols, arch.psum_bits) == ("mine", 64, 128, 8, 4, 32)
    assert arch.with_glb_kib(8).glb_bits == 8 * 8192


@pytest.mark.parametrize("text, message", [
    (ARCH.replace("kib: 64", "kib: -1"), "'glb.kib' must be a positive number"),
    (ARCH.replace("kib: 64", "kb: 64"), "missing key 'glb.kib'"),
    (ARCH + "extra: 1\n", "unknown key 'extra'"),
    (ARCH.replace("rows: 8", "rows: 8.5"), "'mac_array.rows' must be a positive integer"),
    (ARCH.replace("name: mine\n", ""), "missing key 'name'"),
    ("name: ok\nglb: [unclosed\n", "not valid YAML at line 3"),
    ("- a list\n", "expected a mapping"),
])
def test_bad_arch_file_names_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(HwgenError, match=message):
        load_arch(str(path))


def test_unknown_preset_and_missing_file():
    with pytest.raises(HwgenError, match="unknown arch 'tpu' \\(presets: .*generic"):
        load_arch("tpu")
    with pytest.raises(HwgenError, match="does not exist"):
        load_energy("/nonexistent/table.yaml")


def test_user_energy_table_and_missing_entry(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("name: e\nbase: horowitz45\nsource: my measurements\nentries:\n  sram: {pj_per_bit: 0.5}\n")
    table = load_energy(str(path))
    assert table.memory("sram", "t").pj_per_bit(1024) == 0.5
    arch = load_arch("generic")
    arch.check_energy(table)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsource: x\nentries:\n  dram: {pj_per_bit: 1}\n")
    with pytest.raises(HwgenError, match="energy 'sram' is not a memory entry"):
        arch.check_energy(load_energy(str(bad)))
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"name: loop\nsource: x\nbase: {loop}\n")
    with pytest.raises(HwgenError, match="without cycles"):
        load_energy(str(loop))


def test_fixed_mapping_file(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("default: {order: CMPQ, tiles: {M: 16}}\nlayers:\n  conv2: {order: PQMC, tiles: {M: 999, P: 8}}\n")
    fixed = FixedMappings(str(path))
    layer = conv_layer("conv2", 64, 64, 56)
    m = fixed.get(layer)
    assert (m.order, m.m, m.c, m.p, m.q) == ("PQMC", 64, 64, 8, 56)
    other = fixed.get(conv_layer("x", 32, 32, 8))
    assert (other.order, other.m, other.c) == ("CMPQ", 16, 32)
    fixed.check_all_used()
    r = analyze_layer(layer, load_arch("generic").with_glb_kib(1024), load_energy("horowitz45"), mapping=m)
    assert r.mapping == m
    path.write_text("layers:\n  conv2: {order: MCPX}\n")
    with pytest.raises(HwgenError, match="'layers.conv2.order' must be a permutation of MCPQ"):
        FixedMappings(str(path))
    path.write_text("layers:\n  nope: {order: MCPQ}\n")
    fixed = FixedMappings(str(path))
    fixed.get(layer)
    with pytest.raises(HwgenError, match="no layer named 'nope'"):
        fixed.check_all_used()
