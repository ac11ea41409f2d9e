"""Runs one GEMM on the tile, for ``trntile matmul``, ``trntile demo`` and ``trntile bench gemm``.

``TRNTILE_GEMM`` (JSON) says what: ``m``, ``n``, ``k``, ``dtype``, ``a`` and ``b`` (paths of .npy files
holding the bit patterns of A and B cast to the operand type), ``out`` and ``golden`` (where to write C from the
RTL and from the golden simulator, as .npy), ``json`` (where to write the figures) and, optionally,
``progress`` (a file rewritten every 1,000 cycles with the cycles simulated so far, for the command line to show).
The kernel is :func:`trntile.sw.gemm.gemm_kernel`; the same DRAM image runs on the golden ISA simulator, and C
must match it bit for bit. The figures come from the tile's own counters: ``cycles`` (start until quiet) and
``macs`` (useful multiply-accumulates), and ``mfu = macs / (P * P * cycles)``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np

from trntile.golden import numerics
from trntile.golden.tile import TileModel
from trntile.sw.gemm import gemm_kernel
from trntile.tb.test_tile import TileTB


@cocotb.test(timeout_time=100_000, timeout_unit="ms")
async def gemm(dut):
    spec = json.loads(os.environ["TRNTILE_GEMM"])
    tb = TileTB(dut, checkers=spec.get("checkers", True))
    await tb.start(clear_sbuf=False)   # the kernel reads only SBUF it has written
    m, n, k, dtype = spec["m"], spec["n"], spec["k"], spec["dtype"]
    kernel = gemm_kernel(m, n, k, dtype, partitions=tb.p, queues=tb.queues, sbuf_bytes=tb.sbuf_bytes,
                         dram_bytes=tb.dram_bytes)
    a, b = (numerics.from_bits(np.load(spec[name]), dtype) for name in ("a", "b"))
    image = kernel.dram_image({"at": a.T, "b": b})
    starts = kernel.program_addresses()
    model = TileModel(partitions=tb.p, sbuf_bytes=tb.sbuf_bytes, dram_bytes=tb.dram_bytes, queues=tb.queues,
                      semaphores=tb.semaphores, dtypes=tb.dtypes)
    model.dram[:] = image
    model.start(starts)
    model.run()
    began = time.perf_counter()

    def progress(cycles):
        if spec.get("progress"):
            with open(spec["progress"], "w") as handle:
                handle.write(f"{cycles}\n")

    cycles = await tb.run_image(image, starts, limit=50_000_000, progress=progress)
    seconds = time.perf_counter() - began
    c = kernel.read(tb.dram, "c")
    np.save(spec["out"], c)                               # the caller reports the first mismatch, if any
    np.save(spec["golden"], kernel.read(model.dram, "c"))
    await tb.compare(model, f"gemm {m} x {n} x {k} {dtype}")
    counters = {name: await tb.read64(name) for name in ("macs", "tensor_busy", "act_busy")}
    counters |= {name: await tb.read(name) for name in ("dma_read_bytes", "dma_written_bytes")}
    counters |= {f"{name}_wait_cycles": await tb.read(f"{name}_wait_cycles") for name in tb.names}
    counters |= {f"{name}_executed": await tb.read(f"{name}_executed") for name in tb.names}
    macs = counters["macs"]
    assert macs == m * n * k, f"the tile counted {macs} useful MACs, the GEMM has {m * n * k}"
    figures = {"m": m, "n": n, "k": k, "dtype": dtype, "partitions": tb.p, "data_width": tb.params["data_width"],
               "cycles": cycles, "mfu": round(macs / (tb.p * tb.p * cycles), 4), "sim_seconds": round(seconds, 2),
               "ideal_cycles": -(-m * n * k // (tb.p * tb.p)), "counters": counters}
    with open(spec["json"], "w") as handle:
        json.dump(figures, handle, indent=2)
        handle.write("\n")
    tb.log.info("%s", figures)
