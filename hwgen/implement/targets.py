"""The devices `hwgen implement` knows: how to synthesize for them, place and route them, pack them.

An FPGA target names a family (its Yosys `synth_*` script, its nextpnr build and bitstream
packer), one device and package, and which nextpnr bel type is each of LUT / FF / DSP / BRAM;
the capacities themselves come from nextpnr's own report, never from a table here.
`asic` is generic Yosys synthesis (see hwgen.implement.asic).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import HwgenError
from ..gateware.synth import TARGETS as SYNTH_TARGETS


@dataclass(frozen=True)
class Family:
    synth: str                 # Yosys script line; {top} and {netlist} are filled in
    pnr: str                   # tool name without the yowasp- prefix
    pack: str                  # bitstream packer
    pnr_netlist: tuple         # nextpnr options naming the placed-and-routed output, {out} filled in
    pack_args: tuple           # packer arguments, {asc}/{bit} filled in
    bitstream_ext: str
    resources: dict            # LUT / FF / DSP / BRAM -> nextpnr bel type counted for it
    # synthesis to retry with when the default one hits a Yosys internal assertion (Yosys 0.70's ABC9
    # does on the 8x8 digits engine); the result records which one was used
    fallback: str = ""
    pnr_options: tuple = ()    # nextpnr options of the flow, after the device's


ECP5 = Family(
    synth="synth_ecp5 -top {top} -json {netlist}",
    pnr="nextpnr-ecp5", pack="ecppack",
    pnr_netlist=("--textcfg", "{out}"), pack_args=("{out}", "{bit}"), bitstream_ext="bit",
    resources={"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD"},
    fallback=SYNTH_TARGETS["ecp5"] + " -json {netlist}",
    # timing weight 30 instead of HeAP's 10: on the digits 4x4 engine (seed 1, 150 MHz) 97.38 MHz
    # instead of 91.95, the same netlist and router (docs/implement.md, "Flow options")
    pnr_options=("--placer-heap-timingweight", "30"),
)
ICE40 = Family(
    synth="synth_ice40 -dsp -top {top} -json {netlist}",
    pnr="nextpnr-ice40", pack="icepack",
    pnr_netlist=("--asc", "{out}"), pack_args=("{out}", "{bit}"), bitstream_ext="bin",
    # an iCE40 logic cell is one LUT4 and its flip-flop: both count against ICESTORM_LC
    resources={"LUT": "ICESTORM_LC", "FF": "ICESTORM_LC", "DSP": "ICESTORM_DSP", "BRAM": "ICESTORM_RAM"},
)


@dataclass(frozen=True)
class Target:
    name: str
    family: Family | None      # None: ASIC
    device: str                # what the report calls it
    pnr_args: tuple = ()


TARGETS = {t.name: t for t in (
    Target("ecp5-25k", ECP5, "LFE5U-25F, CABGA381, speed 6", ("--25k", "--package", "CABGA381", "--speed", "6")),
    Target("ecp5-45k", ECP5, "LFE5U-45F, CABGA381, speed 6", ("--45k", "--package", "CABGA381", "--speed", "6")),
    Target("ecp5-85k", ECP5, "LFE5U-85F, CABGA381, speed 6", ("--85k", "--package", "CABGA381", "--speed", "6")),
    Target("ice40-up5k", ICE40, "iCE40UP5K, SG48", ("--up5k", "--package", "sg48")),
    Target("ice40-hx8k", ICE40, "iCE40HX8K, CT256", ("--hx8k", "--package", "ct256")),
    Target("asic", None, "generic gates, no PDK; a standard-cell library with --liberty"),
)}


def get(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise HwgenError(f"unknown target '{name}' (choose {', '.join(TARGETS)})") from None
