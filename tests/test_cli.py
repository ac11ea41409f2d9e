"""``trntile verilog`` and ``trntile doctor`` as a user runs them: good input works, bad input exits 2."""

import json
import os
import re
import subprocess
import sys

import pytest

from trntile.hdl.tops import TOPS


def trntile(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "trntile", *args], capture_output=True, text=True, cwd=cwd, env=env)


# tile_bench is the tile plus a test latency model; at its default P = 16 it would only repeat "tile" (30 s).
# The cluster at its defaults is four P = 16 tiles (a minute): it is written small instead.
SMALL_CLUSTER = ["--tiles", "2", "--partitions", "4", "--sbuf-bytes", "1024", "--queues", "2"]


@pytest.mark.parametrize("top,args", [(top, []) for top in sorted(set(TOPS) - {"tile_bench", "cluster", "cluster_bench"})]
                         + [("cluster", SMALL_CLUSTER)])
def test_verilog_writes_every_top(top, args, tmp_path):
    result = trntile("verilog", "--top", top, *args, "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / f"{top}.v").read_text()
    assert f"module {top}(" in text
    # Self-contained: every module instantiated (such as the shared PE) is defined in the file.
    defined = set(re.findall(r"^module (\S+?)\s*\(", text, re.M))
    instantiated = set(re.findall(r"^  (\\?[A-Za-z_][\w.$\\]*) +\\?[\w.$]+ +\($", text, re.M))
    assert instantiated <= defined, f"instantiated but not defined: {instantiated - defined}"
    params = json.loads((tmp_path / "params.json").read_text())
    assert params["top"] == top
    given = {args[i][2:].replace("-", "_"): int(args[i + 1]) for i in range(0, len(args), 2)}
    assert params["params"] == {p.name: given.get(p.name, p.default) for p in TOPS[top].params}


def test_verilog_uses_given_parameters(tmp_path):
    result = trntile("verilog", "--top", "stream_fifo", "--width", "12", "--depth", "64", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "params.json").read_text())["params"] == {"width": 12, "depth": 64}
    assert "input [11:0] i__payload;" in (tmp_path / "stream_fifo.v").read_text()


# OUT stands for a fresh output folder, which must stay unwritten.
@pytest.mark.parametrize("args,names", [
    (["--top", "no_such_block", "-o", "OUT"], ["no_such_block", "stream_fifo", "stream_register_slice"]),
    (["--top", "stream_fifo", "--partitions", "12", "-o", "OUT"], ["--partitions", "power of two", "4..128", "12"]),
    (["--top", "stream_fifo", "--partitions", "256", "-o", "OUT"], ["--partitions", "4..128", "256"]),
    (["--top", "stream_fifo", "--partitions", "16", "-o", "OUT"], ["partitions", "width, depth"]),
    (["--top", "stream_fifo", "--depth", "1", "-o", "OUT"], ["--depth", "2..65536", "1"]),
    (["--top", "stream_register_slice", "--width", "0", "-o", "OUT"], ["--width", "1..4096", "0"]),
    (["--top", "stream_fifo", "--width", "wide", "-o", "OUT"], ["--width", "wide", "1..4096"]),
    (["--top", "no_such_block"], ["no_such_block", "known tops"]),
    (["--top", "axi_crossbar", "--masters", "9", "-o", "OUT"], ["--masters", "1..8", "9"]),
    (["--top", "axi_crossbar", "--data-width", "48", "-o", "OUT"], ["--data-width", "power of two", "48"]),
    (["--top", "stream_fifo", "--unknown-option", "3", "-o", "OUT"], ["--unknown-option"]),
    (["--top", "stream_fifo"], ["--output"]),
])
def test_verilog_bad_input_is_one_line_and_exit_2(args, names, tmp_path):
    out = tmp_path / "out"
    result = trntile("verilog", *[str(out) if arg == "OUT" else arg for arg in args])
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    assert not out.exists(), "nothing is written for bad input"


def test_output_path_that_is_a_file_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = trntile("verilog", "--top", "stream_fifo", "-o", str(blocker / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_exits_2():
    result = trntile("frobnicate")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_doctor_json_names_every_tool(tmp_path):
    report = tmp_path / "doctor.json"
    result = trntile("doctor", "--json", str(report))
    data = json.loads(report.read_text())
    for tool in ("verilator", "icarus", "amaranth", "cocotb", "yosys"):
        assert set(data[tool]) >= {"version", "path"}, tool
    missing = [t for t, v in data.items() if v["required"] and v["version"] is None]
    assert result.returncode == (1 if missing else 0), result.stdout
    for tool, entry in data.items():
        if entry["version"] is None:
            assert entry["install"], f"{tool} is missing and the report does not say how to install it"
            assert entry["install"] in result.stdout


def test_waves_prints_the_gtkwave_command_without_a_display(tmp_path):
    for name in ("old.fst", "tile_bench.fst", "tile_bench.gtkw"):
        (tmp_path / name).write_text("")
    os.utime(tmp_path / "old.fst", (0, 0))   # the newest FST is the one opened
    result = trntile("waves", str(tmp_path), env={**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert result.returncode in (0, 1), result.stderr   # 1: GTKWave is not installed, and it says so
    assert f"gtkwave {tmp_path / 'tile_bench.fst'} {tmp_path / 'tile_bench.gtkw'}" in result.stdout


@pytest.mark.parametrize("make,message", [
    (lambda tmp: tmp / "nowhere", "is not a folder"),
    (lambda tmp: tmp, "no .fst in"),
])
def test_waves_without_waves_exits_2(tmp_path, make, message):
    result = trntile("waves", str(make(tmp_path)))
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
