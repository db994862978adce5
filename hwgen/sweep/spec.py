"""A sweep specification (YAML): inputs x engine/analysis parameters x stages -> points.

    name: digits-lanes
    seed: 1
    inputs:
      - checkpoint: ../models/digits_ps4p4_w8a8.hwq     # .hwq / .pt2 / .onnx, relative to this file
      - zoo: digits-cnn                                # models.zoo, random weights (seeded)
        scheme: PS4_P4                                 # a periodic scheme, or dense (default)
        weight_bits: 4                                 # quantized when bits are given
        act_bits: 4
        calibration: synthetic                         # synthetic (seeded) | digits | FILE.npy
        calibration_images: 32
    parameters:
      grid: {m_lanes: [2, 4, 8], x_lanes: [2, 4], bus_bits: 64}   # the cartesian product
      sample: 4                                        # optional: that many grid points, drawn at random
    stages:
      generate: {synth: xilinx}                        # optional; synth optional (xilinx | ice40)
      simulate: {images: 2, timing: ideal, mode: fast} # optional; needs generate; mode: reference | fast

`analyze` runs for every point. Every mistake is one HwgenError naming the file and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis import specfile
from ..errors import HwgenError

# name -> (default, kind). Engine parameters are `hwgen generate`'s; with arch `engine` the analysis
# uses them too. The mac_*/dram_* ones override a generic architecture's array and DRAM bandwidth.
PARAMS = {
    "m_lanes": (4, "pow2"),
    "x_lanes": (4, "pow2"),
    "bus_bits": (64, "bus"),
    "glb_kib": (None, "posint"),
    "dense_only": (False, "bool"),
    "arch": ("engine", "text"),
    "energy": ("horowitz45", "text"),
    "objective": ("dram", "objective"),
    "mac_rows": (None, "posint"),
    "mac_cols": (None, "posint"),
    "dram_bytes_per_cycle": (None, "posnum"),
}
ENGINE_ONLY = ("m_lanes", "x_lanes", "bus_bits", "dense_only")  # what a non-engine analysis ignores
GENERIC_ONLY = ("mac_rows", "mac_cols", "dram_bytes_per_cycle")
STAGES = ("analyze", "generate", "simulate")
SYNTH_TARGETS = ("xilinx", "ice40")
TIMINGS = ("hostile", "ideal")
SIM_MODES = ("reference", "fast")  # hwgen.simulate.MODES, without importing the simulator here
CALIBRATIONS = ("synthetic", "digits")
MAX_POINTS = 1_000_000


def digest(obj) -> str:
    """16 hex digits of the SHA-256 of `obj`'s canonical JSON: the key of a point, a row, an input."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _check_value(label: str, key: str, v) -> None:
    kind = PARAMS[key][1]
    pow2 = isinstance(v, int) and not isinstance(v, bool) and v > 0 and v & (v - 1) == 0
    ok = {
        "pow2": pow2 and v <= 64,
        "bus": pow2 and 8 <= v <= 512,
        "posint": isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "posnum": isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
        "bool": isinstance(v, bool),
        "text": isinstance(v, str) and v != "",
        "objective": v in ("dram", "energy"),
    }[kind]
    if not ok:
        want = {"pow2": "a power of two from 1 to 64", "bus": "a power of two from 8 to 512",
                "posint": "a positive integer", "posnum": "a positive number", "bool": "true or false",
                "text": "a non-empty string", "objective": "dram or energy"}[kind]
        raise HwgenError(f"{label}: 'parameters.grid.{key}' must be {want}, got {v!r}")


@dataclass(frozen=True)
class Input:
    """One model the sweep runs on: a file, or a zoo model to build (and quantize)."""

    label: str
    checkpoint: str | None = None  # absolute path
    zoo: str | None = None
    scheme: str | None = None
    weight_bits: int | None = None
    act_bits: int | None = None
    calibration: str = "synthetic"
    calibration_images: int = 32

    def identity(self, seed: int) -> dict:
        if self.checkpoint:
            data = Path(self.checkpoint).read_bytes()
            return {"file_sha256": hashlib.sha256(data).hexdigest()}
        d = {k: getattr(self, k) for k in ("zoo", "scheme", "weight_bits", "act_bits", "calibration_images")}
        d["seed"] = seed
        cal = self.calibration
        d["calibration"] = cal if cal in CALIBRATIONS else hashlib.sha256(Path(cal).read_bytes()).hexdigest()
        return d


