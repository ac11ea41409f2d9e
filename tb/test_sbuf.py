"""cocotb tests for the SBUF (top ``sbuf``) against a numpy mirror of its bytes.

Each round, the DMA port writes random words with random strobes (the mirror follows each write as it is
granted); then the moving port, the stationary port and the DMA port read random places all at once (the ACT port 4-byte elements), with
random gaps in their requests and random backpressure on their answers, and every answer is compared
with the mirror. Separate tests check that port B is shared evenly and that each port reads every cycle
when nothing holds it back.
"""

from __future__ import annotations

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from trntile.hdl.sbuf import PORT_B_REQUESTERS, sbuf_element_write_signature, sbuf_word_signature
from trntile.tb.common import CLOCK_PERIOD_NS, ClockedTB, offer, pack, pauses, unpack


class SbufTB(ClockedTB):
    def __init__(self, dut):
        super().__init__(dut)
        self.p = self.params["partitions"]
        self.bytes = self.params["sbuf_bytes"]
        self.width = self.params["data_width"] // 8
        self.mirror = np.zeros((self.p, self.bytes), dtype=np.uint8)
        word = sbuf_word_signature(self.params["data_width"]).members
        self.dma_layout = word["request"].signature.members["payload"].shape
        self.dma_answer = word["response"].signature.members["payload"].shape
        self.element_request = data.StructLayout({"address": 20, "wide": 1})
        self.elements = data.ArrayLayout(16, self.p)
        self.act_request = data.StructLayout({"address": 20})
        self.act_elements = data.ArrayLayout(32, self.p)
        self.write_layout = sbuf_element_write_signature(self.p).members["request"].signature.members[
            "payload"].shape
        for port in ("moving", "stationary", "dma", "act"):
            getattr(dut, f"{port}__request__valid").value = 0
            getattr(dut, f"{port}__response__ready").value = 0
        dut.write__request__valid.value = 0

    async def start(self):
        await self.reset()
        # Reset does not clear memories: learn what is there through the DMA port.
        for partition in range(self.p):
            for address in range(0, self.bytes, self.width):
                word = await self.dma_read_one(partition, address)
                self.mirror[partition, address:address + self.width] = np.frombuffer(
                    word.to_bytes(self.width, "little"), dtype=np.uint8)

    async def dma_read_one(self, partition: int, address: int) -> int:
        dut = self.dut
        dut.dma__response__ready.value = 1
        await offer(dut, "dma__request", pack(self.dma_layout, {"write": 0, "partition": partition, "address": address}),
                    limit=100)
        for _ in range(100):
            await ReadOnly()
            if int(dut.dma__response__valid.value):
                value = unpack(self.dma_answer, int(dut.dma__response__payload.value))["data"]
                await RisingEdge(dut.clk)
                return value
            await RisingEdge(dut.clk)
        raise AssertionError("no answer to a DMA read within 100 cycles")

    async def dma_writes(self, count: int, pause: float) -> None:
        dut, rng = self.dut, self.rng
        gaps = pauses(rng, pause)
        for _ in range(count):
            while next(gaps):
                dut.dma__request__valid.value = 0
                await RisingEdge(dut.clk)
            partition = rng.randrange(self.p)
            address = rng.randrange(0, self.bytes, self.width) + rng.randrange(self.width)  # low bits ignored
            word = bytes(rng.getrandbits(8) for _ in range(self.width))
            strobe = rng.getrandbits(self.width)
            await offer(dut, "dma__request", pack(self.dma_layout, {
                "write": 1, "partition": partition, "address": address,
                "data": int.from_bytes(word, "little"), "strobe": strobe}), limit=1000)
            base = address - address % self.width
            for lane in range(self.width):
                if strobe >> lane & 1:
                    self.mirror[partition, base + lane] = word[lane]
        dut.dma__request__valid.value = 0

    async def engine_writes(self, count: int, pause: float, *, mask: int | None = None) -> int:
        """Random engine writes: an element of 1, 2 or 4 bytes, naturally aligned, in a random subset of the
        partitions (or those in ``mask``); the mirror follows each as it is granted. Returns the cycles taken."""
        dut, rng = self.dut, self.rng
        gaps = pauses(rng, pause)
        start = cocotb.utils.get_sim_time("ns")
        for _ in range(count):
            while next(gaps):
                dut.write__request__valid.value = 0
                await RisingEdge(dut.clk)
            size = rng.choice([0, 1, 2] if self.width >= 4 else [0, 1])
            address = rng.randrange(0, self.bytes, 1 << size)
            partitions = rng.getrandbits(self.p) if mask is None else mask
            elements = [rng.getrandbits(32) for _ in range(self.p)]
            await offer(dut, "write__request", pack(self.write_layout, {
                "address": address, "size": size, "mask": partitions, "data": elements}), limit=1000)
            for partition in range(self.p):
                if partitions >> partition & 1:
                    value = elements[partition].to_bytes(4, "little")[:1 << size]
                    self.mirror[partition, address:address + (1 << size)] = np.frombuffer(value, dtype=np.uint8)
        dut.write__request__valid.value = 0
        return round((cocotb.utils.get_sim_time("ns") - start) / CLOCK_PERIOD_NS)

    def element(self, address: int, wide: bool, size: int | None = None) -> list[int]:
        size = size or (2 if wide else 1)
        return [int.from_bytes(self.mirror[p, address:address + size].tobytes(), "little") for p in range(self.p)]

    async def reader(self, port: str, count: int, pause: float) -> int:
        """Random reads on ``port`` with request gaps and answer backpressure; returns the cycles taken."""
        dut, rng = self.dut, self.rng
        request_valid = getattr(dut, f"{port}__request__valid")
        request_ready = getattr(dut, f"{port}__request__ready")
        request_payload = getattr(dut, f"{port}__request__payload")
        response_valid = getattr(dut, f"{port}__response__valid")
        response_ready = getattr(dut, f"{port}__response__ready")
        response_payload = getattr(dut, f"{port}__response__payload")
        gaps, backpressure = pauses(rng, pause), pauses(rng, pause)
        expected, issued, received, cycles = [], 0, 0, 0
        current = None
        while received < count:
            if current is None and issued < count and not next(gaps):
                if port == "dma":
                    partition = rng.randrange(self.p)
                    address = rng.randrange(0, self.bytes, self.width)
                    current = (pack(self.dma_layout, {"write": 0, "partition": partition, "address": address}),
                               int.from_bytes(self.mirror[partition, address:address + self.width].tobytes(), "little"))
                elif port == "act":
                    address = rng.randrange(0, self.bytes, 4)
                    current = (pack(self.act_request, {"address": address}), self.element(address, False, 4))
                else:
                    wide = rng.random() < 0.5
                    address = rng.randrange(0, self.bytes - 1, 2 if wide else 1)
                    current = (pack(self.element_request, {"address": address, "wide": int(wide)}),
                               self.element(address, wide))
            if current is not None:
                request_payload.value = current[0]
            request_valid.value = int(current is not None)
            response_ready.value = int(not next(backpressure))
            await ReadOnly()
            if int(response_valid.value) and int(response_ready.value):
                assert expected, f"{port}: an answer with no read outstanding"
                bits = int(response_payload.value)
                got = (unpack(self.dma_answer, bits)["data"] if port == "dma" else
                       unpack(self.act_elements, bits) if port == "act" else unpack(self.elements, bits))
                want = expected.pop(0)
                assert got == want, f"{port} read {received}: got {got}, mirror {want}"
                received += 1
            if current is not None and int(request_ready.value):
                expected.append(current[1])
                issued += 1
                current = None
            await RisingEdge(dut.clk)
            cycles += 1
            assert cycles < 100 * count + 1000, f"{port}: {received} of {count} answers after {cycles} cycles"
        request_valid.value = 0
        return cycles


