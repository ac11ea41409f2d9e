"""trntile.hdl.shift against Python's shifts, exhaustively for small widths (Amaranth's simulator)."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from trntile.hdl.shift import shift_left, shift_right


@pytest.mark.parametrize("width,amount_bits,step", [(24, 3, 8), (7, 3, 1), (16, 2, 8), (8, 4, 1)])
def test_shifts_match_python(width, amount_bits, step):
    value, amount = Signal(width), Signal(amount_bits)
    left, right = Signal(width), Signal(width)
    m = Module()
    m.d.comb += [left.eq(shift_left(value, amount, step)), right.eq(shift_right(value, amount, step))]
    sim = Simulator(m)
    checked = []

    async def bench(ctx):
        for x in sorted({0, 1, (1 << width) - 1, 0x5A5A5A5A & ((1 << width) - 1), 1 << (width - 1)}):
            for s in range(1 << amount_bits):   # including amounts that shift everything out
                ctx.set(value, x)
                ctx.set(amount, s)
                mask = (1 << width) - 1
                assert ctx.get(left) == (x << s * step) & mask, f"{x:#x} << {s} x {step}"
                assert ctx.get(right) == x >> s * step, f"{x:#x} >> {s} x {step}"
                checked.append((x, s))

    sim.add_testbench(bench)
    sim.run()
    assert len(checked) >= 1 << amount_bits