@dataclass(frozen=True)
class Stages:
    generate: bool = False
    synth: str | None = None
    simulate: bool = False
    images: int = 1
    timing: str = "hostile"
    mode: str = "reference"  # hwgen simulate --mode: the cocotb DRAM model, or the same model as HDL

    def names(self) -> list[str]:
        return [s for s in STAGES if s == "analyze" or getattr(self, s)]

    def options(self, stage: str) -> dict:
        """What a stage's result depends on besides the point (part of its row key)."""
        return {"analyze": {}, "generate": {"synth": self.synth},
                "simulate": self._simulate_options()}[stage]

    def _simulate_options(self) -> dict:
        opts = {"images": self.images, "timing": self.timing}
        if self.mode != "reference":  # reference-mode rows keep the keys of sweeps before the fast mode
            opts["mode"] = self.mode
        return opts


@dataclass
class Point:
    input: Input
    input_key: str
    params: dict  # every PARAMS key, defaults filled in
    key: str  # hash of (input, params)
    seed: int  # derived from the spec's seed and the key: stalls and random inputs of the simulation

    @property
    def engine(self) -> dict:
        """`hwgen generate`'s keyword arguments."""
        return {k: self.params[k] for k in ("m_lanes", "x_lanes", "bus_bits", "glb_kib", "dense_only")}

    @property
    def engine_key(self) -> str:
        return digest({"input": self.input_key, **self.engine})


@dataclass
class Spec:
    name: str
    seed: int
    inputs: list[Input]
    points: list[Point]
    stages: Stages
    path: str
    grid: dict = field(default_factory=dict)

    def row_key(self, point: Point, stage: str) -> str:
        return digest({"point": point.key, "stage": stage, "options": self.stages.options(stage)})


def _inputs(top: specfile.Section, base: Path, label: str) -> list[Input]:
    from models.zoo import MODELS

    raw = top.get("inputs", None)
    if not isinstance(raw, list) or not raw:
        raise HwgenError(f"{label}: 'inputs' must be a non-empty list of checkpoints or zoo models")
    out = []
    for i, item in enumerate(raw):
        s = specfile.Section(item, label, f"inputs[{i}]")
        if ("checkpoint" in s.data) == ("zoo" in s.data):
            raise HwgenError(f"{label}: 'inputs[{i}]' needs exactly one of 'checkpoint' or 'zoo'")
        if "checkpoint" in s.data:
            path = (base / s.text("checkpoint")).resolve()
            if not path.is_file():
                raise HwgenError(f"{label}: 'inputs[{i}].checkpoint': no such file {path}")
            s.done()
            out.append(Input(f"{path.name}", checkpoint=str(path)))
            continue
        zoo = s.text("zoo")
        if zoo not in MODELS:
            raise HwgenError(f"{label}: 'inputs[{i}].zoo' must be one of {', '.join(MODELS)}, got {zoo!r}")
        scheme = s.text("scheme", "dense")
        if scheme != "dense":
            from models.periodic import parse_scheme

            try:
                parse_scheme(scheme)
            except ValueError as e:
                raise HwgenError(f"{label}: 'inputs[{i}].scheme': {e}") from None
        wb = s.get("weight_bits", None)
        ab = s.get("act_bits", None)
        if (wb is None) != (ab is None):
            raise HwgenError(f"{label}: 'inputs[{i}]' needs both 'weight_bits' and 'act_bits', or neither")
        if wb is not None:
            for key in ("weight_bits", "act_bits"):
                v = s.get(key)
                if not isinstance(v, int) or isinstance(v, bool) or not 2 <= v <= 16:
                    raise HwgenError(f"{label}: 'inputs[{i}].{key}' must be an integer from 2 to 16, got {v!r}")
        cal = s.text("calibration", "synthetic")
        if cal not in CALIBRATIONS:
            p = (base / cal).resolve()
            if p.suffix != ".npy" or not p.is_file():
                raise HwgenError(f"{label}: 'inputs[{i}].calibration' must be synthetic, digits or an existing "
                                 f".npy file, got {cal!r}")
            cal = str(p)
        n = s.number("calibration_images", 32, integer=True)
        s.done()
        name = f"{zoo}-{scheme}" + (f"-w{wb}a{ab}" if wb else "")
        out.append(Input(name, zoo=zoo, scheme=None if scheme == "dense" else scheme, weight_bits=wb, act_bits=ab,
                         calibration=cal, calibration_images=n))
    return out


def _spec_file(base: Path, label: str, key: str, value: str) -> str:
    if not value.endswith((".yaml", ".yml")):
        return value  # a preset name
    path = (base / value).resolve()
    if not path.is_file():
        raise HwgenError(f"{label}: 'parameters.grid.{key}': no such file {path}")
    return str(path)


