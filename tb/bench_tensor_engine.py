"""Tensor engine utilization, measured in cycles on the RTL (``trntile bench tensor``).

A sequence of LoadStationary + MultiplyMoving pairs with full K = M = P and N columns (two operand sets
in turn, results to banks 0..7 in turn) is sent back to back, with no stalls; then

- ``cycles`` = the engine's ``busy_cycles`` counter: from the cycle the first command is accepted to the
  cycle of the last PSUM write (the engine is never idle in between);
- ``macs`` = its ``macs`` counter (checked against pairs x K x M x N);
- ``mfu = macs / (P * P * cycles)``.

A single pair is run first, alone, to measure the latency of one LoadStationary + MultiplyMoving from
accepted to written (``single_pair_cycles``). Every PSUM word is compared with the golden model at the
end, so the figures are for correct results. The figures go, as JSON, to ``TRNTILE_BENCH_JSON``;
``TRNTILE_BENCH_DTYPE``, ``TRNTILE_BENCH_N`` and ``TRNTILE_BENCH_PAIRS`` choose the run.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from trntile.golden.tensor_engine import PSUM_BANKS, LoadStationary, MultiplyMoving
from trntile.tb.test_tensor_engine import Allocator, TensorEngineTB


async def busy_cycles(tb: TensorEngineTB) -> int:
    await ReadOnly()
    value = int(tb.dut.busy_cycles.value)
    await RisingEdge(tb.dut.clk)
    return value


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def tensor_engine_utilization(dut):
    tb = TensorEngineTB(dut, pause=0.0)
    await tb.start()
    p = tb.p
    fmt = os.environ.get("TRNTILE_BENCH_DTYPE", "bf16")
    n = int(os.environ.get("TRNTILE_BENCH_N", str(4 * p)))
    pairs = int(os.environ.get("TRNTILE_BENCH_PAIRS", "32"))

    allocator = Allocator(tb.sbuf_bytes)
    operands = []
    for _ in range(2):
        stationary = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (p, p)), dims=[(1, p)])
        moving = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (p, n)), dims=[(1, n)])
        operands.append((stationary, moving))

    def pair(index: int) -> list:
        stationary, moving = operands[index % 2]
        return [LoadStationary(0, stationary, p, p, fmt),
                MultiplyMoving(0, moving, p, n, fmt, index % PSUM_BANKS, 0, False)]

    before = await busy_cycles(tb)
    await tb.send(pair(0))
    await tb.wait_idle()
    single = await busy_cycles(tb) - before

    before = await busy_cycles(tb)
    macs_before = tb.expected["macs"]
    await tb.send([command for index in range(pairs) for command in pair(index)])
    await tb.wait_idle()
    cycles = await busy_cycles(tb) - before
    await tb.compare_psum("benchmark results")
    await tb.check_counters()
    macs = tb.expected["macs"] - macs_before
    assert macs == pairs * p * p * n

    result = {"partitions": p, "dtype": fmt, "n": n, "fp_cuts": tb.params["fp_cuts"], "macs": macs, "cycles": cycles,
              "mfu": round(macs / (p * p * cycles), 4), "pairs": pairs, "single_pair_cycles": single}
    tb.log.info("%s", result)
    with open(os.environ["TRNTILE_BENCH_JSON"], "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
