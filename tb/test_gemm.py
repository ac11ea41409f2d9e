"""The GEMM kernel on the RTL tile: many GEMMs in one simulation, each equal to the golden ISA simulator on every
DRAM byte, semaphore and engine status, and C equal to :func:`trntile.golden.numerics.chunked_matmul`.

``TRNTILE_GEMM_CASES`` (JSON): a list of ``[m, n, k, dtype, strategy]`` (the strategy of
:func:`~trntile.sw.gemm.gemm_kernel`), and ``"random"`` entries that draw a shape (1..3P+1 each), a dtype and a
strategy from the run's seed. Between GEMMs a soft reset puts the semaphores back to 0, as
the kernel expects.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np

from trntile.golden import numerics
from trntile.golden.numerics import DTYPES
from trntile.golden.tile import TileModel
from trntile.sw.gemm import gemm_kernel
from trntile.tb.test_tile import TileTB


def _operands(rng: np.random.Generator, m: int, n: int, k: int, dtype: str):
    """Random A and B in the operand type: integers for int8, normal values (some large, some tiny) otherwise."""
    if dtype == "int8":
        return (rng.integers(-128, 128, (m, k)).astype(np.int8), rng.integers(-128, 128, (k, n)).astype(np.int8))
    scale = 2.0 ** rng.integers(-6, 7, size=(1, 1))
    return (numerics.cast(rng.standard_normal((m, k)) * scale, dtype),
            numerics.cast(rng.standard_normal((k, n)), dtype))


@cocotb.test(timeout_time=2_000_000, timeout_unit="us")
async def gemm_sweep(dut):
    tb = TileTB(dut, latency=int(os.environ.get("TRNTILE_GEMM_LATENCY", "0")))
    await tb.start(clear_sbuf=False)   # the kernel reads only SBUF it has written
    cases = json.loads(os.environ["TRNTILE_GEMM_CASES"])
    for index, case in enumerate(cases):
        if case == "random":
            m, n, k = (int(v) for v in tb.np_rng.integers(1, 3 * tb.p + 2, size=3))
            dtype = list(DTYPES)[int(tb.np_rng.integers(0, len(DTYPES)))]
            strategy = ("resident", "stream")[int(tb.np_rng.integers(0, 2))]
        else:
            m, n, k, dtype, strategy = case
        what = f"GEMM {index}: {m} x {n} x {k} {dtype} ({strategy})"
        a, b = _operands(tb.np_rng, m, n, k, dtype)
        kernel = gemm_kernel(m, n, k, dtype, partitions=tb.p, queues=tb.queues, sbuf_bytes=tb.sbuf_bytes,
                             dram_bytes=tb.dram_bytes, strategy=strategy)
        image = kernel.dram_image({"at": a.T, "b": b})
        starts = kernel.program_addresses()
        model = TileModel(partitions=tb.p, sbuf_bytes=tb.sbuf_bytes, dram_bytes=tb.dram_bytes, queues=tb.queues,
                          semaphores=tb.semaphores, dtypes=tb.dtypes)
        model.dram[:] = image
        model.start(starts)
        model.run()
        await tb.soft_reset()
        cycles = await tb.run_image(image, starts, limit=2_000_000)
        await tb.compare(model, what)
        want = numerics.chunked_matmul(a, b, dtype, partitions=tb.p)
        got = kernel.read(tb.dram, "c")
        assert got.shape == want.shape and (got.view(np.uint32) == want.view(np.uint32)).all(), \
            f"{what}: C differs from chunked_matmul at {np.argwhere(got.view(np.uint32) != want.view(np.uint32))[0]}"
        macs = await tb.read64("macs")
        assert macs == m * n * k, f"{what}: the tile counted {macs} MACs"
        tb.log.info("%s: %d cycles, equal to the golden simulator", what, cycles)
