"""Pieces every cocotb testbench in trntile shares: parameters, seeded randomness, clock and reset, pauses.

Runs inside the simulator, started by :func:`trntile.sim.runner.run`.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Iterator

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

__all__ = ["design_params", "design_top", "test_rng", "pauses", "pack", "unpack", "offer", "ClockedTB",
           "CLOCK_PERIOD_NS"]

CLOCK_PERIOD_NS = 10

# Our own warnings are errors in the simulator too (pytest's filterwarnings does not reach it).
warnings.filterwarnings("error", module=r"trntile(\.|$)")


def design_params() -> dict:
    """The parameters the design under test was built with (as resolved by the runner)."""
    return json.loads(os.environ["TRNTILE_PARAMS"])


def design_top() -> str:
    """The registered top name of the design under test."""
    return os.environ["TRNTILE_TOP"]


def test_rng() -> random.Random:
    """A generator for the running test.

    cocotb seeds each test from ``COCOTB_RANDOM_SEED`` and the test's full name (``cocotb.RANDOM_SEED``
    holds the result while the test runs), so a test run alone sees exactly what it saw in the full
    module run with the same seed.
    """
    return random.Random(cocotb.RANDOM_SEED)


def pack(layout, value) -> int:
    """The integer an Amaranth ``data`` layout stores for ``value`` (a dict for a struct, a list for an
    array, an int otherwise), so a testbench drives a payload through the same definition as the RTL."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    if isinstance(layout, data.StructLayout):
        return sum(pack(field.shape, value.get(name, 0)) << field.offset for name, field in layout)
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return sum(pack(layout.elem_shape, item) << (index * width) for index, item in enumerate(value))
    return int(value) & ((1 << Shape.cast(layout).width) - 1)


def unpack(layout, bits: int):
    """The inverse of :func:`pack`: dicts for structs, lists for arrays, unsigned ints for the rest."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    if isinstance(layout, data.StructLayout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in layout}
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, bits >> (index * width)) for index in range(layout.length)]
    return bits & ((1 << Shape.cast(layout).width) - 1)


def pauses(rng: random.Random, probability: float) -> Iterator[bool]:
    """Per-cycle pause pattern for a cocotbext-axi source (idle cycles) or sink (backpressure).

    With ``probability`` 0 it never pauses. Otherwise it alternates between runs of cycles that pause
    independently with ``probability`` and occasional long stalls, so both single-cycle bubbles and
    full-buffer conditions occur.
    """
    while True:
        if probability <= 0:
            yield False
            continue
        if rng.random() < 0.05:
            yield from [True] * rng.randint(4, 24)
        for _ in range(rng.randint(8, 64)):
            yield rng.random() < probability


async def offer(dut, stream: str, payload: int, *, limit: int = 20_000) -> None:
    """Drive one beat on the stream whose ports are ``<stream>__payload``, ``__valid`` and ``__ready``, and
    return after the edge that transfers it. Ready is sampled settled (in the read-only phase) before that
    edge, and valid is low again on return. A beat not taken within ``limit`` cycles fails the test
    (a design that stops taking input must not hang its testbench)."""
    getattr(dut, f"{stream}__payload").value = payload
    getattr(dut, f"{stream}__valid").value = 1
    ready = getattr(dut, f"{stream}__ready")
    for _ in range(limit):
        await ReadOnly()
        taken = int(ready.value)
        await RisingEdge(dut.clk)
        if taken:
            getattr(dut, f"{stream}__valid").value = 0
            return
    raise AssertionError(f"{stream}: a beat was not taken within {limit} cycles")


class ClockedTB:
    """Base testbench: starts the clock on ``dut.clk`` and drives ``dut.rst`` (active high, synchronous).

    Reset is asserted from the first instant, so bus models created after this see a reset edge rather
    than undefined inputs.
    """

    def __init__(self, dut):
        self.dut = dut
        self.log = dut._log
        self.params = design_params()
        self.rng = test_rng()
        self.np_rng = np.random.default_rng(self.rng.getrandbits(32))  # for numpy arrays, from the same seed
        self.log.info("COCOTB_RANDOM_SEED=%s, top %s, params %s", os.environ.get("COCOTB_RANDOM_SEED"),
                      design_top(), self.params)
        dut.rst.value = 1
        self.clock = Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns")
        self.clock.start()

    async def reset(self, cycles: int = 4) -> None:
        """Hold ``rst`` for ``cycles`` clock cycles, release it, and wait for the next rising edge."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def cycles(self, n: int) -> None:
        """Wait ``n`` rising edges of the clock."""
        await ClockCycles(self.dut.clk, n)
