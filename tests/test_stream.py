# amaranth: UnusedElaboratable=no
"""The stream register slice, ready slice and FIFO: cocotb tests (trntile/tb/test_stream.py) on both simulators, and
constructor checks and a struct payload in Amaranth's own simulator."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator
from conftest import require_simulator, simulators

from trntile.hdl.stream import StreamFIFO, StreamReadySlice, StreamRegisterSlice
from trntile.sim.runner import run

# Edges of the parameter space: a 1-bit payload, an odd width, the smallest FIFO, a wide deep one.
DESIGNS = [
    ("stream_register_slice", {"width": 1}),
    ("stream_register_slice", {"width": 37}),
    ("stream_ready_slice", {"width": 1}),
    ("stream_ready_slice", {"width": 37}),
    ("stream_fifo", {"width": 8, "depth": 2}),
    ("stream_fifo", {"width": 64, "depth": 16}),
]


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("top,params", DESIGNS, ids=[f"{t}-" + "-".join(f"{k}{v}" for k, v in p.items())
                                                     for t, p in DESIGNS])
def test_stream_block(top, params, sim):
    require_simulator(sim)
    run(top, params, "trntile.tb.test_stream", sim=sim)


@pytest.mark.parametrize("depth,error", [(1, ValueError), (0, ValueError), (65537, ValueError), ("8", TypeError)])
def test_fifo_depth(depth, error):
    with pytest.raises(error, match=rf"depth must be an integer in 2\.\.65536, not {depth!r}"):
        StreamFIFO(8, depth=depth)


@pytest.mark.parametrize("block", [StreamRegisterSlice, StreamReadySlice, StreamFIFO])
def test_payload_shape(block):
    with pytest.raises(ValueError, match=r"at least 1 bit wide, not 0"):
        block(0)
    with pytest.raises(TypeError, match=r"shape-castable .* not 'wide'"):
        block("wide")


@pytest.mark.parametrize("block", [StreamRegisterSlice, StreamReadySlice, StreamFIFO])
def test_struct_payload_is_accepted_and_read_back(block):
    layout = data.StructLayout({"address": 12, "last": 1})
    instance = block(layout)
    assert instance.payload_shape is layout
    assert instance.i.payload.shape() == layout


@pytest.mark.parametrize("block", [StreamRegisterSlice, StreamReadySlice, lambda shape: StreamFIFO(shape, depth=3)])
def test_struct_payload_flows_in_order(block):
    """A layout payload goes through each block field by field (in Amaranth's own simulator)."""
    layout = data.StructLayout({"address": 12, "last": 1})
    dut = block(layout)
    rng = random.Random(2)
    sent = [{"address": rng.getrandbits(12), "last": rng.getrandbits(1)} for _ in range(40)]
    received = []

    async def producer(ctx):
        for beat in sent:
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            for _ in range(rng.randint(0, 1)):  # an idle cycle now and then
                await ctx.tick()

    async def consumer(ctx):
        while len(received) < len(sent):
            ctx.set(dut.o.ready, rng.random() < 0.6)
            _, _, valid, ready, payload = await ctx.tick().sample(dut.o.valid, dut.o.ready, dut.o.payload)
            if valid and ready:
                received.append({"address": payload.address, "last": payload.last})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-5)
    assert received == sent
