"""cocotb tests for the DMA engine (top ``dma``) against the golden model :class:`~trntile.golden.dma.DmaModel`.

DRAM is a cocotbext-axi ``AxiRam`` behind the top's latency model, with random pauses on all five channels
and an :class:`~trntile.tb.axi_checker.AxiProtocolChecker` on the port. The golden model starts from the
same DRAM bytes and from the SBUF as read back through the SBUF's moving port. Each descriptor is applied to
the model when its queue reports it complete; then all of DRAM outside the targets of descriptors still in
flight must equal the model, and so must the completed descriptor's SBUF target with a guard band around it.
At the end the whole SBUF is compared. So a stray write anywhere in DRAM, or next to an SBUF target, fails.

``DMA_DESCRIPTORS`` in the environment sets how many random descriptors each random test runs.
"""

from __future__ import annotations

import dataclasses
import os

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiResp

from trntile.golden.dma import Descriptor, DmaError, DmaModel, Endpoint, Space
from trntile.hdl.dma import queue_status_layout, signal_layout
from trntile.hdl.dma_descriptor import descriptor_layout, encode, fields, format_problem
from trntile.tb.axi_checker import AxiProtocolChecker
from trntile.tb.dram import Fault, FaultyRam
from trntile.tb.common import ClockedTB, pack, pauses, unpack

GUARD = 64          # bytes around every target that nothing may write


