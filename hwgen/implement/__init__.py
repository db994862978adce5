"""`hwgen implement`'s Python API: a folder written by `hwgen generate` in, timing and area out.

`implement(out_dir, target, freq_mhz=100, seed=1, bitstream=False, liberty=None)` runs the flow
for `target` (hwgen.implement.targets: FPGA place-and-route through hwgen.implement.fpga, or the
generic ASIC estimate of hwgen.implement.asic) and writes into the folder:
  - `implement.json`  the result as data: target, seed, frequency, `fmax_mhz`, resources against
                      the device, critical paths (or kGE, transistors, logic levels, memory bits),
                      and, in the separate key `wall_seconds`, how long each step took;
  - `implement.txt`   the same as a readable report;
  - `implement/`      the tools' logs and reports (and the bitstream with `bitstream=True`), and the
                      FPGA netlist, which a later run of the same family reuses while the engine's
                      sources, the scripts and Yosys are unchanged (a sweep over seeds synthesizes once).
Everything except `wall_seconds` (and the logs) is the same for the same folder and options.
`synthesize(out_dir, target)` runs only that synthesis, for copies of the folder to place in parallel.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import HwgenError
from .. import tools
from . import asic, fpga, report, targets

RESULT_FILE = "implement.json"
REPORT_FILE = "implement.txt"
WORK_DIR = "implement"
# what the flow leaves in DIR/implement/: the netlist a later run reuses, logs, the tools' reports, the wrapper, a bitstream
KEEP = (*fpga.SYNTHESIS_FILES, "nextpnr.log", "pack.log", "nextpnr-report.json", "asic.ys")


def load_manifest(out_dir: Path) -> dict:
    path = out_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HwgenError(f"{out_dir}: no manifest.json; run `hwgen generate ... --out {out_dir}` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HwgenError(f"{path}: not a readable manifest ({e})") from None
    try:
        names = [manifest["files"][key] for key in fpga.SOURCES]
        ok = isinstance(manifest["modules"]["top"], str) and isinstance(manifest["params"]["bus_bits"], int)
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise HwgenError(f"{path}: not a manifest written by hwgen generate")
    for name in names:
        if not (out_dir / name).is_file():
            raise HwgenError(f"{out_dir}: {name} is missing; regenerate the folder with hwgen generate")
    return manifest


def _stderr(msg: str) -> None:
    print(f"hwgen implement: {msg}", file=sys.stderr, flush=True)


def _keep(work: Path, keep: Path, names, *, fresh: bool) -> None:
    """What of `names` a run left in `work`, into DIR/implement/ (emptied first when `fresh`)."""
    try:
        if fresh:
            shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True, exist_ok=True)
        fpga.copy_present(names, work, keep)
    except OSError as e:
        raise HwgenError(f"cannot write to {keep}: {e.strerror}") from None


def _check_dsp(src: Path, manifest: dict, tgt: targets.Target) -> str:
    dsp = manifest["params"].get("dsp", "fabric")
    if dsp != "fabric" and tgt.family is not targets.ECP5:
        raise HwgenError(f"{src} instantiates ECP5 DSP cells (generated with --dsp {dsp}): implement it for an ECP5 "
                         f"target, or generate it with --dsp fabric for {tgt.name}")
    return dsp


def synthesize(out_dir, target: str, *, progress=_stderr) -> dict:
    """The synthesis `implement` runs for `target`'s family, into DIR/implement/; returns its cell counts."""
    tgt = targets.get(target)
    if tgt.family is None:
        raise HwgenError(f"{target} is not an FPGA target")
    src = Path(out_dir)
    manifest = load_manifest(src)
    _check_dsp(src, manifest, tgt)
    keep = src / WORK_DIR
    with tempfile.TemporaryDirectory(prefix="hwgen-synthesize-") as tmp:
        work = Path(tmp)
        yosys = tools.command("yosys", f"hwgen implement --target {tgt.name}")
        cells, _ = fpga.synthesis(src, work, manifest, tgt, tools.version(yosys, "-V"), keep, progress)
        _keep(work, keep, fpga.SYNTHESIS_FILES, fresh=False)
    return cells


def implement(out_dir, target: str, *, freq_mhz: float = 100.0, seed: int = 1, bitstream: bool = False,
              liberty=None, progress=_stderr) -> dict:
    """Implement the engine generated in `out_dir` for `target`; returns what implement.json holds."""
    tgt = targets.get(target)
    if freq_mhz <= 0:
        raise HwgenError(f"--freq must be positive (got {freq_mhz:g})")
    if tgt.family is None and bitstream:
        raise HwgenError("--bitstream is for FPGA targets; the asic target has no bitstream")
    if tgt.family is not None and liberty is not None:
        raise HwgenError("--liberty is for --target asic")
    src = Path(out_dir)
    manifest = load_manifest(src)
    p = manifest["params"]
    dsp = _check_dsp(src, manifest, tgt)
    head = {
        "target": tgt.name, "device": tgt.device,
        "engine": {**{k: p.get(k) for k in ("m_lanes", "x_lanes", "bus_bits", "weight_bits", "act_bits", "acc_bits")},
                   "dsp": dsp},
    }
    with tempfile.TemporaryDirectory(prefix="hwgen-implement-") as tmp:
        work = Path(tmp)
        if tgt.family is None:
            body, wall = asic.implement(src, work, manifest, liberty=Path(liberty) if liberty else None,
                                        progress=progress)
        else:
            head.update(seed=seed, freq_mhz=float(freq_mhz))
            body, wall = fpga.implement(src, work, manifest, tgt, freq_mhz=float(freq_mhz), seed=seed,
                                        bitstream=bitstream, cache=src / WORK_DIR, progress=progress)
        _keep(work, src / WORK_DIR, KEEP + ((body["bitstream"],) if "bitstream" in body else ()), fresh=True)
    result = {**head, **body, "wall_seconds": wall}
    if "bitstream" in result:
        result["bitstream"] = f"{WORK_DIR}/{result['bitstream']}"
    try:
        (src / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (src / REPORT_FILE).write_text(report.text(result), encoding="utf-8")
    except OSError as e:
        raise HwgenError(f"cannot write to {src}: {e.strerror}") from None
    return result
