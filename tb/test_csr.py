"""cocotb tests for the AXI4-Lite register block (top ``csr_example``, ``example_register_map()``).

The reference is :class:`trntile.golden.csr.RegisterFileModel`, built from the same map. Every read must
match it, every write must leave the field ports as it says, every pulse it predicts must appear exactly
once with its value, and no other pulse may appear. The table's lookup port is served like a memory with an
asynchronous read: each cycle the value of the entry ``index`` names, from the model (an index past the
table gets a value no register holds), so a read that latches the wrong index, or samples the value before
the lookup has settled, reads a wrong word.
"""

from __future__ import annotations

import logging

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from trntile.golden.csr import OKAY, RegisterFileModel
from trntile.hdl.tops import example_register_map
from trntile.tb.axi_checker import AxiProtocolChecker, until_done
from trntile.tb.common import ClockedTB, pauses


class CsrTB(ClockedTB):
    def __init__(self, dut, *, backpressure: float = 0.0):
        super().__init__(dut)
        self.map = example_register_map()
        self.model = RegisterFileModel(self.map.describe())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"), dut.clk, dut.rst)
        for part in (self.axil.write_if, self.axil.read_if):
            part.log.setLevel(logging.WARNING)
        self.checker = AxiProtocolChecker(dut, "s_axil", dut.clk, dut.rst, lite=True)
        if backpressure:
            for channel in (self.axil.write_if.aw_channel, self.axil.write_if.w_channel, self.axil.write_if.b_channel,
                            self.axil.read_if.ar_channel, self.axil.read_if.r_channel):
                channel.set_pause_generator(pauses(self.rng, backpressure))
        self.pulses_seen: list[tuple[str, str, int]] = []
        described = self.map.describe()
        self.fields = [(r["name"], f) for r in described if r["table"] is None for f in r["fields"]]
        self.table_fields = [(r["name"], f) for r in described if r["table"] is not None for f in r["fields"]]
        for name, field in self.fields:  # quiet inputs before reset ends
            if field["access"] == "ro" and field["const"] is None:
                getattr(dut, f"{name}__{field['name']}").value = 0
            if field["access"] == "w1c":
                getattr(dut, f"{name}__{field['name']}_set").value = 0
        cocotb.start_soon(self._watch_pulses())
        for table, registers in self.map.tables().items():
            cocotb.start_soon(self._serve_table(table, registers[0].fields[0]))

    async def _serve_table(self, table: str, field) -> None:
        """Drive ``<table>__<field>`` with the model's entry ``<table>__index`` names, settled by mid-cycle
        (the register block reads it at the edge after it set the index)."""
        index, value = getattr(self.dut, f"{table}__index"), getattr(self.dut, f"{table}__{field.name}")
        count = len(self.map.tables()[table])
        while True:
            await FallingEdge(self.dut.clk)
            entry = int(index.value)
            value.value = (self.model.values[(f"{table}{entry}", field.name)] if entry < count
                           else (1 << field.width) - 1 - entry)

    async def _watch_pulses(self):
        pulses = [(name, field["name"], getattr(self.dut, f"{name}__{field['name']}"))
                  for name, field in self.fields if field["access"] == "pulse"]
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            for register, field, handle in pulses:
                if int(handle.value):
                    self.pulses_seen.append((register, field, int(handle.value)))

    async def random_inputs(self):
        """Drive new values into the read-only fields and raise some events, between bus operations."""
        for name, field in self.fields:
            if field["access"] == "ro" and field["const"] is None:
                value = self.rng.getrandbits(field["width"])
                getattr(self.dut, f"{name}__{field['name']}").value = value
                self.model.drive(name, field["name"], value)
        for name, field in self.table_fields:  # the table's contents (served by _serve_table)
            self.model.drive(name, field["name"], self.rng.getrandbits(field["width"]))
        events = [(name, field) for name, field in self.fields if field["access"] == "w1c"]
        raised = [(name, field, self.rng.getrandbits(field["width"])) for name, field in events]
        for name, field, bits in raised:
            getattr(self.dut, f"{name}__{field['name']}_set").value = bits
        await RisingEdge(self.dut.clk)
        for name, field, bits in raised:
            getattr(self.dut, f"{name}__{field['name']}_set").value = 0
            self.model.set_events(name, field["name"], bits)
        await RisingEdge(self.dut.clk)

    def check_ports(self, after: str) -> None:
        for name, field in self.fields:
            if field["access"] in ("rw", "w1c"):
                actual = int(getattr(self.dut, f"{name}__{field['name']}").value)
                expected = self.model.values[(name, field["name"])]
                assert actual == expected, f"after {after}: {name}.{field['name']} is {actual:#x}, model {expected:#x}"

    async def read_and_compare(self, address: int) -> None:
        response = await self.axil.read(address, 4)
        data, resp = self.model.read(address)
        assert int(response.resp) == resp, f"read {address:#x}: resp {int(response.resp)}, model {resp}"
        got = int.from_bytes(response.data, "little")
        assert got == data, f"read {address:#x}: {got:#010x}, model {data:#010x}"


