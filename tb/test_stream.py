"""cocotb tests for the stream blocks (``stream_register_slice``, ``stream_ready_slice``, ``stream_fifo``).

The reference model of a stream buffer is the identity: every beat that goes in comes out once, in
order, unchanged. A scoreboard also counts the beats held inside each cycle and checks the block's
``i.ready`` (and the FIFO's ``level``) against that count.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi.stream import define_stream

from trntile.tb.common import ClockedTB, design_top, pauses

StreamBus, StreamTransaction, StreamSource, StreamSink, StreamMonitor = define_stream(
    "Stream", signals=["payload", "valid", "ready"])

# Beats a slice can hold (the register slice: its output register and its skid register; the ready slice:
# its skid register) and the cycles a beat spends in it with the output ready.
_SLICES = {"stream_register_slice": {"capacity": 2, "latency": 1},
           "stream_ready_slice": {"capacity": 1, "latency": 0}}


class StreamTB(ClockedTB):
    def __init__(self, dut, *, manual: bool = False):
        """``manual``: the test drives both streams itself (no bus models, no scoreboard)."""
        super().__init__(dut)
        self.width = self.params["width"]
        self.is_fifo = design_top() == "stream_fifo"
        self.capacity = self.params["depth"] if self.is_fifo else _SLICES[design_top()]["capacity"]
        self.latency = 1 if self.is_fifo else _SLICES[design_top()]["latency"]
        self.held = 0  # beats inside the block, as the scoreboard counts them
        if not manual:
            self.source = StreamSource(StreamBus.from_prefix(dut, "i", bus_separator="__"), dut.clk, dut.rst)
            self.sink = StreamSink(StreamBus.from_prefix(dut, "o", bus_separator="__"), dut.clk, dut.rst)
        self.in_cycles: list[int] = []  # cycle numbers of beats accepted on i
        self.out_cycles: list[int] = []  # cycle numbers of beats delivered on o
        self.errors: list[str] = []
        if not manual:
            cocotb.start_soon(self.scoreboard())

    def payloads(self, count: int) -> list[int]:
        """Random payloads, starting with the edges: zero, all ones, and alternating bits."""
        ones = (1 << self.width) - 1
        alternating = int("01" * self.width, 2) & ones
        edges = [0, ones, alternating, ones ^ alternating, 1, 1 << (self.width - 1)]
        return (edges + [self.rng.getrandbits(self.width) for _ in range(count)])[:count]

    async def scoreboard(self) -> None:
        """Each cycle, once settled, check occupancy against the handshakes seen so far.

        Samples after the rising edge in the read-only phase, so a handshake seen in cycle *c* is the
        transfer that happens at the next edge. A cycle with ``rst`` high empties the block.
        """
        held = 0
        cycle = 0
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            cycle += 1
            if self.dut.rst.value:
                if self.dut.i__ready.value:
                    self.errors.append(f"cycle {cycle}: i.ready high during reset")
                held = self.held = 0
                continue
            in_fire = bool(self.dut.i__valid.value) and bool(self.dut.i__ready.value)
            out_fire = bool(self.dut.o__valid.value) and bool(self.dut.o__ready.value)
            ready = bool(self.dut.i__ready.value)
            if self.is_fifo and int(self.dut.level.value) != held:
                self.errors.append(f"cycle {cycle}: level {int(self.dut.level.value)}, "
                                   f"but {held} beats are inside")
            if held > self.capacity:
                self.errors.append(f"cycle {cycle}: {held} beats inside a block that holds {self.capacity}")
            if self.is_fifo and ready != (held < self.capacity):
                self.errors.append(f"cycle {cycle}: i.ready={int(ready)} with {held} of {self.capacity} held")
            if not self.is_fifo and held == self.capacity and ready:
                self.errors.append(f"cycle {cycle}: i.ready high with every register full")
            # (only a block without latency passes a beat through in the cycle it arrives)
            if out_fire and held == 0 and not (in_fire and self.latency == 0):
                self.errors.append(f"cycle {cycle}: a beat left an empty block")
            if in_fire:
                self.in_cycles.append(cycle)
            if out_fire:
                self.out_cycles.append(cycle)
            held += int(in_fire) - int(out_fire)
            self.held = held

    async def transfer(self, payloads: list[int], *, timeout_us: float) -> list[int]:
        """Send ``payloads`` through the block and return what came out (same count, or a timeout)."""
        received: list[int] = []

        async def collect() -> None:
            while len(received) < len(payloads):
                beat = await self.sink.recv()
                received.append(int(beat.payload))

        collector = cocotb.start_soon(collect())
        for value in payloads:
            await self.source.send(StreamTransaction(payload=value))
        try:
            await with_timeout(collector, timeout_us, "us")
        except SimTimeoutError:
            raise AssertionError(f"only {len(received)} of {len(payloads)} beats came out within {timeout_us} us "
                                 f"(beats dropped, or the block stopped)") from None
        # Let a few cycles pass: a duplicated beat would show up in the sink now.
        await self.cycles(8 + self.capacity)
        while not self.sink.empty():
            received.append(int(self.sink.recv_nowait().payload))
        # Everything sent has come out, so the block must be empty: a duplicate still waiting at the
        # output under backpressure shows up here.
        if self.held or self.dut.o__valid.value:
            self.errors.append(f"after the last beat the block still holds {self.held} beats "
                               f"(o.valid={int(self.dut.o__valid.value)})")
        return received

    def check_identity(self, sent: list[int], received: list[int]) -> None:
        assert len(received) == len(sent), f"sent {len(sent)} beats, received {len(received)}"
        for index, (want, got) in enumerate(zip(sent, received)):
            assert got == want, f"beat {index}: expected {want:#x}, got {got:#x} (dropped or reordered)"
        assert not self.errors, "scoreboard: " + "; ".join(self.errors[:5])


@cocotb.test(timeout_time=2, timeout_unit="ms")
@cocotb.parametrize(idle=[0.0, 0.3, 0.8], backpressure=[0.0, 0.5, 0.9])
async def random_traffic(dut, idle: float, backpressure: float):
    """Random payloads with random idle cycles and backpressure arrive once each, in order."""
    tb = StreamTB(dut)
    tb.source.set_pause_generator(pauses(tb.rng, idle))
    tb.sink.set_pause_generator(pauses(tb.rng, backpressure))
    await tb.reset()
    sent = tb.payloads(400)
    received = await tb.transfer(sent, timeout_us=1000)
    tb.check_identity(sent, received)
    assert len(tb.in_cycles) == len(sent) == len(tb.out_cycles)


@cocotb.test(timeout_time=200, timeout_unit="us")
async def full_rate(dut):
    """With no idle cycles and no backpressure the block moves one beat every cycle, in and out."""
    tb = StreamTB(dut)
    await tb.reset()
    sent = tb.payloads(256)
    received = await tb.transfer(sent, timeout_us=100)
    tb.check_identity(sent, received)
    for side, cycles in (("input", tb.in_cycles), ("output", tb.out_cycles)):
        span = cycles[-1] - cycles[0] + 1
        assert span == len(sent), (f"{side} side took {span} cycles for {len(sent)} beats; expected one "
                                   f"beat per cycle (first gap after beat "
                                   f"{next(i for i in range(1, len(cycles)) if cycles[i] != cycles[i-1] + 1)})")
    latency = tb.out_cycles[0] - tb.in_cycles[0]
    tb.log.info("full rate: %d beats in %d cycles, latency %d cycles", len(sent), len(sent), latency)
    # The latencies the blocks' docstrings promise.
    expected = tb.latency
    assert latency == expected, f"first beat took {latency} cycles through the block, documented {expected}"


@cocotb.test(timeout_time=200, timeout_unit="us")
async def ready_independent_of_output_ready(dut):
    """``i.ready`` never changes within a cycle when ``o.ready`` does: there is no combinational path.

    The test drives both sides by hand. Each cycle it sets ``o.ready`` after the rising edge, reads
    ``i.ready`` once settled, flips ``o.ready`` at the falling edge and reads ``i.ready`` again. A
    pass-through (``i.ready = o.ready``) fails on the first cycle the block has room.
    """
    tb = StreamTB(dut, manual=True)
    dut.o__ready.value = 0
    await tb.reset()
    dut.i__valid.value = 1
    dut.i__payload.value = 0
    changed = []
    for cycle in range(200):
        await RisingEdge(dut.clk)
        first = tb.rng.random() < 0.5
        dut.o__ready.value = int(first)
        await ReadOnly()
        before = int(dut.i__ready.value)
        await FallingEdge(dut.clk)
        dut.o__ready.value = int(not first)
        await ReadOnly()
        after = int(dut.i__ready.value)
        if before != after:
            changed.append(cycle)
    assert not changed, f"i.ready followed o.ready within the same cycle in cycles {changed[:10]}"

