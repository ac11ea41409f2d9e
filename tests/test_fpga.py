"""The FPGA flow (trntile fpga): Yosys synthesis and nextpnr place and route of a small tensor engine."""

import json
import re
import subprocess
import sys

import pytest
from conftest import require

from trntile.sim import toolchain
from trntile.sim.fpga import DEVICES, FIELDS, _register_name, source_revision, tools_missing
from trntile.sim.fpga_table import table


@pytest.mark.fpga
def test_int8_tensor_engine_p4_synthesises_and_places_on_ecp5(tmp_path):
    """The P = 4 int8-only tensor engine through `trntile fpga`: every field present, its memories in block RAM, its
    int8 multipliers in DSPs, placed in an ECP5-85k with an Fmax reported."""
    require(toolchain.fpga_tools())   # under CI=true a missing tool fails the test
    assert not tools_missing("ecp5-85k")
    out = tmp_path / "te.json"
    done = subprocess.run([sys.executable, "-m", "trntile", "fpga", "--top", "tensor_engine", "--partitions", "4",
                           "--sbuf-bytes", "1024", "--dtypes", "int8", "--device", "ecp5-85k", "--freq", "50", "--json", str(out)],
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert tuple(report)[:len(FIELDS)] == FIELDS
    assert report["top"] == "tensor_engine" and report["partitions"] == 4 and report["device"] == "ecp5-85k"
    assert report["router"] == "router1" and report["placer_density"] == 0.9
    assert report["fits"] is True
    assert 0 < report["lut4"] < 83_640 and 0 < report["ff"] < 83_640
    assert report["bram"] > 0, "the SBUF and PSUM memories should map to DP16KD block RAM"
    assert report["mult18"] > 0, "the PEs' multipliers should map to MULT18X18D"
    assert 1 < report["fmax_mhz"] < 1000
    path = report["critical_path"]
    assert path["from"] and path["to"] and "TRELLIS" not in path["from"] + path["to"]
    assert 1000 / report["fmax_mhz"] == pytest.approx(path["logic_ns"] + path["routing_ns"], rel=0.05)
    logs = out.parent / "te-logs"
    assert (logs / "yosys.log").is_file() and (logs / "nextpnr.log").is_file()
    # The table on standard output repeats the JSON.
    assert re.search(rf"^fmax_mhz +{report['fmax_mhz']}$", done.stdout, re.M), done.stdout


def test_devices_are_the_documented_ones():
    assert set(DEVICES) == {"ecp5-85k", "ecp5-45k", "ice40-up5k"}


@pytest.mark.parametrize("argv,message", [
    (["--top", "nope"], "unknown top 'nope'"),
    (["--top", "tensor_engine", "--partitions", "6"], "--partitions: partitions must be a power of two in 4..128, not 6"),
    (["--top", "tensor_engine", "--device", "xc7"], "argument --device: invalid choice: 'xc7'"),
    (["--top", "tensor_engine", "--freq", "0"], "--freq: freq must be a frequency in 1..1000 MHz, not 0"),
    (["--top", "stream_fifo", "--partitions", "4"], "top 'stream_fifo' has no parameter 'partitions'"),
    (["--top", "tensor_engine", "--router", "router3"], "argument --router: invalid choice: 'router3'"),
    (["--top", "tensor_engine", "--placer-density", "0.2"],
     "--placer-density: placer-density must be a share of the logic sites in 0.5..1, not 0.2"),
    (["--top", "tile", "--act-lanes", "3"], "--act-lanes: act_lanes must be a power of two in 1..128, not 3"),
])
def test_bad_options_exit_2_with_one_line(argv, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "trntile", "fpga", *argv, "--json", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "x.json").exists()


def test_a_killed_flow_stops_its_tool(tmp_path):
    """SIGTERM to a process running a tool through the flow ends the tool too (not left running for an hour)."""
    import os
    import signal
    import time

    pid_file = tmp_path / "tool.pid"
    tool = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    driver = (f"from pathlib import Path; from trntile.sim.fpga import _run; "
              f"_run([{sys.executable!r}, '-c', {tool!r}], Path({str(tmp_path / 'tool.log')!r}), 120)")
    flow = subprocess.Popen([sys.executable, "-c", driver])
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    else:
        flow.kill()
        pytest.fail("the tool did not start within 10 s")
    tool_pid = int(pid_file.read_text())
    flow.send_signal(signal.SIGTERM)
    assert flow.wait(timeout=20) == 128 + signal.SIGTERM
    for _ in range(100):
        try:
            os.kill(tool_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(tool_pid, signal.SIGKILL)
    pytest.fail("the tool was still running 5 s after its flow was killed")


def test_critical_path_ends_are_named_as_in_the_design():
    assert _register_name("engine.pattern_span1_TRELLIS_FF_Q_35") == "engine.pattern_span1"
    # An unnamed Amaranth signal ($signal$N) stands for the block that holds it, without a dangling dot.
    assert _register_name("dma.source_bursts.$signal$1_TRELLIS_FF_Q_2") == "dma.source_bursts"


def test_reports_name_the_rtl_they_were_measured_on(tmp_path):
    """A report's revision is the checkout's HEAD, marked when the HDL has edits that are not committed (edits
    elsewhere do not change the RTL); the results table shows it in its last column."""
    assert source_revision(tmp_path) is None   # not a checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "hdl").mkdir()
    (tmp_path / "hdl" / "pe.py").write_text("a = 1\n")
    (tmp_path / "README.md").write_text("x\n")
    for step in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(git + step, check=True)
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert source_revision(tmp_path) == head
    (tmp_path / "README.md").write_text("y\n")
    assert source_revision(tmp_path) == head
    (tmp_path / "hdl" / "pe.py").write_text("a = 2\n")
    assert source_revision(tmp_path) == head + "+changes"
    (tmp_path / "site" / "trntile").mkdir(parents=True)   # an installed copy inside the checkout
    assert source_revision(tmp_path / "site" / "trntile") is None
    report = {"lut4": 10, "ff": 5, "mult18": 1, "bram": 2, "fmax_mhz": 50.0, "target_mhz": 100, "fits": True,
              "critical_path": None, "revision": head}
    argv = ["trntile", "fpga", "--top", "tensor_engine", "--json", "x.json"]
    assert table([(argv, report)]).splitlines()[-1].endswith(f"| {head} |")
    del report["revision"]   # a report from before revisions were kept
    assert table([(argv, report)]).splitlines()[-1].endswith("| - |")


def test_the_table_reads_every_figure_after_the_runs(tmp_path, monkeypatch):
    """A run takes up to hours, and another run may write a newer figure meanwhile: the table must show the
    figures as they are when its own runs end, not as they were when it started."""
    from trntile.sim import fpga_table

    names = [name for name, _ in fpga_table.CONFIGURATIONS]
    first, last = names[0], names[-1]
    report = {"top": "tensor_engine", "partitions": 4, "device": "ecp5-85k", "lut4": 1, "ff": 1, "mult18": 0,
              "bram": 0, "fmax_mhz": 10.0, "fits": True, "target_mhz": 100, "revision": "old"}
    (tmp_path / f"{first}.json").write_text(json.dumps(report))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fpga.md").write_text(f"before\n{fpga_table._BEGIN}\n{fpga_table._END}\nafter\n")

    def run(argv, check):   # the run of the last configuration; meanwhile another rewrote the first's figures
        (tmp_path / f"{last}.json").write_text(json.dumps({**report, "revision": "last"}))
        (tmp_path / f"{first}.json").write_text(json.dumps({**report, "revision": "newer"}))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(fpga_table.subprocess, "run", run)
    assert fpga_table.main(["--run", last, "--folder", str(tmp_path), "--docs", str(tmp_path / "docs")]) == 0
    figures = json.loads((tmp_path / "docs" / "fpga.json").read_text())
    assert [f["revision"] for f in figures] == ["newer", "last"]
    page = (tmp_path / "docs" / "fpga.md").read_text()
    assert "| newer |" in page and "| old |" not in page and page.endswith("after\n")


def test_the_table_shows_the_placer_density_a_figure_was_made_with():
    """The table's command is the one that made the figure: a configuration that now asks for another placer
    density still shows an older figure's (nextpnr's default when the report has none)."""
    from trntile.sim.fpga_table import _as_run

    asked = ["trntile", "fpga", "--top", "tile", "--placer-density", "0.7", "--freq", "100", "--json", "x.json"]
    plain = ["trntile", "fpga", "--top", "tile", "--freq", "100", "--json", "x.json"]
    assert _as_run(asked, {}) == plain
    assert _as_run(asked, {"placer_density": 0.9}) == plain
    assert _as_run(asked, {"placer_density": 0.7}) == plain[:-2] + ["--placer-density", "0.7", "--json", "x.json"]
    assert _as_run(plain, {"placer_density": 0.8}) == plain[:-2] + ["--placer-density", "0.8", "--json", "x.json"]
