"""cocotb tests for the cluster (top ``cluster_bench``: T tiles on shared DRAM behind latency models).

The host reaches tile i's registers at ``i x 4 KiB`` through cocotbext-axi's ``AxiLiteMaster``; the shared
DRAM is one memory served by an ``AxiRam`` on each DRAM port. Protocol checkers watch every port.
The data-parallel GEMM runs on every tile at once
and is compared with :class:`~trntile.golden.cluster.ClusterModel`: every DRAM byte, and each engine's state,
error code and fault address.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from trntile.golden import numerics
from trntile.golden.cluster import ClusterModel
from trntile.golden.dma import DmaError, Endpoint
from trntile.hdl.cluster import TILE_WINDOWS, sbuf_window_address, semaphore_address
from trntile.hdl.isa import EngineError, engine_names
from trntile.hdl.tile import TILE_MAGIC, tile_register_map
from trntile.sw.asm import Copy, End, Instruction, Signal, Wait, encode_program
from trntile.sw.cluster import all_reduce, parallel_gemm, ring_sum
from trntile.tb.axi_checker import AxiProtocolChecker
from trntile.tb.common import ClockedTB, pauses
from trntile.tb.dram import FaultyRam

TILE_STRIDE = 4096   # the host's window of each tile's registers


class ClusterTB(ClockedTB):
    def __init__(self, dut, *, checkers: bool = True):
        super().__init__(dut)
        params = self.params
        self.tiles, self.p, self.queues = params["tiles"], params["partitions"], params["queues"]
        self.sbuf_bytes, self.dram_bytes = params["sbuf_bytes"], params["dram_bytes"]
        self.semaphores, self.dtypes = params["semaphores"], params["dtypes"]
        self.names = engine_names(self.queues)
        shared = bytearray(self.dram_bytes)
        self.ports = params["dram_ports"]
        self.memories = [FaultyRam(dut, f"m{d}_axi", self.dram_bytes, mem=shared) for d in range(self.ports)]
        self.dram = self.memories[0].dram
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"), dut.clk, dut.rst)
        for part in (self.host.write_if, self.host.read_if):
            part.log.setLevel("WARNING")
        self.checkers = []
        if checkers:
            self.checkers = [AxiProtocolChecker(dut, f"m{d}_axi", dut.clk, dut.rst) for d in range(self.ports)]
            self.checkers.append(AxiProtocolChecker(dut, "s_axil", dut.clk, dut.rst, lite=True))
        dut.latency.value = 0
        self.map = {r["name"]: r for r in tile_register_map(
            partitions=self.p, sbuf_bytes=self.sbuf_bytes, data_width=params["data_width"], queues=self.queues,
            semaphores=self.semaphores, dram_bytes=1 << 32, dtypes=self.dtypes).describe()}
        self.log.info("%d tiles, %d DRAM ports", self.tiles, self.ports)

    @property
    def channels(self):
        """Every DRAM port's five channels (for pause generators)."""
        return [channel for memory in self.memories for channel in memory.channels]

    def backpressure(self, fraction: float) -> None:
        """Pauses on every DRAM channel a ``fraction`` of the time (0: none)."""
        for channel in self.channels:
            channel.set_pause_generator(pauses(self.rng, fraction) if fraction else None)
            if not fraction:
                channel.pause = False   # a generator stopped mid-pause would leave it paused

    def _address(self, tile: int, register: str) -> int:
        return tile * TILE_STRIDE + self.map[register]["offset"]

    async def read(self, tile: int, register: str) -> int:
        return int.from_bytes((await self.host.read(self._address(tile, register), 4)).data, "little")

    async def write(self, tile: int, register: str, value: int) -> None:
        await self.host.write(self._address(tile, register), value.to_bytes(4, "little"))

    async def engine(self, tile: int, index: int) -> tuple[int, int, int]:
        name = self.names[index]
        value = await self.read(tile, f"{name}_status")
        return value & 3, value >> 2 & 0xFF, await self.read(tile, f"{name}_fault")

    async def run(self, starts: list[dict[int, int]], *, limit: int = 500_000) -> list[int]:
        """Start tile t's engines at ``starts[t]`` on every tile, then wait until no tile runs; returns each
        tile's cycle count."""
        for tile, programs in enumerate(starts):
            for index, address in programs.items():
                await self.write(tile, f"{self.names[index]}_program", address)
            await self.write(tile, "enable", sum(1 << index for index in programs))
        for tile, programs in enumerate(starts):
            if programs:
                await self.write(tile, "control", 1)
        waited = 0
        while any([await self.read(tile, "status") & 1 for tile in range(self.tiles)]):
            await ClockCycles(self.dut.clk, 50)
            waited += 50
            assert waited < limit, f"the cluster still runs after {limit} cycles"
        return [(await self.read(t, "cycles_lo")) | (await self.read(t, "cycles_hi")) << 32 for t in range(self.tiles)]

    def model(self) -> ClusterModel:
        """A fresh golden model of this cluster."""
        return ClusterModel(tiles=self.tiles, dram_bytes=self.dram_bytes, partitions=self.p,
                            sbuf_bytes=self.sbuf_bytes, queues=self.queues, semaphores=self.semaphores,
                            dtypes=self.dtypes)

    async def run_checked(self, image: np.ndarray, starts: list[dict[int, int]], what: str) -> list[int]:
        """``image`` in DRAM and ``starts`` on the golden model and, after a soft reset of every tile (so that
        semaphores start at 0 as the model's do), on the RTL; everything compared; each tile's cycles."""
        model = self.model()
        model.dram[:] = image
        model.run(starts)
        await soft_reset_all(self)
        self.dram[:] = image
        cycles = await self.run(starts)
        await self.compare(model, what)
        return cycles

    async def compare(self, model: ClusterModel, what: str) -> None:
        for tile, tile_model in enumerate(model.tiles):
            for index, name in enumerate(self.names):
                got, want = await self.engine(tile, index), tile_model.status[index].as_tuple()
                assert got == want, f"{what}: tile {tile} engine {name} is {got}, the golden model says {want}"
            got = [await self.read(tile, f"semaphore{i}") for i in range(self.semaphores)]
            want = [int(v) for v in tile_model.semaphores]
            assert got == want, f"{what}: tile {tile}'s semaphores are {got}, the golden model says {want}"
        bad = np.flatnonzero((self.dram != model.dram) & ~model.dram_undefined)
        assert not bad.size, (f"{what}: {bad.size} DRAM bytes differ, first at {bad[0]:#x}: RTL "
                              f"{self.dram[bad[0]]:#04x}, model {model.dram[bad[0]]:#04x}")
        for checker in self.checkers:
            checker.check(idle=True)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def host_reaches_every_tile_and_nothing_else(dut):
    """Each tile's identity and parameters through its window; a register written on one tile is seen on it
    only; an address beyond the last tile answers DECERR, reads and writes, and the next access works."""
    tb = ClusterTB(dut)
    await tb.reset()
    for tile in range(tb.tiles):
        assert await tb.read(tile, "ident") & 0xFFFF == TILE_MAGIC, f"tile {tile}: no tile identity"
        assert await tb.read(tile, "config0") & 0xFF == tb.p
    for tile in range(tb.tiles):
        await tb.write(tile, "watchdog", 0x100 + tile)
    for tile in range(tb.tiles):
        assert await tb.read(tile, "watchdog") == 0x100 + tile, f"tile {tile} holds another tile's write"
    beyond = (1 << (len(dut.s_axil__araddr.value))) - TILE_STRIDE   # the last window, if no tile is there
    if tb.tiles * TILE_STRIDE <= beyond:
        read = await tb.host.read(beyond, 4)
        assert read.resp == AxiResp.DECERR, f"a read beyond the tiles answered {read.resp!r}"
        write = await tb.host.write(beyond, bytes(4))
        assert write.resp == AxiResp.DECERR, f"a write beyond the tiles answered {write.resp!r}"
        assert await tb.read(0, "ident") & 0xFFFF == TILE_MAGIC, "the host port is stuck after DECERR"
    for checker in tb.checkers:
        checker.check(idle=True)


