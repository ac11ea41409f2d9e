"""cocotb tests for the tensor engine (top ``tensor_engine``: the engine on an SBUF model), bit for bit
against :class:`trntile.golden.tensor_engine.TensorEngineModel`.

Each test works in rounds: the testbench places every operand of a round in SBUF (in the model and, over
the write port, in the RTL), sends the round's commands back to back, waits for ``idle``, then reads every
PSUM word back and compares it with the model (NaN as NaN where the word holds a float). Throughout, the
command stream pauses at random and both SBUF read ports refuse requests and withhold responses at random,
and PSUM reads come with random gaps and backpressure, so every stream of the engine sees backpressure
and bubbles. The counters and completion pulses are checked against the commands the model executed, and
refused commands against the model's error codes.
"""

from __future__ import annotations

import dataclasses

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from trntile.golden import numerics
from trntile.golden.tensor_engine import (PSUM_BANKS, AccessPattern, LoadStationary, MultiplyMoving,
                                          TensorEngineModel, TensorError, command_dtype)
from trntile.hdl.psum import psum_read_layout
from trntile.hdl.sbuf_model import sbuf_write_layout
from trntile.hdl.systolic import float_cuts
from trntile.hdl.tensor_engine import encode_command, tensor_command_layout
from trntile.tb.common import ClockedTB, design_params, offer, pack, pauses, unpack



def _is_nan(bits: int) -> bool:
    return (bits >> 23) & 0xFF == 0xFF and bits & 0x7FFFFF != 0


