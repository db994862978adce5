"""Finding the external EDA tools: the YoWASP builds installed by requirements.txt, else a native one."""

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
