"""``WAVES=1`` leaves an FST that fst2vcd reads, with the block's ports, and a GTKWave save file for it."""

import re
import subprocess

import pytest
from conftest import require, require_simulator, simulators

from trntile.hdl.tops import get_top
from trntile.sim import toolchain
from trntile.sim.runner import design, run
from trntile.sim.waves import fst_signals


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


@pytest.mark.icarus
@pytest.mark.parametrize("top,params,module,testcase", [
    ("tensor_engine", {"partitions": 4, "sbuf_bytes": 2048}, "trntile.tb.test_tensor_engine", "shapes_at_the_edges"),
    ("tile_bench", {"partitions": 4, "sbuf_bytes": 1024, "data_width": 32, "queues": 1, "outstanding": 4,
                    "dram_bytes": 1 << 16}, "trntile.tb.test_tile", "matmul_end_to_end"),
    ("dma", {"partitions": 4, "sbuf_bytes": 4096, "data_width": 32, "queues": 2, "outstanding": 2,
             "dram_bytes": 1 << 20}, "trntile.tb.test_dma", "smoke"),
], ids=["tensor_engine", "tile", "dma"])
def test_save_file_shows_the_probes(top, params, module, testcase, monkeypatch):
    """The tensor engine's, the tile's and the DMA's save files show their internal signals (each sequencer's
    PC and state; the array's skewed rows, column 0's sums, PSUM writes; the DMA's descriptors and AXI
    channels), and every one is in the FST."""
    require_simulator("icarus")
    require(toolchain.gtkwave())
    monkeypatch.setenv("WAVES", "1")
    result = run(top, params, module, sim="icarus", testcase=testcase)
    gtkw = result.gtkw.read_text()
    assert "missing probes" not in gtkw, gtkw.splitlines()[1]
    declared = fst_signals(result.waves)
    probes = get_top(top).probes(design(top, params).params)
    shown = [line.split("[")[0] for line in gtkw.splitlines() if line.startswith(f"{top}.")]
    for group, paths in probes.items():
        assert f"-{group}" in gtkw, group
        for path in paths:
            assert f"{top}.{path}" in shown and f"{top}.{path}" in declared, path
