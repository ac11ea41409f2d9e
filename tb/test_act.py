"""cocotb tests for the ACT engine (top ``act``) against :class:`trntile.golden.act.ActModel`, bit for bit.

The SBUF and PSUM start random (the SBUF through its word port, PSUM through the test model's write port).
Each random command is run on the RTL and on the model, and then the whole SBUF is read back and compared
byte for byte; where the model's output element is a NaN, the RTL's must be a NaN of that type (any payload).
While a command runs, random word reads on the SBUF's shared port compete with the engine.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from trntile.golden.act import ACT_TYPES, ActError, ActModel, Activate, act_type, psum_bytes
from trntile.golden.tensor_engine import PSUM_BANKS, AccessPattern
from trntile.hdl.act import ACT_LANE_LATENCY
from trntile.hdl.isa import HEADER_BITS
from trntile.sw.asm import Instruction, encode
from trntile.tb.common import ClockedTB, offer, pack, pauses, unpack

NAN_TYPES = {"bf16", "fp8_e4m3", "fp8_e5m2", "fp32"}


def _payload(command: Activate) -> int:
    return int.from_bytes(encode(Instruction(command)), "little") >> HEADER_BITS


class ActTB(ClockedTB):
    def __init__(self, dut):
        super().__init__(dut)
        self.p = self.params["partitions"]
        self.bytes = self.params["sbuf_bytes"]
        self.width = self.params["data_width"] // 8
        self.model = ActModel(self.p, sbuf_bytes=self.bytes)
        from trntile.hdl.act import ACTBlock

        block = ACTBlock(partitions=self.p, sbuf_bytes=self.bytes, data_width=self.params["data_width"],
                         act_lanes=self.params["act_lanes"])
        signature = block.signature.members
        self.word_layout = signature["sbuf"].signature.members["request"].signature.members["payload"].shape
        self.answer_layout = signature["sbuf"].signature.members["response"].signature.members["payload"].shape
        self.psum_layout = signature["psum_write"].signature.members["payload"].shape
        for name in ("command__valid", "sbuf__request__valid", "psum_write__valid", "error_clear"):
            getattr(dut, name).value = 0
        dut.sbuf__response__ready.value = 1
        self.noise_on = False

    async def start(self):
        await self.reset()
        rng = self.np_rng
        self.model.sbuf[:] = rng.integers(0, 256, self.model.sbuf.shape, dtype=np.uint8)
        self.model.psum[:] = rng.integers(0, 1 << 32, self.model.psum.shape, dtype=np.uint64).astype(np.uint32)
        for partition in range(self.p):
            for address in range(0, self.bytes, self.width):
                await self.write_word(partition, address)
        await self.load_psum()

    async def write_word(self, partition: int, address: int):
        word = int.from_bytes(self.model.sbuf[partition, address:address + self.width].tobytes(), "little")
        await offer(self.dut, "sbuf__request", pack(self.word_layout, {
            "write": 1, "partition": partition, "address": address, "data": word,
            "strobe": (1 << self.width) - 1}))

    async def load_psum(self, banks=range(PSUM_BANKS)):
        for bank in banks:
            for offset in range(4 * self.p):
                await offer(self.dut, "psum_write", pack(self.psum_layout, {
                    "bank": bank, "offset": offset, "mask": (1 << self.p) - 1,
                    "data": [int(self.model.psum[lane, bank, offset]) for lane in range(self.p)]}))

    async def read_all(self) -> np.ndarray:
        """The whole SBUF through the word port, reads back to back."""
        dut = self.dut
        addresses = [(partition, address) for partition in range(self.p) for address in range(0, self.bytes, self.width)]
        result = np.zeros((self.p, self.bytes), dtype=np.uint8)
        issued = received = 0
        dut.sbuf__response__ready.value = 1
        for _ in range(20 * len(addresses) + 100):
            if issued < len(addresses):
                partition, address = addresses[issued]
                dut.sbuf__request__payload.value = pack(self.word_layout, {"partition": partition, "address": address})
            dut.sbuf__request__valid.value = int(issued < len(addresses))
            await ReadOnly()
            if int(dut.sbuf__response__valid.value):
                partition, address = addresses[received]
                word = unpack(self.answer_layout, int(dut.sbuf__response__payload.value))["data"]
                result[partition, address:address + self.width] = np.frombuffer(
                    word.to_bytes(self.width, "little"), dtype=np.uint8)
                received += 1
            if issued < len(addresses) and int(dut.sbuf__request__ready.value):
                issued += 1
            await RisingEdge(dut.clk)
            if received == len(addresses):
                dut.sbuf__request__valid.value = 0
                return result
        raise AssertionError(f"SBUF read-back: {received} of {len(addresses)} words answered")

    async def noise(self):
        """Random word reads on the SBUF's shared port while the engine runs (answers are not checked)."""
        dut, rng = self.dut, self.rng
        gaps = pauses(rng, 0.5)
        while self.noise_on:
            busy = not next(gaps)
            if busy:
                dut.sbuf__request__payload.value = pack(self.word_layout, {
                    "partition": rng.randrange(self.p), "address": rng.randrange(0, self.bytes, self.width)})
            dut.sbuf__request__valid.value = int(busy)
            await RisingEdge(dut.clk)
        dut.sbuf__request__valid.value = 0

    async def execute(self, command: Activate, *, noise: bool = False) -> int:
        """Run ``command`` on the RTL; its error code (0: done). Bounded: never waits forever."""
        dut = self.dut
        await ReadOnly()
        refused_before = int(dut.error.value)
        await RisingEdge(dut.clk)
        if refused_before:
            dut.error_clear.value = 1
            await RisingEdge(dut.clk)
            dut.error_clear.value = 0
        task = None
        if noise:
            self.noise_on = True
            task = cocotb.start_soon(self.noise())
        await offer(dut, "command", _payload(command), limit=1000)
        limit = 30 * max(command.source.count, 1) + 200
        code = None
        for _ in range(limit):
            await ReadOnly()
            if int(dut.done.value):
                code = 0
            elif int(dut.error.value):
                code = int(dut.error_code.value)
            await RisingEdge(dut.clk)
            if code is not None:
                break
        self.noise_on = False
        if task:
            await task
            for _ in range(8):  # the noise's last answers drain (they are taken as they come)
                await RisingEdge(dut.clk)
        assert code is not None, f"no done and no error within {limit} cycles for {command}"
        await ReadOnly()
        assert int(dut.idle.value), "the engine is not idle after its command"
        await RisingEdge(dut.clk)
        return code

    async def check(self, command: Activate, *, noise: bool = False):
        problem = self.model.problem(command)
        want = int(problem[0]) if problem else 0
        got = await self.execute(command, noise=noise)
        assert got == want, f"error code {got}, model says {want} ({problem and problem[1]}) for {command}"
        if not problem:
            self.model.run(command)
        sbuf = await self.read_all()
        self._excuse_nans(command, sbuf)
        bad = np.argwhere(sbuf != self.model.sbuf)
        if bad.size:
            p, b = bad[0]
            raise AssertionError(f"{len(bad)} SBUF bytes differ after {command}; first at partition {p} byte {b}: "
                                 f"RTL {sbuf[p, b]:#04x}, model {self.model.sbuf[p, b]:#04x}")

    def _excuse_nans(self, command: Activate, sbuf: np.ndarray):
        """Where the model wrote a NaN and the RTL a NaN of the same type, take the RTL's bytes."""
        fmt = act_type(command.dtype)
        if fmt is None or fmt.name not in NAN_TYPES or self.model.problem(command):
            return
        lanes = slice(command.partition, command.partition + command.partitions)
        for offset in command.destination.offsets():
            start = command.destination.address + fmt.bytes * int(offset)
            want = self.model.sbuf[lanes, start:start + fmt.bytes].copy().view(fmt.numpy).astype(np.float32)
            got = np.ascontiguousarray(sbuf[lanes, start:start + fmt.bytes]).view(fmt.numpy).astype(np.float32)
            both = np.isnan(want[:, 0]) & np.isnan(got[:, 0])
            self.model.sbuf[lanes, start:start + fmt.bytes][both] = sbuf[lanes, start:start + fmt.bytes][both]