async def soft_reset_all(tb: ClusterTB) -> None:
    """Soft-reset every tile (semaphores and counters back to 0, as the golden model starts)."""
    for tile in range(tb.tiles):
        await tb.write(tile, "control", 2)
    for tile in range(tb.tiles):
        for _ in range(1000):
            if not await tb.read(tile, "status") >> 3 & 1:
                break
        else:
            raise AssertionError(f"tile {tile}: the soft reset did not finish")


@cocotb.test(timeout_time=5000, timeout_unit="ms")
async def data_parallel_gemm(dut):
    """C = A @ B with N split over the tiles, all running at once on the shared DRAM, several times: random
    shape and dtype, DRAM latency 0, 20 or 64, pauses on every DRAM channel or none. DRAM and every engine's
    status against the golden cluster model, and C against ``numerics.chunked_matmul``."""
    tb = ClusterTB(dut)
    await tb.reset()
    rounds = 2 if "icarus" in cocotb.SIM_NAME.lower() or tb.tiles >= 4 else 4   # T = 4 costs twice as much
    for round_ in range(rounds):
        latency, backpressure = tb.rng.choice([0, 20, 64]), tb.rng.choice([0.0, 0.3])
        dut.latency.value = latency
        tb.backpressure(backpressure)
        dtype = tb.rng.choice(numerics.dtypes_in(tb.dtypes))
        m, k = tb.rng.randint(1, 2 * tb.p), tb.rng.randint(1, 2 * tb.p + 1)
        n = tb.rng.randint(tb.tiles, 6 * tb.p)
        what = f"round {round_}: GEMM {m} x {n} x {k} {dtype} on {tb.tiles} tiles, latency {latency}, " \
               f"backpressure {backpressure:.1f}"
        tb.log.info("%s", what)
        gemm = parallel_gemm(m, n, k, dtype, tiles=tb.tiles, partitions=tb.p, queues=tb.queues,
                             sbuf_bytes=tb.sbuf_bytes, dram_bytes=tb.dram_bytes)
        a = tb.np_rng.integers(-8, 8, (m, k)) if dtype == "int8" else tb.np_rng.standard_normal((m, k))
        b = tb.np_rng.integers(-8, 8, (k, n)) if dtype == "int8" else tb.np_rng.standard_normal((k, n))
        a, b = numerics.cast(a, dtype), numerics.cast(b, dtype)
        cycles = await tb.run_checked(gemm.image(a, b), gemm.starts, what)
        c, want = gemm.read(tb.dram), numerics.chunked_matmul(a, b, dtype, partitions=tb.p)
        assert (c.view(np.uint32) == want.view(np.uint32)).all(), f"{what}: C differs from chunked_matmul"
        tb.log.info("%s: matches the golden model; cycles per tile %s", what, cycles)


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def remote_sbuf_access(dut):
    """Tile 0's DMA writes a block of DRAM into tile 1's SBUF through tile 1's window and reads it back to DRAM;
    a copy on another queue into the window of a tile that does not exist stops that queue with the
    write-response error; then
    tile 1 copies the block from its own SBUF to DRAM; last, tile 1's tensor engine started at an address in no
    window stops with FETCH. DRAM and every engine's status against the golden
    cluster model, whose memory routes window addresses to the other tile's SBUF."""
    tb = ClusterTB(dut)
    await tb.reset()
    p, sbuf_bytes = tb.p, tb.sbuf_bytes
    rows, length = tb.rng.randint(1, p), 4 * tb.rng.randint(1, min(64, sbuf_bytes // 4))
    first = tb.rng.randint(0, p - rows)
    offset = 4 * tb.rng.randint(0, (sbuf_bytes - length) // 4)
    source, back, local = 0x4000, 0x8000, 0xC000
    remote = sbuf_window_address(1, p, sbuf_bytes) + first * sbuf_bytes + offset   # tile 1's partition `first`
    walk = [(sbuf_bytes // 4, rows), (1, length // 4)]             # 4-byte elements, row by row
    tb.log.info("%d rows of %d bytes into tile 1's partitions %d.. at offset %d", rows, length, first, offset)
    programs = {
        (0, 2): [Instruction(Copy(Endpoint.dram(source, [(1, rows * length // 4)]), Endpoint.dram(remote, walk), 4)),
                 Instruction(Copy(Endpoint.dram(remote, walk), Endpoint.dram(back, [(1, rows * length // 4)]), 4)),
                 Instruction(End())],
        (1, 2): [Instruction(Copy(Endpoint.sbuf(first, rows, offset, [(1, length // 4)]),
                                  Endpoint.dram(local, [(1, rows * length // 4)]), 4)),
                 Instruction(End())],
    }
    if tb.queues > 1:   # a write to tile T's window (no such tile): DECERR, the queue stops with WRITE_RESPONSE
        nowhere = sbuf_window_address(tb.tiles, p, sbuf_bytes) + 0x40
        programs[(0, 3)] = [Instruction(Copy(Endpoint.dram(source, [(1, 4)]), Endpoint.dram(nowhere, [(1, 4)]), 4)),
                            Instruction(End())]
    image = np.zeros(tb.dram_bytes, dtype=np.uint8)
    image[source:source + rows * length] = tb.np_rng.integers(0, 256, rows * length, dtype=np.uint8)
    starts = [{}, {}]
    for number, ((tile, engine), program) in enumerate(sorted(programs.items())):
        address = 0x1000 + 0x400 * number
        raw = np.frombuffer(encode_program(program), dtype=np.uint8)
        image[address:address + raw.size] = raw
        starts[tile][engine] = address
    model = tb.model()
    model.dram[:] = image
    tb.dram[:] = image
    # Last, tile 1's tensor engine is started at an address in no window: its fetch gets DECERR (FETCH).
    nowhere = {0: (tb.dram_bytes + TILE_WINDOWS) // 2 // 64 * 64}
    for phase in ([starts[0]] + [{}] * (tb.tiles - 1), [{}, starts[1]] + [{}] * (tb.tiles - 2),
                  [{}, nowhere] + [{}] * (tb.tiles - 2)):
        model.run(phase)
        await tb.run(phase)
    await tb.compare(model, "remote SBUF access")
    block = image[source:source + rows * length]
    for name, address in (("read back through the window", back), ("copied by tile 1 from its SBUF", local)):
        assert (tb.dram[address:address + rows * length] == block).all(), f"the block {name} differs"
    if tb.queues > 1:
        error = (await tb.engine(0, 3))[1]
        assert error == EngineError.DMA + DmaError.WRITE_RESPONSE, f"the write to nowhere ended with {error:#x}"
    assert (await tb.engine(1, 0))[1] == EngineError.FETCH, "a fetch from no window did not stop with FETCH"


def _load(image: np.ndarray, programs: dict, base: int = 0x1000) -> list[dict[int, int]]:
    """Put ``programs[(tile, engine)]`` in ``image`` 1 KiB apart from ``base``; each tile's start addresses."""
    tiles = 1 + max(tile for tile, _ in programs)
    starts = [{} for _ in range(tiles)]
    for number, ((tile, engine), program) in enumerate(sorted(programs.items())):
        address = base + 0x400 * number
        raw = np.frombuffer(encode_program(program), dtype=np.uint8)
        image[address:address + raw.size] = raw
        starts[tile][engine] = address
    return starts


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def producer_signals_consumer(dut):
    """Tile 0 hands a block to tile 1 with no host in between: its DMA queue copies the block from DRAM into
    tile 1's SBUF, waits for that copy to complete, then writes a word v into tile 1's semaphore window;
    tile 1's queue waits for its semaphore to reach v and copies the block from its SBUF to DRAM. On a
    second queue, tile 0 makes a bad access to tile 1's semaphore window (a write of two words, a write
    beyond the last semaphore, a read) or signals a tile that does not exist, which stops that queue with the bus error code and changes no
    semaphore. DRAM, every engine's status and every semaphore against the golden cluster model, at random
    DRAM latency and backpressure."""
    tb = ClusterTB(dut)
    await tb.reset()
    p, sbuf_bytes = tb.p, tb.sbuf_bytes
    dut.latency.value = tb.rng.choice([0, 20, 64])
    tb.backpressure(tb.rng.choice([0.0, 0.3]))
    rows, length = tb.rng.randint(1, p), 4 * tb.rng.randint(1, min(64, sbuf_bytes // 4))
    first = tb.rng.randint(0, p - rows)
    offset = 4 * tb.rng.randint(0, (sbuf_bytes - length) // 4)
    semaphore, value = tb.rng.randrange(tb.semaphores), tb.rng.randint(1, 1000)
    source, local, word = 0x4000, 0xC000, 0x3F00
    remote = sbuf_window_address(1, p, sbuf_bytes) + first * sbuf_bytes + offset
    walk = [(sbuf_bytes // 4, rows), (1, length // 4)]
    block = Endpoint.dram(source, [(1, rows * length // 4)])
    signal = semaphore_address(1, semaphore, p, sbuf_bytes)
    programs = {
        (0, 2): [Instruction(Copy(block, Endpoint.dram(remote, walk), 4), signal=Signal(0, 1)),
                 Instruction(Copy(Endpoint.dram(word, [(1, 1)]), Endpoint.dram(signal, [(1, 1)]), 4),
                             wait=Wait(0, 1)),
                 Instruction(End())],
        (1, 2): [Instruction(Copy(Endpoint.sbuf(first, rows, offset, [(1, length // 4)]),
                                  Endpoint.dram(local, [(1, rows * length // 4)]), 4), wait=Wait(semaphore, value)),
                 Instruction(End())],
    }
    kind = "none"
    if tb.queues > 1:
        first_semaphore = semaphore_address(1, 0, p, sbuf_bytes)
        kinds = {"two words": Copy(Endpoint.dram(word, [(1, 2)]), Endpoint.dram(first_semaphore, [(1, 2)]), 4),
                 "a read": Copy(Endpoint.dram(first_semaphore, [(1, 1)]), Endpoint.dram(word + 64, [(1, 1)]), 4)}
        missing = semaphore_address(tb.tiles, 0, p, sbuf_bytes)   # tile T: no such tile
        kinds["a signal to a tile that does not exist"] = Copy(Endpoint.dram(word, [(1, 1)]),
                                                               Endpoint.dram(missing, [(1, 1)]), 4)
        if 4 * tb.semaphores < 4096:
            beyond = semaphore_address(1, tb.semaphores, p, sbuf_bytes)
            kinds["beyond the last semaphore"] = Copy(Endpoint.dram(word, [(1, 1)]), Endpoint.dram(beyond, [(1, 1)]), 4)
        kind = tb.rng.choice(sorted(kinds))
        programs[(0, 3)] = [Instruction(kinds[kind]), Instruction(End())]
    tb.log.info("%d rows of %d bytes to tile 1's partitions %d.. at %d, then +%d on its semaphore %d; bad access: %s",
                rows, length, first, offset, value, semaphore, kind)
    image = np.zeros(tb.dram_bytes, dtype=np.uint8)
    image[source:source + rows * length] = tb.np_rng.integers(0, 256, rows * length, dtype=np.uint8)
    image[word:word + 8] = np.frombuffer(int(value).to_bytes(4, "little") * 2, dtype=np.uint8)
    starts = _load(image, programs)
    starts += [{}] * (tb.tiles - len(starts))
    await tb.run_checked(image, starts, "producer and consumer")
    assert (tb.dram[local:local + rows * length] == image[source:source + rows * length]).all(), \
        "the consumer's copy differs from the block"
    if kind != "none":
        error = (await tb.engine(0, 3))[1]
        want = DmaError.READ_RESPONSE if kind == "a read" else DmaError.WRITE_RESPONSE
        assert error == EngineError.DMA + want, f"{kind} in the semaphore window ended with {error:#x}"


@cocotb.test(timeout_time=5000, timeout_unit="ms")
async def ring_all_reduce(dut):
    """The ring all-reduce (``sw.cluster.all_reduce``): every tile loads its tensor from DRAM, the tiles sum
    them with no host in between (DMA into the successor's SBUF window, a signal into its semaphore window, an
    accumulate ACTIVATE there), and each stores the sum. fp32 or int32 (sometimes large enough to saturate),
    random length, DRAM latency and backpressure. DRAM, every engine and every semaphore against the golden
    cluster model, and each tile's sum against ``ring_sum``."""
    tb = ClusterTB(dut)
    await tb.reset()
    p, sbuf_bytes = tb.p, tb.sbuf_bytes
    rounds = 1 if "icarus" in cocotb.SIM_NAME.lower() else 2 if tb.tiles >= 4 else 3
    region = tb.dram_bytes >> (tb.tiles - 1).bit_length()
    load = [t * region + region // 2 for t in range(tb.tiles)]
    store = [address + region // 4 for address in load]
    for round_ in range(rounds):
        latency, backpressure = tb.rng.choice([0, 20, 64]), tb.rng.choice([0.0, 0.3])
        dut.latency.value = latency
        tb.backpressure(backpressure)
        dtype = tb.rng.choice(["fp32", "int32"])
        most = (sbuf_bytes - 64) // 4 * tb.tiles // (2 * tb.tiles - 1)   # the tensor and T - 1 slots fit
        elements = tb.rng.randint(tb.tiles, min(most, 96))
        reduce = all_reduce(elements, dtype, tiles=tb.tiles, partitions=p, sbuf_bytes=sbuf_bytes,
                            dram_bytes=tb.dram_bytes, queues=tb.queues, offset=64, load=load, store=store)
        if dtype == "fp32":
            scale = 2.0 ** tb.np_rng.integers(-10, 10, (tb.tiles, p, 1))
            tensors = [(tb.np_rng.standard_normal((p, elements)) * scale[t]).astype(np.float32)
                       for t in range(tb.tiles)]
        else:
            big = tb.rng.random() < 0.3
            bound = 1 << 30 if big else 1 << 20
            tensors = [tb.np_rng.integers(-bound, bound, (p, elements)).astype(np.int32) for _ in range(tb.tiles)]
        what = (f"round {round_}: all-reduce of {p} x {elements} {dtype} on {tb.tiles} tiles, latency {latency}, "
                f"backpressure {backpressure:.1f}")
        tb.log.info("%s", what)
        image = np.zeros(tb.dram_bytes, dtype=np.uint8)
        for t in range(tb.tiles):
            image[load[t]:load[t] + tensors[t].nbytes] = tensors[t].view(np.uint8).reshape(-1)
        cycles = await tb.run_checked(reduce.image(image), reduce.starts, what)
        want = ring_sum(tensors, reduce.chunks)
        for t in range(tb.tiles):
            got = tb.dram[store[t]:store[t] + want.nbytes].copy().view(want.dtype).reshape(want.shape)
            assert (got.view(np.uint32) == want.view(np.uint32)).all(), f"{what}: tile {t}'s sum differs from ring_sum"
        tb.log.info("%s: matches; cycles per tile %s", what, cycles)
