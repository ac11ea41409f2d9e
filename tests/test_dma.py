# amaranth: UnusedElaboratable=no
"""The DMA engine: cocotb tests (trntile/tb/test_dma.py) against the golden model, and its parameter checks."""

import pytest
from conftest import require_simulator

from trntile.hdl.dma import DMAEngine
from trntile.sim.runner import run

# P4-128bit is also the build of the DMA benchmark test (tests/test_bench.py), so it is built once.
BASE = {"partitions": 4, "sbuf_bytes": 4096, "queues": 4, "outstanding": 8, "dram_bytes": 1 << 20}
CASES = [
    pytest.param({"data_width": 128}, "verilator", marks=pytest.mark.verilator, id="P4-128bit-verilator"),
    # the widest bus, and the least concurrency: one queue, one burst outstanding each way
    pytest.param({"partitions": 16, "data_width": 512, "queues": 1, "outstanding": 1}, "verilator",
                 marks=pytest.mark.verilator, id="P16-512bit-1queue-verilator"),
    pytest.param({"partitions": 8, "data_width": 32, "queues": 2, "outstanding": 2}, "icarus",
                 marks=pytest.mark.icarus, id="P8-32bit-2queues-icarus"),
]


@pytest.mark.parametrize("params,sim", CASES)
def test_dma(params, sim):
    require_simulator(sim)
    run("dma", {**BASE, **params}, "trntile.tb.test_dma", sim=sim)


@pytest.mark.parametrize("given,message", [
    ({"queues": 0}, r"queues must be an integer in 1\.\.16, not 0"),
    ({"queues": 17}, r"queues must be an integer in 1\.\.16, not 17"),
    ({"outstanding": 33}, r"outstanding must be an integer in 1\.\.32, not 33"),
    ({"dram_bytes": 1000}, r"dram_bytes must be a power of two in 4096\.\.4294967296, not 1000"),
    ({"data_width": 24}, r"data_width must be a power of two in 32\.\.512, not 24"),
    ({"semaphores": 0}, r"semaphores must be an integer in 1\.\.256, not 0"),
])
def test_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        DMAEngine(**given)
