"""cocotb tests for the AXI4 window onto the SBUF (top ``sbuf_axi``) against a byte array of the flat SBUF.

A cocotbext-axi ``AxiMaster`` drives ``s_axi`` with random pauses on all five channels, and an
:class:`~trntile.tb.axi_checker.AxiProtocolChecker` watches it. The model is the window as one numpy byte
array (``partition * sbuf_bytes + offset``). :func:`plan` works out, for one ``AxiMaster`` transfer, the
bursts the master issues and where each byte of the transfer lands: in the word the beat's address names
(INCR, FIXED or WRAP), at the byte lane the master puts it on. A burst is refused (SLVERR, nothing
written, zero data read) when the window's contract says so; the model writes or expects accordingly.

Reads and writes run concurrently, several of each, but a transfer starts only when it shares no byte with a
write in flight (nor, for a write, with a read in flight), since AXI leaves such races open; so every byte of
every read is compared. A write is applied to the model when its B has come back. At the end the whole
window is compared through AXI and, independently of the slave's address decoding, through the SBUF's
``moving`` port. The bursts a careless master might send (past the end across 4 KiB, wider than the bus,
reserved types, bad WRAPs, FIXED beyond 16 beats) are driven beat by beat through cocotbext-axi's channel
drivers, since ``AxiMaster`` never sends them.

``SBUF_AXI_TRANSFERS`` in the environment sets how many random transfers each random test makes.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiBurstType, AxiBus, AxiMaster, AxiResp
from cocotbext.axi.axi_channels import AxiARSource, AxiAWSource, AxiBSink, AxiRSink, AxiWSource

from trntile.tb.axi_checker import AxiProtocolChecker, until_done
from trntile.tb.common import ClockedTB, pack, pauses

FIXED, INCR, WRAP = AxiBurstType.FIXED, AxiBurstType.INCR, AxiBurstType.WRAP
PAGE = 0x1000


# ---- the reference: where a transfer's bytes go ------------------------------------------------------------

@dataclasses.dataclass
class Plan:
    """One ``AxiMaster`` transfer as the slave sees it.

    ``bursts`` are (AxADDR, beats, refused) in issue order; ``locations[i]`` is the window byte that byte
    ``i`` of the transfer is written to or read from (meaningless where ``refused[i]``)."""

    bursts: list[tuple[int, int, bool]]
    locations: np.ndarray
    refused: np.ndarray

    @property
    def resp(self) -> AxiResp:
        return AxiResp.SLVERR if any(r for _, _, r in self.bursts) else AxiResp.OKAY


def beat_address(burst: AxiBurstType, axaddr: int, beats: int, size: int, beat: int) -> int:
    """AXI4's address of beat ``beat`` (from 0) of a burst."""
    n = 1 << size
    if burst == FIXED:
        return axaddr
    if burst == WRAP:
        span = beats * n
        base = axaddr - axaddr % span
        return base + (axaddr - base + beat * n) % span
    return axaddr - axaddr % n + beat * n


def refused(burst: int, axaddr: int, beats: int, size: int, window: int, *, max_size: int = 7) -> bool:
    """Whether the slave answers this burst with SLVERR (see ``hdl/sbuf_axi.py``): a beat at or past
    ``window``, a beat wider than the bus (``2**max_size`` bytes), the reserved burst type, a bad WRAP."""
    n = 1 << size
    if size > max_size or burst not in (FIXED, INCR, WRAP):
        return True
    if burst == WRAP:
        if beats not in (2, 4, 8, 16) or axaddr % n:
            return True
        span = beats * n
        return axaddr - axaddr % span + span - 1 >= window
    if burst == FIXED:
        return axaddr >= window
    return axaddr - axaddr % n + (beats - 1) * n >= window