class DmaTB(ClockedTB):
    def __init__(self, dut, *, backpressure: float = 0.0, latency: int = 0):
        super().__init__(dut)
        params = self.params
        self.p, self.sbuf_bytes = params["partitions"], params["sbuf_bytes"]
        self.word = params["data_width"] // 8
        self.queues = params["queues"]
        self.dram_bytes = params["dram_bytes"]
        self.latency = latency
        self.model = DmaModel(dram_bytes=self.dram_bytes, partitions=self.p, sbuf_bytes=self.sbuf_bytes)
        self.memory = FaultyRam(dut, "m_axi", self.dram_bytes)
        self.ram, self.dram = self.memory.ram, self.memory.dram
        self.checker = AxiProtocolChecker(dut, "m_axi", dut.clk, dut.rst)
        if backpressure:
            for channel in self.memory.channels:
                channel.set_pause_generator(pauses(self.rng, backpressure))
        for q in range(self.queues):
            getattr(dut, f"queues__{q}__valid").value = 0
        for port in ("moving", "stationary"):
            getattr(dut, f"{port}__request__valid").value = 0
            getattr(dut, f"{port}__response__ready").value = 0
        dut.signal__ready.value = 1
        dut.clear.value = 0
        dut.latency.value = self.latency
        self.signals: list[dict] = []
        self.bursts: dict[str, list[tuple[int, int]]] = {"ar": [], "aw": []}  # (address, beats) as issued
        self.cycle = 0
        self.log.info("DRAM latency %d cycles, backpressure %.2f", self.latency, backpressure)

    # ---- start-up ----------------------------------------------------------------------------------------
    async def start(self, *, fill: bool = True):
        await self.reset()
        cocotb.start_soon(self._count_cycles())
        cocotb.start_soon(self._collect_signals())
        if fill:
            self.dram[:] = self.np_rng.integers(0, 256, self.dram_bytes, dtype=np.uint8)
        self.model.dram[:] = self.dram
        # Reset does not clear memories: start the model from what the SBUF holds.
        self.model.sbuf[:] = await self.read_sbuf(0, self.sbuf_bytes)

    async def _count_cycles(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def _collect_signals(self):
        dut = self.dut
        while True:
            await ReadOnly()
            if int(dut.signal__valid.value) and int(dut.signal__ready.value):
                self.signals.append(unpack(signal_layout, int(dut.signal__payload.value)))
            for channel, bursts in self.bursts.items():
                if int(getattr(dut, f"m_axi__{channel}valid").value) and int(getattr(dut, f"m_axi__{channel}ready").value):
                    bursts.append((int(getattr(dut, f"m_axi__{channel}addr").value),
                                   int(getattr(dut, f"m_axi__{channel}len").value) + 1))
            await RisingEdge(dut.clk)

    # ---- the SBUF, read back through the moving port ---------------------------------------------------
    async def read_sbuf(self, low: int, high: int) -> np.ndarray:
        """Bytes ``low..high-1`` of every partition (``low`` and ``high`` rounded out to even)."""
        dut = self.dut
        low, high = low & ~1, min((high + 1) & ~1, self.sbuf_bytes)
        request = {"address": 0, "wide": 1}
        layout = data.StructLayout({"address": 20, "wide": 1})
        out = np.zeros((self.p, high - low), dtype=np.uint8)
        addresses = list(range(low, high, 2))
        sent = received = 0
        dut.moving__response__ready.value = 1
        for _ in range(4 * len(addresses) + 100):
            if sent < len(addresses):
                request["address"] = addresses[sent]
                dut.moving__request__payload.value = pack(layout, request)
                dut.moving__request__valid.value = 1
            else:
                dut.moving__request__valid.value = 0
            await ReadOnly()
            accepted = sent < len(addresses) and int(dut.moving__request__ready.value)
            if int(dut.moving__response__valid.value):
                bits = int(dut.moving__response__payload.value)
                column = addresses[received] - low
                for partition in range(self.p):
                    element = (bits >> (16 * partition)) & 0xFFFF
                    out[partition, column:column + 2] = (element & 0xFF, element >> 8)
                received += 1
            await RisingEdge(dut.clk)
            sent += accepted
            if received == len(addresses):
                break
        dut.moving__request__valid.value = 0
        assert received == len(addresses), "the SBUF's moving port stopped answering"
        return out

    # ---- queues ------------------------------------------------------------------------------------------
    def status(self, q: int) -> dict:
        return unpack(queue_status_layout, int(getattr(self.dut, f"status__{q}").value))

    async def submit(self, q: int, raw: int, *, limit: int = 200_000) -> None:
        """Offer descriptor bits to queue ``q``; return once taken."""
        dut = self.dut
        getattr(dut, f"queues__{q}__payload").value = raw
        getattr(dut, f"queues__{q}__valid").value = 1
        for _ in range(limit):
            await ReadOnly()
            taken = int(getattr(dut, f"queues__{q}__ready").value)
            await RisingEdge(dut.clk)
            if taken:
                getattr(dut, f"queues__{q}__valid").value = 0
                return
        raise AssertionError(f"queue {q} did not take a descriptor within {limit} cycles: {self.status(q)}")

    async def until(self, q: int, condition, what: str, *, limit: int = 200_000) -> dict:
        for _ in range(limit):
            await ReadOnly()
            status = self.status(q)
            if condition(status):
                await RisingEdge(self.dut.clk)
                return status
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"queue {q}: {what} did not happen within {limit} cycles: {self.status(q)}")

    async def clear(self, q: int) -> None:
        self.dut.clear.value = 1 << q
        await RisingEdge(self.dut.clk)
        self.dut.clear.value = 0
        await ReadOnly()  # the status as the clear left it
        await RisingEdge(self.dut.clk)

    # ---- checks ------------------------------------------------------------------------------------------
    def check_dram(self, busy: list[tuple[int, int]] = ()) -> None:
        """DRAM equals the model outside the byte ranges in ``busy``."""
        differs = self.dram != self.model.dram
        for low, high in busy:
            differs[max(low, 0):high] = False
        if differs.any():
            where = np.flatnonzero(differs)
            raise AssertionError(f"DRAM differs from the model at {len(where)} bytes, first {where[:8].tolist()}: "
                                 f"RTL {self.dram[where[:8]].tolist()} model {self.model.dram[where[:8]].tolist()}")

    async def check_sbuf(self, low: int = 0, high: int | None = None, partitions=None) -> None:
        high = self.sbuf_bytes if high is None else high
        low, high = max(low, 0), min(high, self.sbuf_bytes)
        got = (await self.read_sbuf(low, high))[:, low & 1:][:, :high - low]  # the read is rounded out to even
        want = self.model.sbuf[:, low:high]
        rows = range(self.p) if partitions is None else partitions
        for partition in rows:
            if not np.array_equal(got[partition], want[partition]):
                where = np.flatnonzero(got[partition] != want[partition])
                raise AssertionError(f"SBUF partition {partition} differs from the model at byte offsets "
                                     f"{(low + where[:8]).tolist()}: RTL {got[partition, where[:8]].tolist()} "
                                     f"model {want[partition, where[:8]].tolist()}")


