"""cocotb tests for the tile (top ``tile_bench``: the tile with a DRAM latency model) against the golden ISA
simulator :class:`trntile.golden.tile.TileModel`.

Each test puts programs in DRAM (a cocotbext-axi ``AxiRam`` with fault windows, random pauses on every
channel and, in some tests, 64 cycles of latency), starts the engines through the host registers
(``AxiLiteMaster``), waits for the tile to finish (bounded) and compares with the golden simulator run on the
same DRAM image: every DRAM byte, every semaphore, and each engine's state, error code and faulting address.
Protocol checkers watch all three AXI ports.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster, AxiResp

from trntile.golden.dma import Endpoint
from trntile.golden.tensor_engine import AccessPattern, LoadStationary, MultiplyMoving
from trntile.golden.tile import TileModel
from trntile.hdl.isa import INSTRUCTION_BYTES, EngineError, EngineState, engine_names
from trntile.hdl.tile import TILE_MAGIC, tile_register_map
from trntile.sw.asm import Copy, End, Instruction, Nop, Raw, SemSet, Signal, Wait, encode_program
from trntile.tb.axi_checker import AxiProtocolChecker
from trntile.tb.common import ClockedTB, pauses
from trntile.tb.dram import Fault, FaultyRam
from trntile.tb.tile_programs import Programs, matmul_program, random_programs


class TileTB(ClockedTB):
    def __init__(self, dut, *, latency: int = 0, backpressure: float = 0.0, checkers: bool = True):
        super().__init__(dut)
        params = self.params
        self.p, self.sbuf_bytes, self.queues = params["partitions"], params["sbuf_bytes"], params["queues"]
        self.dram_bytes, self.semaphores = params["dram_bytes"], params["semaphores"]
        self.dtypes = params["dtypes"]
        if not self.dtypes & (1 | 8):
            raise ValueError(f"the tile tests need bf16 or int8 built (dtypes mask 1 or 8), not {self.dtypes}")
        self.matmul_dtype = "bf16" if self.dtypes & 1 else "int8"   # an int8-only tile: an FPGA build
        self.names = engine_names(self.queues)
        self.memory = FaultyRam(dut, "m_axi", self.dram_bytes)
        self.dram = self.memory.dram
        if backpressure:
            for channel in self.memory.channels:
                channel.set_pause_generator(pauses(self.rng, backpressure))
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"), dut.clk, dut.rst)
        self.window = AxiMaster(AxiBus.from_prefix(dut, "s_axi", bus_separator="__"), dut.clk, dut.rst)
        for master in (self.host, self.window):
            for part in (master.write_if, master.read_if):
                part.log.setLevel("WARNING")
        self.checkers = [AxiProtocolChecker(dut, "m_axi", dut.clk, dut.rst),
                         AxiProtocolChecker(dut, "s_axi", dut.clk, dut.rst),
                         AxiProtocolChecker(dut, "s_axil", dut.clk, dut.rst, lite=True)] if checkers else []
        dut.latency.value = latency
        self.map = {r["name"]: r for r in tile_register_map(
            partitions=self.p, sbuf_bytes=self.sbuf_bytes, data_width=params["data_width"], queues=self.queues,
            semaphores=self.semaphores, dram_bytes=self.dram_bytes).describe()}
        self.log.info("DRAM latency %d cycles, backpressure %.2f", latency, backpressure)

    async def start(self, *, clear_sbuf: bool = True):
        """Reset, and zero the SBUF as the golden model starts (memories keep their contents through reset).
        A run that only reads what it wrote first can skip that (``clear_sbuf=False``): it costs one bus beat
        per word of SBUF."""
        await self.reset()
        if clear_sbuf:
            await self.window.write(0, bytes(self.p * self.sbuf_bytes))

    async def read(self, register: str) -> int:
        return int.from_bytes((await self.host.read(self.map[register]["offset"], 4)).data, "little")

    async def read64(self, counter: str) -> int:
        """A 64-bit counter, from its ``_lo`` and ``_hi`` registers."""
        return (await self.read(f"{counter}_lo")) | (await self.read(f"{counter}_hi")) << 32

    async def write(self, register: str, value: int) -> None:
        await self.host.write(self.map[register]["offset"], value.to_bytes(4, "little"))

    async def status(self) -> dict:
        value = await self.read("status")
        return {"running": value & 1, "done": value >> 1 & 1, "error": value >> 2 & 1, "resetting": value >> 3 & 1,
                "deadlock": value >> 4}

    async def engine(self, index: int) -> tuple[int, int, int]:
        name = self.names[index]
        value = await self.read(f"{name}_status")
        return value & 3, value >> 2 & 0xFF, await self.read(f"{name}_fault")

    async def run(self, programs: Programs, *, limit: int = 200_000, watchdog: int | None = None) -> int:
        """Load ``programs`` into DRAM, start them and wait until no engine runs; returns the cycles taken."""
        return await self.run_image(programs.image(), programs.starts, limit=limit, watchdog=watchdog)

    async def run_image(self, image, starts: dict[int, int], *, limit: int = 200_000, watchdog: int | None = None,
                        progress=None) -> int:
        """Put ``image`` in DRAM, start engine e at ``starts[e]`` for each, and wait (at most ``limit``
        cycles) until the tile is quiet; returns the tile's cycle count. ``progress(cycles)`` is called as
        it runs."""
        self.dram[:] = image
        for index, address in starts.items():
            await self.write(f"{self.names[index]}_program", address)
        await self.write("enable", sum(1 << index for index in starts))
        if watchdog is not None:
            await self.write("watchdog", watchdog)
        await self.write("control", 1)
        waited = 0
        while True:
            status = await self.status()
            if not status["running"]:
                break
            await ClockCycles(self.dut.clk, 50)
            waited += 50
            assert waited < limit, f"the tile still runs after {limit} cycles"
            if progress and waited % 1000 == 0:
                progress(waited)
        return await self.read64("cycles")

    async def soft_reset(self) -> None:
        await self.write("control", 2)
        for _ in range(1000):
            if not (await self.status())["resetting"]:
                return
        raise AssertionError("the soft reset did not finish draining")

    def golden(self, programs: Programs, *, read_faults=(), write_faults=()) -> TileModel:
        model = TileModel(partitions=self.p, sbuf_bytes=self.sbuf_bytes, dram_bytes=self.dram_bytes,
                          queues=self.queues, semaphores=self.semaphores, dtypes=self.dtypes, read_faults=read_faults,
                          write_faults=write_faults)
        model.dram[:] = programs.image()
        model.start(programs.starts)
        model.run()
        return model

    async def compare(self, model: TileModel, what: str) -> None:
        for index, name in enumerate(self.names):
            got = await self.engine(index)
            want = model.status[index].as_tuple()
            assert got == want, (f"{what}: engine {name} (state, error, fault address) is {got}, the golden model "
                                 f"says {want}")
        semaphores = [await self.read(f"semaphore{i}") for i in range(self.semaphores)]
        assert semaphores == [int(v) for v in model.semaphores], f"{what}: semaphores {semaphores}, " \
                                                                   f"model {list(model.semaphores)}"
        defined = ~model.dram_undefined
        bad = np.flatnonzero((self.dram != model.dram) & defined)
        assert not bad.size, (f"{what}: {bad.size} DRAM bytes differ, first at {bad[0]:#x}: RTL "
                              f"{self.dram[bad[0]]:#04x}, model {model.dram[bad[0]]:#04x}")
        for checker in self.checkers:
            checker.check(idle=True)

    async def run_and_compare(self, programs: Programs, what: str, **faults) -> TileModel:
        await self.soft_reset()  # semaphores back to 0, as the model starts
        await self.window.write(0, bytes(self.p * self.sbuf_bytes))  # and the SBUF
        model = self.golden(programs, **faults)
        cycles = await self.run(programs)
        await self.compare(model, what)
        self.log.info("%s: matches the golden model after %d cycles", what, cycles)
        return model


def _matmul(tb: TileTB, **shape) -> Programs:
    """The matmul program in bf16, or in int8 for a tile built without bf16 (an FPGA build)."""
    return matmul_program(tb.np_rng, partitions=tb.p, queues=tb.queues, dram_bytes=tb.dram_bytes,
                          dtype=tb.matmul_dtype, **shape)


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def matmul_end_to_end(dut):
    """DMA in, LoadStationary, MultiplyMoving, Activate, DMA out: DRAM, semaphores, status and counters."""
    tb = TileTB(dut)
    await tb.start()
    await tb.read("ident")
    programs = _matmul(tb)
    await tb.run_and_compare(programs, "matmul")
    p = tb.p
    macs = (await tb.read("macs_lo")) | (await tb.read("macs_hi")) << 32
    assert macs == p * p * 2 * p, f"useful MACs {macs}, expected K x M x N = {p * p * 2 * p}"
    assert (await tb.status())["done"] and int(dut.irq.value), "done, and the interrupt line is up"
    await tb.write("irq", 1)
    assert (await tb.read("irq")) == 0, "irq.done is write-1-to-clear"
    assert not int(dut.irq.value), "the interrupt line drops with irq.done"
    assert await tb.read("tensor_busy_lo") > 0 and await tb.read("act_busy_lo") > 0
    size = 2 if tb.matmul_dtype == "bf16" else 1
    assert await tb.read("dma_read_bytes") >= size * (p * p + 2 * p * p) + 4 * 2 * p * p


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def matmul_with_slow_memory_and_backpressure(dut):
    tb = TileTB(dut, latency=64, backpressure=0.3)
    await tb.start()
    for shape in ({}, {"k": 3, "m": 2, "n": 5}, {"n": 4 * tb.p}):
        await tb.run_and_compare(_matmul(tb, **shape), f"matmul {shape or 'P x P x 2P'}")


@cocotb.test(timeout_time=5000, timeout_unit="ms")
async def random_programs_on_every_engine(dut):
    """Constrained-random programs (every instruction, every engine, cross-engine waits, semaphore traffic),
    several seeds, with random DRAM latency and pauses on every channel."""
    icarus = "icarus" in cocotb.SIM_NAME.lower()
    runs = 3 if icarus else 10
    tb = TileTB(dut, backpressure=0.2)
    await tb.start()
    for run in range(runs):
        latency = tb.rng.choice([0, 0, 8, 64, 150])
        dut.latency.value = latency
        programs = random_programs(tb.rng, partitions=tb.p, queues=tb.queues, dram_bytes=tb.dram_bytes,
                                   sbuf_bytes=tb.sbuf_bytes, semaphores=tb.semaphores,
                                   operations=16 if icarus else 28)
        instructions = sum(len(program) for program in programs.programs.values())
        await tb.run_and_compare(programs, f"random programs {run} ({instructions} instructions, latency {latency})")


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def errors_stop_the_engine_and_a_soft_reset_recovers(dut):
    """An illegal opcode, an operand out of range, a DMA bus error, a fetch error and a semaphore deadlock
    each end with the golden model's error code and faulting address, with no hang; after a soft reset the
    next program runs."""
    tb = TileTB(dut)
    await tb.start()
    base = _matmul(tb)
    layout = base.layout
    cases = []
    bad = dict(base.programs)
    bad[1] = [Instruction(Nop()), Instruction(Raw(0x55))]                      # illegal opcode on ACT
    cases.append(("illegal opcode", Programs(bad, base.dram, layout, base.result), {}))
    bad = dict(base.programs)
    bad[0] = [Instruction(Nop(), wait=Wait(tb.semaphores + 3, 1))]            # semaphore beyond the file
    cases.append(("semaphore out of range", Programs(bad, base.dram, layout, base.result), {}))
    bad = dict(base.programs)
    tensor = list(bad[0])
    load = tensor[0].op
    tensor[0] = Instruction(type(load)(load.partition, load.pattern, tb.p + 1, load.m, load.dtype), tensor[0].wait)
    bad[0] = tensor                                                           # K > P: the tensor engine refuses
    cases.append(("tensor operand out of range", Programs(bad, base.dram, layout, base.result), {}))
    moving_at = layout.data + 0x1000
    cases.append(("DMA read error", base, {"read_faults": [(moving_at + 8, moving_at + 9)]}))
    # The faulting COPY is followed at once by another (no wait): the error names the first.
    cases.append(("DMA read error with the next COPY queued", base,
                  {"read_faults": [(layout.data + 8, layout.data + 9)]}))
    c_at = base.result[0]
    cases.append(("DMA write error", base, {"write_faults": [(c_at + 4, c_at + 5)]}))
    act_at = layout.program_address(1)
    cases.append(("fetch error", base, {"read_faults": [(act_at + INSTRUCTION_BYTES, act_at + INSTRUCTION_BYTES + 1)]}))
    bad = dict(base.programs)
    bad[1] = [Instruction(Nop(), wait=Wait(9, 1)), Instruction(End(), signal=Signal(10, 1))]  # nobody signals 9
    cases.append(("deadlock", Programs(bad, base.dram, layout, base.result), {}))
    bad = dict(base.programs)
    # A wait after the engine's own SEM_SET sees the set value, even while an earlier COPY is still running.
    bad[2] = [Instruction(SemSet(20, 1)), base.programs[2][0], Instruction(SemSet(20, 0)),
              Instruction(Nop(), wait=Wait(20, 1)), Instruction(End())]
    cases.append(("wait after the engine's own SEM_SET", Programs(bad, base.dram, layout, base.result), {}))
    for what, programs, faults in cases:
        model = tb.golden(programs, **faults)
        assert any(s.state == EngineState.ERROR for s in model.status), what
        tb.memory.read_fault = Fault(*faults["read_faults"][0], AxiResp.SLVERR) if "read_faults" in faults else None
        tb.memory.write_fault = Fault(*faults["write_faults"][0], AxiResp.DECERR) if "write_faults" in faults else None
        await tb.write("watchdog", 500)
        await tb.soft_reset()
        await tb.run(programs)
        tb.memory.read_fault = tb.memory.write_fault = None
        status = await tb.status()
        assert status["error"] and int(dut.irq.value), f"{what}: {status}"
        await tb.compare(model, what)
        deadlocked = sum(1 << i for i, e in enumerate(model.status) if e.error == EngineError.DEADLOCK)
        assert status["deadlock"] == deadlocked, f"{what}: the watchdog names engines {status['deadlock']:#x}, " \
                                                 f"the model {deadlocked:#x}"
        errors = [f"{tb.names[i]} {EngineError(s.error).name if s.error in EngineError._value2member_map_ else hex(s.error)}"
                  for i, s in enumerate(model.status) if s.state == EngineState.ERROR]
        tb.log.info("%s: stopped as the model says (%s)", what, ", ".join(errors))
        await tb.soft_reset()
        assert [await tb.engine(i) for i in range(len(tb.names))] == [(0, 0, 0)] * len(tb.names)
        assert [await tb.read(f"semaphore{i}") for i in range(tb.semaphores)] == [0] * tb.semaphores
        await tb.write("irq", 3)
        await tb.run_and_compare(_matmul(tb), f"matmul after {what}")
        await tb.soft_reset()


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def host_registers(dut):
    """Identity and parameters, read-write registers, write-1-to-clear events, an unmapped address."""
    tb = TileTB(dut)
    await tb.start()
    ident = await tb.read("ident")
    assert ident & 0xFFFF == TILE_MAGIC and ident >> 16 & 0xFF == 1, hex(ident)
    config0 = await tb.read("config0")
    assert config0 & 0xFF == tb.p % 256 and config0 >> 8 & 0x1F == tb.queues and config0 >> 13 & 0x1FF == tb.semaphores
    config1 = await tb.read("config1")
    assert config1 & 0x1FF == tb.sbuf_bytes // 1024 and config1 >> 9 & 0x3F == tb.dram_bytes.bit_length() - 1
    assert config1 >> 15 & 0xF == tb.dtypes, f"config1.dtypes {config1 >> 15 & 0xF}, built with {tb.dtypes}"
    lanes = min(tb.params["act_lanes"], tb.p)
    assert 1 << (config1 >> 19) == lanes, f"config1.act_lanes_log2 {config1 >> 19}, built with {lanes} lanes"
    assert await tb.read("enable") == (1 << len(tb.names)) - 1
    assert await tb.read("watchdog") == 4096
    for index, name in enumerate(tb.names):
        value = 0x1000 * (index + 1) + 0x40
        await tb.write(f"{name}_program", value)
        assert await tb.read(f"{name}_program") == value
    response = await tb.host.read(0xFFC, 4)
    assert response.resp == AxiResp.SLVERR, f"an unmapped register answers SLVERR, not {response.resp}"
    # The SBUF window reads back what it was given.
    data = bytes(tb.rng.getrandbits(8) for _ in range(256))
    address = tb.rng.randrange(0, tb.p * tb.sbuf_bytes - 256, 16)
    await tb.window.write(address, data)
    assert (await tb.window.read(address, 256)).data == data


def _tensor_stream(tb: TileTB, pairs: int) -> Programs:
    """Only the tensor engine: ``pairs`` LoadStationary + MultiplyMoving (N = 4P) pairs, back to back."""
    p = tb.p
    layout = matmul_program(tb.np_rng, partitions=p, queues=tb.queues, dram_bytes=tb.dram_bytes).layout
    program = []
    for index in range(pairs):
        program.append(Instruction(LoadStationary(0, AccessPattern(0, ((1, p),)), p, p, "int8")))
        program.append(Instruction(MultiplyMoving(0, AccessPattern(64, ((1, 4 * p),)), p, 4 * p, "int8",
                                                  index % 8, 0, False), signal=Signal(0, 1)))
    program.append(Instruction(End()))
    return Programs({0: program}, np.zeros(tb.dram_bytes, dtype=np.uint8), layout)


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def prefetch_keeps_the_tensor_engine_busy(dut):
    """Back-to-back tensor instructions take the same time at 0 and at 64 cycles of DRAM latency, but for the
    first fetch: the prefetch keeps the engine fed."""
    tb = TileTB(dut)
    await tb.start()
    pairs = 16
    cycles = {}
    for latency in (0, 64):
        dut.latency.value = latency
        await tb.run_and_compare(_tensor_stream(tb, pairs), f"tensor stream at latency {latency}")
        cycles[latency] = (await tb.read("cycles_lo"))
        busy = await tb.read("tensor_busy_lo")
        tb.log.info("latency %d: %d cycles, tensor busy %d", latency, cycles[latency], busy)
    # The engine's own time, or the bus time to fetch the words (a 64-byte word is 16 beats on a 32-bit bus).
    # (about 18 cycles a word on a 32-bit bus: 16 beats and the handshakes)
    fetch = (2 * pairs + 1) * (INSTRUCTION_BYTES // (tb.params["data_width"] // 8) + 2)
    ideal = max(pairs * 4 * tb.p, fetch)
    assert cycles[0] <= ideal + 60, f"{pairs} pairs of N = {4 * tb.p} took {cycles[0]} cycles (ideal {ideal})"
    if ideal == pairs * 4 * tb.p:  # compute-bound: latency must cost one round trip, not one per instruction
        assert cycles[64] - cycles[0] <= 64 + 40, \
            f"latency 64 costs {cycles[64] - cycles[0]} cycles more: the fetch starves the engine"


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def semaphore_window_adds_and_refuses(dut):
    """Writes of one word into the semaphore window (from P x sbuf_bytes in ``s_axi``) add to that semaphore;
    a write of two words, of part of
    a word, beyond the last semaphore, or during a soft reset answers SLVERR and changes nothing; reads answer
    SLVERR; beyond the window, DECERR. The semaphores are checked against a running sum after each step."""
    tb = TileTB(dut)
    await tb.start(clear_sbuf=False)
    base = tb.p * tb.sbuf_bytes
    want = [0] * tb.semaphores

    async def check(what):
        got = [await tb.read(f"semaphore{i}") for i in range(tb.semaphores)]
        assert got == want, f"{what}: semaphores {got}, expected {want}"

    for _ in range(8):
        index, value = tb.rng.randrange(tb.semaphores), tb.rng.getrandbits(32)
        response = await tb.window.write(base + 4 * index, value.to_bytes(4, "little"))
        assert response.resp == AxiResp.OKAY, f"adding to semaphore {index} answered {response.resp!r}"
        want[index] = (want[index] + value) & 0xFFFF_FFFF
        await check(f"after adding {value:#x} to semaphore {index}")
    index = tb.rng.randrange(tb.semaphores - 1) if tb.semaphores > 1 else 0
    bad = [("two words", base + 4 * index, 8), ("half a word", base + 4 * index, 2)]
    if 4 * tb.semaphores < 4096:
        bad.append(("a word beyond the last semaphore", base + 4 * tb.semaphores, 4))
    for what, address, length in bad:
        if what == "two words" and index + 1 >= tb.semaphores:
            continue
        response = await tb.window.write(address, bytes([1] * length))
        assert response.resp == AxiResp.SLVERR, f"a write of {what} answered {response.resp!r}"
        await check(f"after a write of {what}")
    read = await tb.window.read(base, 4)
    assert read.resp == AxiResp.SLVERR, f"a read of the semaphore window answered {read.resp!r}"
    refusals = 1 + sum(1 for what, _, _ in bad if not (what == "two words" and index + 1 >= tb.semaphores))
    assert (await tb.read("remote_adds"), await tb.read("remote_refused")) == (8, refusals), \
        "the window's counters disagree with the adds and refusals made"
    beyond = await tb.window.write(base + 4096, bytes(64))
    assert beyond.resp == AxiResp.DECERR, f"a write beyond the semaphore window answered {beyond.resp!r}"
    beyond = await tb.window.read(base + 4096, 64)
    assert beyond.resp == AxiResp.DECERR, f"a read beyond the semaphore window answered {beyond.resp!r}"
    data = bytes(tb.rng.getrandbits(8) for _ in range(64))   # and the SBUF part still works after them
    await tb.window.write(base - 64, data)
    assert (await tb.window.read(base - 64, 64)).data == data, "the SBUF window after errors on the split"
    # During a soft reset: the tile drains a long copy (DRAM latency 64) while the window refuses adds.
    dut.latency.value = 64
    for channel in tb.memory.channels:
        channel.set_pause_generator(pauses(tb.rng, 0.5))
    rows = tb.p
    copy = Copy(Endpoint.dram(0x1000, [(1, rows * tb.sbuf_bytes // 4)]),
                Endpoint.sbuf(0, rows, 0, [(1, tb.sbuf_bytes // 4)]), 4)
    program = [Instruction(copy) for _ in range(4)] + [Instruction(End())]
    raw = np.frombuffer(encode_program(program), dtype=np.uint8)
    tb.dram[0x100:0x100 + raw.size] = raw
    await tb.write(f"{tb.names[2]}_program", 0x100)
    await tb.write("enable", 1 << 2)
    await tb.write("control", 1)
    await ClockCycles(dut.clk, 100)
    await tb.write("control", 2)
    assert (await tb.status())["resetting"], "the soft reset finished before the test could write during it"
    response = await tb.window.write(base, (7).to_bytes(4, "little"))
    assert (await tb.status())["resetting"], "the soft reset finished before the write was answered"
    assert response.resp == AxiResp.SLVERR, f"an add during a soft reset answered {response.resp!r}"
    await tb.soft_reset()
    want = [0] * tb.semaphores
    await check("after the soft reset")
    response = await tb.window.write(base, (7).to_bytes(4, "little"))
    assert response.resp == AxiResp.OKAY, f"an add after the soft reset answered {response.resp!r}"
    want[0] = 7
    await check("after an add following the soft reset")
    # The window's counters: every add (8 + 1 before the reset, cleared by it, and 1 after) and refusal.
    assert await tb.read("remote_adds") == 1, "remote_adds after the soft reset"
    assert await tb.read("remote_refused") == 0, "remote_refused after the soft reset"
    for checker in tb.checkers:
        checker.check(idle=True)
