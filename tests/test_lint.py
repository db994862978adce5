"""The sources carry no unused imports or variables and no undefined names (pyflakes)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["hwgen", "tests", "benchmarks", "sim", "models"]


def test_pyflakes_finds_nothing():
    run = subprocess.run([sys.executable, "-m", "pyflakes", *CHECKED], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
