"""A built wheel works away from the source tree: templates, presets and the testbench are package data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_built_wheel_generates_and_simulates(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(pip + ["wheel", "-q", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
                   check=True, cwd=tmp_path)
    wheel = next(wheels.glob("hwgen-*.whl"))
    subprocess.run(pip + ["install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "hwgen", *args], cwd=tmp_path, env=env,  # noqa: E731
                                       capture_output=True, text=True)
    where = subprocess.run([sys.executable, "-c", "import hwgen, sim; print(hwgen.__file__, sim.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert str(site) in where and str(ROOT) not in where  # the wheel's copy, not the source tree
    gen = run("generate", str(site / "models" / "digits_ps4p4_w8a8.hwq"), "--out", "engine")
    assert gen.returncode == 0, gen.stderr
    assert "module hwgen_top" in (tmp_path / "engine" / "hwgen_top.v").read_text()  # the template, filled
    sim = run("simulate", "engine", "--images", "1", "--layers", "conv1", "--no-progress")
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert "PASS" in sim.stdout