async def exercise(tb: CsrTB, operations: int) -> None:
    offsets = [r.offset for r in tb.map.registers]
    for step in range(operations):
        if tb.rng.random() < 0.2:
            await tb.random_inputs()
        unmapped = tb.rng.random() < 0.15
        address = tb.rng.choice([0x14, 0x18, 0x1C, 0x24, 0x3C, 0x54, 0x80, 0xFC]) if unmapped else tb.rng.choice(offsets)
        if tb.rng.random() < 0.6:
            first = tb.rng.randrange(4)
            length = tb.rng.randint(1, 4 - first)  # some byte lanes of one word
            data = bytes(tb.rng.getrandbits(8) for _ in range(length))
            response = await tb.axil.write(address + first, data)
            word = int.from_bytes(bytes(first) + data, "little")
            strobe = ((1 << length) - 1) << first
            resp = tb.model.write(address, word, strobe)
            assert int(response.resp) == resp, f"step {step}: write {address + first:#x}: resp {int(response.resp)}, model {resp}"
            await RisingEdge(tb.dut.clk)
            tb.check_ports(f"step {step}, write of {data.hex()} at {address + first:#x}")
        else:
            await tb.read_and_compare(address)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def reset_values(dut):
    """After reset every register reads as the map says, and the field ports hold their reset values."""
    tb = CsrTB(dut)
    await tb.reset()
    tb.check_ports("reset")
    await until_done(dut.clk, [tb.checker], *(tb.read_and_compare(r.offset) for r in tb.map.registers))
    assert not tb.pulses_seen, f"pulses without a write: {tb.pulses_seen}"
    tb.checker.check(idle=True)


@cocotb.test(timeout_time=10, timeout_unit="ms")
@cocotb.parametrize(backpressure=[0.0, 0.5])
async def random_access(dut, backpressure: float):
    """Random partial writes, reads, unmapped offsets, input changes and events, against the model."""
    tb = CsrTB(dut, backpressure=backpressure)
    await tb.reset()
    await until_done(dut.clk, [tb.checker], exercise(tb, 300))
    await tb.cycles(4)
    assert tb.pulses_seen == tb.model.pulses, (f"pulses: saw {len(tb.pulses_seen)}, model {len(tb.model.pulses)}; "
                                               f"first difference at "
                                               f"{next((i for i, (a, b) in enumerate(zip(tb.pulses_seen, tb.model.pulses)) if a != b), min(len(tb.pulses_seen), len(tb.model.pulses)))}")
    assert any(p for p in tb.model.pulses), "the random sequence produced no pulse: it tests nothing there"
    tb.checker.check(idle=True)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def event_wins_over_clear(dut):
    """An event raised in the same cycle its bit is cleared stays set: no event is lost."""
    tb = CsrTB(dut)
    await tb.reset()
    irq = next(r.offset for r in tb.map.registers if r.name == "irq")
    dut.irq__done_set.value = 1
    await RisingEdge(dut.clk)
    dut.irq__done_set.value = 0
    tb.model.set_events("irq", "done", 1)
    # The clear takes effect at the edge where bvalid rises. Hold the event high up to that edge and drop
    # it right after, so it is raised in exactly the cycle of the clear (and the ones before, harmlessly).
    dut.irq__done_set.value = 1

    async def drop_event_after_clear():
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.s_axil__bvalid.value):
                break
        await Timer(1, "ns")  # out of the read-only phase, well before the next edge
        dut.irq__done_set.value = 0

    dropper = cocotb.start_soon(drop_event_after_clear())
    response = await tb.axil.write(irq, bytes([0x01, 0, 0, 0]))
    await dropper
    assert int(response.resp) == OKAY
    await tb.cycles(2)
    assert int(dut.irq__done.value) == 1, "an event raised in the cycle its bit was cleared was lost"
    tb.checker.check(idle=True)
