"""The engine in the generic analytical model's terms: an architecture and a per-layer mapping.

`hwgen generate` writes them as `DIR/arch.yaml` and `DIR/mapping.yaml`, the files `hwgen analyze
--arch F --mapping F` reads. They state facts (bus beat, row layout, field widths, lanes, buffer
sizes, the loop nest and tiles each layer runs, the pattern tables) and no counts: the generic
workload x architecture x mapping evaluator (`hwgen.analysis.counts`) computes the DRAM bytes from
them in its own way, and `hwgen simulate` compares the bytes measured in RTL with that prediction.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .descriptor import DESCRIPTOR_BYTES
from .memory_map import TABLE_ENTRY_BYTES

# Tensors of the generic model, by the engine's DRAM regions: a library layer's kernel ids (the
# model's metadata) travel in the weight region.
REGION_TENSORS = {"descriptor": ("descriptor",), "weights": ("weights", "metadata"), "tables": ("tables",),
                  "inputs": ("inputs",), "outputs": ("outputs",)}


def arch_spec(build) -> dict:
    """The architecture file of `build`'s engine (generic model keys, see hwgen.analysis.arch)."""
    p = build.params
    return {
        "name": "hwgen-engine",
        "description": (f"The generated engine ({p.m_lanes}x{p.x_lanes} lanes, {p.bus_bits}-bit bus) in the generic "
                        "model's terms, written by hwgen generate"),
        "runs": ["conv2d"],
        "dram": {"bytes_per_cycle": p.beat_bytes, "energy": "dram", "beat_bytes": p.beat_bytes,
                 "layer_bytes": DESCRIPTOR_BYTES, "transfers": "rows", "act_fields": [p.act_field_bits],
                 "weight_fields": sorted({8 // p.weight_pack, 8})},
        "glb": {"kib": (p.input_buffer_bytes + p.weight_buffer_bytes) / 1024, "width_bits": p.bus_bits,
                "energy": "sram"},
        "pe": {"rf_bytes": 4, "energy": "rf"},
        "mac_array": {"rows": p.m_lanes, "cols": p.x_lanes, "energy": "mac", "weights": "lane_steps",
                      "channel_bytes": TABLE_ENTRY_BYTES, "id_bits": 8},
        "psum_bits": 32,
    }


def _format(plan):
    if plan.dense:
        return "dense"
    if plan.ids is not None:
        return {"name": "pattern", "library": [int(m) for m in plan.masks]}
    return {"name": "periodic", "period": int(plan.period), "table": [int(m) for m in plan.masks]}


def mapping_spec(build) -> dict:
    """The mapping file: per layer the loop nest its tiling runs, its tiles, lanes and weight format.

    Streamed weights: bands (P) and their column tiles (Q) outside lane groups (M); resident
    groups: sets of lane groups (M) outside the bands and column tiles. Input channels are never
    tiled; columns only when a band of full rows does not fit; outputs leave row by row.
    """
    layers = {}
    for plan, tiling in zip(build.plans, build.tilings):
        k = tiling.resident_groups
        ow = plan.out_shape[2]
        q = tiling.col_beats * build.params.beat_elems if tiling.col_beats else ow
        layers[plan.name] = {
            "order": "MPQC" if k else "PQMC",
            "tiles": {"M": build.params.m_lanes * plan.fold * max(k, 1), "C": plan.in_shape[0], "P": tiling.band_rows,
                      "Q": q},
            "bypass": ["outputs"],
            "lanes": "residue" if plan.residue_groups else "contiguous",
            "format": _format(plan),
            **({"fold": plan.fold} if plan.fold > 1 else {}),
        }
    return {"layers": layers}


def region_bytes(dram_bytes: dict) -> dict:
    """The generic model's per-tensor DRAM bytes of a layer, by the engine's regions (psums, which the
    engine never spills, stay a tensor of their own so any prediction of them shows as a mismatch)."""
    out = {region: sum(int(dram_bytes[t]) for t in tensors) for region, tensors in REGION_TENSORS.items()}
    if dram_bytes.get("psums"):
        out["psums"] = int(dram_bytes["psums"])
    return out


def write(build, arch_path: Path, mapping_path: Path) -> None:
    """Write `arch_spec` and `mapping_spec` of `build` as YAML (deterministic)."""
    Path(arch_path).write_text(yaml.safe_dump(arch_spec(build), sort_keys=False), encoding="utf-8")
    Path(mapping_path).write_text(yaml.safe_dump(mapping_spec(build), sort_keys=False), encoding="utf-8")
