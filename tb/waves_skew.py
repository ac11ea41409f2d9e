"""One LoadStationary and one MultiplyMoving on the tensor engine, for the waveform picture of the systolic
skew (``python -m trntile.sim.wave_picture``, docs/waves.md).

Readable operands, bf16: ``stationary[k, m] = 1`` and ``moving[k, n] = n + 1 + 10 k``, so row k sees
column n as ``n + 1 + 10 k`` and the partial sum of column n leaving row k of array column 0 is
``sum_{j <= k} (n + 1 + 10 j)``. The result is compared with the golden model like every other test's.
"""

from __future__ import annotations

import cocotb
import numpy as np

from trntile.golden import numerics
from trntile.golden.tensor_engine import LoadStationary, MultiplyMoving
from trntile.tb.test_tensor_engine import Allocator, TensorEngineTB

#: The moving operand's columns (N).
COLUMNS = 6


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def one_multiply_moving(dut):
    tb = TensorEngineTB(dut, pause=0.0)
    await tb.start()
    p = tb.p
    allocator = Allocator(tb.sbuf_bytes)
    stationary = numerics.cast(np.ones((p, p)), "bf16")
    moving = numerics.cast(np.add.outer(10 * np.arange(p), np.arange(1, COLUMNS + 1)), "bf16")
    a = await tb.place_all(allocator, 0, "bf16", stationary, dims=[(1, p)])
    b = await tb.place_all(allocator, 0, "bf16", moving, dims=[(1, COLUMNS)])
    await tb.send([LoadStationary(0, a, p, p, "bf16"), MultiplyMoving(0, b, p, COLUMNS, "bf16", 0, 0, False)])
    await tb.wait_idle()
    await tb.compare_psum("the waveform picture's MultiplyMoving")