def _grid(top: specfile.Section, label: str, base: Path) -> tuple[dict, int | None]:
    par = top.section("parameters", optional=True)
    if par is None:
        return {}, None
    grid = par.section("grid", optional=True)
    values: dict = {}
    if grid is not None:
        for key, v in grid.data.items():
            if key not in PARAMS:
                raise HwgenError(f"{label}: unknown key 'parameters.grid.{key}' (parameters: {', '.join(PARAMS)})")
            vs = v if isinstance(v, list) else [v]
            if not vs:
                raise HwgenError(f"{label}: 'parameters.grid.{key}' is an empty list: the grid has no point")
            for x in vs:
                _check_value(label, key, x)
            if key in ("arch", "energy"):  # a user's YAML file is relative to the spec, like inputs
                vs = [_spec_file(base, label, key, x) for x in vs]
            if len(set(map(repr, vs))) != len(vs):
                raise HwgenError(f"{label}: 'parameters.grid.{key}' lists a value twice")
            values[key] = vs
            grid.used.add(key)
    sample = par.get("sample", None)
    if sample is not None and (not isinstance(sample, int) or isinstance(sample, bool) or sample < 1):
        raise HwgenError(f"{label}: 'parameters.sample' must be a positive integer, got {sample!r}")
    par.done()
    arch_values = values.get("arch", [PARAMS["arch"][0]])
    for key in GENERIC_ONLY:
        if key in values and "engine" in arch_values:
            raise HwgenError(f"{label}: 'parameters.grid.{key}' applies to a generic architecture, not to arch "
                             "'engine' (whose array is m_lanes x x_lanes): set 'parameters.grid.arch'")
    return values, sample


def _stages(top: specfile.Section, label: str) -> Stages:
    st = top.section("stages", optional=True)
    if st is None:
        return Stages()
    gen = st.get("generate", False)
    synth = None
    if isinstance(gen, dict):
        g = specfile.Section(gen, label, "stages.generate")
        synth = g.get("synth", None)
        if synth is not None and synth not in SYNTH_TARGETS:
            raise HwgenError(f"{label}: 'stages.generate.synth' must be one of {', '.join(SYNTH_TARGETS)}, got {synth!r}")
        g.done()
        gen = True
    elif not isinstance(gen, bool):
        raise HwgenError(f"{label}: 'stages.generate' must be true, false or a mapping, got {gen!r}")
    sim = st.get("simulate", False)
    images, timing, mode = 1, "hostile", "reference"
    if isinstance(sim, dict):
        s = specfile.Section(sim, label, "stages.simulate")
        images = s.number("images", 1, integer=True)
        timing = s.text("timing", "hostile")
        if timing not in TIMINGS:
            raise HwgenError(f"{label}: 'stages.simulate.timing' must be hostile or ideal, got {timing!r}")
        mode = s.text("mode", "reference")
        if mode not in SIM_MODES:
            raise HwgenError(f"{label}: 'stages.simulate.mode' must be reference or fast, got {mode!r}")
        s.done()
        sim = True
    elif not isinstance(sim, bool):
        raise HwgenError(f"{label}: 'stages.simulate' must be true, false or a mapping, got {sim!r}")
    if sim and not gen:
        raise HwgenError(f"{label}: 'stages.simulate' needs 'stages.generate' (it simulates the generated engine)")
    st.done()
    return Stages(gen, synth, sim, images, timing, mode)


def point_seed(spec_seed: int, key: str) -> int:
    return int(digest({"seed": spec_seed, "point": key})[:8], 16)


def load(path) -> Spec:
    path = Path(path)
    label = str(path)
    if not path.is_file():
        raise HwgenError(f"sweep spec '{path}' does not exist")
    top = specfile.Section(specfile.parse(path.read_text(encoding="utf-8", errors="replace"), label), label)
    name = top.text("name", path.stem)
    seed = top.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise HwgenError(f"{label}: 'seed' must be a non-negative integer, got {seed!r}")
    inputs = _inputs(top, path.resolve().parent, label)
    values, sample = _grid(top, label, path.resolve().parent)
    stages = _stages(top, label)
    top.done()
    keys = list(values)
    total = 1
    for v in values.values():
        total *= len(v)
    if total * len(inputs) > MAX_POINTS:
        raise HwgenError(f"{label}: the grid has {total * len(inputs):,} points (at most {MAX_POINTS:,}); use 'sample'")
    combos = list(itertools.product(*(values[k] for k in keys)))
    if sample is not None and sample < len(combos):
        chosen = sorted(random.Random(seed).sample(range(len(combos)), sample))
        combos = [combos[i] for i in chosen]
    points = []
    for inp in inputs:
        input_key = digest(inp.identity(seed))
        for combo in combos:
            params = {k: d for k, (d, _) in PARAMS.items()}
            params.update(zip(keys, combo))
            key = digest({"input": input_key, "params": params})
            points.append(Point(inp, input_key, params, key, point_seed(seed, key)))
    return Spec(name, seed, inputs, points, stages, str(path.resolve()), values)