@cocotb.test(timeout_time=20, timeout_unit="ms")
@cocotb.parametrize(pause=[0.0, 0.3])
async def writes_then_reads_on_every_port(dut, pause: float):
    tb = SbufTB(dut)
    await tb.start()
    for _ in range(3):
        writers = [cocotb.start_soon(tb.dma_writes(200, pause)), cocotb.start_soon(tb.engine_writes(200, pause))]
        for writer in writers:
            await writer
        tasks = [cocotb.start_soon(tb.reader(port, 150, pause)) for port in ("moving", "stationary", "dma", "act")]
        for task in tasks:
            await task


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def port_b_is_shared_evenly_and_every_port_reads_every_cycle(dut):
    tb = SbufTB(dut)
    await tb.start()
    # Alone, each port answers one read per cycle (plus its latency).
    for port, latency in (("moving", 1), ("stationary", 2), ("dma", 2), ("act", 2)):
        cycles = await tb.reader(port, 100, 0.0)
        assert cycles <= 100 + latency + 1, f"{port} alone: 100 reads took {cycles} cycles"
    # Together on port B, each of the four gets a quarter, within one grant.
    await ReadOnly()
    before = [int(getattr(dut, f"granted__{i}").value) for i in range(len(PORT_B_REQUESTERS))]
    await RisingEdge(dut.clk)
    tasks = [cocotb.start_soon(tb.reader(port, 100, 0.0)) for port in ("stationary", "dma", "act")]
    # The writer's mask is empty: granted like any write, it changes nothing the readers check.
    tasks.append(cocotb.start_soon(tb.engine_writes(100, 0.0, mask=0)))
    finished = [await task for task in tasks]
    # Grants in turn: all take about 400 cycles; a fixed priority would finish one at about 100.
    # (the readers finish with their last answer, two cycles after their last grant; the writer at its grant)
    assert max(finished) - min(finished) <= 5 and max(finished) <= 400 + 4, f"cycles to finish: {finished}"
    await ReadOnly()
    granted = [int(getattr(dut, f"granted__{i}").value) - before[i] for i in range(len(PORT_B_REQUESTERS))]
    waited = [int(getattr(dut, f"waited__{i}").value) for i in range(len(PORT_B_REQUESTERS))]
    assert granted == [100, 100, 100, 100], granted
    assert all(w > 0 for w in waited), f"contended requesters never waited: {waited}"