def plan(address: int, length: int, size: int, burst: AxiBurstType, bus_bytes: int, window: int) -> Plan:
    """How cocotbext-axi's ``AxiMaster`` carries ``length`` bytes at ``address`` and where the slave puts them.

    The master cuts the transfer into bursts of at most 256 beats that stop at 4 KiB boundaries (measured
    from its running address, which stays put for FIXED), and lays byte ``i`` on lane
    ``(address + i) % bus_bytes`` of beat ``(address + i - aligned) // 2**size``, whatever the burst type.
    The slave takes the lanes into the word of the beat's address."""
    n = 1 << size
    aligned = address - address % n
    cycles = (length + address % n + n - 1) // n
    bursts, first_beat = [], []
    current, beat = address, 0
    while beat < cycles:
        beats = min(cycles - beat, 256)
        beats = (min(beats * n, PAGE - (current & (PAGE - 1))) + n - 1) // n
        bursts.append((current, beats, refused(burst, current, beats, size, window)))
        first_beat.append(beat)
        for k in range(beat, beat + beats):
            current = address if burst == FIXED else (aligned + n if k == 0 else current + n)
        beat += beats
    locations = np.zeros(length, dtype=np.int64)
    refusals = np.zeros(length, dtype=bool)
    index = 0
    for byte in range(length):
        virtual = address + byte
        beat = (virtual - aligned) // n
        while index + 1 < len(bursts) and first_beat[index + 1] <= beat:
            index += 1
        axaddr, beats, refusal = bursts[index]
        target = beat_address(burst, axaddr, beats, size, beat - first_beat[index])
        locations[byte] = target - target % bus_bytes + virtual % bus_bytes
        refusals[byte] = refusal
    return Plan(bursts, locations, refusals)


@dataclasses.dataclass
class Transfer:
    write: bool
    address: int
    length: int
    size: int
    burst: AxiBurstType
    ident: int
    data: bytes = b""
    cached_plan: Plan | None = dataclasses.field(default=None, compare=False, repr=False)
    cached_mask: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)


# ---- the testbench ---------------------------------------------------------------------------------------

