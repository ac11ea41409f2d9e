# amaranth: UnusedElaboratable=no
"""The tile: cocotb tests (trntile/tb/test_tile.py) against the golden ISA simulator, and its parameter checks."""

import pytest
from conftest import require_simulator

from trntile.hdl.tile import Tile
from trntile.sim.runner import run

BASE = {"partitions": 4, "sbuf_bytes": 1024, "semaphores": 32}
CASES = [
    # The FPGA build options here, the crossbar's register slices and the registers in the tensor engine's
    # float units; the benchmarks, GEMM and cluster tests run the tile without them.
    pytest.param({"data_width": 128, "queues": 4, "outstanding": 8, "dram_bytes": 1 << 20, "register_slices": 1,
                  "fp_cuts": 2}, "verilator", marks=pytest.mark.verilator, id="P4-4queues-slices-cuts2-verilator"),
    # int8 only, as the FPGA builds: the tile tests' matmuls run in int8 here.
    pytest.param({"data_width": 32, "queues": 1, "outstanding": 4, "dram_bytes": 1 << 16, "act_lanes": 2,
                  "dtypes": 8}, "icarus", marks=pytest.mark.icarus, id="P4-32bit-1queue-2lanes-int8-icarus"),
]


@pytest.mark.parametrize("params,sim", CASES)
def test_tile(params, sim):
    require_simulator(sim)
    run("tile_bench", {**BASE, **params}, "trntile.tb.test_tile", sim=sim)


@pytest.mark.parametrize("given,message", [
    ({"queues": 17}, r"queues must be an integer in 1\.\.16, not 17"),
    ({"semaphores": 300}, r"semaphores must be an integer in 1\.\.256, not 300"),
    ({"partitions": 2}, r"partitions must be a power of two in 4\.\.128, not 2"),
    ({"act_lanes": 0}, r"act_lanes must be a power of two in 1\.\.128, not 0"),
    ({"register_slices": 2}, r"register_slices must be an integer in 0\.\.1, not 2"),
    ({"fp_cuts": 3}, r"fp_cuts must be an integer in 0\.\.2, not 3"),
])
def test_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        Tile(**given)