# ---- descriptors -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Box:
    """The bytes a walk can touch: DRAM ``[low, high)``, or SBUF partitions ``rows`` x ``[low, high)``."""
    space: Space
    low: int
    high: int
    rows: range = range(0)

    def overlaps(self, other: "Box", guard: int) -> bool:
        if self.space != other.space:
            return False
        if self.space == Space.SBUF and (self.rows.stop <= other.rows.start or other.rows.stop <= self.rows.start):
            return False
        return self.low < other.high + guard and other.low < self.high + guard


def walk_extent(dims, element_bytes: int) -> tuple[int, int]:
    """(lowest, highest + element_bytes) byte offset of a walk from its address."""
    low = sum(min(0, s * (c - 1)) for s, c in dims) * element_bytes
    high = sum(max(0, s * (c - 1)) for s, c in dims) * element_bytes + element_bytes
    return low, high


def box_of(endpoint: Endpoint, element_bytes: int) -> Box:
    low, high = walk_extent(endpoint.dims, element_bytes)
    rows = range(endpoint.partition, endpoint.partition + endpoint.partitions) if endpoint.space == Space.SBUF \
        else range(0)
    return Box(endpoint.space, endpoint.address + low, endpoint.address + high, rows)


def random_counts(rng, elements: int, dims: int) -> list[int]:
    """``dims`` counts whose product is ``elements``, outermost first."""
    counts = []
    left = elements
    for _ in range(dims - 1):
        divisors = [d for d in range(1, min(left, 64) + 1) if left % d == 0]
        count = rng.choice(divisors)
        counts.append(count)
        left //= count
    counts.append(left)
    rng.shuffle(counts)
    return counts


def random_strides(rng, counts: list[int]) -> list[int]:
    """Strides for ``counts`` (outermost first): mostly dense rows, sometimes gaps, reversal or repeats."""
    strides = [0] * len(counts)
    span = 1
    for d in reversed(range(len(counts))):
        if d == len(counts) - 1:
            stride = rng.choices([1, 2, -1, 3, 0], weights=[12, 2, 2, 1, 1])[0]
        else:
            stride = span + rng.choice([0, 0, 0, 1, 3, 17])
            if rng.random() < 0.15:
                stride = -stride
        strides[d] = stride
        span = max(span, abs(stride) * (counts[d] - 1) + span) if counts[d] > 1 else span
    return strides


