"""cocotb tests for PSUM (top ``psum``): addressing, overwrite and accumulate, bit for bit against numpy.

Results are driven the way the systolic array delivers them (column m trails column 0 by m cycles, with
bubbles), commands are queued ahead of their results, and every word is read back at the end and
compared with a model that applies the same commands with ``golden.numerics.accumulate``. Built with
``fp_cuts``, PSUM needs two results for one word :func:`psum_write_delay` cycles apart: results are then
driven as the tensor engine offers them, an accumulating one later while its word is too close behind.
"""

from __future__ import annotations

from collections import defaultdict

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from trntile.golden import numerics
from trntile.hdl.psum import PSUM_BANKS, psum_command_layout, psum_read_layout, psum_write_delay
from trntile.hdl.systolic import INT8, result_layout
from trntile.tb.common import ClockedTB, offer, pack, unpack

CODES = {"bf16": 0, "fp8_e4m3": 1, "fp8_e5m2": 2, "int8": INT8}


class PsumTB(ClockedTB):
    def __init__(self, dut):
        super().__init__(dut)
        self.p = self.params["partitions"]
        self.words = 4 * self.p
        self.spacing = psum_write_delay(self.params["fp_cuts"])  # between two results for one word
        self.command_layout = psum_command_layout(self.p)
        self.read_layout = psum_read_layout(self.p)
        self.result_layout = result_layout(self.p)
        self.data_layout = data.ArrayLayout(32, self.p)
        for name in ("command__valid", "read__valid", "read_data__ready"):
            getattr(dut, name).value = 0
        dut.result.value = 0
        self.schedule = defaultdict(dict)  # cycle -> {column: value}
        self.cycle = 0
        self.model = np.zeros((self.p, PSUM_BANKS, self.words), dtype=np.uint32)
        self.is_float = np.zeros(self.model.shape, dtype=bool)
        cocotb.start_soon(self._drive_results())

    async def _drive_results(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            entries = self.schedule.pop(self.cycle, {})
            self.dut.result.value = pack(self.result_layout, [
                {"valid": int(column in entries), "value": entries.get(column, 0)} for column in range(self.p)])

    def apply_to_model(self, command: dict, values: np.ndarray, fmt: str) -> None:
        """values[m, n] for every column m (only m < columns is written)."""
        f = numerics.dtype(fmt)
        for m in range(command["columns"]):
            window = (m, command["bank"], slice(command["offset"], command["offset"] + command["count"]))
            new = values[m, :command["count"]]
            if command["accumulate"]:
                old = numerics.from_bits(self.model[window], f.accumulator)
                new = numerics.to_bits(numerics.accumulate(old, numerics.from_bits(new, f.accumulator), f))
            self.model[window] = new
            self.is_float[window] = f.is_float

    async def push_command(self, command: dict) -> None:
        """Offer ``command`` until PSUM takes it."""
        await offer(self.dut, "command", pack(self.command_layout, command))

    async def read_all(self) -> np.ndarray:
        words = np.zeros(self.model.shape, dtype=np.uint32)
        self.dut.read_data__ready.value = 1
        for bank in range(PSUM_BANKS):
            for offset in range(self.words):
                self.dut.read__payload.value = pack(self.read_layout, {"bank": bank, "offset": offset})
                self.dut.read__valid.value = 1
                await RisingEdge(self.dut.clk)  # the read is taken here; its data are valid this cycle
                self.dut.read__valid.value = 0
                await ReadOnly()
                assert int(self.dut.read_data__valid.value), "no read data one cycle after the read"
                words[:, bank, offset] = unpack(self.data_layout, int(self.dut.read_data__payload.value))
                await RisingEdge(self.dut.clk)
        return words

    async def compare(self) -> None:
        """Read every word back and compare with the model (NaN as NaN where the word holds a float)."""
        words = await self.read_all()
        errors = []
        for index in zip(*np.nonzero(words != self.model)):
            got, want = int(words[index]), int(self.model[index])
            if self.is_float[index] and _is_nan(got) and _is_nan(want):
                continue
            errors.append(f"partition {index[0]} bank {index[1]} word {index[2]}: {got:#010x}, model {want:#010x}")
        assert not errors, f"{len(errors)} words differ, e.g. " + "; ".join(errors[:4])



def _is_nan(bits: int) -> bool:
    return (bits >> 23) & 0xFF == 0xFF and bits & 0x7FFFFF != 0


def _values(tb: PsumTB, fmt: str, count: int) -> np.ndarray:
    rng = tb.np_rng
    if fmt == "int8":
        return rng.integers(0, 2**32, (tb.p, count), dtype=np.uint64).astype(np.uint32)
    if rng.random() < 0.3:  # raw patterns: NaN, Inf, subnormals
        return rng.integers(0, 2**32, (tb.p, count), dtype=np.uint64).astype(np.uint32)
    return numerics.to_bits(rng.standard_normal((tb.p, count)).astype(np.float32) * 100)


@cocotb.test(timeout_time=20, timeout_unit="ms")
@cocotb.parametrize(bubbles=[0.0, 0.3])
async def commands_land_where_they_say(dut, bubbles: float):
    tb = PsumTB(dut)
    await tb.reset()
    p, cursor = tb.p, tb.cycle + 4
    last = None
    written = {}  # (bank, word) -> the cursor of its latest result
    # Reset does not clear memory (nor would it on an FPGA): start the model from what PSUM holds, which
    # matters when an earlier test ran in the same simulation.
    tb.model = await tb.read_all()
    for index in range(30 if "icarus" in cocotb.SIM_NAME.lower() else 120):
        fmt = tb.rng.choice(list(CODES))
        count = tb.rng.randint(1, tb.words)
        chance = tb.rng.random()
        if last is not None and chance < 0.3:  # straight onto the words just written
            bank, offset, count = last["bank"], last["offset"], last["count"]
            accumulate = 1
        elif last is not None and chance < 0.45:  # from the last word just written, or the one before, on
            bank, offset = last["bank"], max(0, last["offset"] + last["count"] - tb.rng.randint(1, 2))
            count, accumulate = tb.rng.randint(1, tb.words - offset), 1
        else:
            bank, offset = tb.rng.randrange(PSUM_BANKS), tb.rng.randint(0, tb.words - count)
            accumulate = int(tb.rng.random() < 0.6)
        columns = tb.rng.randint(1, p)
        window = tb.is_float[:columns, bank, offset:offset + count]
        if accumulate and not (window == (fmt != "int8")).all():
            # Accumulating int8 onto a float word (or the reverse) depends on the bits of earlier NaN
            # results, whose payload is free: overwrite instead.
            accumulate = 0
        command = {"bank": bank, "offset": offset, "count": count, "columns": columns,
                   "accumulate": accumulate, "dtype": CODES[fmt]}
        await tb.push_command(command)
        values = _values(tb, fmt, count)
        tb.apply_to_model(command, values, fmt)
        cursor = max(cursor, tb.cycle + 2)
        for n in range(count):
            while tb.rng.random() < bubbles:
                cursor += 1
            if accumulate:  # as the tensor engine holds a column back: not before the word's write
                cursor = max(cursor, written.get((bank, offset + n), -tb.spacing) + tb.spacing)
            written[bank, offset + n] = cursor
            for column in range(p):  # column m trails column 0 by m cycles, as the array delivers
                slot = tb.schedule[cursor + column]
                assert column not in slot and cursor + column > tb.cycle, \
                    f"testbench: slot {cursor + column}/{column} taken or past (now {tb.cycle})"
                slot[column] = int(values[column, n])
            cursor += 1
        last = command
    while tb.schedule:
        await RisingEdge(dut.clk)
    await tb.cycles(4)
    assert not int(dut.orphan.value), "a result arrived with no command queued"
    await tb.compare()


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def back_to_back_accumulate(dut):
    """Accumulates onto one word with results in consecutive cycles (``psum_write_delay`` cycles apart with
    ``fp_cuts``): each must see the one before."""
    tb = PsumTB(dut)
    await tb.reset()
    tb.model = await tb.read_all()
    cursor = tb.cycle + 4
    for fmt in ("bf16", "int8"):
        for index in range(12):
            command = {"bank": 3, "offset": 5, "count": 1, "columns": tb.p, "accumulate": int(index > 0),
                       "dtype": CODES[fmt]}
            await tb.push_command(command)
            values = _values(tb, fmt, 1) if fmt == "int8" else numerics.to_bits(
                tb.np_rng.standard_normal((tb.p, 1)).astype(np.float32))
            tb.apply_to_model(command, values, fmt)
            cursor = max(cursor, tb.cycle + 2)
            for column in range(tb.p):
                tb.schedule[cursor + column][column] = int(values[column, 0])
            cursor += tb.spacing  # the next command's result for the same word: as soon as PSUM allows
    while tb.schedule:
        await RisingEdge(dut.clk)
    await tb.cycles(4)
    await tb.compare()
