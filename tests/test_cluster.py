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
    # The cluster `trntile bench cluster --tiles 2 --partitions 4` builds (tests/test_bench.py), so one build
    # serves both: 64 KiB of SBUF, 32 MiB of DRAM with each tile's half on its own port.
    pytest.param({"tiles": 2, "sbuf_bytes": 65536, "data_width": 128, "queues": 3, "outstanding": 8,
                  "dram_bytes": 1 << 25, "dram_ports": 2, "dram_interleave": 1 << 24}, "verilator",
                 marks=pytest.mark.verilator, id="T2-P4-128bit-2ports-verilator"),
    pytest.param({"tiles": 4, "data_width": 128, "queues": 3, "outstanding": 4, "dram_ports": 4}, "verilator",
                 marks=pytest.mark.verilator, id="T4-P4-128bit-4ports-verilator"),
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
    ({"dram_ports": 3}, r"dram_ports must be a power of two in 1\.\.8, not 3"),
    ({"dram_ports": 4, "dram_bytes": 8192}, r"dram_ports must be at most dram_bytes / 4 KiB \(2\)"),
])
def test_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        Cluster(**given)


def test_demux_and_split_limits_are_checked():
    with pytest.raises(ValueError, match=r"count must be an integer in 1\.\.256, not 0"):
        AXI4LiteDemux(count=0, port_bits=12)
    with pytest.raises(ValueError, match=r"n must be at least the number of tiles \(4\)"):
        parallel_gemm(4, 3, 4, "bf16", tiles=4, partitions=4, queues=3, sbuf_bytes=1024, dram_bytes=1 << 20)


def test_cluster_memory_routes_dram_windows_and_semaphores():
    """The golden cluster's address space: DRAM below dram_bytes, tile j's SBUF (partition-major) at
    TILE_WINDOWS + j x window, then its semaphores, where a written word adds to one; by index arrays and by
    slices."""
    from trntile.golden.cluster import ClusterMemory
    from trntile.hdl.cluster import TILE_WINDOWS

    dram = np.zeros(4096, dtype=np.uint8)
    sbufs = [np.zeros((4, 16), dtype=np.uint8) for _ in range(2)]
    semaphores = [np.zeros(4, dtype=np.uint32) for _ in range(2)]
    memory = ClusterMemory(dram, sbufs, window=128, semaphores=semaphores)
    addresses = np.array([5, TILE_WINDOWS + 17, TILE_WINDOWS + 128 + 63, 4095])
    memory[addresses] = [1, 2, 3, 4]
    assert dram[5] == 1 and dram[4095] == 4
    assert sbufs[0][1, 1] == 2 and sbufs[1][3, 15] == 3
    assert sbufs[0].sum() == 2 and sbufs[1].sum() == 3
    assert memory[addresses].tolist() == [1, 2, 3, 4]
    assert memory[TILE_WINDOWS + 16:TILE_WINDOWS + 20].tolist() == [0, 2, 0, 0]
    assert memory.size == 1 << 32
    signal = TILE_WINDOWS + 128 + 64 + 4 * 2   # tile 1's semaphore 2
    memory[signal:signal + 4] = list((0x0102_0304).to_bytes(4, "little"))
    memory[signal:signal + 4] = list((0xFFFF_FFFF).to_bytes(4, "little"))
    assert semaphores[1].tolist() == [0, 0, 0x0102_0303, 0] and not semaphores[0].any()
    assert sbufs[1].sum() == 3, "a semaphore write reached the SBUF"


def test_golden_cluster_refuses_bad_semaphore_writes():
    """A COPY into a semaphore window must write exactly one aligned word of a semaphore that exists: two
    words, a word beyond the last semaphore and a read stop the queue with the bus error, as the RTL's SLVERR
    does; the good one adds."""
    from trntile.golden.dma import DmaError, Endpoint
    from trntile.hdl.cluster import semaphore_address
    from trntile.hdl.isa import EngineError
    from trntile.sw.asm import Copy, End, Instruction, encode_program

    word = 0x100
    target = semaphore_address(1, 0, 4, 1024)
    cases = {
        "one word": (Copy(Endpoint.dram(word, [(1, 1)]), Endpoint.dram(target + 4, [(1, 1)]), 4), 0),
        "two words": (Copy(Endpoint.dram(word, [(1, 2)]), Endpoint.dram(target, [(1, 2)]), 4),
                      EngineError.DMA + DmaError.WRITE_RESPONSE),
        "beyond": (Copy(Endpoint.dram(word, [(1, 1)]), Endpoint.dram(target + 4 * 8, [(1, 1)]), 4),
                   EngineError.DMA + DmaError.WRITE_RESPONSE),
        "half a word": (Copy(Endpoint.dram(word, [(1, 1)]), Endpoint.dram(target, [(1, 1)]), 2),
                        EngineError.DMA + DmaError.WRITE_RESPONSE),
        "a read": (Copy(Endpoint.dram(target, [(1, 1)]), Endpoint.dram(word, [(1, 1)]), 4),
                   EngineError.DMA + DmaError.READ_RESPONSE),
    }
    for what, (copy, error) in cases.items():
        model = ClusterModel(tiles=2, dram_bytes=1 << 16, partitions=4, sbuf_bytes=1024, queues=1, semaphores=8)
        model.dram[word:word + 8] = [5, 0, 0, 0, 6, 0, 0, 0]
        program = np.frombuffer(encode_program([Instruction(copy), Instruction(End())]), dtype=np.uint8)
        model.dram[0x1000:0x1000 + program.size] = program
        model.run([{2: 0x1000}, {}])
        assert model.tiles[0].status[2].error == error, what
        assert model.tiles[1].semaphores.tolist() == ([0, 5] if not error else [0, 0]) + [0] * 6, what


