"""``WAVES=1`` leaves an FST that fst2vcd reads, with the block's ports, and a GTKWave save file for it."""

import re
import subprocess

import pytest
from conftest import require, require_simulator, simulators

from trntile.sim import toolchain
from trntile.sim.runner import design, run


@pytest.mark.parametrize("sim", simulators())
def test_waves_hold_the_ports(sim, monkeypatch):
    require_simulator(sim)
    require(toolchain.gtkwave())  # for fst2vcd
    if sim == "verilator":
        require(toolchain.fst_headers())
    monkeypatch.setenv("WAVES", "1")
    params = {"width": 5, "depth": 4}
    result = run("stream_fifo", params, "trntile.tb.test_stream", sim=sim, testcase="full_rate")
    assert result.waves is not None and result.waves.suffix == ".fst"
    vcd = subprocess.run(["fst2vcd", "-f", str(result.waves)], capture_output=True, text=True, check=True).stdout

    # Every port is in the dump, with its width, and the handshake actually toggled.
    declared = dict((name, int(width)) for width, name in re.findall(r"\$var \w+ (\d+) \S+ (\w+)", vcd))
    for name, width in design("stream_fifo", params).ports:
        assert declared.get(name) == width, f"{name} ({width} bits) not in the FST: {sorted(declared)}"
    assert vcd.count("\n#") > 100, "the dump holds almost no time steps"

    # The save file opens this FST and names signals by their full paths in it.
    gtkw = result.gtkw.read_text()
    assert f'[dumpfile] "{result.waves}"' in gtkw
    scopes = re.findall(r"\$scope module (\S+) \$end", vcd)
    for line in (line for line in gtkw.splitlines() if line.endswith(("__valid", "__ready", "clk"))):
        *path, signal = line.split(".")
        assert signal in declared and all(s in scopes for s in path), f"{line} is not a signal in the FST"
