"""The protocol checker catches what it claims to (run on the ``axi_crossbar`` top, 2 x 2).

Each test commits one violation by driving the crossbar's ports by hand and expects the checker on that
port to report it, by name. Target 0 is an ``AxiRam`` whose AW/AR sides can be paused, which holds the
crossbar's AWREADY/ARREADY low so a master-side violation can happen before READY.
"""

from __future__ import annotations

import logging

import cocotb
from cocotb.triggers import RisingEdge
from cocotb.types import LogicArray
from cocotbext.axi import AxiBus, AxiRam

from trntile.hdl.tops import XBAR_WINDOW
from trntile.tb.axi_checker import AxiProtocolChecker
from trntile.tb.common import ClockedTB

_IDLE_INPUTS = ["awvalid", "wvalid", "bready", "arvalid", "rready"]


class CheckerTB(ClockedTB):
    def __init__(self, dut, *, ram_on_m0: bool = True):
        super().__init__(dut)
        self.master = AxiProtocolChecker(dut, "s0_axi", dut.clk, dut.rst)
        self.target = AxiProtocolChecker(dut, "m0_axi", dut.clk, dut.rst)
        for name in _IDLE_INPUTS:
            getattr(dut, f"s0_axi__{name}").value = 0
            getattr(dut, f"s1_axi__{name}").value = 0
        for name in ("awready", "wready", "bvalid", "arready", "rvalid"):
            getattr(dut, f"m1_axi__{name}").value = 0
        self.ram = None
        if ram_on_m0:
            self.ram = AxiRam(AxiBus.from_prefix(dut, "m0_axi", bus_separator="__"), dut.clk, dut.rst, size=XBAR_WINDOW)
            for part in (self.ram.write_if, self.ram.read_if):
                part.log.setLevel(logging.WARNING)
        else:
            for name in ("awready", "wready", "bvalid", "arready", "rvalid"):
                getattr(dut, f"m0_axi__{name}").value = 0

    def request(self, channel: str, *, addr=0, length=0, size=2, burst=1, ident=0):
        """Offer an AW or AR request on s0 (``channel`` is ``"aw"`` or ``"ar"``)."""
        values = {"id": ident, "addr": addr, "len": length, "size": size, "burst": burst, "lock": 0, "cache": 0,
                  "prot": 0, "qos": 0, "region": 0, "valid": 1}
        for field, value in values.items():
            getattr(self.dut, f"s0_axi__{channel}{field}").value = value

    def expect(self, checker: AxiProtocolChecker, text: str) -> None:
        assert any(text in error for error in checker.errors), \
            f"the checker on {checker.name} did not report {text!r}; it reported {checker.errors or 'nothing'}"


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def valid_dropped_before_ready(dut):
    tb = CheckerTB(dut)
    tb.ram.write_if.aw_channel.pause = True  # the target takes no AW, so the crossbar gives no AWREADY
    await tb.reset()
    tb.request("aw", addr=0x40)
    await tb.cycles(3)
    dut.s0_axi__awvalid.value = 0
    await tb.cycles(2)
    tb.expect(tb.master, "awvalid dropped before awready")


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def payload_changed_before_ready(dut):
    tb = CheckerTB(dut)
    tb.ram.read_if.ar_channel.pause = True
    await tb.reset()
    tb.request("ar", addr=0x80)
    await tb.cycles(3)
    dut.s0_axi__araddr.value = 0x90
    await tb.cycles(2)
    tb.expect(tb.master, "araddr changed before arready")


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def wlast_on_the_wrong_beat(dut):
    tb = CheckerTB(dut, ram_on_m0=False)  # an AxiRam would itself refuse the bad burst
    dut.m0_axi__awready.value, dut.m0_axi__wready.value = 1, 1
    await tb.reset()
    tb.request("aw", addr=0x100, length=3)  # four beats
    await RisingEdge(dut.clk)
    while not int(dut.s0_axi__awready.value):
        await RisingEdge(dut.clk)
    dut.s0_axi__awvalid.value = 0
    dut.s0_axi__wdata.value, dut.s0_axi__wstrb.value = 0, 0xFFFF
    for beat in range(2):  # WLAST on the second beat of four
        dut.s0_axi__wlast.value, dut.s0_axi__wvalid.value = int(beat == 1), 1
        await RisingEdge(dut.clk)
        while not int(dut.s0_axi__wready.value):
            await RisingEdge(dut.clk)
    dut.s0_axi__wvalid.value = 0
    await tb.cycles(4)
    tb.expect(tb.master, "wlast on beat 2 of a 4-beat burst")


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def response_with_no_request(dut):
    tb = CheckerTB(dut, ram_on_m0=False)
    await tb.reset()
    dut.s0_axi__rready.value = 1
    dut.m0_axi__rid.value, dut.m0_axi__rdata.value, dut.m0_axi__rresp.value, dut.m0_axi__rlast.value = 3, 0, 0, 1
    dut.m0_axi__rvalid.value = 1
    await RisingEdge(dut.clk)
    dut.m0_axi__rvalid.value = 0
    await tb.cycles(3)
    tb.expect(tb.target, "r: data for id 3 matches no outstanding read")
    tb.expect(tb.master, "r: data for id 3 matches no outstanding read")


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def burst_across_4k(dut):
    tb = CheckerTB(dut)
    tb.ram.write_if.aw_channel.pause = True
    await tb.reset()
    tb.request("aw", addr=0xFF0, length=3, size=4)  # 4 x 16 bytes from 0xff0
    await tb.cycles(2)
    tb.expect(tb.master, "crosses a 4 KiB boundary")


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def x_on_valid(dut):
    """Only a four-state simulator can hold X; on Verilator X reads as 0 and the test checks that instead."""
    tb = CheckerTB(dut, ram_on_m0=False)  # the X travels through the crossbar; no bus model should see it
    await tb.reset()
    dut.s0_axi__arvalid.value = LogicArray("X")
    await tb.cycles(2)
    if "icarus" in cocotb.SIM_NAME.lower():
        tb.expect(tb.master, "arvalid is X/Z")
    else:
        assert int(dut.s0_axi__arvalid.value) == 0


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def write_response_with_its_last_beat(dut):
    """A target may not answer B in the cycle it takes the last W beat (B must follow WLAST)."""
    tb = CheckerTB(dut, ram_on_m0=False)
    dut.m0_axi__awready.value, dut.m0_axi__wready.value = 1, 1
    dut.m0_axi__bresp.value = 0
    await tb.reset()
    tb.request("aw", addr=0x200, ident=2)
    await RisingEdge(dut.clk)
    while not int(dut.s0_axi__awready.value):
        await RisingEdge(dut.clk)
    dut.s0_axi__awvalid.value = 0
    dut.s0_axi__bready.value = 1
    dut.s0_axi__wdata.value, dut.s0_axi__wstrb.value, dut.s0_axi__wlast.value = 0, 0xFFFF, 1
    dut.s0_axi__wvalid.value = 1
    dut.m0_axi__bid.value, dut.m0_axi__bvalid.value = 2, 1  # port 0, ID 2: in the same cycle
    await RisingEdge(dut.clk)
    dut.s0_axi__wvalid.value = 0
    dut.m0_axi__bvalid.value = 0
    await tb.cycles(2)
    tb.expect(tb.target, "b: response for id 2 matches no write whose data is complete")