def _random_pattern(rng, count: int, element_bytes: int, low: int, high: int) -> AccessPattern | None:
    """A walk of ``count`` elements inside bytes ``low .. high - 1``: up to three dimensions, strides that may
    be negative, zero (revisits) or leave gaps; ``None`` if the drawn shape does not fit."""
    factors = [count]
    for _ in range(rng.randrange(3)):
        divisors = [d for d in range(2, factors[0] + 1) if factors[0] % d == 0]
        if divisors:
            d = rng.choice(divisors)
            factors = [factors[0] // d, d] + factors[1:]
    dims, span = [], 1
    for count_d in reversed(factors):  # innermost first
        stride = rng.choice([1, 1, 1, 2, -1]) * span if dims else rng.choice([1, 1, 1, 2, -1, 0])
        if dims and rng.random() < 0.3:
            stride = span + rng.randrange(3)
        dims.insert(0, (stride, count_d))
        span = max(span, abs(stride) * count_d) if stride else span
    offsets = AccessPattern(0, tuple(dims)).offsets()
    first, last = int(offsets.min()), int(offsets.max())
    room_low = low // element_bytes - first
    room_high = (high // element_bytes) - 1 - last
    if room_low > room_high:
        return None
    return AccessPattern(element_bytes * rng.randint(room_low, room_high), tuple(dims))


def _source_values(rng: np.random.Generator, shape, float_path: bool) -> np.ndarray:
    if not float_path:
        small = rng.integers(-300, 300, shape, dtype=np.int64)
        wide = rng.integers(-(1 << 31), 1 << 31, shape, dtype=np.int64)
        return np.where(rng.random(shape) < 0.7, small, wide).astype(np.int32).view(np.uint32)
    normal = (rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 20, shape)).astype(np.float32)
    bits = rng.integers(0, 1 << 32, shape, dtype=np.uint64).astype(np.uint32)
    specials = np.array([0, 0x8000_0000, 1, 0x807F_FFFF, 0x7F7F_FFFF, 0xFF80_0000, 0x7FC0_0000, 0x0080_0000,
                         0x4780_0000, 0x43E0_0000, 0x43E8_0000, 0x477F_F000], dtype=np.uint32)
    choice = rng.random(shape)
    out = np.where(choice < 0.6, normal.view(np.uint32), bits)
    return np.where(choice > 0.9, rng.choice(specials, shape), out).astype(np.uint32)


def _random_command(tb: ActTB) -> Activate:
    rng, np_rng, p, half = tb.rng, tb.np_rng, tb.p, tb.bytes // 2
    accumulate = rng.random() < 0.25
    fmt = rng.choice([ACT_TYPES["fp32"], ACT_TYPES["int32"]] if accumulate else list(ACT_TYPES.values()))
    first = rng.randrange(p)
    lanes = rng.randint(1, p - first)
    count = rng.choice([1, 2, 3, rng.randint(4, 24), rng.randint(24, 64)])
    from_sbuf = rng.random() < 0.4
    # SBUF halves: the source (and bias) in one, the destination in the other, so they never overlap.
    source_half, destination_half = (0, half) if rng.random() < 0.5 else (half, 0)
    for _ in range(20):
        source = _random_pattern(rng, count, 4, source_half, source_half + half) if from_sbuf else \
            _random_pattern(rng, count, 4, 0, psum_bytes(p))
        destination = _random_pattern(rng, count, fmt.bytes, destination_half, destination_half + half)
        if source and destination:
            break
    else:
        source = AccessPattern(source_half if from_sbuf else 0, ((1, count),))
        destination = AccessPattern(destination_half, ((1, count),))
    bias = rng.randrange(source_half, source_half + half, 4) if rng.random() < 0.6 and not accumulate else None
    if fmt.is_float:
        scale = rng.choice([1.0, -1.0, 0.5, 3.0, float(np_rng.standard_normal()), 1e-30, 1e30, 2.0 ** -140,
                            float("inf"), float("nan")])
    else:
        scale = rng.choice([1, -1, 0, 3, rng.randint(-1000, 1000), rng.randint(-(1 << 31), (1 << 31) - 1)])
    command = Activate(source=source, destination=destination, partition=first, partitions=lanes,
                       source_space=int(from_sbuf), func=rng.randrange(2), dtype=fmt.name, scale=scale, bias=bias,
                       accumulate=accumulate)
    # Fresh source values of the right kind where the command reads them.
    lane_range = slice(first, first + lanes)
    values = _source_values(np_rng, (lanes, count), fmt.is_float)
    if from_sbuf:
        for i, offset in enumerate(source.offsets()):
            start = source.address + 4 * int(offset)
            tb.model.sbuf[lane_range, start:start + 4] = values[:, i:i + 1].copy().view(np.uint8)
    else:
        words = tb.model.psum[lane_range].reshape(lanes, -1)
        for i, offset in enumerate(source.offsets()):
            words[:, (source.address // 4) + int(offset)] = values[:, i]
        tb.model.psum[lane_range] = words.reshape(lanes, PSUM_BANKS, 4 * p)
    if bias is not None:
        tb.model.sbuf[lane_range, bias:bias + 4] = _source_values(np_rng, (lanes, 1), fmt.is_float).view(np.uint8)
    if accumulate:   # fresh addends (where the walk visits an element twice the engine refuses the command)
        addends = _source_values(np_rng, (lanes, count), fmt.is_float)
        for i, offset in enumerate(destination.offsets()):
            start = destination.address + 4 * int(offset)
            tb.model.sbuf[lane_range, start:start + 4] = addends[:, i:i + 1].copy().view(np.uint8)
    return command


async def _sync_memories(tb: ActTB, command: Activate):
    """Load the model's inputs of ``command`` (its source words, bias and addends) into the RTL."""
    words = set()
    if command.bias is not None:
        words.add(command.bias - command.bias % tb.width)
    if command.accumulate:
        for offset in command.destination.offsets():
            start = command.destination.address + 4 * int(offset)
            words.add(start - start % tb.width)
    if command.source_space == 1:
        for offset in command.source.offsets():
            start = command.source.address + 4 * int(offset)
            words.add(start - start % tb.width)
    for partition in range(tb.p):
        for address in sorted(words):
            await tb.write_word(partition, address)
    if command.source_space == 0:
        rows = sorted({(command.source.address // 4 + int(o)) for o in command.source.offsets()})
        for row in rows:
            bank, offset = divmod(row, 4 * tb.p)
            await offer(tb.dut, "psum_write", pack(tb.psum_layout, {
                "bank": bank, "offset": offset, "mask": (1 << tb.p) - 1,
                "data": [int(tb.model.psum[lane, bank, offset]) for lane in range(tb.p)]}))


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def random_commands_match_the_model(dut):
    tb = ActTB(dut)
    await tb.start()
    commands = 16 if "icarus" in cocotb.SIM_NAME.lower() else 80
    kinds = {}
    for index in range(commands):
        command = _random_command(tb)
        refused = " refused" if tb.model.problem(command) else ""
        await _sync_memories(tb, command)
        await tb.check(command, noise=index % 2 == 1)
        kind = f"{command.dtype}{' +=' if command.accumulate else ''}{refused}"
        kinds[kind] = kinds.get(kind, 0) + 1
    tb.log.info("%d commands, by output type: %s", commands, kinds)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def back_to_back_from_psum_at_full_rate(dut):
    tb = ActTB(dut)
    await tb.start()
    count = 4 * tb.p
    command = Activate(source=AccessPattern(0, ((1, count),)), destination=AccessPattern(0, ((1, count),)),
                       partition=0, partitions=tb.p, dtype="fp32", scale=2.0)
    await ReadOnly()
    before = int(dut.busy_cycles.value)
    await RisingEdge(dut.clk)
    await tb.check(command)
    await ReadOnly()
    cycles = int(dut.busy_cycles.value) - before
    # check (4) + walkers + 1 PSUM read + the lanes' steps + write, then one column per cycle, or per P / lanes
    # cycles with fewer physical lanes than partitions
    passes = tb.p // min(tb.params["act_lanes"], tb.p)
    assert cycles <= passes * count + 10 + ACT_LANE_LATENCY, f"{count} columns through {passes} passes took {cycles} busy cycles"
    tb.log.info("%d columns from PSUM through %d passes in %d busy cycles", count, passes, cycles)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def bad_commands_are_refused_and_change_nothing(dut):
    tb = ActTB(dut)
    await tb.start()
    p, size = tb.p, tb.bytes
    good = dict(source=AccessPattern(0, ((1, 8),)), destination=AccessPattern(0, ((1, 8),)), partition=0,
                partitions=p, dtype="bf16", scale=1.0)
    cases = [
        (ActError.FUNC, dict(func=2)),
        (ActError.DTYPE, dict(dtype=6)),
        (ActError.PARTITION, dict(partitions=0)),
        (ActError.PARTITION, dict(partition=1, partitions=p)),
        (ActError.COUNT, dict(destination=AccessPattern(0, ((1, 7),)))),
        (ActError.COUNT, dict(source=AccessPattern(0, ((1, 0),)))),
        (ActError.SOURCE_BOUNDS, dict(source=AccessPattern(2, ((1, 8),)))),
        (ActError.SOURCE_BOUNDS, dict(source=AccessPattern(psum_bytes(p) - 28, ((1, 8),)))),
        (ActError.SOURCE_BOUNDS, dict(source=AccessPattern(size - 28, ((1, 8),)), source_space=1)),
        (ActError.SOURCE_BOUNDS, dict(source=AccessPattern(0, ((-1, 8),)))),
        (ActError.DESTINATION_BOUNDS, dict(destination=AccessPattern(1, ((1, 8),)))),
        (ActError.DESTINATION_BOUNDS, dict(destination=AccessPattern(size - 14, ((1, 8),)))),
        (ActError.BIAS_BOUNDS, dict(bias=size - 2)),
        (ActError.BIAS_BOUNDS, dict(bias=size)),
        (ActError.ACCUMULATE, dict(accumulate=True)),                      # bf16: not an addend type
        (ActError.ACCUMULATE, dict(accumulate=True, dtype="fp32", bias=0)),
        (ActError.ACCUMULATE, dict(accumulate=True, dtype="int32", destination=AccessPattern(0, ((0, 2), (1, 4))))),
        (ActError.ACCUMULATE, dict(accumulate=True, dtype="fp32", destination=AccessPattern(0, ((2, 2), (1, 4))))),
        (ActError.ACCUMULATE, dict(accumulate=True, dtype="fp32", destination=AccessPattern(20, ((-1, 4), (-1, 2))))),
        (ActError.FUNC, dict(func=3, dtype=7, partitions=0)),  # several problems: the first in order wins
    ]
    for error, change in cases:
        command = Activate(**{**good, **change})
        assert tb.model.problem(command)[0] == error, (change, tb.model.problem(command))
        await tb.check(command)
        await tb.check(Activate(**good))  # the next good command runs as usual
    # A good accumulate whose destination steps backwards through a 2-D block (the rule is on |stride|).
    block = AccessPattern(4 * 15, ((-4, 2), (-1, 4)))
    await tb.check(Activate(**{**good, "dtype": "fp32", "accumulate": True, "destination": block}))


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def every_output_type_and_function_from_psum_and_sbuf(dut):
    tb = ActTB(dut)
    await tb.start()
    for fmt in ACT_TYPES.values():
        for func in (0, 1):
            for space in (0, 1):
                command = Activate(source=AccessPattern(0 if space == 0 else tb.bytes // 2, ((1, 16),)),
                                   destination=AccessPattern(0, ((1, 16),)), partition=0, partitions=tb.p,
                                   source_space=space, func=func, dtype=fmt.name,
                                   scale=0.75 if fmt.is_float else -3, bias=tb.bytes - 4)
                values = _source_values(tb.np_rng, (tb.p, 16), fmt.is_float)
                if space:
                    tb.model.sbuf[:, tb.bytes // 2:tb.bytes // 2 + 64] = values.view(np.uint8)
                else:
                    tb.model.psum[:, 0, :16] = values
                await _sync_memories(tb, command)
                await tb.check(command)
