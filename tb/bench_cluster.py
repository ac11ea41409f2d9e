"""The cluster's scaling (``trntile bench cluster``): one GEMM on 1 tile and split over T tiles, and a ring
all-reduce, each in cycles from the tiles' own counters.

``TRNTILE_BENCH_SPEC`` (JSON) gives ``m``, ``n``, ``k``, ``dtype`` and ``elements`` (per partition, fp32). The
GEMM runs with :func:`~trntile.sw.cluster.parallel_gemm` on tile 0 alone and then on every tile; its cycles are
the slowest started tile's ``cycles`` counter, and C is checked against ``numerics.chunked_matmul`` both
times. The all-reduce loads random fp32 tensors into every tile's SBUF (untimed), runs
:func:`~trntile.sw.cluster.all_reduce` (timed: the largest of the tiles' ``cycles`` deltas), stores the sums
(untimed) and checks each against ``ring_sum``. Writes ``{"tiles", "partitions", "data_width", "dram_ports",
"allreduce_bytes", "allreduce_cycles", "allreduce_bytes_per_cycle", "allreduce_peak_bytes_per_cycle",
"gemm_cycles_1", "gemm_cycles_t", "gemm_speedup", ...}`` to ``TRNTILE_BENCH_JSON``.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np

from trntile.golden import numerics
from trntile.golden.dma import Endpoint
from trntile.sw.asm import Copy, End, Instruction
from trntile.sw.cluster import all_reduce, parallel_gemm, ring_sum
from trntile.tb.test_cluster import ClusterTB, _load, soft_reset_all

WATCHDOG = 1 << 24   # tiles wait for each other for longer than the default 4096 quiet cycles


async def _counters(tb: ClusterTB) -> list[int]:
    return [(await tb.read(t, "cycles_lo")) | (await tb.read(t, "cycles_hi")) << 32 for t in range(tb.tiles)]


async def _gemm(tb: ClusterTB, spec: dict, tiles: int) -> int:
    """The GEMM on the first ``tiles`` tiles; its cycles (the slowest tile's)."""
    m, n, k, dtype = spec["m"], spec["n"], spec["k"], spec["dtype"]
    gemm = parallel_gemm(m, n, k, dtype, tiles=tiles, partitions=tb.p, queues=tb.queues, sbuf_bytes=tb.sbuf_bytes,
                         dram_bytes=tb.dram_bytes)
    a = numerics.cast(tb.np_rng.standard_normal((m, k)), dtype)
    b = numerics.cast(tb.np_rng.standard_normal((k, n)), dtype)
    await soft_reset_all(tb)
    tb.dram[:] = gemm.image(a, b)
    starts = gemm.starts + [{}] * (tb.tiles - tiles)
    cycles = await tb.run(starts, limit=5_000_000)
    busy = [(await tb.read(t, "tensor_busy_lo")) for t in range(tiles)]
    tb.log.info("GEMM on %d tiles: cycles per tile %s, tensor busy %s", tiles, cycles[:tiles], busy)
    c, want = gemm.read(tb.dram), numerics.chunked_matmul(a, b, dtype, partitions=tb.p)
    assert (c.view(np.uint32) == want.view(np.uint32)).all(), f"the GEMM on {tiles} tiles: C differs"
    for tile in range(tiles):
        for index in range(len(tb.names)):
            state, error, _ = await tb.engine(tile, index)
            assert error == 0, f"the GEMM on {tiles} tiles: tile {tile} engine {tb.names[index]} error {error:#x}"
    return max(cycles[:tiles])


async def _all_reduce(tb: ClusterTB, elements: int) -> int:
    """A ring all-reduce of ``P x elements`` fp32 per tile; its cycles."""
    p, region = tb.p, tb.dram_bytes >> (tb.tiles - 1).bit_length()
    reduce = all_reduce(elements, "fp32", tiles=tb.tiles, partitions=p, sbuf_bytes=tb.sbuf_bytes,
                        dram_bytes=tb.dram_bytes, queues=tb.queues)
    tensors = [tb.np_rng.standard_normal((p, elements)).astype(np.float32) for _ in range(tb.tiles)]
    data = [t * region + region // 2 for t in range(tb.tiles)]
    tensor = Endpoint.sbuf(0, p, reduce.offset, [(1, elements)])
    flat = [Endpoint.dram(address, [(1, p * elements)]) for address in data]
    await soft_reset_all(tb)
    image = reduce.image()
    for t in range(tb.tiles):
        image[data[t]:data[t] + tensors[t].nbytes] = tensors[t].view(np.uint8).reshape(-1)
    loads = _load(image, {(t, 2): [Instruction(Copy(flat[t], tensor, 4)), Instruction(End())]
                          for t in range(tb.tiles)}, base=region // 4)
    stores = _load(image, {(t, 2): [Instruction(Copy(tensor, flat[t], 4)), Instruction(End())]
                           for t in range(tb.tiles)}, base=region // 4 + 0x400 * tb.tiles)
    tb.dram[:] = image
    await tb.run(loads)
    before = await _counters(tb)
    after = await tb.run(reduce.starts, limit=5_000_000)
    for t in range(tb.tiles):
        waits = {name: await tb.read(t, f"{name}_wait_cycles") for name in tb.names[1:4]}
        tb.log.info("all-reduce: tile %d: %d cycles, ACT busy %d, waiting %s", t, after[t] - before[t],
                    await tb.read(t, "act_busy_lo"), waits)
    await tb.run(stores)
    want = ring_sum(tensors, reduce.chunks)
    for t in range(tb.tiles):
        got = tb.dram[data[t]:data[t] + want.nbytes].copy().view(np.float32).reshape(want.shape)
        assert (got.view(np.uint32) == want.view(np.uint32)).all(), f"the all-reduce: tile {t}'s sum differs"
    return max(a - b for a, b in zip(after, before))


@cocotb.test(timeout_time=100_000, timeout_unit="ms")
async def cluster_scaling(dut):
    spec = json.loads(os.environ["TRNTILE_BENCH_SPEC"])
    tb = ClusterTB(dut, checkers=os.environ.get("TRNTILE_BENCH_CHECKERS", "1") != "0")
    await tb.reset()
    for tile in range(tb.tiles):
        await tb.write(tile, "watchdog", WATCHDOG)
    gemm_1 = await _gemm(tb, spec, 1)
    tb.log.info("GEMM on 1 tile: %d cycles", gemm_1)
    gemm_t = await _gemm(tb, spec, tb.tiles)
    tb.log.info("GEMM on %d tiles: %d cycles", tb.tiles, gemm_t)
    elements = spec["elements"]
    cycles = await _all_reduce(tb, elements)
    data_bytes = tb.params["data_width"] // 8
    total = tb.p * elements * 4
    # Each tile's memory port moves 2 (T - 1) / T of its tensor out (and as much in), at most a beat a cycle.
    peak = data_bytes * tb.tiles / (2 * (tb.tiles - 1)) if tb.tiles > 1 else None
    result = {
        "tiles": tb.tiles, "partitions": tb.p, "data_width": tb.params["data_width"],
        "dram_ports": tb.ports, "dram_interleave": tb.params["dram_interleave"], "m": spec["m"], "n": spec["n"], "k": spec["k"], "dtype": spec["dtype"],
        "allreduce_bytes": total, "allreduce_cycles": cycles,
        "allreduce_bytes_per_cycle": round(total / cycles, 3),
        "allreduce_peak_bytes_per_cycle": None if peak is None else round(peak, 3),
        "gemm_cycles_1": gemm_1, "gemm_cycles_t": gemm_t, "gemm_speedup": round(gemm_1 / gemm_t, 3),
    }
    tb.log.info("%s", result)
    with open(os.environ["TRNTILE_BENCH_JSON"], "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
