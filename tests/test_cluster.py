# amaranth: UnusedElaboratable=no
"""The cluster: cocotb tests (trntile/tb/test_cluster.py) against the golden cluster model, the data-parallel
GEMM's split, and the parameter checks."""

import numpy as np
import pytest
from conftest import require_simulator

from trntile.golden import numerics
from trntile.golden.cluster import ClusterModel
from trntile.hdl.cluster import AXI4LiteDemux, Cluster
from trntile.sim.runner import run
from trntile.sw.cluster import parallel_gemm

BASE = {"partitions": 4, "sbuf_bytes": 1024, "semaphores": 32, "dram_bytes": 1 << 20}
CASES = [
    pytest.param({"tiles": 2, "data_width": 128, "queues": 3, "outstanding": 8}, "verilator",
                 marks=pytest.mark.verilator, id="T2-P4-128bit-verilator"),
    pytest.param({"tiles": 4, "data_width": 128, "queues": 3, "outstanding": 4}, "verilator",
                 marks=pytest.mark.verilator, id="T4-P4-128bit-verilator"),
    pytest.param({"tiles": 2, "data_width": 32, "queues": 2, "outstanding": 2}, "icarus",
                 marks=pytest.mark.icarus, id="T2-P4-32bit-2queues-icarus"),
]


@pytest.mark.parametrize("params,sim", CASES)
def test_cluster(params, sim):
    require_simulator(sim)
    run("cluster_bench", {**BASE, **params}, "trntile.tb.test_cluster", sim=sim)


def test_parallel_gemm_splits_n_and_matches_one_matmul():
    """The golden cluster model runs the split GEMM to the same C as one chunked matmul, every tile busy."""
    rng = np.random.default_rng(7)
    a = numerics.cast(rng.standard_normal((6, 9)), "bf16")
    b = numerics.cast(rng.standard_normal((9, 11)), "bf16")
    gemm = parallel_gemm(6, 11, 9, "bf16", tiles=3, partitions=4, queues=3, sbuf_bytes=1024, dram_bytes=1 << 20)
    assert gemm.columns == [(0, 4), (4, 8), (8, 11)]
    model = ClusterModel(tiles=3, dram_bytes=1 << 20, partitions=4, sbuf_bytes=1024, queues=3)
    model.dram[:] = gemm.image(a, b)
    model.run(gemm.starts)
    want = numerics.chunked_matmul(a, b, "bf16", partitions=4)
    assert (gemm.read(model.dram).view(np.uint32) == want.view(np.uint32)).all()
    assert all(tile.status[0].executed > 0 for tile in model.tiles)


@pytest.mark.parametrize("given,message", [
    ({"tiles": 0}, r"tiles must be an integer in 1\.\.8, not 0"),
    ({"tiles": 9}, r"tiles must be an integer in 1\.\.8, not 9"),
    ({"dram_bytes": 1 << 32}, r"dram_bytes must be a power of two in 4096\.\.2147483648"),
    ({"partitions": 6}, r"partitions must be a power of two in 4\.\.128, not 6"),
])
def test_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        Cluster(**given)


def test_demux_and_split_limits_are_checked():
    with pytest.raises(ValueError, match=r"count must be an integer in 1\.\.256, not 0"):
        AXI4LiteDemux(count=0, port_bits=12)
    with pytest.raises(ValueError, match=r"n must be at least the number of tiles \(4\)"):
        parallel_gemm(4, 3, 4, "bf16", tiles=4, partitions=4, queues=3, sbuf_bytes=1024, dram_bytes=1 << 20)


def test_cluster_memory_routes_dram_and_windows():
    """The golden cluster's address space: DRAM below dram_bytes, tile j's SBUF (partition-major) at
    SBUF_WINDOWS + j x window, by index arrays and by slices."""
    from trntile.golden.cluster import ClusterMemory
    from trntile.hdl.cluster import SBUF_WINDOWS

    dram = np.zeros(4096, dtype=np.uint8)
    sbufs = [np.zeros((4, 16), dtype=np.uint8) for _ in range(2)]
    memory = ClusterMemory(dram, sbufs, window=64)
    addresses = np.array([5, SBUF_WINDOWS + 17, SBUF_WINDOWS + 64 + 63, 4095])
    memory[addresses] = [1, 2, 3, 4]
    assert dram[5] == 1 and dram[4095] == 4
    assert sbufs[0][1, 1] == 2 and sbufs[1][3, 15] == 3
    assert sbufs[0].sum() == 2 and sbufs[1].sum() == 3
    assert memory[addresses].tolist() == [1, 2, 3, 4]
    assert memory[SBUF_WINDOWS + 16:SBUF_WINDOWS + 20].tolist() == [0, 2, 0, 0]
    assert memory.size == 1 << 32
