"""cocotb tests for the systolic array (top ``systolic_array``), bit for bit against ``golden.numerics``.

Weights the operation does not use (rows k >= K, columns m >= M) are loaded with Inf and NaN patterns,
so a PE that let an inactive row touch a sum, or a result read from the wrong buffer, shows up. Each next
LoadStationary runs while the current MultiplyMoving streams, into the other weight buffer.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from trntile.golden import numerics
from trntile.hdl.systolic import INT8, float_cuts, load_layout, moving_layout, result_latency, result_layout, row_pitch
from trntile.tb.common import ClockedTB, pack, unpack

CODES = {"bf16": 0, "fp8_e4m3": 1, "fp8_e5m2": 2, "int8": INT8}
POISON = {"bf16": [0x7F80, 0xFF80, 0x7FC0], "fp8_e4m3": [0x7F, 0xFF], "fp8_e5m2": [0x7C, 0xFE], "int8": [0x80, 0x7F]}


class ArrayTB(ClockedTB):
    def __init__(self, dut):
        super().__init__(dut)
        self.p = self.params["partitions"]
        cuts = float_cuts(self.params["dtypes"], self.params["fp_cuts"])
        # A buffer's last column reaches the far corner (P - 1) row pitches and P - 1 columns after it is offered.
        self.drain = (self.p - 1) * row_pitch(cuts) + self.p
        self.flight = result_latency(self.p, cuts) + self.p
        self.layouts = load_layout(self.p), moving_layout(self.p), result_layout(self.p)
        dut.load__valid.value = 0
        dut.moving__valid.value = 0
        self.cycle = 0
        self.outputs = [[] for _ in range(self.p)]
        self.last_offered = [-10**9, -10**9]  # per weight buffer
        self.expected = [[] for _ in range(self.p)]  # per column: (bits, what) in order, None for don't-care
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            self.cycle += 1
            for column, entry in enumerate(unpack(self.layouts[2], int(self.dut.result.value))):
                if entry["valid"]:
                    self.outputs[column].append(entry["value"])

    def operands(self, fmt: str, k: int, m: int, n: int, *, raw: bool):
        """Random operands in ``fmt``: raw bit patterns (every special value) or cast normal numbers."""
        f = numerics.dtype(fmt)
        if raw:
            stationary = numerics.from_bits(self.np_rng.integers(0, 1 << f.bits, (k, m)), f)
            moving = numerics.from_bits(self.np_rng.integers(0, 1 << f.bits, (k, n)), f)
        else:
            scale = 40.0 if fmt == "int8" else 1.0
            stationary = numerics.cast(self.np_rng.standard_normal((k, m)) * scale, f)
            moving = numerics.cast(self.np_rng.standard_normal((k, n)) * scale, f)
        return stationary, moving

    async def load(self, stationary: np.ndarray, fmt: str, buffer: int) -> None:
        """Load every column of ``buffer``; weights outside the K x M operand are poison."""
        while self.cycle - self.last_offered[buffer] < self.drain:  # data using this buffer still in flight
            await RisingEdge(self.dut.clk)
        k, m = stationary.shape
        bits = numerics.to_bits(stationary).astype(int)
        for column in range(self.p):
            values = [int(bits[row, column]) if row < k and column < m else self.rng.choice(POISON[fmt])
                      for row in range(self.p)]
            self.dut.load__payload.value = pack(self.layouts[0], {"column": column, "buffer": buffer, "values": values})
            self.dut.load__valid.value = 1
            await RisingEdge(self.dut.clk)
        self.dut.load__valid.value = 0

    async def stream(self, moving: np.ndarray, fmt: str, buffer: int, *, bubbles: float) -> None:
        k, n = moving.shape
        bits = numerics.to_bits(moving).astype(int)
        for column in range(n):
            while self.rng.random() < bubbles:
                self.dut.moving__valid.value = 0
                await RisingEdge(self.dut.clk)
            values = [int(bits[row, column]) if row < k else self.rng.choice(POISON[fmt]) for row in range(self.p)]
            self.dut.moving__payload.value = pack(self.layouts[1], {
                "values": values, "active": (1 << k) - 1, "buffer": buffer, "dtype": CODES[fmt]})
            self.dut.moving__valid.value = 1
            await RisingEdge(self.dut.clk)
            self.last_offered[buffer] = self.cycle
        self.dut.moving__valid.value = 0

    def expect(self, stationary: np.ndarray, moving: np.ndarray, fmt: str, what: str) -> None:
        result = numerics.to_bits(numerics.matmul(stationary, moving, fmt)).astype(int)
        m, n = result.shape
        for column in range(self.p):
            for item in range(n):
                self.expected[column].append((int(result[column, item]), f"{what} dst[{column}, {item}]")
                                             if column < m else None)

    async def check(self) -> None:
        await self.cycles(self.flight + 2)  # drain
        errors = []
        for column in range(self.p):
            got, want = self.outputs[column], self.expected[column]
            if len(got) != len(want):
                errors.append(f"column {column}: {len(got)} results, expected {len(want)}")
                continue
            for value, expectation in zip(got, want):
                if expectation is None:
                    continue
                bits, what = expectation
                nan = (bits >> 23) & 0xFF == 0xFF and bits & 0x7FFFFF and "int8" not in what
                if (nan and not ((value >> 23) & 0xFF == 0xFF and value & 0x7FFFFF)) or (not nan and value != bits):
                    errors.append(f"{what}: got {value:#010x}, want {bits:#010x}")
        assert not errors, f"{len(errors)} mismatches, e.g. " + "; ".join(errors[:4])


async def run_sequence(tb: ArrayTB, cases, *, bubbles: float) -> None:
    """Run (fmt, stationary, moving, what) cases back to back, each load overlapping the previous stream."""
    load_task = cocotb.start_soon(tb.load(cases[0][1], cases[0][0], 0))
    for index, (fmt, stationary, moving, what) in enumerate(cases):
        await load_task
        buffer = index % 2
        tb.expect(stationary, moving, fmt, what)
        stream_task = cocotb.start_soon(tb.stream(moving, fmt, buffer, bubbles=bubbles))
        if index + 1 < len(cases):
            nxt = cases[index + 1]
            load_task = cocotb.start_soon(tb.load(nxt[1], nxt[0], 1 - buffer))
        await stream_task
    await tb.check()


@cocotb.test(timeout_time=20, timeout_unit="ms")
@cocotb.parametrize(bubbles=[0.0, 0.3])
async def random_matmuls(dut, bubbles: float):
    """Random K, M in [1, P], N in [1, 4P], every dtype, raw bit patterns and ordinary numbers."""
    tb = ArrayTB(dut)
    await tb.reset()
    p = tb.p
    cases = []
    for index in range(12 if "icarus" in cocotb.SIM_NAME.lower() else 40):
        fmt = tb.rng.choice(list(CODES))
        k, m, n = tb.rng.randint(1, p), tb.rng.randint(1, p), tb.rng.randint(1, 4 * p)
        stationary, moving = tb.operands(fmt, k, m, n, raw=fmt != "int8" and tb.rng.random() < 0.4)
        cases.append((fmt, stationary, moving, f"case {index} ({fmt}, K={k} M={m} N={n})"))
    await run_sequence(tb, cases, bubbles=bubbles)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def edges(dut):
    """K = 1, N = 1, N = 4P, M < P; int8 extremes over K = P; specials, cancellation, subnormal products."""
    tb = ArrayTB(dut)
    await tb.reset()
    p = tb.p
    f = numerics.cast
    cases = [
        ("bf16", *tb.operands("bf16", 1, p, 1, raw=False), "K=1 N=1"),
        ("bf16", *tb.operands("bf16", p, p, 4 * p, raw=False), "full K, M, N = 4P"),
        ("fp8_e4m3", *tb.operands("fp8_e4m3", p, 1, 4 * p, raw=True), "M=1 raw E4M3"),
        ("int8", np.full((p, p), -128, np.int8), np.full((p, 3), -128, np.int8), "int8 -128 x -128 over K=P"),
        ("int8", np.full((p, 2), 127, np.int8), np.full((p, 2), -128, np.int8), "int8 127 x -128"),
        ("bf16", f(np.array([[2.0**12] * 3, [1.0] * 3, [-(2.0**12)] * 3] + [[0.0] * 3] * (p - 3)), "bf16"),
         f(np.array([[2.0**12], [1.0], [2.0**12]] + [[0.0]] * (p - 3)), "bf16"), "cancellation in k order"),
        ("bf16", f(np.full((2, 2), 2.0**-70), "bf16"), f(np.full((2, 5), 2.0**-70), "bf16"), "subnormal products"),
        ("bf16", f(np.array([[3.0e38, np.inf], [3.0e38, 1.0]]), "bf16"), f(np.array([[2.0, -1.0], [1.0, -np.inf]]), "bf16"),
         "overflow, Inf - Inf"),
        ("fp8_e5m2", f(np.array([[-0.0], [0.0]]), "fp8_e5m2"), f(np.array([[1.0, -1.0], [-0.0, 0.0]]), "fp8_e5m2"),
         "signed zeros"),
    ]
    await run_sequence(tb, cases, bubbles=0.2)
