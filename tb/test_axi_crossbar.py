"""cocotb tests for the AXI4 crossbar (top ``axi_crossbar``).

Masters are cocotbext-axi ``AxiMaster``s on the slave ports, targets are ``AxiRam``s on the master ports,
and an :class:`~trntile.tb.axi_checker.AxiProtocolChecker` watches every port. The reference model is one
bytearray per target window: every write must land there at its offset, every read must return what the
model holds, and at the end each RAM must equal its model byte for byte (so a stray write anywhere,
including from a request that should have been refused, is caught).
"""

from __future__ import annotations

import logging

import cocotb
from cocotb.triggers import RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiMaster, AxiRam, AxiResp
from cocotbext.axi.axi_channels import (AxiARSource, AxiARTransaction, AxiAWSource, AxiAWTransaction, AxiBSink,
                                        AxiRSink, AxiWSource, AxiWTransaction)

from trntile.hdl.tops import XBAR_WINDOW
from trntile.tb.axi_checker import AxiProtocolChecker, burst_problem, until_done
from trntile.tb.common import ClockedTB, pauses

WORKERS = 3  # concurrent streams of operations per master, each with its own ID and address range


class XbarTB(ClockedTB):
    def __init__(self, dut, *, backpressure: float = 0.0, masters: bool = True, illegal_on: set = frozenset()):
        super().__init__(dut)
        self.n = self.params["masters"]
        self.m = self.params["slaves"]
        self.bytes_per_beat = self.params["data_width"] // 8
        self.id_count = 1 << self.params["id_width"]
        self.unmapped_base = self.m * XBAR_WINDOW  # nothing is mapped from here up
        self.masters = []
        if masters:
            for i in range(self.n):
                master = AxiMaster(AxiBus.from_prefix(dut, f"s{i}_axi", bus_separator="__"), dut.clk, dut.rst)
                self.masters.append(master)
        else:  # the test drives the ports it uses; the others stay idle rather than X
            for i in range(self.n):
                for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
                    getattr(dut, f"s{i}_axi__{name}").value = 0
        self.rams = [AxiRam(AxiBus.from_prefix(dut, f"m{j}_axi", bus_separator="__"), dut.clk, dut.rst,
                            size=XBAR_WINDOW) for j in range(self.m)]
        self.models = [bytearray(XBAR_WINDOW) for _ in range(self.m)]
        for bfm in self.masters + self.rams:
            for part in (bfm.write_if, bfm.read_if):
                part.log.setLevel(logging.WARNING)
        self.checkers = [AxiProtocolChecker(dut, f"s{i}_axi", dut.clk, dut.rst,
                                            allow_illegal_bursts=i in illegal_on) for i in range(self.n)]
        self.checkers += [AxiProtocolChecker(dut, f"m{j}_axi", dut.clk, dut.rst) for j in range(self.m)]
        if backpressure:
            self.backpressure(backpressure)

    def backpressure(self, probability: float) -> None:
        """Idle cycles and stalls on all five channels, on both sides of the crossbar."""
        for master in self.masters:
            for channel in (master.write_if.aw_channel, master.write_if.w_channel, master.write_if.b_channel,
                            master.read_if.ar_channel, master.read_if.r_channel):
                channel.set_pause_generator(pauses(self.rng, probability))
        for ram in self.rams:
            for channel in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                            ram.read_if.ar_channel, ram.read_if.r_channel):
                channel.set_pause_generator(pauses(self.rng, probability))

    def region(self, master: int, worker: int) -> tuple[int, int]:
        """(offset, size) inside every target window that belongs to one worker of one master."""
        size = XBAR_WINDOW // (self.n * WORKERS)
        size -= size % 4096 if size >= 4096 else 0
        return (master * WORKERS + worker) * size, size

    def check_rams(self) -> None:
        for j, (ram, model) in enumerate(zip(self.rams, self.models)):
            actual = ram.read(0, XBAR_WINDOW)
            if actual != bytes(model):
                first = next(k for k in range(XBAR_WINDOW) if actual[k] != model[k])
                raise AssertionError(f"target {j}: byte {first:#x} is {actual[first]:#04x}, model says "
                                     f"{model[first]:#04x}")

    async def until_done(self, *work):
        """Run ``work`` (coroutines) to completion; a hang fails within 2000 cycles, saying what waits."""
        return await until_done(self.dut.clk, self.checkers, *work)

    def check_protocol(self, *, idle: bool = True) -> None:
        for checker in self.checkers:
            checker.check(idle=idle)