@pytest.mark.parametrize("tiles,elements,dtype,queues,pieces", [
    (2, 7, "fp32", 1, None), (3, 10, "int32", 2, None), (4, 9, "fp32", 3, 1), (4, 19, "int32", 2, 3),
    (4, 40, "fp32", 1, None), (1, 5, "fp32", 2, None)])
def test_all_reduce_on_the_golden_cluster(tiles, elements, dtype, queues, pieces):
    """The ring all-reduce on the golden cluster leaves ring_sum (chunk c summed in ring order from tile c) in
    every tile, which for int32 without overflow is the plain sum; every engine ends DONE. Under the fixed
    schedule and 8 random ones (engines in random order, each running 1 to 20 instructions a turn), so that
    a missing wait shows as a wrong sum."""
    import random

    from trntile.hdl.isa import EngineState
    from trntile.sw.cluster import all_reduce, ring_sum

    rng = np.random.default_rng(tiles * 100 + elements)
    p, sbuf_bytes, dram_bytes = 4, 1024, 1 << 20
    region = dram_bytes >> (tiles - 1).bit_length()
    load = [t * region + region // 2 for t in range(tiles)]
    store = [address + 0x1000 for address in load]
    reduce = all_reduce(elements, dtype, tiles=tiles, partitions=p, sbuf_bytes=sbuf_bytes, dram_bytes=dram_bytes,
                        queues=queues, pieces=pieces, offset=64, load=load, store=store)
    numpy_type = np.float32 if dtype == "fp32" else np.int32
    if dtype == "fp32":
        tensors = [rng.standard_normal((p, elements)).astype(np.float32) for _ in range(tiles)]
    else:
        tensors = [rng.integers(-1000, 1000, (p, elements)).astype(np.int32) for _ in range(tiles)]
    want = ring_sum(tensors, reduce.chunks)
    if dtype == "int32":
        assert (want == sum(t.astype(np.int64) for t in tensors)).all()
    for schedule in [None] + list(range(8)):
        model = ClusterModel(tiles=tiles, dram_bytes=dram_bytes, partitions=p, sbuf_bytes=sbuf_bytes, queues=queues)
        for t in range(tiles):
            model.dram[load[t]:load[t] + tensors[t].nbytes] = tensors[t].view(np.uint8).reshape(-1)
        reduce.image(model.dram)
        model.run(reduce.starts, rng=None if schedule is None else random.Random(schedule))
        for t, tile in enumerate(model.tiles):
            assert all(s.state == EngineState.DONE for s in tile.status[1:2 + min(queues, 2)]), \
                (schedule, [s for s in tile.status])
        for t in range(tiles):
            got = model.dram[store[t]:store[t] + want.nbytes].copy().view(numpy_type).reshape(p, elements)
            assert (got.view(np.uint32) == want.view(np.uint32)).all(), f"schedule {schedule}: tile {t}"


def test_all_reduce_limits_are_checked():
    from trntile.sw.cluster import all_reduce

    common = dict(tiles=4, partitions=4, sbuf_bytes=1024, dram_bytes=1 << 20)
    with pytest.raises(ValueError, match=r"dtype must be fp32 or int32"):
        all_reduce(16, "bf16", **common)
    with pytest.raises(ValueError, match=r"elements must be an integer of at least the number of tiles \(4\)"):
        all_reduce(3, "fp32", **common)
    with pytest.raises(ValueError, match=r"need 1120 bytes of each SBUF partition from offset 0, more than sbuf_bytes"):
        all_reduce(160, "fp32", **common)
    with pytest.raises(ValueError, match=r"load must give one DRAM address per tile \(4\), not 1"):
        all_reduce(16, "fp32", load=[0], **common)
    with pytest.raises(ValueError, match=r"pieces must be an integer in 1\.\.4 \(the shortest chunk\), not 5"):
        all_reduce(16, "fp32", pieces=5, **common)
