"""A memory-latency model to put in front of a simulated AXI4 memory: reads and write responses come late.

Simulation models such as cocotbext-axi's ``AxiRam`` answer in a cycle or two; DRAM answers in tens to
hundreds. :class:`AXI4Latency` holds each read request (AR) and each write response (B) until ``latency``
cycles after it entered, in order, without limiting how many are in flight (up to ``depth``). Write
addresses, write data and read data pass straight through. So a read's first data beat reaches the master
no earlier than ``latency`` cycles after its AR was accepted, and a B no earlier than ``latency`` cycles
after the memory gave it: the two latencies a DMA must hide by keeping requests outstanding.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature

__all__ = ["AXI4Latency", "LATENCY_BITS"]

LATENCY_BITS = 10
_STAMP_BITS = 16


class AXI4Latency(wiring.Component):
    """Delays AR and B by ``latency`` cycles; with ``latency`` 0 every channel is a plain wire.

    Parameters
    ----------
    signature : AXI4Signature
        The bus on both sides.
    depth : int
        Requests (and responses) that may be waiting at once.

    Members
    -------
    s_axi : ``In(signature)``
        Faces the master.
    m_axi : ``Out(signature)``
        Faces the memory.
    latency : ``In(LATENCY_BITS)``
        The delay in cycles: 0 for none at all; otherwise each request or response waits at least one cycle
        in a FIFO. Change it only while nothing is waiting.
    """

    def __init__(self, signature: AXI4Signature, *, depth: int = 32):
        if not isinstance(signature, AXI4Signature):
            raise TypeError(f"signature must be an AXI4Signature, not {signature!r}")
        self._depth = depth
        super().__init__({"s_axi": In(signature), "m_axi": Out(signature), "latency": In(LATENCY_BITS)})

    def _delay(self, m, name, source, sink, fields, now):
        """``source``'s channel ``name`` to ``sink``'s, each beat held until ``latency`` cycles old."""
        payload_in = Cat(*(getattr(source, name + field) for field in fields))
        payload_out = Cat(*(getattr(sink, name + field) for field in fields))
        queue = fifo.SyncFIFO(width=len(payload_in) + _STAMP_BITS, depth=self._depth)
        m.submodules[f"{name}_delay"] = queue
        age = Signal(_STAMP_BITS, name=f"{name}_age")
        source_valid, source_ready = getattr(source, name + "valid"), getattr(source, name + "ready")
        sink_valid, sink_ready = getattr(sink, name + "valid"), getattr(sink, name + "ready")
        m.d.comb += [queue.w_data.eq(Cat(payload_in, now)), age.eq(now - queue.r_data[len(payload_in):])]
        with m.If(self.latency == 0):   # a plain wire, so the far side's backpressure reaches the near side
            m.d.comb += [payload_out.eq(payload_in), sink_valid.eq(source_valid), source_ready.eq(sink_ready)]
        with m.Else():
            m.d.comb += [
                queue.w_en.eq(source_valid), source_ready.eq(queue.w_rdy),
                payload_out.eq(queue.r_data[:len(payload_in)]),
                sink_valid.eq(queue.r_rdy & (age >= self.latency)),
                queue.r_en.eq(sink_valid & sink_ready),
            ]

    def elaborate(self, platform):
        m = Module()
        now = Signal(_STAMP_BITS)
        m.d.sync += now.eq(now + 1)
        master, memory = self.s_axi, self.m_axi
        signature = master.signature
        self._delay(m, "ar", master, memory, signature.fields("ar"), now)
        self._delay(m, "b", memory, master, signature.fields("b"), now)
        for channel, forward in (("aw", True), ("w", True), ("r", False)):
            source, sink = (master, memory) if forward else (memory, master)
            m.d.comb += [getattr(sink, channel + field).eq(getattr(source, channel + field))
                         for field in list(signature.fields(channel)) + ["valid"]]
            m.d.comb += getattr(source, channel + "ready").eq(getattr(sink, channel + "ready"))
        return m