class Planner:
    """Random descriptors whose targets are disjoint, by a guard band, from those still in flight."""

    def __init__(self, tb: DmaTB):
        self.tb, self.rng = tb, tb.rng
        self.busy: list[Box] = []

    def free(self, box: Box) -> bool:
        return not any(box.overlaps(other, GUARD) for other in self.busy)

    def _place(self, space: Space, dims, element_bytes: int, partitions: int, taken: list[Box]) -> Endpoint | None:
        tb, rng = self.tb, self.rng
        low, high = walk_extent(dims, element_bytes)
        size = tb.dram_bytes if space == Space.DRAM else tb.sbuf_bytes
        if high - low > size - 2 * GUARD:
            return None
        for _ in range(20):
            if space == Space.DRAM and rng.random() < 0.3:  # start or end next to a 4 KiB boundary
                page = rng.randrange(1, size // 4096) * 4096
                start = page + rng.choice([-1, 0, 1]) - (0 if rng.random() < 0.5 else high - low)
                start = min(max(start, GUARD), size - GUARD - (high - low))
            else:
                start = rng.randrange(GUARD, size - GUARD - (high - low) + 1)
            address = start - low
            if space == Space.DRAM:
                endpoint = Endpoint.dram(address, dims)
            else:
                first = rng.randrange(0, tb.p - partitions + 1)
                endpoint = Endpoint.sbuf(first, partitions, address, dims)
            box = box_of(endpoint, element_bytes)
            if self.free(box) and not any(box.overlaps(other, GUARD) for other in taken):
                return endpoint
        return None

    def descriptor(self, *, max_bytes: int = 4096, semaphore: int = 0) -> Descriptor | None:
        """A random descriptor of up to ``max_bytes`` bytes; one in 20 is large (up to 64 KiB) and dense."""
        tb, rng = self.tb, self.rng
        large = rng.random() < 0.05
        if large:
            max_bytes = 64 * 1024
        element_bytes = rng.choice([1, 2, 4])
        spaces = rng.choice([(Space.DRAM, Space.SBUF), (Space.SBUF, Space.DRAM), (Space.SBUF, Space.SBUF),
                             (Space.DRAM, Space.DRAM)])
        total = int(np.exp(rng.uniform(0, np.log(max_bytes)))) // element_bytes or 1
        if Space.SBUF in spaces:
            partitions = rng.choice([d for d in range(1, tb.p + 1) if total % d == 0] or [1])
        else:
            partitions = 1
        endpoints = []
        for index, space in enumerate(spaces):
            if space == Space.SBUF:
                rows = partitions if index == 0 or spaces[0] != Space.SBUF else \
                    rng.choice([d for d in range(1, tb.p + 1) if total % d == 0])
                counts = random_counts(rng, total // rows, rng.randint(1, 3))
            else:
                rows = 1
                counts = random_counts(rng, total, rng.randint(1, 4))
            if large:   # long dense rows: a large walk of single elements would take too long to simulate
                counts.sort()
            strides = random_strides(rng, counts)
            if large:
                strides[-1] = 1
            dims = list(zip(strides, counts))
            endpoint = self._place(space, dims, element_bytes, rows, [box_of(e, element_bytes) for e in endpoints])
            if endpoint is None:
                return None
            endpoints.append(endpoint)
        return Descriptor(endpoints[0], endpoints[1], element_bytes, semaphore=semaphore,
                          increment=rng.randint(0, 3))


async def run_random(tb: DmaTB, count: int, *, max_bytes: int = 4096) -> None:
    """``count`` random descriptors spread over every queue (queue q signals semaphore q), each checked
    against the model when it completes."""
    planner = Planner(tb)
    in_flight: dict[int, tuple[Descriptor, list[Box]]] = {}
    completed = [tb.status(q)["completed"] for q in range(tb.queues)]
    expected_signals: list[dict] = []
    submitted = done = 0
    quiet = 0  # cycles since the last completion
    while done < count:
        quiet += 1
        # The worst case for the work in flight: every element its own read and write burst, each waiting out
        # the memory latency with ``outstanding`` of them overlapping.
        budget = 20_000 + sum(d.elements for d, _ in in_flight.values()) * 2 * (tb.latency + 16) \
            // tb.params["outstanding"]
        assert quiet < budget, f"no descriptor completed for {quiet} cycles; in flight: {in_flight}, " \
            f"status: {[tb.status(q) for q in range(tb.queues)]}"
        await ReadOnly()
        statuses = [tb.status(q) for q in range(tb.queues)]
        await RisingEdge(tb.dut.clk)
        for q, status in enumerate(statuses):
            assert status["error"] == 0, f"queue {q} stopped: {status} (descriptor {in_flight.get(q)})"
            if q not in in_flight or status["completed"] == completed[q]:
                continue
            completed[q] = status["completed"]
            quiet = 0
            descriptor, boxes = in_flight.pop(q)
            for box in boxes:
                planner.busy.remove(box)
            tb.model.run(descriptor)
            if descriptor.increment:
                expected_signals.append({"index": descriptor.semaphore, "increment": descriptor.increment})
            tb.check_dram([(box.low - GUARD, box.high + GUARD) for _, others in in_flight.values() for box in others
                           if box.space == Space.DRAM])
            target = box_of(descriptor.destination, descriptor.element_bytes)
            if target.space == Space.SBUF:
                await tb.check_sbuf(target.low - GUARD, target.high + GUARD, target.rows)
            done += 1
        for q in range(tb.queues):
            if q in in_flight or submitted == count:
                continue
            descriptor = planner.descriptor(max_bytes=max_bytes, semaphore=q)
            if descriptor is None:
                continue
            boxes = [box_of(descriptor.source, descriptor.element_bytes),
                     box_of(descriptor.destination, descriptor.element_bytes)]
            planner.busy.extend(boxes)
            in_flight[q] = (descriptor, boxes)
            submitted += 1
            tb.log.info("queue %d: %s", q, descriptor)
            await tb.submit(q, raw(descriptor))
    await tb.cycles(4)
    for q in range(tb.queues):
        got = [s for s in tb.signals if s["index"] == q]
        want = [s for s in expected_signals if s["index"] == q]
        assert got == want, f"semaphore {q}: signals {got}, expected {want}"
    tb.check_dram()
    await tb.check_sbuf()


def _count(default_verilator: int, default_icarus: int) -> int:
    given = os.environ.get("DMA_DESCRIPTORS")
    if given:
        return int(given)
    return default_icarus if "icarus" in cocotb.SIM_NAME.lower() else default_verilator


@cocotb.test()
async def smoke(dut):
    """One descriptor each way, dense, then checked."""
    tb = DmaTB(dut)
    await tb.start()
    p = tb.p
    d = Descriptor(Endpoint.dram(100, [(1, 64 * p)]), Endpoint.sbuf(0, p, 8, [(1, 64)]), 1, semaphore=1, increment=2)
    await tb.submit(0, raw(d))
    await tb.until(0, lambda s: s["completed"] == 1, "completion")
    tb.model.run(d)
    await tb.check_sbuf()
    d = Descriptor(Endpoint.sbuf(1, p - 1, 3, [(2, 16)]), Endpoint.dram(5000, [(1, 16 * (p - 1))]), 2)
    q = 1 % tb.queues
    await tb.submit(q, raw(d))
    await tb.until(q, lambda s: s["completed"] == (2 if q == 0 else 1), "completion")
    tb.model.run(d)
    tb.check_dram()
    assert tb.signals == [{"index": 1, "increment": 2}], tb.signals
    tb.checker.check(idle=True)


@cocotb.test()
async def random_descriptors(dut):
    """Random descriptors on every queue at once, with random pauses on every AXI channel."""
    tb = DmaTB(dut, backpressure=0.3)
    await tb.start()
    await run_random(tb, _count(60, 12))
    tb.checker.check(idle=True)


@cocotb.test()
async def random_descriptors_slow_memory(dut):
    """The same with 64 cycles of DRAM latency (reads and write responses) and lighter pauses."""
    tb = DmaTB(dut, backpressure=0.1, latency=64)
    await tb.start()
    # With few bursts outstanding, every burst waits out the latency: fewer and smaller descriptors.
    if tb.params["outstanding"] >= 4:
        await run_random(tb, _count(40, 8))
    else:
        await run_random(tb, _count(12, 4), max_bytes=1024)
    tb.checker.check(idle=True)


def raw(descriptor: Descriptor) -> int:
    return int.from_bytes(encode(descriptor), "little")


async def run_one(tb: DmaTB, q: int, descriptor: Descriptor, *, limit: int = 200_000, busy=()) -> None:
    """Run ``descriptor`` on queue ``q``, apply it to the model, and check DRAM (outside the ``busy`` byte
    ranges) and its SBUF target."""
    before = tb.status(q)["completed"]
    await tb.submit(q, raw(descriptor))
    status = await tb.until(q, lambda s: s["completed"] != before or s["error"], "completion", limit=limit)
    assert status["error"] == 0, f"{descriptor} stopped queue {q}: {status}"
    tb.model.run(descriptor)
    tb.check_dram(busy)
    target = box_of(descriptor.destination, descriptor.element_bytes)
    if target.space == Space.SBUF:
        await tb.check_sbuf(target.low - GUARD, target.high + GUARD)


@cocotb.test()
async def edges(dut):
    """1 byte; starts and ends one byte either side of 4 KiB boundaries; one burst of exactly 256 beats (or
    4 KiB on buses wider than 16 bytes); element size 4 walking backwards; all partitions and one."""
    tb = DmaTB(dut, backpressure=0.2)
    await tb.start()
    p, word = tb.p, tb.word
    dram, sbuf = Endpoint.dram, Endpoint.sbuf
    cases = [
        Descriptor(dram(777, [(1, 1)]), sbuf(p - 1, 1, 1, [(1, 1)]), 1),
        Descriptor(sbuf(0, 1, tb.sbuf_bytes - 1, [(1, 1)]), dram(4095, [(1, 1)]), 1),
        Descriptor(dram(3 * 4096 + 5, [(1, 1)]), dram(12345, [(1, 1)]), 1),
    ]
    for page in (4096, 8192):
        for start in (page - 1, page, page + 1):        # starts at the boundary
            cases.append(Descriptor(dram(start, [(1, 300)]), sbuf(1, 1, 100, [(1, 300)]), 1))
            cases.append(Descriptor(sbuf(2, 1, 500, [(1, 300)]), dram(start + 5 * 4096, [(1, 300)]), 1))
        for end in (page - 1, page, page + 1):          # ends at the boundary
            cases.append(Descriptor(dram(end - 200, [(1, 200)]), sbuf(0, 2, 7, [(1, 100)]), 1))
            cases.append(Descriptor(sbuf(1, 2, 33, [(1, 100)]), dram(end + 5 * 4096 - 200, [(1, 200)]), 1))
    whole = min(256 * word, 4096)                       # the longest burst the bus allows
    cases.append(Descriptor(dram(16 * 4096, [(1, whole)]), dram(24 * 4096, [(1, whole)]), 1))
    cases += [
        Descriptor(dram(40000, [(-1, 100)]), sbuf(0, 1, 64, [(1, 100)]), 4),      # backwards, 4-byte elements
        Descriptor(sbuf(0, 1, 600, [(-1, 100)]), dram(50002, [(1, 100)]), 4),
        Descriptor(dram(60001, [(-3, 40), (1, 1)]), dram(70003, [(-1, 40)]), 4),
        Descriptor(dram(80000, [(1, p * 96)]), sbuf(0, p, 1000, [(1, 96)]), 1),  # every partition
        Descriptor(sbuf(0, p, 1000, [(1, 48)]), dram(90001, [(1, 48 * p)]), 2),
        Descriptor(dram(100000, [(1, 64)]), sbuf(p - 1, 1, 0, [(1, 64)]), 4),   # one partition, the last
    ]
    for index, descriptor in enumerate(cases):
        tb.log.info("case %d: %s", index, descriptor)
        await run_one(tb, index % tb.queues, descriptor)
    beats = [beats for _, beats in tb.bursts["ar"] + tb.bursts["aw"]]
    assert max(beats) == whole // word, f"no burst of {whole // word} beats: longest {max(beats)}"
    for channel in ("ar", "aw"):
        assert (24 * 4096 if channel == "aw" else 16 * 4096, whole // word) in tb.bursts[channel], tb.bursts[channel]
    await tb.check_sbuf()
    tb.checker.check(idle=True)


async def background(tb: DmaTB, q: int, low: int, high: int, stop: list, done: list) -> None:
    """DRAM-to-DRAM copies inside ``[low, high)`` on queue ``q``, one after another until ``stop`` is not
    empty, each recorded in ``done`` when complete (the model applies them at the end: the region is the
    background's own)."""
    rng = tb.rng
    while not stop:
        size = rng.randint(1, 600)
        half = (high - low) // 2
        source = rng.randrange(low, low + half - size)
        destination = rng.randrange(low + half, high - size)
        if rng.random() < 0.5:
            source, destination = destination, source
        descriptor = Descriptor(Endpoint.dram(source, [(1, size)]), Endpoint.dram(destination, [(1, size)]), 1,
                                semaphore=30, increment=1)
        before = tb.status(q)["completed"]
        await tb.submit(q, raw(descriptor))
        status = await tb.until(q, lambda s: s["completed"] != before or s["error"], "background completion")
        assert status["error"] == 0, f"background queue {q} stopped: {status}"
        done.append(descriptor)


def patched(descriptor: Descriptor, patch) -> int:
    """The bits of ``descriptor`` with ``patch`` applied to its fields (to make descriptors Python refuses)."""
    f = fields(descriptor)
    patch(f)
    return pack(descriptor_layout, f)


@cocotb.test()
async def errors(dut):
    """Every error stops its queue with its code and the faulting index, signals nothing, writes nothing
    outside the destination pattern, and leaves the other queues running; after a clear the queue works."""
    tb = DmaTB(dut, backpressure=0.2)
    await tb.start()
    q, other = 0, tb.queues - 1
    back_low, back_high = tb.dram_bytes // 2, tb.dram_bytes       # the background's region
    finished: list[Descriptor] = []
    stop: list[bool] = []
    if tb.queues > 1:
        traffic = cocotb.start_soon(background(tb, other, back_low, back_high, stop, finished))
    else:
        tb.log.info("one queue: no other queue to keep running beside the errors")
    p, dram, sbuf = tb.p, Endpoint.dram, Endpoint.sbuf
    good = Descriptor(dram(1000, [(1, 200)]), sbuf(0, 2, 100, [(1, 100)]), 1, semaphore=29, increment=1)

    model = tb.model
    cases = [
        # (name, bits, expected code, fault to inject, destination bytes left undefined)
        ("read SLVERR", Descriptor(dram(5000, [(1, 300)]), sbuf(1, 3, 40, [(1, 100)]), 1, 31, 1),
         DmaError.READ_RESPONSE, ("read", Fault(5100, 5101, AxiResp.SLVERR))),
        ("read DECERR", Descriptor(dram(9000, [(2, 64)]), dram(20000, [(1, 64)]), 2, 31, 1),
         DmaError.READ_RESPONSE, ("read", Fault(9000, 9200, AxiResp.DECERR))),
        ("write SLVERR", Descriptor(sbuf(0, p, 10, [(1, 50)]), dram(30001, [(1, 50 * p)]), 1, 31, 1),
         DmaError.WRITE_RESPONSE, ("write", Fault(30100, 30101, AxiResp.SLVERR))),
        ("write DECERR", Descriptor(dram(40000, [(1, 5000)]), dram(50000, [(1, 5000)]), 1, 31, 1),
         DmaError.WRITE_RESPONSE, ("write", Fault(54990, 55000, AxiResp.DECERR))),
        ("source outside DRAM", Descriptor(dram(back_high - 8, [(1, 3)]), sbuf(0, 1, 0, [(1, 3)]), 4, 31, 1),
         DmaError.SOURCE_BOUNDS, None),
        ("destination outside a partition", Descriptor(dram(0, [(1, 8)]), sbuf(0, 1, tb.sbuf_bytes - 4, [(1, 8)]),
                                                       1, 31, 1), DmaError.DESTINATION_BOUNDS, None),
        ("destination before a partition", Descriptor(dram(0, [(1, 8)]), sbuf(0, 1, 3, [(-1, 8)]), 1, 31, 1),
         DmaError.DESTINATION_BOUNDS, None),
        ("partitions", Descriptor(dram(0, [(1, 8)]), sbuf(p - 1, 2, 0, [(1, 4)]), 1, 31, 1), DmaError.PARTITIONS,
         None),
        ("semaphore", Descriptor(dram(0, [(1, 8)]), sbuf(0, 1, 0, [(1, 8)]), 1, model.semaphores.size, 1),
         DmaError.SEMAPHORE, None),
        ("SBUF source outside a partition", Descriptor(sbuf(1, 1, tb.sbuf_bytes - 2, [(1, 4)]), dram(0, [(1, 4)]),
                                                       1, 31, 1), DmaError.SOURCE_BOUNDS, None),
        ("DRAM destination past the end", Descriptor(sbuf(0, 1, 0, [(1, 4)]), dram(tb.dram_bytes - 2, [(1, 4)]),
                                                     1, 31, 1), DmaError.DESTINATION_BOUNDS, None),
        ("DRAM source below 0", Descriptor(dram(2, [(-1, 4)]), sbuf(0, 1, 0, [(1, 4)]), 1, 31, 1),
         DmaError.SOURCE_BOUNDS, None),
        # several faults at once: the first in code order is reported
        ("semaphore before bounds", Descriptor(dram(back_high - 2, [(1, 4)]), sbuf(p - 1, 2, 0, [(1, 2)]), 1,
                                               model.semaphores.size, 1), DmaError.SEMAPHORE, None),
        ("partitions before bounds", Descriptor(dram(back_high - 2, [(1, 4)]), sbuf(p - 1, 2, 0, [(1, 2)]), 1,
                                                31, 1), DmaError.PARTITIONS, None),
        ("source before destination", Descriptor(sbuf(0, 1, tb.sbuf_bytes - 1, [(1, 2)]),
                                                 dram(tb.dram_bytes - 1, [(1, 2)]), 1, 31, 1),
         DmaError.SOURCE_BOUNDS, None),
    ]
    base = Descriptor(dram(0, [(1, 2), (1, 2)]), sbuf(0, 2, 0, [(1, 2)]), 1, 31, 1)
    for name, patch in [("element size", lambda f: f.update(element_size=3)),
                        ("element size before space", lambda f: (f.update(element_size=3),
                                                                 f["source"].update(space=2))),
                        ("count before mismatch", lambda f: (f["source"]["dims"][1].update(count=0),
                                                             f["destination"]["dims"][3].update(count=5))),
                        ("space", lambda f: f["destination"].update(space=3)),
                        ("count", lambda f: f["source"]["dims"][0].update(count=0)),
                        ("partition stride", lambda f: f["destination"]["dims"][0].update(stride=-1)),
                        ("mismatch", lambda f: f["source"]["dims"][3].update(count=3))]:
        bits = patched(base, patch)
        cases.append((name, bits, format_problem(bits)[0], None))
    for name, descriptor, code, fault in cases:
        bits = descriptor if isinstance(descriptor, int) else raw(descriptor)
        if not isinstance(descriptor, int) and fault is None:
            assert model.problem(descriptor)[0] == code, (name, model.problem(descriptor))
        tb.log.info("%s: expect %s", name, code.name)
        if fault:
            setattr(tb.memory, f"{fault[0]}_fault", fault[1])
        signals, errors_before = len(tb.signals), int(dut.errors.value)
        sbuf_before = await tb.read_sbuf(0, tb.sbuf_bytes)
        taken = tb.status(q)["taken"]
        await tb.submit(q, bits)
        status = await tb.until(q, lambda s: s["error"] != 0, f"{name} error")
        assert status["error"] == code, f"{name}: error {status['error']}, expected {int(code)} ({code.name})"
        assert status["fault_index"] == taken and status["busy"] == 0, f"{name}: {status}"
        await tb.cycles(2)
        assert int(dut.errors.value) == errors_before + 1
        assert all(s["index"] != 31 for s in tb.signals[signals:]), f"{name} signalled: {tb.signals[signals:]}"
        # Nothing outside the destination pattern changed (inside it, a failed transfer leaves any bytes).
        undefined = []
        if fault:
            setattr(tb.memory, f"{fault[0]}_fault", None)
            target = box_of(descriptor.destination, descriptor.element_bytes)
            undefined.append(target)
            if target.space == Space.DRAM:
                model.dram[target.low:target.high] = tb.dram[target.low:target.high]
        tb.check_dram([(back_low, back_high)])
        sbuf_after = await tb.read_sbuf(0, tb.sbuf_bytes)
        for box in undefined:
            if box.space == Space.SBUF:
                sbuf_before[box.rows.start:box.rows.stop, box.low:box.high] = \
                    sbuf_after[box.rows.start:box.rows.stop, box.low:box.high]
        assert np.array_equal(sbuf_before, sbuf_after), f"{name}: the SBUF changed outside the destination"
        model.sbuf[:] = sbuf_after
        # A stopped queue takes nothing until cleared; then it works again, from index 0.
        getattr(dut, f"queues__{q}__payload").value = raw(good)
        getattr(dut, f"queues__{q}__valid").value = 1
        await tb.cycles(20)
        assert tb.status(q)["taken"] == taken + 1, f"{name}: a stopped queue took a descriptor"
        getattr(dut, f"queues__{q}__valid").value = 0
        await tb.clear(q)
        assert tb.status(q) == {"error": 0, "busy": 0, "taken": 0, "completed": 0, "fault_index": 0}, tb.status(q)
        await run_one(tb, q, good, busy=[(back_low, back_high)])
        assert tb.signals[-1] == {"index": 29, "increment": 1} or \
            {"index": 29, "increment": 1} in tb.signals[signals:], f"{name}: no signal after the clear"
    stop.append(True)
    if tb.queues > 1:
        await traffic
        assert len(finished) >= 3, f"the background queue completed only {len(finished)} descriptors meanwhile"
    tb.log.info("background queue completed %d descriptors during the error cases", len(finished))
    for descriptor in finished:
        model.run(descriptor)
    tb.check_dram()
    tb.checker.check(idle=True)