class Allocator:
    """Hands out disjoint byte ranges of an SBUF partition, so that one round's operands never overlap."""

    def __init__(self, sbuf_bytes: int):
        self.sbuf_bytes = sbuf_bytes
        self.cursor = 0

    def place(self, rng, dims, esize: int) -> AccessPattern | None:
        """A pattern with ``dims`` at the next free address (a random gap before it), or ``None`` if full."""
        offsets = AccessPattern(0, tuple(dims)).offsets()
        low, high = int(offsets.min()), int(offsets.max())
        start = -(-self.cursor // esize) * esize + esize * rng.randint(0, 3)  # aligned, after a random gap
        address = start - esize * low
        end = address + esize * (high + 1)
        if end > self.sbuf_bytes:
            return None
        self.cursor = end
        return AccessPattern(address, tuple(dims))


def random_dims(rng, count: int, max_stride: int = 3) -> list[tuple[int, int]]:
    """1..4 dimensions whose counts multiply to ``count``, with random (possibly zero or negative) strides."""
    counts = []
    remaining = count
    for _ in range(rng.randint(0, 3)):
        divisors = [d for d in range(1, remaining + 1) if remaining % d == 0]
        chosen = rng.choice(divisors)
        counts.append(chosen)
        remaining //= chosen
    counts.append(remaining)
    rng.shuffle(counts)
    dims = []
    for index, c in enumerate(counts):
        inner = index == len(counts) - 1
        stride = rng.choice([1, 1, 2, -1]) if inner else rng.randint(-max_stride, max_stride) * c
        dims.append((stride, c))
    return dims


def _span(dims) -> int:
    """Elements between the lowest and the highest a walk visits, inclusive."""
    offsets = AccessPattern(0, tuple(dims)).offsets()
    return int(offsets.max() - offsets.min()) + 1


class TensorEngineTB(ClockedTB):
    def __init__(self, dut, *, pause: float = 0.3):
        super().__init__(dut)
        self.p = self.params["partitions"]
        self.sbuf_bytes = self.params["sbuf_bytes"]
        self.dtypes = self.params["dtypes"]
        self.model = TensorEngineModel(self.p, sbuf_bytes=self.sbuf_bytes, dtypes=self.dtypes)
        self.formats = numerics.dtypes_in(self.dtypes)  # the formats built in
        self.kinds = np.ones(self.model.psum.shape, dtype=bool)  # True where the word holds a float
        self.write_layout = sbuf_write_layout(self.p, self.sbuf_bytes)
        self.read_layout = psum_read_layout(self.p)
        self.word_layout = data.ArrayLayout(32, self.p)
        self.pause = pause
        self.pulses = {"load_done": 0, "multiply_done": 0}
        self.last_pulse = {"load_done": None, "multiply_done": None}  # cycle of the latest pulse
        self.was_idle, self.became_idle = True, None
        self.expected = {"load_done": 0, "multiply_done": 0, "macs": 0, "errors": 0}
        for name in ("command__valid", "sbuf_write__valid", "psum_read__valid", "psum_read_data__ready",
                     "stall", "error_clear"):
            getattr(dut, name).value = 0
        self.cycle = 0

    async def start(self) -> None:
        await self.reset()
        cocotb.start_soon(self._monitor())
        cocotb.start_soon(self._stalls())
        # Reset does not clear memories (nor would it on an FPGA): start the model from what PSUM holds.
        self.model.psum[...] = await self.read_psum()

    async def _monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            self.cycle += 1
            for name in self.pulses:
                if int(getattr(self.dut, name).value):
                    self.pulses[name] += 1
                    self.last_pulse[name] = self.cycle
            if int(self.dut.idle.value) and not self.was_idle:
                self.became_idle = self.cycle
            self.was_idle = bool(int(self.dut.idle.value))
            assert not int(self.dut.fault.value), "the engine's PSUM saw a result with no write command"

    async def _stalls(self):
        patterns = [pauses(self.rng, self.pause) for _ in range(4)]
        while True:
            await RisingEdge(self.dut.clk)
            self.dut.stall.value = sum(int(next(pattern)) << bit for bit, pattern in enumerate(patterns))

    # -- SBUF and PSUM access ---------------------------------------------------------------------------

    async def write_sbuf(self, partition: int, pattern: AccessPattern, values: np.ndarray) -> None:
        """Put ``values`` (K x count) in the model's SBUF and copy every word touched to the RTL's."""
        self.model.write_sbuf(partition, pattern, values)
        size = values.dtype.itemsize
        touched = sorted({int(byte) // 2 for byte in
                          (pattern.address + size * pattern.offsets()[:, None] + np.arange(size)).reshape(-1)})
        words = self.model.sbuf.view(np.uint16)  # little-endian, as the RTL's banks hold them
        for word in touched:
            self.dut.sbuf_write__payload.value = pack(self.write_layout, {
                "address": word, "data": [int(w) for w in words[:, word]], "mask": (1 << self.p) - 1})
            self.dut.sbuf_write__valid.value = 1
            await RisingEdge(self.dut.clk)
        self.dut.sbuf_write__valid.value = 0

    async def read_psum(self) -> np.ndarray:
        """Every PSUM word through the read port, at up to one read per cycle, with random gaps in the
        requests and random backpressure on the data (none when the test runs without pauses)."""
        words = np.zeros(self.model.psum.shape, dtype=np.uint32)
        addresses = [(bank, offset) for bank in range(PSUM_BANKS) for offset in range(4 * self.p)]
        gaps, backpressure = pauses(self.rng, self.pause), pauses(self.rng, self.pause)
        issued, received, outstanding = 0, 0, []
        for cycle in range(20 * len(addresses) + 1000):
            if received == len(addresses):
                break
            requesting = issued < len(addresses) and not next(gaps)
            if requesting:
                bank, offset = addresses[issued]
                self.dut.psum_read__payload.value = pack(self.read_layout, {"bank": bank, "offset": offset})
            self.dut.psum_read__valid.value = int(requesting)
            self.dut.psum_read_data__ready.value = int(not next(backpressure))
            await ReadOnly()
            if int(self.dut.psum_read_data__valid.value) and int(self.dut.psum_read_data__ready.value):
                assert outstanding, "PSUM read data with no read outstanding"
                bank, offset = outstanding.pop(0)
                words[:, bank, offset] = unpack(self.word_layout, int(self.dut.psum_read_data__payload.value))
                received += 1
            if requesting and int(self.dut.psum_read__ready.value):
                outstanding.append(addresses[issued])
                issued += 1
            await RisingEdge(self.dut.clk)
        else:
            raise AssertionError(f"PSUM read-out stuck: {received} of {len(addresses)} words after {cycle} cycles")
        self.dut.psum_read__valid.value = 0
        return words

    async def compare_psum(self, what: str) -> None:
        words = await self.read_psum()
        errors = []
        for index in zip(*np.nonzero(words != self.model.psum)):
            got, want = int(words[index]), int(self.model.psum[index])
            if self.kinds[index] and _is_nan(got) and _is_nan(want):
                continue
            errors.append(f"partition {index[0]} bank {index[1]} word {index[2]}: RTL {got:#010x}, model {want:#010x}")
        assert not errors, f"{what}: {len(errors)} PSUM words differ, e.g. " + "; ".join(errors[:4])

    # -- commands ---------------------------------------------------------------------------------------

    async def send(self, commands) -> None:
        """Send ``commands`` in order with random pauses; apply each to the model (refused ones change
        nothing there either) and note what the counters should show."""
        pause = pauses(self.rng, self.pause)
        for command in commands:
            while next(pause):
                self.dut.command__valid.value = 0
                await RisingEdge(self.dut.clk)
            await offer(self.dut, "command", pack(tensor_command_layout, encode_command(command)))
            problem = self.model.problem(command)
            if problem:
                self.expected["errors"] += 1
            elif isinstance(command, LoadStationary):
                self.model.load_stationary(command)
                self.expected["load_done"] += 1
            else:
                self.model.multiply_moving(command)
                window = (slice(0, self.model.stationary.shape[1]), command.psum_bank,
                          slice(command.psum_offset, command.psum_offset + command.n))
                self.kinds[window] = command_dtype(command).is_float
                self.expected["multiply_done"] += 1
                self.expected["macs"] += command.k * self.model.stationary.shape[1] * command.n

    async def wait_idle(self, limit: int = 20000) -> None:
        for _ in range(limit):
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            if int(self.dut.idle.value):
                await RisingEdge(self.dut.clk)
                return
        raise AssertionError(f"the engine was not idle {limit} cycles after its last command")

    async def pulse_clear(self) -> None:
        self.dut.error_clear.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.error_clear.value = 0
        await ReadOnly()
        assert not int(self.dut.error.value) and not int(self.dut.error_code.value), "error_clear did not clear"
        await RisingEdge(self.dut.clk)

    async def check_counters(self) -> None:
        await ReadOnly()
        got = {name: self.pulses[name] for name in ("load_done", "multiply_done")}
        got["macs"] = int(self.dut.macs.value)
        got["errors"] = int(self.dut.errors.value)
        assert got == self.expected, f"counters and pulses {got}, expected {self.expected}"
        busy = int(self.dut.busy_cycles.value)
        assert 0 < busy <= self.cycle, f"busy_cycles {busy} outside 1..{self.cycle} cycles run"
        self.log.info("so far: %d LoadStationary, %d MultiplyMoving, %d refused, %d MACs in %d busy cycles",
                      got["load_done"], got["multiply_done"], got["errors"], got["macs"], busy)
        await RisingEdge(self.dut.clk)

    # -- operands -----------------------------------------------------------------------------------------

    def values(self, fmt: str, shape, *, specials: float = 0.0) -> np.ndarray:
        """Random operands: ordinary numbers, with a fraction ``specials`` of raw bit patterns (NaN, Inf,
        subnormals, extremes)."""
        f = numerics.dtype(fmt)
        if fmt == "int8":
            return self.np_rng.integers(-128, 128, shape).astype(np.int8)
        values = numerics.cast(self.np_rng.standard_normal(shape), f)
        raw = numerics.from_bits(self.np_rng.integers(0, 1 << f.bits, shape), f)
        return np.where(self.np_rng.random(shape) < specials, raw, values).astype(f.numpy)

    async def place(self, allocator: Allocator, partition: int, fmt: str, values: np.ndarray,
                    dims=None) -> AccessPattern | None:
        """Place ``values`` at the next free SBUF range, along ``dims`` or a random walk; ``None`` if the
        SBUF is full."""
        esize = numerics.dtype(fmt).numpy.itemsize
        count = values.shape[1]
        if dims is None:
            # A random walk spread over at most twice its elements, so that a round's operands fit.
            dims = next((d for d in (random_dims(self.rng, count) for _ in range(8)) if _span(d) <= 2 * count + 8),
                        [(1, count)])
        pattern = allocator.place(self.rng, dims, esize)
        if pattern is not None:
            await self.write_sbuf(partition, pattern, values)
        return pattern

    async def place_all(self, allocator: Allocator, partition: int, fmt: str, values: np.ndarray,
                        dims=None) -> AccessPattern:
        pattern = await self.place(allocator, partition, fmt, values, dims)
        assert pattern is not None, "testbench: the SBUF is too small for this test's operands"
        return pattern


async def random_round(tb: TensorEngineTB, *, specials: float) -> list:
    """Place the operands of a random sequence of LoadStationary + MultiplyMovings, and return it."""
    p = tb.p
    allocator = Allocator(tb.sbuf_bytes)
    commands = []
    while True:
        fmt = tb.rng.choice(tb.formats)
        k, m = tb.rng.randint(1, p), tb.rng.randint(1, p)
        partition = tb.rng.randint(0, p - k)
        stationary = await tb.place(allocator, partition, fmt, tb.values(fmt, (k, m), specials=specials))
        if stationary is None:
            return commands
        commands.append(LoadStationary(partition, stationary, k, m, fmt))
        for _ in range(tb.rng.choice([1, 1, 2, 3])):
            n = tb.rng.choice([tb.rng.randint(1, 4 * p), 4 * p, tb.rng.randint(1, 4)])
            moving_partition = tb.rng.randint(0, p - k)
            moving = await tb.place(allocator, moving_partition, fmt, tb.values(fmt, (k, n), specials=specials))
            if moving is None:
                return commands
            # Bank, offset and accumulate are chosen when the round is sent (see run_round).
            commands.append(("multiply", moving_partition, moving, k, n, fmt))


async def run_round(tb: TensorEngineTB, commands, what: str) -> None:
    """Send a round (deciding each MultiplyMoving's PSUM target as it goes), wait, compare."""
    concrete = []
    for command in commands:
        if isinstance(command, tuple):
            _, partition, pattern, k, n, fmt = command
            # The stationary operand in force when this command runs is the last LoadStationary before it.
            last_load = next(c for c in reversed(concrete) if isinstance(c, LoadStationary))
            m = last_load.m
            bank, offset = tb.rng.randrange(PSUM_BANKS), tb.rng.randint(0, 4 * tb.p - n)
            accumulate = tb.rng.random() < 0.5 and _kinds_after(tb, concrete, fmt, m, bank, offset, n)
            command = MultiplyMoving(partition, pattern, k, n, fmt, bank, offset, accumulate)
        concrete.append(command)
    errors = tb.expected["errors"]
    await tb.send(concrete)
    assert tb.expected["errors"] == errors, "testbench: a round of random commands had a bad one"
    await tb.wait_idle()
    await tb.compare_psum(what)
    await tb.check_counters()


def _kinds_after(tb: TensorEngineTB, earlier, fmt: str, m: int, bank: int, offset: int, n: int) -> bool:
    """Whether every word of the window holds fmt's kind once the ``earlier`` commands of this round ran."""
    kinds = tb.kinds.copy()
    stationary_m = None
    for command in earlier:
        if isinstance(command, LoadStationary):
            stationary_m = command.m
        else:
            kinds[:stationary_m, command.psum_bank, command.psum_offset:command.psum_offset + command.n] = \
                numerics.dtype(command.dtype).is_float
    return bool((kinds[:m, bank, offset:offset + n] == numerics.dtype(fmt).is_float).all())


def _rounds() -> int:
    """Random rounds per test: fewer where a cycle costs more (Icarus; P = 16, whose 256 bit-exact PEs
    simulate at about 1,000 cycles a second on Verilator). P = 4 and 8 carry the bulk of the random load."""
    if "icarus" in cocotb.SIM_NAME.lower():
        return 3
    return 8 if design_params()["partitions"] <= 8 else 4


@cocotb.test(timeout_time=20, timeout_unit="ms")
@cocotb.parametrize(pause=[0.0, 0.3])
async def random_commands(dut, pause: float):
    """Random K, M in [1, P], N in [1, 4P], every dtype built, partitions, 1-4-D patterns, banks, offsets,
    overwrite and accumulate, back to back; with ``pause`` > 0 every input stream stalls at random."""
    tb = TensorEngineTB(dut, pause=pause)
    await tb.start()
    for index in range(_rounds()):
        commands = await random_round(tb, specials=0.1 if index % 2 else 0.0)
        await run_round(tb, commands, f"round {index}")


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def special_values(dut):
    """NaN, +-Inf, subnormal inputs and products, overflow to Inf, underflow, -0.0, cancellation."""
    tb = TensorEngineTB(dut)
    await tb.start()
    f = numerics.cast
    cases = {
        "bf16": [
            ("cancellation in k order", f([[1.0] * 2] * 3, "bf16"), f([[2.0**30, 1.0], [1.0, 2.0**30], [-(2.0**30)] * 2], "bf16")),
            ("overflow to Inf", f([[2.0**100], [2.0**100]], "bf16"), f([[2.0**100, -(2.0**100)], [1.0, 1.0]], "bf16")),
            ("Inf - Inf is NaN", f([[np.inf], [1.0]], "bf16"), f([[1.0, np.nan], [-np.inf, 0.0]], "bf16")),
            ("subnormal products", f([[2.0**-70], [2.0**-66]], "bf16"), f([[2.0**-70, 2.0**-80], [2.0**-60, -(2.0**-90)]], "bf16")),
            ("underflow to zero", f([[2.0**-120]], "bf16"), f([[2.0**-120, -(2.0**-120)]], "bf16")),
            ("signed zeros", f([[-0.0], [0.0]], "bf16"), f([[0.0, -0.0], [-0.0, -0.0]], "bf16")),
            ("subnormal inputs", numerics.from_bits(np.array([[0x0001], [0x807F]]), "bf16"),
             numerics.from_bits(np.array([[0x4B00, 0x0001], [0x3F80, 0x7F7F]]), "bf16")),
        ],
        "fp8_e4m3": [
            ("E4M3 extremes and NaN", numerics.from_bits(np.array([[0x7E], [0x01], [0x7F]]), "fp8_e4m3"),
             numerics.from_bits(np.array([[0x7E, 0x01, 0x00], [0x01, 0x80, 0x08], [0x00, 0x38, 0x38]]), "fp8_e4m3")),
        ],
        "fp8_e5m2": [
            ("E5M2 Inf, NaN, subnormal", numerics.from_bits(np.array([[0x7C], [0x01], [0x7B]]), "fp8_e5m2"),
             numerics.from_bits(np.array([[0x3C, 0xFC, 0x00], [0x01, 0x02, 0x83], [0x7B, 0x7B, 0xFE]]), "fp8_e5m2")),
        ],
    }
    commands = []
    allocator = Allocator(tb.sbuf_bytes)
    for fmt, entries in cases.items():
        for name, stationary, moving in entries:
            k = stationary.shape[0]
            a = await tb.place_all(allocator, 0, fmt, stationary, dims=[(1, stationary.shape[1])])
            b = await tb.place_all(allocator, 0, fmt, moving, dims=[(1, moving.shape[1])])
            commands += [LoadStationary(0, a, k, stationary.shape[1], fmt), ("multiply", 0, b, k, moving.shape[1], fmt)]
    await run_round(tb, commands, "directed special values")
    for index in range(_rounds() // 2):  # and random ones, many specials
        await run_round(tb, await random_round(tb, specials=0.6), f"special round {index}")


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def shapes_at_the_edges(dut):
    """K = 1, N = 1, N = 4P, M < P, full K = M = P, and back-to-back LoadStationary without a multiply."""
    tb = TensorEngineTB(dut)
    await tb.start()
    p = tb.p
    allocator = Allocator(tb.sbuf_bytes)
    commands = []
    for fmt, k, m, n in [("bf16", 1, p, 1), ("fp8_e4m3", p, p, 4 * p), ("fp8_e5m2", p, 1, 4 * p),
                         ("bf16", p, p - 1, 1), ("int8", 1, 1, 1), ("bf16", p, p, 4 * p)]:
        a = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (k, m)))
        b = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (k, n)))
        commands += [LoadStationary(0, a, k, m, fmt), ("multiply", 0, b, k, n, fmt)]
    # Three loads in a row, different shapes and types; only the last is used.
    for fmt, k, m in [("int8", p, p), ("bf16", 2, 3), ("fp8_e4m3", p // 2, p)]:
        a = await tb.place_all(allocator, p - k, fmt, tb.values(fmt, (k, m)))
        commands.append(LoadStationary(p - k, a, k, m, fmt))
    b = await tb.place_all(allocator, 0, "fp8_e4m3", tb.values("fp8_e4m3", (p // 2, 4 * p)))
    commands.append(("multiply", 0, b, p // 2, 4 * p, "fp8_e4m3"))
    await run_round(tb, commands, "edge shapes")


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def int8_extremes_and_wrap(dut):
    """-128 x -128 summed over K = P, and int32 wrap-around through repeated accumulation."""
    tb = TensorEngineTB(dut, pause=0.1)
    await tb.start()
    p = tb.p
    allocator = Allocator(tb.sbuf_bytes)
    low = np.full((p, p), -128, np.int8)
    a = await tb.place_all(allocator, 0, "int8", low, dims=[(1, p)])
    b = await tb.place_all(allocator, 0, "int8", np.full((p, 4 * p), -128, np.int8), dims=[(1, 4 * p)])
    # A bf16 product with bits 0x7f7f0000 puts an int32 just below the wrap into every word of bank 7.
    one = await tb.place_all(allocator, 0, "bf16", numerics.cast(np.ones((1, p)), "bf16"), dims=[(1, p)])
    big = await tb.place_all(allocator, 0, "bf16", numerics.from_bits(np.full((1, 4 * p), 0x7F7F), "bf16"),
                         dims=[(1, 4 * p)])
    commands = [LoadStationary(0, a, p, p, "int8"), MultiplyMoving(0, b, p, 4 * p, "int8", 6, 0, False),
                LoadStationary(0, one, 1, p, "bf16"), MultiplyMoving(0, big, 1, 4 * p, "bf16", 7, 0, False),
                LoadStationary(0, a, p, p, "int8")]
    step = p * 128 * 128
    repeats = (2**31 - 0x7F7F0000) // step + 2  # enough to cross 2**31
    commands += [MultiplyMoving(0, b, p, 4 * p, "int8", 7, 0, True)] * repeats
    await tb.send(commands)
    await tb.wait_idle()
    words = tb.model.psum_values(7, "int8")
    assert (words < 0).all(), "testbench: the sum did not wrap in the model"
    assert (tb.model.psum_values(6, "int8") == p * 16384).all()
    await tb.compare_psum("int8 extremes and wrap")
    await tb.check_counters()


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def completion_timing(dut):
    """One pair alone, for several M and N: ``busy_cycles`` counts exactly M + N + 2P + 10 + 2L cycles for an
    SBUF read latency L (the figure the MFU rests on), plus with ``fp_cuts`` what the array's result latency
    and PSUM's write delay add (P + 3 for 1, 2P + 4 for 2), ``multiply_done`` pulses in the first idle cycle,
    and the last word written reads back right away."""
    tb = TensorEngineTB(dut, pause=0.0)
    await tb.start()
    p, latency = tb.p, tb.params["sbuf_latency"]
    cuts = float_cuts(tb.dtypes, tb.params["fp_cuts"])
    for m, n in [(p, 4 * p), (p, 1), (1, 1), (p - 1, 3), (p, 2 * p + 1)]:
        allocator = Allocator(tb.sbuf_bytes)
        a = await tb.place_all(allocator, 0, "bf16", tb.values("bf16", (p, m)), dims=[(1, m)])
        b = await tb.place_all(allocator, 0, "bf16", tb.values("bf16", (p, n)), dims=[(1, n)])
        bank, offset = tb.rng.randrange(PSUM_BANKS), 4 * p - n
        await ReadOnly()
        before = int(dut.busy_cycles.value)
        await RisingEdge(dut.clk)
        await tb.send([LoadStationary(0, a, p, m, "bf16"), MultiplyMoving(0, b, p, n, "bf16", bank, offset, True)])
        for _ in range(20_000):
            if int(dut.idle.value) and tb.last_pulse["multiply_done"] is not None \
                    and tb.last_pulse["multiply_done"] >= tb.became_idle:
                break
            await RisingEdge(dut.clk)
            await ReadOnly()
        else:
            raise AssertionError(f"M={m} N={n}: no multiply_done and idle within 20000 cycles")
        busy = int(dut.busy_cycles.value) - before
        more = {0: 0, 1: p + 3, 2: 2 * p + 4}[cuts]   # docs/tensor_engine.md, fp_cuts: Time
        want_busy = m + n + 2 * p + 10 + 2 * latency + more
        assert busy == want_busy, \
            f"M={m} N={n}: {busy} busy cycles, expected M + N + 2P + 10 + 2L (+ {more} with cuts) = {want_busy}"
        assert tb.last_pulse["multiply_done"] == tb.became_idle, \
            f"multiply_done at cycle {tb.last_pulse['multiply_done']}, idle from {tb.became_idle}"
        await RisingEdge(dut.clk)
        # The last word of the last column (written in the final busy cycle) is already there.
        tb.dut.psum_read__payload.value = pack(tb.read_layout, {"bank": bank, "offset": 4 * p - 1})
        tb.dut.psum_read__valid.value = 1
        tb.dut.psum_read_data__ready.value = 1
        await RisingEdge(dut.clk)
        tb.dut.psum_read__valid.value = 0
        await ReadOnly()
        got = unpack(tb.word_layout, int(dut.psum_read_data__payload.value))[m - 1]
        want = int(tb.model.psum[m - 1, bank, 4 * p - 1])
        assert got == want or (_is_nan(got) and _is_nan(want)), \
            f"M={m} N={n}: word read at once after idle is {got:#010x}, model {want:#010x}"
        await RisingEdge(dut.clk)
    await tb.compare_psum("completion timing")
    await tb.check_counters()


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def accumulate_from_the_last_word(dut):
    """MultiplyMovings back to back, each accumulating onto PSUM from one of the last three words the one
    before wrote: without ``fp_cuts``, PSUM's read of that word sees the write of the cycle before; with
    them, PSUM writes a word 3 or 4 cycles after its result, and the engine holds back a column whose word is
    that of one of the columns just before it. In bf16 and int8 (those built), compared with the model."""
    tb = TensorEngineTB(dut, pause=0.0)
    await tb.start()
    p = tb.p
    for fmt in [f for f in ("bf16", "int8") if f in tb.formats]:
        allocator = Allocator(tb.sbuf_bytes)
        a = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (p, p)), dims=[(1, p)])
        whole = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (p, 4 * p)), dims=[(1, 4 * p)])
        bank = tb.rng.randrange(PSUM_BANKS)
        # The first overwrites the bank's words in fmt, so that the others may accumulate onto any of them.
        commands = [LoadStationary(0, a, p, p, fmt), MultiplyMoving(0, whole, p, 4 * p, fmt, bank, 0, False)]
        offset = 0
        while True:
            n = tb.rng.randint(2, 4)  # N >= 2: the next command is checked while this one streams
            if offset + n > 4 * p:
                break
            b = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (p, n)), dims=[(1, n)])
            commands.append(MultiplyMoving(0, b, p, n, fmt, bank, offset, True))
            offset += n - tb.rng.randint(1, min(n, 3))
        await tb.send(commands)
        await tb.wait_idle()
        await tb.compare_psum(f"accumulate from the last word, {fmt}")
    await tb.check_counters()


async def refuse(tb: TensorEngineTB, name: str, command, follow) -> TensorError:
    """Send bad ``command`` then good ``follow``: the error flag and the model's code must show; returns it."""
    code, message = tb.model.problem(command) or (None, None)
    assert code is not None, f"testbench: {name} is not a bad command"
    await tb.pulse_clear()
    await tb.send([command, follow])
    await tb.wait_idle()
    await ReadOnly()
    assert int(tb.dut.error.value) == 1, f"{name}: error flag not set"
    assert int(tb.dut.error_code.value) == code, \
        f"{name}: error code {int(tb.dut.error_code.value)}, model says {code.name} ({int(code)}): {message}"
    await RisingEdge(tb.dut.clk)
    return code


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def formats_not_built_are_refused(dut):
    """A LoadStationary or MultiplyMoving in a format the engine was built without (``dtypes``), or in an
    unknown code, is refused with DTYPE and changes nothing; each good command after it runs as the model
    says (a refused MultiplyMoving that wrote anyway would show in PSUM)."""
    tb = TensorEngineTB(dut)
    await tb.start()
    p = tb.p
    allocator = Allocator(tb.sbuf_bytes)
    fmt = tb.formats[0]
    a = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (p, p)), dims=[(1, p)])
    b = await tb.place_all(allocator, 0, fmt, tb.values(fmt, (p, 4 * p)), dims=[(1, 4 * p)])
    load = LoadStationary(0, a, p, p, fmt)
    good = MultiplyMoving(0, b, p, 4 * p, fmt, 1, 0, False)
    await tb.send([load, good])
    follow = dataclasses.replace(good, accumulate=True)
    others = [name for name in numerics.DTYPES if name not in tb.formats] + [4, 5, 6, 7]
    for other in others:
        for command in (dataclasses.replace(load, dtype=other), dataclasses.replace(good, dtype=other)):
            code = await refuse(tb, f"dtype {other} with dtypes {tb.dtypes}", command, follow)
            assert code == TensorError.DTYPE, f"testbench: {command} is refused for {code.name}, not DTYPE"
    await tb.compare_psum("after commands in formats not built")
    await tb.check_counters()


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def bad_commands_are_refused(dut):
    """Each kind of bad command, between good ones: refused with the model's error code, PSUM untouched,
    the next command runs; the first error is held until cleared."""
    tb = TensorEngineTB(dut)
    await tb.start()
    p = tb.p
    allocator = Allocator(tb.sbuf_bytes)
    a = await tb.place_all(allocator, 0, "bf16", tb.values("bf16", (p, p)), dims=[(1, p)])
    b = await tb.place_all(allocator, 0, "bf16", tb.values("bf16", (p, 4 * p)), dims=[(1, 4 * p)])
    load = LoadStationary(0, a, p, p, "bf16")
    good = MultiplyMoving(0, b, p, 4 * p, "bf16", 1, 0, False)
    near_end = AccessPattern(tb.sbuf_bytes - 2 * 4 * p, ((1, 4 * p),))  # its last byte is the partition's
    bad = [
        ("dtype code 5", dataclasses.replace(load, dtype=5)),
        ("k = 0", dataclasses.replace(load, k=0)),
        ("k = P + 1", dataclasses.replace(load, k=p + 1)),
        ("partition + K > P", dataclasses.replace(load, partition=1)),
        ("m = 0", dataclasses.replace(load, m=0)),
        ("m = P + 1", dataclasses.replace(load, m=p + 1, pattern=AccessPattern(0, ((1, p + 1),)))),
        ("stationary pattern count", dataclasses.replace(load, pattern=AccessPattern(0, ((1, p - 1),)))),
        ("stationary zero count", dataclasses.replace(load, pattern=AccessPattern(0, ((1, 0), (1, p))))),
        ("n = 0", dataclasses.replace(good, n=0)),
        ("n = 4P + 1", dataclasses.replace(good, n=4 * p + 1)),
        ("bank 8", dataclasses.replace(good, psum_bank=8)),
        ("bank 15", dataclasses.replace(good, psum_bank=15)),
        ("offset leaves the bank", dataclasses.replace(good, psum_offset=1)),
        ("offset 1023", dataclasses.replace(good, n=1, psum_offset=1023, pattern=AccessPattern(0, ((1, 1),)))),
        ("pattern walks too few", dataclasses.replace(good, pattern=AccessPattern(0, ((2, 2), (1, 2 * p - 1))))),
        ("pattern past the end", dataclasses.replace(good, pattern=AccessPattern(near_end.address + 2, near_end.dims))),
        ("pattern before the start", dataclasses.replace(good, pattern=AccessPattern(2, ((-1, 4 * p),)))),
        ("bf16 address misaligned", dataclasses.replace(good, pattern=AccessPattern(1, ((1, 4 * p),)))),
        ("outer stride past the end", dataclasses.replace(good, pattern=AccessPattern(0, ((tb.sbuf_bytes, 2), (1, 2 * p))))),
        ("largest stride", dataclasses.replace(good, pattern=AccessPattern(0, ((2**19 - 1, 2), (1, 2 * p))))),
        ("most negative stride", dataclasses.replace(good, pattern=AccessPattern(0, ((-(2**19), 2), (1, 2 * p))))),
        ("largest count", dataclasses.replace(good, pattern=AccessPattern(0, ((0, 2**16 - 1), (1, 4 * p))))),
        ("k differs from the stationary", dataclasses.replace(good, k=p - 1)),
        ("dtype differs from the stationary", dataclasses.replace(good, dtype="fp8_e5m2")),
    ]
    covered = set()

    async def refused(name: str, command, follow) -> None:
        covered.add(await refuse(tb, name, command, follow))

    await refused("no stationary yet", good, load)
    # Each good command after a bad one accumulates onto the bad one's bank and offset (bank 1, word 0), so
    # a refused MultiplyMoving that overwrote them anyway would show in PSUM, not only in the counters.
    follow = dataclasses.replace(good, accumulate=True)
    await tb.send([good])
    for name, command in bad:
        await refused(name, command, follow)
    assert covered == set(TensorError) - {TensorError.NONE}, f"testbench: codes not covered: {set(TensorError) - covered}"
    # Commands with several faults at once: the code reported is the model's, the first in check order.
    faults = [
        lambda c: dataclasses.replace(c, dtype=tb.rng.randint(4, 7)),
        lambda c: dataclasses.replace(c, k=tb.rng.choice([0, p + 1, 255])),
        lambda c: dataclasses.replace(c, partition=tb.rng.randint(1, 255)),
        lambda c: dataclasses.replace(c, n=tb.rng.choice([0, 4 * p + 1, 1023])) if isinstance(c, MultiplyMoving)
        else dataclasses.replace(c, m=tb.rng.choice([0, p + 1, 255])),
        lambda c: dataclasses.replace(c, psum_bank=tb.rng.randint(8, 15)) if isinstance(c, MultiplyMoving) else c,
        lambda c: dataclasses.replace(c, psum_offset=tb.rng.randint(1, 1023)) if isinstance(c, MultiplyMoving) else c,
        lambda c: dataclasses.replace(c, pattern=AccessPattern(c.pattern.address, ((1, 2),) + c.pattern.dims)),
        lambda c: dataclasses.replace(c, pattern=AccessPattern(tb.rng.choice([1, tb.sbuf_bytes - 2]), c.pattern.dims)),
        lambda c: dataclasses.replace(c, k=p - 1, partition=0),
        lambda c: dataclasses.replace(c, dtype="fp8_e4m3"),
    ]
    for index in range(40):
        command = tb.rng.choice([load, good])
        for fault in tb.rng.sample(faults, tb.rng.randint(2, 4)):
            command = fault(command)
        if tb.model.problem(command) is not None:
            await refused(f"faults {index}: {command}", command, follow)
        await tb.send([load])  # a fault-free stationary operand again, whatever that command did
    # A pattern that ends exactly at the end of the partition is fine.
    await tb.write_sbuf(0, near_end, tb.values("bf16", (p, 4 * p)))
    await tb.send([dataclasses.replace(good, pattern=near_end, psum_bank=3)])
    # The first error is held: two bad commands, the code is the first one's.
    await tb.pulse_clear()
    await tb.send([dataclasses.replace(good, psum_bank=9), dataclasses.replace(load, k=0)])
    await tb.wait_idle()
    await ReadOnly()
    assert int(dut.error_code.value) == TensorError.PSUM_BANK, "the first error code was not held"
    await RisingEdge(dut.clk)
    await tb.compare_psum("after bad commands")
    await tb.check_counters()
