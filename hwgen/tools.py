"""Finding and running the external EDA tools: the YoWASP builds installed by requirements.txt, else native ones."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .errors import HwgenError


def command(name: str, purpose: str, package: str | None = None) -> list[str]:
    """The command for tool `name` (yosys, nextpnr-ecp5, ecppack, ...), or one line saying what to install.

    The venv's bin directory is searched too, so a `.venv/bin/python` run finds the wheels' scripts
    without the venv being activated.
    """
    for exe in (f"yowasp-{name}", name):
        found = shutil.which(exe) or shutil.which(exe, path=str(Path(sys.executable).parent))
        if found:
            return [found]
    raise HwgenError(f"{purpose} needs {name}: install {package or 'yowasp-' + name} "
                     f"(make setup, or pip install -r requirements.txt) or put {name} on PATH")


def version(cmd: list[str], flag: str = "--version") -> str:
    """The tool's one-line version string (recorded in reports so results can be traced to a build)."""
    proc = subprocess.run(cmd + [flag], capture_output=True, text=True)
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def run(cmd: list[str], cwd: Path, what: str, log: str, error_log: str | None = None) -> None:
    """Run one tool in `cwd` (YoWASP tools see only their working directory), its output into `log`.

    A failure becomes one line: the first ERROR line of `error_log` (Yosys, quiet, writes its errors
    only to its `-l` log) or of the output.
    """
    with open(cwd / log, "w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        lines = []
        for name in (error_log, log):
            if name and (cwd / name).exists():
                lines += [ln for ln in (cwd / name).read_text(encoding="utf-8", errors="replace").splitlines()
                          if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln] or lines[-1:] or [f"exit status {proc.returncode}"]
        raise HwgenError(f"{what} failed: {errors[0].strip()}")


def yosys_run(yosys: list[str], args: list[str], work: Path) -> None:
    """Yosys, quiet, with its full log in yosys.log."""
    run(yosys + ["-q", "-l", "yosys.log", *args], work, "Yosys", "yosys.out", "yosys.log")
