"""A DRAM for testbenches: a cocotbext-axi ``AxiRam`` whose reads or writes in chosen windows fail with
SLVERR or DECERR, so designs can be shown to stop cleanly on bus errors."""

from __future__ import annotations

import logging

import numpy as np
from cocotbext.axi import AxiBus, AxiRam, AxiResp

__all__ = ["Fault", "FaultyRam"]


class Fault:
    """A DRAM window ``low .. high - 1`` whose reads (or writes) fail with ``resp`` (SLVERR or DECERR)."""

    def __init__(self, low: int, high: int, resp: AxiResp = AxiResp.SLVERR):
        self.low, self.high, self.resp = low, high, resp

    def hit(self, address: int, length: int) -> bool:
        """Whether the ``length`` bytes from ``address`` touch the window."""
        return address < self.high and self.low < address + length


class FaultyRam:
    """``AxiRam`` of ``size`` bytes on the AXI4 port ``prefix`` of ``dut``. ``read_fault`` and
    ``write_fault`` (a :class:`Fault` or ``None``) may be changed at any time; ``dram`` is a numpy view of
    the memory. Several ports may serve one memory: give each the same ``mem`` (a ``bytearray``)."""

    def __init__(self, dut, prefix: str, size: int, mem: bytearray | None = None):
        mem = bytearray(size) if mem is None else mem
        self.ram = AxiRam(AxiBus.from_prefix(dut, prefix, bus_separator="__"), dut.clk, dut.rst, mem=mem)
        self.dram = np.frombuffer(self.ram.mem, dtype=np.uint8, count=size)
        for part in (self.ram.write_if, self.ram.read_if):
            part.log.setLevel(logging.WARNING)
        self.read_fault: Fault | None = None
        self.write_fault: Fault | None = None
        self._install()

    @property
    def channels(self):
        return (self.ram.write_if.aw_channel, self.ram.write_if.w_channel, self.ram.write_if.b_channel,
                self.ram.read_if.ar_channel, self.ram.read_if.r_channel)

    def _install(self):
        owner, reads, writes = self, self.ram.read_if, self.ram.write_if

        async def read(address, length):
            if owner.read_fault and owner.read_fault.hit(address, length):
                raise IOError("injected read fault")  # AxiRam answers SLVERR
            return owner.ram.read(address, length)

        async def write(address, data):
            if owner.write_fault and owner.write_fault.hit(address, len(data)):
                raise IOError("injected write fault")
            owner.ram.write(address, data)

        def as_decerr(send, fault_of, field):
            async def sending(transaction):
                fault = fault_of()
                if fault and fault.resp == AxiResp.DECERR and int(getattr(transaction, field)) == AxiResp.SLVERR:
                    setattr(transaction, field, AxiResp.DECERR)
                await send(transaction)
            return sending

        reads._read, writes._write = read, write
        reads.r_channel.send = as_decerr(reads.r_channel.send, lambda: owner.read_fault, "rresp")
        writes.b_channel.send = as_decerr(writes.b_channel.send, lambda: owner.write_fault, "bresp")