class SbufAxiTB(ClockedTB):
    def __init__(self, dut, *, backpressure: float = 0.3, raw: bool = False):
        """With ``raw``, the test drives bursts itself (:meth:`raw_write`, :meth:`raw_read`) through
        cocotbext-axi's channel drivers, and the checker lets illegal bursts pass; otherwise an ``AxiMaster``
        drives whole transfers (:meth:`write`, :meth:`read`)."""
        super().__init__(dut)
        params = self.params
        self.p, self.sbuf_bytes = params["partitions"], params["sbuf_bytes"]
        self.bus_bytes = params["data_width"] // 8
        self.max_size = self.bus_bytes.bit_length() - 1
        self.window = self.p * self.sbuf_bytes
        bus = AxiBus.from_prefix(dut, "s_axi", bus_separator="__")
        if raw:
            self.master = None
            self.aw = AxiAWSource(bus.write.aw, dut.clk, dut.rst)
            self.w = AxiWSource(bus.write.w, dut.clk, dut.rst)
            self.b = AxiBSink(bus.write.b, dut.clk, dut.rst)
            self.ar = AxiARSource(bus.read.ar, dut.clk, dut.rst)
            self.r = AxiRSink(bus.read.r, dut.clk, dut.rst)
            channels = (self.aw, self.w, self.b, self.ar, self.r)
        else:
            self.master = AxiMaster(bus, dut.clk, dut.rst)
            for part in (self.master.write_if, self.master.read_if):
                part.log.setLevel(logging.WARNING)
            write, read = self.master.write_if, self.master.read_if
            channels = (write.aw_channel, write.w_channel, write.b_channel, read.ar_channel, read.r_channel)
        for channel in channels:
            channel.log.setLevel(logging.WARNING)
            if backpressure:
                channel.set_pause_generator(pauses(self.rng, backpressure))
        self.ids = 1 << len(dut.s_axi__awid)
        self.checker = AxiProtocolChecker(dut, "s_axi", dut.clk, dut.rst, allow_illegal_bursts=raw)
        dut.moving__request__valid.value = 0
        dut.moving__response__ready.value = 0
        self.model = np.zeros(self.window, dtype=np.uint8)
        self.counts = {"reads": 0, "writes": 0, "errors": 0}   # bursts, as the counters should show them
        self.writes_in_flight: list[np.ndarray] = []            # window bytes of writes not yet applied
        self.reads_in_flight: list[np.ndarray] = []             # window bytes of reads not yet answered
        self.bytes_compared = 0
        self.log.info("window %d bytes (%d partitions x %d), bus %d bytes, backpressure %.2f, %s",
                      self.window, self.p, self.sbuf_bytes, self.bus_bytes, backpressure,
                      "raw bursts" if raw else "AxiMaster transfers")

    async def start(self) -> None:
        """Reset, then fill the whole window with random bytes (memories are not cleared by reset)."""
        await self.reset()
        if self.master:
            fill = self.np_rng.integers(0, 256, self.window, dtype=np.uint8).tobytes()
            await self.write(Transfer(True, 0, self.window, self.max_size, INCR, 0, fill))
        else:
            beats = min(256, PAGE // self.bus_bytes)
            for address in range(0, self.window, beats * self.bus_bytes):
                await self.raw_write(address, beats, self.max_size, INCR)

    # ---- single bursts, driven beat by beat ------------------------------------------------------------
    def _lanes(self, axaddr: int, beats: int, size: int, burst: int, beat: int) -> tuple[int, range]:
        """The word address of a beat and the byte lanes a careful master strobes in it."""
        if size > self.max_size or burst not in (FIXED, INCR, WRAP):
            return 0, range(self.bus_bytes)
        n = 1 << size
        address = axaddr if beat == 0 or burst == FIXED else beat_address(burst, axaddr, beats, size, beat)
        low = (address - address % n) % self.bus_bytes
        return address - address % self.bus_bytes, range(address % self.bus_bytes, low + n)

    async def raw_write(self, axaddr: int, beats: int, size: int, burst: int, *, sparse: bool = False) -> None:
        """One write burst of random data (with ``sparse``, random strobes within the beat's lanes); checks
        BID and BRESP and, if the slave takes it, applies it to the model."""
        ident = self.rng.randrange(self.ids)
        refusal = refused(burst, axaddr, beats, size, self.window, max_size=self.max_size)
        aw = self.aw._transaction_obj()
        aw.awid, aw.awaddr, aw.awlen, aw.awsize, aw.awburst = ident, axaddr & 0xFFFF_FFFF, beats - 1, size, burst
        sending = cocotb.start_soon(self.aw.send(aw))
        updates = []
        for beat in range(beats):
            word, lanes = self._lanes(axaddr, beats, size, burst, beat)
            strobe = 0
            value = self.rng.getrandbits(8 * self.bus_bytes)
            for lane in lanes:
                if not sparse or self.rng.random() < 0.7:
                    strobe |= 1 << lane
                    updates.append((word + lane, (value >> (8 * lane)) & 0xFF))
            w = self.w._transaction_obj()
            w.wdata, w.wstrb, w.wlast = value, strobe, int(beat == beats - 1)
            await self.w.send(w)
        await sending
        b = await self.b.recv()
        expected = AxiResp.SLVERR if refusal else AxiResp.OKAY
        assert int(b.bid) == ident, f"write burst at {axaddr:#x}: BID {int(b.bid)}, AWID {ident}"
        assert int(b.bresp) == expected, f"write burst at {axaddr:#x}: BRESP {int(b.bresp)}, expected {expected!r}"
        if not refusal:
            for location, value in updates:
                self.model[location] = value
        self.counts["writes"] += 1
        self.counts["errors"] += refusal

    async def raw_read(self, axaddr: int, beats: int, size: int, burst: int) -> None:
        """One read burst; checks every beat's RID, RRESP, RLAST and data (the whole word, or 0 if refused)."""
        ident = self.rng.randrange(self.ids)
        refusal = refused(burst, axaddr, beats, size, self.window, max_size=self.max_size)
        ar = self.ar._transaction_obj()
        ar.arid, ar.araddr, ar.arlen, ar.arsize, ar.arburst = ident, axaddr & 0xFFFF_FFFF, beats - 1, size, burst
        await self.ar.send(ar)
        for beat in range(beats):
            r = await self.r.recv()
            word, _ = self._lanes(axaddr, beats, size, burst, beat)
            expected = 0 if refusal else int.from_bytes(self.model[word:word + self.bus_bytes].tobytes(), "little")
            what = f"read burst at {axaddr:#x}, beat {beat} of {beats}"
            assert int(r.rid) == ident, f"{what}: RID {int(r.rid)}, ARID {ident}"
            assert int(r.rresp) == (AxiResp.SLVERR if refusal else AxiResp.OKAY), f"{what}: RRESP {int(r.rresp)}"
            assert int(r.rlast) == (beat == beats - 1), f"{what}: RLAST {int(r.rlast)}"
            assert int(r.rdata) == expected, f"{what}: RDATA {int(r.rdata):#x}, expected {expected:#x}"
        self.counts["reads"] += 1
        self.counts["errors"] += refusal

    def plan(self, transfer: Transfer) -> Plan:
        if transfer.cached_plan is None:
            transfer.cached_plan = plan(transfer.address, transfer.length, transfer.size, transfer.burst,
                                        self.bus_bytes, self.window)
        return transfer.cached_plan

    def _count(self, kind: str, the_plan: Plan) -> None:
        self.counts[kind] += len(the_plan.bursts)
        self.counts["errors"] += sum(1 for _, _, r in the_plan.bursts if r)

    def touches(self, transfer: Transfer) -> np.ndarray:
        """The window bytes ``transfer`` reads or writes (a mask)."""
        if transfer.cached_mask is None:
            the_plan = self.plan(transfer)
            transfer.cached_mask = np.zeros(self.window, dtype=bool)
            transfer.cached_mask[the_plan.locations[~the_plan.refused]] = True
        return transfer.cached_mask

    def may_start(self, transfer: Transfer) -> bool:
        """Whether ``transfer`` shares no byte with a write in flight (nor, if a write, with a read)."""
        mask = self.touches(transfer)
        others = self.writes_in_flight + (self.reads_in_flight if transfer.write else [])
        return not any((mask & other).any() for other in others)

    def launch(self, transfer: Transfer):
        """Start one AXI transfer (a task), which must not share a byte with anything in flight
        (:meth:`may_start`): AXI leaves the outcome of such a race open. It counts as in flight from now."""
        assert self.may_start(transfer), f"{transfer} overlaps a transfer in flight"
        touched = self.touches(transfer)
        (self.writes_in_flight if transfer.write else self.reads_in_flight).append(touched)
        return cocotb.start_soon(self._write(transfer, touched) if transfer.write else self._read(transfer, touched))

    async def write(self, transfer: Transfer) -> None:
        await self.launch(transfer)

    async def read(self, transfer: Transfer) -> bytes:
        return await self.launch(transfer)

    async def _write(self, transfer: Transfer, touched: np.ndarray) -> None:
        """One AXI write; checks its response and applies it to the model."""
        the_plan = self.plan(transfer)
        result = await self.master.write(transfer.address, transfer.data, awid=transfer.ident,
                                         burst=transfer.burst, size=transfer.size)
        assert result.resp == the_plan.resp, f"{transfer}: BRESP {result.resp!r}, expected {the_plan.resp!r}"
        for byte in np.flatnonzero(~the_plan.refused):     # in order: a FIXED burst rewrites one word
            self.model[the_plan.locations[byte]] = transfer.data[byte]
        self._count("writes", the_plan)
        self.writes_in_flight = [mask for mask in self.writes_in_flight if mask is not touched]

    async def _read(self, transfer: Transfer, touched: np.ndarray) -> bytes:
        """One AXI read; checks its response and every byte (zero where refused)."""
        the_plan = self.plan(transfer)
        result = await self.master.read(transfer.address, transfer.length, arid=transfer.ident,
                                        burst=transfer.burst, size=transfer.size)
        self.reads_in_flight = [mask for mask in self.reads_in_flight if mask is not touched]
        got = np.frombuffer(result.data, dtype=np.uint8)
        assert result.resp == the_plan.resp, f"{transfer}: RRESP {result.resp!r}, expected {the_plan.resp!r}"
        assert len(got) == transfer.length, f"{transfer}: {len(got)} bytes back"
        expected = np.where(the_plan.refused, 0, self.model[the_plan.locations % self.window])
        self.bytes_compared += len(got)
        wrong = np.flatnonzero(got != expected)
        if len(wrong):
            byte = wrong[0]
            raise AssertionError(
                f"{transfer}: {len(wrong)} bytes differ, first byte {byte} (window address "
                f"{the_plan.locations[byte]:#x}): got {got[byte]:#04x}, expected {expected[byte]:#04x}")
        self._count("reads", the_plan)
        return result.data

    # ---- the second path: the SBUF's moving port -------------------------------------------------------
    async def read_moving(self) -> np.ndarray:
        """The whole SBUF as (partition, offset) bytes, read through the moving port (2 bytes a request)."""
        dut = self.dut
        layout = data.StructLayout({"address": 20, "wide": 1})
        addresses = list(range(0, self.sbuf_bytes, 2))
        out = np.zeros((self.p, self.sbuf_bytes), dtype=np.uint8)
        sent = received = 0
        dut.moving__response__ready.value = 1
        for _ in range(2 * len(addresses) + 100):
            if sent < len(addresses):
                dut.moving__request__payload.value = pack(layout, {"address": addresses[sent], "wide": 1})
                dut.moving__request__valid.value = 1
            else:
                dut.moving__request__valid.value = 0
            await ReadOnly()
            taken = sent < len(addresses) and int(dut.moving__request__ready.value)
            if int(dut.moving__response__valid.value):
                bits = int(dut.moving__response__payload.value)
                offset = addresses[received]
                for partition in range(self.p):
                    element = bits >> (16 * partition)
                    out[partition, offset] = element & 0xFF
                    out[partition, offset + 1] = (element >> 8) & 0xFF
                received += 1
            await RisingEdge(dut.clk)
            sent += taken
            if received == len(addresses):
                break
        dut.moving__request__valid.value = 0
        dut.moving__response__ready.value = 0
        assert received == len(addresses), "the moving port stopped answering"
        return out

    async def check_all(self) -> None:
        """The whole window, through AXI and through the moving port, byte for byte against the model."""
        if self.master:
            back = await self.read(Transfer(False, 0, self.window, self.max_size, INCR, 0))
            assert np.array_equal(np.frombuffer(back, dtype=np.uint8), self.model)
        else:
            beats = min(256, PAGE // self.bus_bytes)
            for address in range(0, self.window, beats * self.bus_bytes):
                await self.raw_read(address, beats, self.max_size, INCR)
        moving = await self.read_moving()
        expected = self.model.reshape(self.p, self.sbuf_bytes)
        wrong = np.argwhere(moving != expected)
        if len(wrong):
            partition, offset = wrong[0]
            raise AssertionError(f"moving port: {len(wrong)} bytes differ from the model, first partition "
                                 f"{partition} offset {offset:#x}: {moving[partition, offset]:#04x}, expected "
                                 f"{expected[partition, offset]:#04x}")

    def check_counters(self) -> None:
        got = {name: int(getattr(self.dut, name).value) for name in self.counts}
        assert got == self.counts, f"counters {got}, expected {self.counts}"

    # ---- random transfers --------------------------------------------------------------------------------
    def random_transfer(self, write: bool, *, outside: bool = False) -> Transfer:
        """A transfer inside the window, or with ``outside`` one that reaches past its end somewhere."""
        rng, window = self.rng, self.window
        size = self.max_size if rng.random() < 0.5 else rng.randint(0, self.max_size)
        n = 1 << size
        burst = rng.choices([INCR, FIXED, WRAP], [0.7, 0.15, 0.15])[0]
        if burst == INCR:
            length = rng.randint(1, rng.choices([n, 8 * n, 64, 600, 256 * n], [3, 3, 3, 2, 1])[0])
            if outside and rng.random() < 0.3:   # far away
                address = rng.choice([window, 0x8000_0000, 0xFFFF_F000, rng.randrange(window, 1 << 31)])
            elif outside:                         # straddles the end, or starts just past it
                length = max(length, 2)
                address = rng.randint(max(window - length + 1, 0), window + 2 * self.bus_bytes)
            else:
                length = min(length, window)
                address = rng.randint(0, window - length)
        elif burst == FIXED:    # AXI4 allows a master at most 16 beats
            beats = rng.randint(1, 16)
            address = rng.randint(window - n if outside else 0, window + 64 if outside else window - 1)
            length = beats * n - address % n
        else:
            beats = rng.choice([2, 4, 8, 16])
            length = beats * n
            while True:     # aligned, and not cut at a 4 KiB boundary by the master (it measures as INCR)
                address = rng.randrange(window if outside else 0, 2 * window if outside else window, n)
                if (address & (PAGE - 1)) + length <= PAGE:
                    break
        ident = rng.randrange(self.ids)
        payload = self.np_rng.integers(0, 256, length, dtype=np.uint8).tobytes() if write else b""
        return Transfer(write, address, length, size, burst, ident, payload)


async def random_traffic(tb: SbufAxiTB, transfers: int, *, at_once: int = 3, outside: float = 0.1) -> None:
    """``transfers`` random reads and writes, up to ``at_once`` of each in flight, each started in order
    within its kind once it shares no byte with what is in flight (:meth:`SbufAxiTB.may_start`)."""
    rng = tb.rng
    ops = [tb.random_transfer(rng.random() < 0.5, outside=rng.random() < outside) for _ in range(transfers)]
    tb.log.info("%d writes and %d reads (%d reaching outside the window)", sum(op.write for op in ops),
                sum(not op.write for op in ops), sum(1 for op in ops if tb.plan(op).resp != AxiResp.OKAY))
    waited = {True: 0, False: 0}

    async def issue(kind: bool):
        tasks = []
        for op in (op for op in ops if op.write == kind):
            while sum(1 for t in tasks if not t.done()) >= at_once or not tb.may_start(op):
                waited[kind] += 1
                await RisingEdge(tb.dut.clk)
            tasks.append(tb.launch(op))
            await RisingEdge(tb.dut.clk)
        for task in tasks:
            await task

    await until_done(tb.dut.clk, [tb.checker], issue(True), issue(False))
    tb.log.info("%d cycles writes waited to start, %d cycles reads", waited[True], waited[False])


def _transfers() -> int:
    return int(os.environ.get("SBUF_AXI_TRANSFERS", "250"))


@cocotb.test()
@cocotb.parametrize(backpressure=[0.05, 0.5])
async def random_mix(dut, backpressure):
    """Random reads and writes of every size, length, alignment and burst type, some reaching outside the
    window, under random pauses on all channels (light, so bursts come back to back, and heavy); then the
    whole SBUF through AXI and the moving port."""
    tb = SbufAxiTB(dut, backpressure=backpressure)
    await tb.start()
    await random_traffic(tb, _transfers())
    tb.log.info("reads compared %d bytes with the model", tb.bytes_compared)
    await tb.check_all()
    await tb.cycles(4)
    tb.check_counters()
    tb.checker.check(idle=True)


@cocotb.test()
async def partitions_seen_flat(dut):
    """Bytes written at ``partition * sbuf_bytes + offset`` land in that partition at that offset (read back
    through the moving port), at both ends of every partition and with narrow and unaligned writes."""
    tb = SbufAxiTB(dut, backpressure=0.2)
    await tb.start()
    before = await tb.read_moving()
    assert np.array_equal(before, tb.model.reshape(tb.p, tb.sbuf_bytes)), "the fill did not land as planned"
    marks = []
    for partition in range(tb.p):
        for offset, length, size in [(0, 2, 0), (tb.sbuf_bytes - 3, 3, 0), (tb.sbuf_bytes // 2 + 1, 5, 1),
                                     (tb.bus_bytes, tb.bus_bytes, tb.max_size)]:
            pattern = bytes((0xA0 + partition * 7 + i) & 0xFF for i in range(length))
            await tb.write(Transfer(True, partition * tb.sbuf_bytes + offset, length, size, INCR,
                                    partition % tb.ids, pattern))
            marks.append((partition, offset, pattern))
    after = await tb.read_moving()
    for partition, offset, pattern in marks:
        got = bytes(after[partition, offset:offset + len(pattern)])
        assert got == pattern, f"partition {partition} offset {offset:#x}: {got.hex()}, wrote {pattern.hex()}"
    changed = np.argwhere(after != before)
    for partition, offset in changed:
        assert any(p == partition and o <= offset < o + len(pat) for p, o, pat in marks), \
            f"partition {partition} offset {offset:#x} changed but nothing was written there"
    await tb.check_all()
    tb.check_counters()
    tb.checker.check(idle=True)


@cocotb.test()
async def refused_and_illegal_bursts(dut):
    """Bursts driven beat by beat, as a careless master might: any that reach past the window, or that the
    slave cannot follow, get SLVERR (a write takes all its beats and changes nothing, a read returns every
    beat with zero data); FIXED bursts beyond AXI4's 16 beats work, and so does an INCR burst that crosses
    4 KiB inside the window (followed linearly)."""
    tb = SbufAxiTB(dut, backpressure=0.3, raw=True)
    await tb.start()
    window, top, n = tb.window, tb.max_size, tb.bus_bytes
    cases = [
        # (what, AxADDR, beats, AxSIZE, AxBURST)
        ("INCR across 4 KiB straddling the end", window - 2 * n, 4, top, INCR),
        ("narrow INCR across 4 KiB whose last beat is past the end", window - 2, 4, 0, INCR),
        ("INCR one beat past the end", window, 1, 0, INCR),
        ("INCR running past 2**32", 0xFFFF_FFF0, 256, top, INCR),
        ("far away", 0x8000_0000, 16, top, INCR),
        ("FIXED past the end", window + 5, 3, top, FIXED),
        ("WRAP past the end", window + 4 * n, 4, top, WRAP),
        ("WRAP of 3 beats", 8 * n, 3, top, WRAP),
        ("WRAP not aligned to its size", 8 * n + 1, 4, 1, WRAP),
        ("AxSIZE wider than the bus", 0, 2, top + 1, INCR),
        ("reserved AxBURST", 0, 2, top, 3),
        ("INCR from one partition into the next", tb.sbuf_bytes - 3 * n, 8, top, INCR),
        ("narrow INCR from one partition into the next", 2 * tb.sbuf_bytes - 5, 9, 1, INCR),
        ("FIXED of 256 beats", tb.sbuf_bytes + 5, 256, top, FIXED),
        ("narrow FIXED of 40 beats", 2 * tb.sbuf_bytes + 3, 40, 0, FIXED),
        ("narrow WRAP from the middle", 3 * tb.sbuf_bytes + 12, 8, 1, WRAP),
        ("full WRAP from the middle", 5 * n, 4, top, WRAP),
        ("the last beat of the window", window - n, 1, top, INCR),
    ]
    if window > PAGE:
        cases.append(("INCR across 4 KiB inside the window", PAGE - 3 * n, 8, top, INCR))
    for what, axaddr, beats, size, burst in cases:
        refusal = refused(burst, axaddr, beats, size, window, max_size=top)
        tb.log.info("%s: %s", what, "SLVERR" if refusal else "OKAY")
        before, errors = tb.model.copy(), int(dut.errors.value)
        await until_done(dut.clk, [tb.checker], tb.raw_write(axaddr, beats, size, burst, sparse=True), quiet_cycles=500)
        await until_done(dut.clk, [tb.checker], tb.raw_read(axaddr, beats, size, burst), quiet_cycles=500)
        if refusal:
            assert np.array_equal(before, tb.model), f"{what}: the model changed"
            assert int(dut.errors.value) == errors + 2, f"{what}: errors counter {int(dut.errors.value)}"
        moving = await tb.read_moving()
        assert np.array_equal(moving, tb.model.reshape(tb.p, tb.sbuf_bytes)), f"{what}: the SBUF is not the model"
    await tb.check_all()
    await tb.cycles(4)
    tb.check_counters()
    tb.checker.check(idle=True)


async def _handshakes(dut, channel: str, cycles: list[int], stop: list[bool]) -> None:
    cycle = 0
    valid, ready = getattr(dut, f"s_axi__{channel}valid"), getattr(dut, f"s_axi__{channel}ready")
    while not stop:
        await ReadOnly()
        if int(valid.value) and int(ready.value):
            cycles.append(cycle)
        await RisingEdge(dut.clk)
        cycle += 1


@cocotb.test()
async def throughput_and_fairness(dut):
    """Without pauses a 256-beat read streams one beat a cycle, and so do a write's beats; a read and a
    write at once share the SBUF port about evenly."""
    tb = SbufAxiTB(dut, backpressure=0.0)
    await tb.start()
    beats = min(256, PAGE // tb.bus_bytes)    # one burst: the master cuts at 4 KiB
    length = beats * tb.bus_bytes
    stop: list[bool] = []
    r_cycles: list[int] = []
    w_cycles: list[int] = []
    cocotb.start_soon(_handshakes(dut, "r", r_cycles, stop))
    cocotb.start_soon(_handshakes(dut, "w", w_cycles, stop))

    await tb.read(Transfer(False, 0, length, tb.max_size, INCR, 1))
    read_span = r_cycles[-1] - r_cycles[0] + 1
    data_ = tb.np_rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    await tb.write(Transfer(True, 0, length, tb.max_size, INCR, 2, data_))
    write_span = w_cycles[-1] - w_cycles[0] + 1
    tb.log.info("a %d-beat read streamed its R beats in %d cycles, a %d-beat write its W beats in %d",
                beats, read_span, beats, write_span)
    assert read_span <= beats + 2, f"a {beats}-beat read took {read_span} cycles to stream"
    assert write_span <= beats + 2, f"a {beats}-beat write took {write_span} cycles to stream"

    # A read of one half of the window and a write of the other, at once.
    half = length // 2
    r_cycles.clear()
    w_cycles.clear()
    reading = cocotb.start_soon(tb.read(Transfer(False, 0, half, tb.max_size, INCR, 3)))
    writing = cocotb.start_soon(tb.write(Transfer(True, half, half, tb.max_size, INCR, 0, data_[:half])))
    await reading
    await writing
    both_until = min(r_cycles[-1], w_cycles[-1])
    both_from = max(r_cycles[0], w_cycles[0])
    r_share = sum(1 for c in r_cycles if both_from <= c <= both_until)
    w_share = sum(1 for c in w_cycles if both_from <= c <= both_until)
    tb.log.info("read and write at once: %d R and %d W beats in the %d cycles both were moving",
                r_share, w_share, both_until - both_from + 1)
    assert both_until - both_from >= beats // 2, "the read and the write hardly overlapped"
    assert abs(r_share - w_share) <= max(4, (r_share + w_share) // 10), \
        f"unfair: {r_share} R beats against {w_share} W beats while both wanted the SBUF"
    stop.append(True)
    await tb.check_all()
    tb.check_counters()
    tb.checker.check(idle=True)