async def worker(tb: XbarTB, master: int, worker_index: int, operations: int) -> int:
    """One stream of sequential random reads and writes, with its own ID and address range."""
    rng = tb.rng
    axi = tb.masters[master]
    offset, size = tb.region(master, worker_index)
    done = 0
    for _ in range(operations):
        # Any ID: workers of one master share IDs, so one ID often has requests at several targets.
        ident = rng.randrange(tb.id_count)
        unmapped = rng.random() < 0.1
        target = rng.randrange(tb.m)
        length = rng.choice([1, 2, 3, rng.randint(1, 64), rng.randint(1, min(size, 2048))])
        start = offset + rng.randrange(size - length + 1)
        base = tb.unmapped_base + rng.randrange(16) * XBAR_WINDOW if unmapped else target * XBAR_WINDOW
        beat_size = rng.randrange(tb.bytes_per_beat.bit_length())  # 0 .. log2(bytes per beat)
        if rng.random() < 0.5:
            data = bytes(rng.getrandbits(8) for _ in range(length))
            response = await axi.write(base + start, data, awid=ident, size=beat_size)
            expected = AxiResp.DECERR if unmapped else AxiResp.OKAY
            assert response.resp == expected, (f"master {master} write {length} B at {base + start:#x}: "
                                               f"{response.resp!r}, expected {expected!r}")
            if not unmapped:
                tb.models[target][start:start + length] = data
        else:
            response = await axi.read(base + start, length, arid=ident, size=beat_size)
            expected = AxiResp.DECERR if unmapped else AxiResp.OKAY
            assert response.resp == expected, (f"master {master} read {length} B at {base + start:#x}: "
                                               f"{response.resp!r}, expected {expected!r}")
            if not unmapped:
                want = bytes(tb.models[target][start:start + length])
                assert response.data == want, (f"master {master} read {length} B at {base + start:#x} "
                                               f"(target {target}) returned different data")
        done += 1
    return done


def _operations() -> int:
    # Icarus is about ten times slower than Verilator here; it runs a shorter version of the same test.
    return 12 if "icarus" in cocotb.SIM_NAME.lower() else 40


@cocotb.test(timeout_time=10, timeout_unit="ms")  # a backstop: the watchdog finds hangs
@cocotb.parametrize(backpressure=[0.0, 0.4])
async def random_traffic(dut, backpressure: float):
    """Random reads and writes from every master to every target and to unmapped addresses."""
    tb = XbarTB(dut, backpressure=backpressure)
    await tb.reset()
    operations = _operations()
    done = await tb.until_done(*(worker(tb, i, k, operations) for i in range(tb.n) for k in range(WORKERS)))
    assert done == [operations] * (tb.n * WORKERS)
    await tb.cycles(20)
    tb.check_rams()
    tb.check_protocol()
    tb.log.info("handshakes per target: %s", [dict(c.counts) for c in tb.checkers[tb.n:]])


@cocotb.test(timeout_time=10, timeout_unit="ms")  # a backstop: the watchdog finds hangs
async def per_id_ordering(dut):
    """Back-to-back requests with one ID to different targets (and nowhere) come back in issue order.

    Each target window holds different data and unmapped requests answer DECERR, so a response
    delivered out of order is a wrong read or a wrong response code for the AxiMaster, which matches
    responses to requests per ID in issue order.
    """
    tb = XbarTB(dut, backpressure=0.3)
    await tb.reset()
    for j in range(tb.m):
        pattern = bytes((j * 37 + k) & 0xFF for k in range(256))
        tb.rams[j].write(0, pattern)
        tb.models[j][0:256] = pattern

    async def one_master(i: int, axi) -> None:
        ident = i % tb.id_count
        plan = [(k % (tb.m + 1)) for k in range(3 * (tb.m + 1))]  # target index; tb.m means unmapped
        tb.rng.shuffle(plan)
        reads = []
        for target in plan:
            address = (tb.unmapped_base if target == tb.m else target * XBAR_WINDOW) + 16 * tb.rng.randrange(8)
            # Tasks start in order, and each queues its request when it starts: issue order is plan order.
            reads.append((target, address, cocotb.start_soon(axi.read(address, 32, arid=ident))))
        writes = []
        for target in plan:
            address = (tb.unmapped_base if target == tb.m else target * XBAR_WINDOW) + 0x800 + 16 * i
            writes.append((target, cocotb.start_soon(axi.write(address, bytes([i]) * 16, awid=ident))))
            if target < tb.m:
                tb.models[target][0x800 + 16 * i:0x800 + 16 * i + 16] = bytes([i]) * 16
        for target, address, task in reads:
            response = await task
            if target == tb.m:
                assert response.resp == AxiResp.DECERR, f"unmapped read at {address:#x} got {response.resp!r}"
            else:
                offset = address - target * XBAR_WINDOW
                assert response.resp == AxiResp.OKAY and response.data == bytes(tb.models[target][offset:offset + 32]), \
                    f"master {i} id {ident}: read of target {target} at {address:#x} got another request's data"
        for target, task in writes:
            response = await task
            expected = AxiResp.DECERR if target == tb.m else AxiResp.OKAY
            assert response.resp == expected, f"master {i} id {ident}: write to target {target} got {response.resp!r}"

    for i, axi in enumerate(tb.masters):
        await tb.until_done(one_master(i, axi))
    await tb.cycles(20)
    tb.check_rams()
    tb.check_protocol()


