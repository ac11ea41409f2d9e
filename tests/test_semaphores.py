# amaranth: UnusedElaboratable=no
"""The semaphore file's read ports against a model of the file, in Amaranth's simulator: random updates from
several sources, random lookups, resets between. (The tile's tests run it in the whole tile on both simulators.)"""

import random

import pytest
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.sim import Simulator

from trntile.hdl.sequencer import SemaphoreFile

SEED = 20261207


@pytest.mark.parametrize("count", [1, 5, 32])
def test_read_ports_follow_the_file(count):
    rng = random.Random(SEED + count)
    sources, readers = 3, 4
    clear = Signal()
    top = Module()
    top.submodules.file = ResetInserter(clear)(dut := SemaphoreFile(count=count, sources=sources, readers=readers))
    model = [0] * count
    checked = {"reads": 0, "nonzero": 0}

    async def bench(ctx):
        for cycle in range(1500):
            # Indices beyond the file now and then (such an update is dropped, such a read unspecified).
            updates = [(rng.random() < 0.5, rng.randrange(count + 1), rng.random() < 0.3,
                        rng.choice([1, 2, 0xFFFF_FFFF, rng.getrandbits(32)])) for _ in range(sources)]
            for port, (valid, index, set_, value) in zip(dut.updates, updates):
                ctx.set(port.valid, valid)
                ctx.set(port.payload, {"index": index, "set": set_, "value": value})
            indices = [rng.randrange(count) for _ in range(readers)]
            for port, index in zip(dut.read_index, indices):
                ctx.set(port, index)
            resetting = rng.random() < 0.01
            ctx.set(clear, resetting)
            for port, index in zip(dut.read_value, indices):
                got = ctx.get(port)
                assert got == model[index], (f"cycle {cycle}: reader saw semaphore {index} = {got:#x}, "
                                             f"file holds {model[index]:#x} (seed {SEED + count})")
                checked["reads"] += 1
                checked["nonzero"] += got != 0
            granted = [index for index, port in enumerate(dut.updates) if ctx.get(port.ready)]
            assert len(granted) == (1 if any(valid for valid, *_ in updates) else 0)
            await ctx.tick()
            if resetting:
                model[:] = [0] * count
            elif granted:
                _, index, set_, value = updates[granted[0]]
                if index < count:
                    model[index] = value if set_ else (model[index] + value) % 2 ** 32

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert checked["reads"] == 1500 * readers and checked["nonzero"] > 1000
