# amaranth: UnusedElaboratable=no
"""A sequencer's prefetch buffer in Amaranth's simulator: words come out as commands in the order they
arrived, whatever the engine's stalls, and a word that arrives at an empty buffer is issued the cycle after
(docs/tile.md, Sequencers). The tile's tests run the sequencers on both simulators against the golden ISA
model; this pins down the buffer's timing, which their results do not show."""

import random

import pytest
from amaranth.sim import Simulator

from trntile.hdl.isa import EngineKind, Opcode, instruction_layout
from trntile.hdl.sequencer import SemaphoreFile, Sequencer

SEED = 20261207


def _word(opcode: Opcode, marker: int) -> int:
    """An instruction with no wait and no signal whose payload starts with ``marker``."""
    return instruction_layout.const({"header": {"opcode": opcode}, "payload": marker}).as_value().value


def _bench(dut, *, words, arrival_gaps, stall, log):
    """Start, deliver ``words`` (one per fetch asked, after the gaps given) and record each command taken as
    (cycle, payload); the engine takes a command only when ``stall()`` is false."""
    async def bench(ctx):
        ctx.set(dut.program_address, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        asked, delivered, cycle, wait = 0, 0, 0, arrival_gaps[0]
        while len(log["commands"]) < len(words) and cycle < 2000:
            ctx.set(dut.fetch.ready, 1)
            asked += ctx.get(dut.fetch.valid)
            arriving = delivered < min(asked, len(words)) and wait == 0
            ctx.set(dut.word.valid, arriving)
            if arriving:
                ctx.set(dut.word.payload, {"word": words[delivered], "error": 0})
                log["arrived"].append(cycle)
                delivered += 1
                wait = arrival_gaps[delivered % len(arrival_gaps)]
            elif wait:
                wait -= 1
            take = not stall()
            ctx.set(dut.command.ready, take)
            if ctx.get(dut.command.valid) and take:
                log["commands"].append((cycle, ctx.get(dut.command.payload.payload) & 0xFFFF))
            # the engine checks each command at once and completes it at once (MULTIPLY_MOVING is kind B)
            taken = ctx.get(dut.command.valid) and take
            multiply = ctx.get(dut.command.payload.opcode) == Opcode.MULTIPLY_MOVING
            ctx.set(dut.done_a, taken and not multiply)
            ctx.set(dut.done_b, taken and multiply)
            await ctx.tick()
            cycle += 1
    return bench


def _run(words, arrival_gaps, stall):
    dut = Sequencer(EngineKind.TENSOR, semaphores=32, prefetch=16)
    log = {"arrived": [], "commands": []}
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_bench(dut, words=words, arrival_gaps=arrival_gaps, stall=stall, log=log))
    sim.run()
    return log


def test_a_word_at_an_empty_buffer_is_issued_the_cycle_after_it_arrives():
    """Words far apart: each finds the buffer empty; its command is loaded the cycle after it arrives and
    offered (and taken) the cycle after that."""
    words = [_word(Opcode.LOAD_STATIONARY, 0x100 + index) for index in range(4)]
    log = _run(words, [20], lambda: False)
    assert [payload for _, payload in log["commands"]] == [0x100, 0x101, 0x102, 0x103], log
    assert [taken - arrived for (taken, _), arrived in zip(log["commands"], log["arrived"])] == [2] * 4, log


@pytest.mark.parametrize("round_", range(3))
def test_words_come_out_in_order_under_stalls(round_):
    """Words arriving in bursts and gaps while the engine stalls at random: every command comes out once, in
    the order of its word (seed printed on failure)."""
    rng = random.Random(SEED + round_)
    words = [_word(rng.choice([Opcode.LOAD_STATIONARY, Opcode.MULTIPLY_MOVING]), index) for index in range(40)]
    gaps = [rng.choice([0, 0, 0, 1, 3, 9]) for _ in range(17)]
    log = _run(words, gaps, lambda: rng.random() < 0.6)
    assert [payload for _, payload in log["commands"]] == list(range(40)), f"seed {SEED + round_}: {log}"


@pytest.mark.parametrize("given,message", [
    ({"prefetch": 1}, "prefetch must be an integer of at least 2, not 1"),
    ({"pending": 0}, "pending must be an integer of at least 1, not 0"),
    ({"prefetch": True}, "prefetch must be an integer of at least 2, not True"),
])
def test_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        Sequencer(EngineKind.DMA, **given)


@pytest.mark.parametrize("given,message", [
    ({"sources": 0}, "sources must be an integer of at least 1, not 0"),
    ({"readers": -1}, "readers must be an integer of at least 0, not -1"),
])
def test_semaphore_file_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        SemaphoreFile(**given)