@cocotb.test(timeout_time=10, timeout_unit="ms")  # a backstop: the watchdog finds hangs
async def illegal_bursts_get_slverr(dut):
    """Bursts that break the rules get SLVERR (with every read beat), consume their data, touch no target."""
    tb = XbarTB(dut, masters=False, illegal_on={0})
    prefix = "s0_axi"
    bus = AxiBus.from_prefix(dut, prefix, bus_separator="__")
    aw, w, b = AxiAWSource(bus.write.aw, dut.clk, dut.rst), AxiWSource(bus.write.w, dut.clk, dut.rst), \
        AxiBSink(bus.write.b, dut.clk, dut.rst)
    ar, r = AxiARSource(bus.read.ar, dut.clk, dut.rst), AxiRSink(bus.read.r, dut.clk, dut.rst)
    for channel in (aw, w, b, ar, r):
        channel.log.setLevel(logging.WARNING)
        channel.set_pause_generator(pauses(tb.rng, 0.3))  # idle cycles and backpressure on all five
    await tb.reset()
    max_size = tb.bytes_per_beat.bit_length() - 1
    cases = [  # (address, awlen, awsize, awburst): each breaks one rule
        (0x0F00, 255, max_size, 1),  # INCR across a 4 KiB boundary (256 beats of at least 4 bytes)
        (0x1000 - tb.bytes_per_beat, 1, max_size, 1),  # two beats, the second in the next page
        (0x0100, 2, max_size, 2),  # WRAP of 3 beats
        (0x0100, 4, 0, 2),  # WRAP of 5 beats
        (0x0102, 3, 2, 2),  # WRAP of 4-byte beats starting off a 4-byte boundary
        (0x0200, 0, max_size, 3),  # reserved burst type
        (0x0300, 0, max_size + 1, 1),  # beat wider than the bus
        (0x0400, 16, max_size, 0),  # FIXED burst of 17 beats
    ]
    ident = 1 % tb.id_count

    async def send_all() -> None:
        for address, length, size, burst in cases:
            assert burst_problem(address, length, size, burst, max_size=max_size), "the case is legal"
            for j in range(tb.m):  # the same request aimed at every target: none of them may see it
                await aw.send(AxiAWTransaction(awid=ident, awaddr=j * XBAR_WINDOW + address, awlen=length,
                                               awsize=size, awburst=burst))
                for beat in range(length + 1):
                    await w.send(AxiWTransaction(wdata=0xA5A5A5A5, wstrb=(1 << tb.bytes_per_beat) - 1,
                                                 wlast=int(beat == length)))
                response = await b.recv()
                assert int(response.bresp) == AxiResp.SLVERR, f"write case {cases.index((address, length, size, burst))}: bresp {int(response.bresp)}"
                assert int(getattr(response, "bid", ident)) == ident
                await ar.send(AxiARTransaction(arid=ident, araddr=j * XBAR_WINDOW + address, arlen=length,
                                               arsize=size, arburst=burst))
                for beat in range(length + 1):
                    data = await r.recv()
                    assert int(data.rresp) == AxiResp.SLVERR
                    assert int(data.rlast) == int(beat == length), f"rlast on beat {beat} of {length + 1}"

    await tb.until_done(send_all())
    await tb.cycles(20)
    assert r.empty() and b.empty(), "more responses than requests"
    assert all(not checker.counts for checker in tb.checkers[tb.n:]), "an illegal burst reached a target"
    tb.check_rams()
    tb.check_protocol()


@cocotb.test(timeout_time=10, timeout_unit="ms")  # a backstop: the watchdog finds hangs
async def no_starvation(dut):
    """Every master saturates target 0 with 256-beat bursts; each still gets its round-robin share.

    Bound: with equal work W beats per master and N masters, round-robin guarantees each master a burst
    in every N, so each finishes within N * W beats of the start plus a fixed allowance of 64 cycles per
    burst for latency: ``finish <= N * W + 64 * bursts``.
    """
    tb = XbarTB(dut)
    await tb.reset()
    bursts, burst_bytes = 4, 256 * tb.bytes_per_beat
    cycle = {"now": 0}

    async def count_cycles():
        while True:
            await RisingEdge(dut.clk)
            cycle["now"] += 1
    cocotb.start_soon(count_cycles())
    finish = {}

    async def saturate(i: int, read: bool):
        axi = tb.masters[i]
        offset, _ = tb.region(i, 0)
        for k in range(bursts):
            if read:
                await axi.read(offset, burst_bytes, arid=i % tb.id_count)
            else:
                await axi.write(offset, bytes([i, k]) * (burst_bytes // 2), awid=i % tb.id_count)
                tb.models[0][offset:offset + burst_bytes] = bytes([i, k]) * (burst_bytes // 2)
        finish[(i, read)] = cycle["now"]

    for read in (False, True):
        start = cycle["now"]
        await tb.until_done(*(saturate(i, read) for i in range(tb.n)))
        bound = tb.n * bursts * 256 + 64 * bursts
        for i in range(tb.n):
            took = finish[(i, read)] - start
            tb.log.info("%s: master %d finished after %d cycles (bound %d)", "reads" if read else "writes", i,
                        took, bound)
            assert took <= bound, f"master {i} took {took} cycles for its {'reads' if read else 'writes'}, bound {bound}"
    await Timer(1, "us")
    tb.check_rams()
    tb.check_protocol()
