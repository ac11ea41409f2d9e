"""A simple SBUF for the tensor engine's block tests: P banks of 16-bit words, two read ports, one
column-wide write port, and inputs that stall each read port on demand.

The real SBUF (with DMA and ACT ports and their arbitration) implements the same
:func:`~trntile.hdl.tensor_engine.sbuf_read_signature` read ports; this model exists so the engine can be
tested on its own, under backpressure and bubbles the testbench chooses.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from .params import DTYPES, FP_CUTS, PARTITIONS, SBUF_BYTES, SBUF_LATENCY
from .tensor_engine import sbuf_read_signature

__all__ = ["SBUFModel", "TensorEngineBlock", "sbuf_write_layout", "TEST_SBUF_BYTES"]

#: SBUF bytes per partition that the tensor engine's block tests and ``trntile bench tensor`` use, so
#: that the two share simulator builds (operands are small; the SBUF model's size costs build time).
TEST_SBUF_BYTES = 2048


def sbuf_write_layout(partitions: int, sbuf_bytes: int) -> data.StructLayout:
    """Write ``data[p]`` to 16-bit word ``address`` of every partition p whose ``mask`` bit is set."""
    return data.StructLayout({"address": range(sbuf_bytes // 2), "data": data.ArrayLayout(16, partitions),
                              "mask": partitions})


class SBUFModel(wiring.Component):
    """P banks of ``sbuf_bytes`` each (see the module docstring).

    Parameters
    ----------
    partitions, sbuf_bytes : int
        P and the bytes in each partition.
    latency : int
        Cycles from a read request to its response, 1..8. With latency L a port keeps up to L + 1 reads
        outstanding, so it answers one read per cycle when nothing stalls.

    Members
    -------
    write : ``In(stream.Signature(sbuf_write_layout(P, sbuf_bytes)))``
        Always ready; written at the end of the cycle.
    read0, read1 : ``In(sbuf_read_signature(P))``
        Read ports: a request taken in cycle t is answered from cycle t + L, in order; byte address, 16-bit
        elements must be 2-byte aligned.
    stall : ``In(4)``
        For read port i, bit 2i refuses requests and bit 2i + 1 withholds the response, for as long as
        they are set.
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 latency: int = SBUF_LATENCY.default):
        self._p = PARTITIONS.validate(partitions)
        self._bytes = SBUF_BYTES.validate(sbuf_bytes)
        self._latency = SBUF_LATENCY.validate(latency)
        super().__init__({
            "write": In(stream.Signature(sbuf_write_layout(self._p, self._bytes))),
            "read0": In(sbuf_read_signature(self._p)),
            "read1": In(sbuf_read_signature(self._p)),
            "stall": In(4),
        })

    def elaborate(self, platform):
        m = Module()
        p, latency = self._p, self._latency
        elements = data.ArrayLayout(16, p)
        m.d.comb += self.write.ready.eq(1)
        banks = []
        for partition in range(p):
            bank = Memory(shape=16, depth=self._bytes // 2, init=[])
            m.submodules[f"bank{partition}"] = bank
            write = bank.write_port()
            m.d.comb += [write.addr.eq(self.write.payload.address), write.data.eq(self.write.payload.data[partition]),
                         write.en.eq(self.write.valid & self.write.payload.mask[partition])]
            banks.append(bank)

        for index, port in enumerate([self.read0, self.read1]):
            request, response = port.request, port.response
            refuse, withhold = self.stall[2 * index], self.stall[2 * index + 1]
            accept = Signal(name=f"read{index}_accept")
            taken = Signal(name=f"read{index}_taken")
            outstanding = Signal(range(latency + 2), name=f"read{index}_outstanding")
            m.d.comb += [accept.eq(request.valid & request.ready), taken.eq(response.valid & response.ready),
                         request.ready.eq(~refuse & (outstanding < latency + 1))]
            m.d.sync += outstanding.eq(outstanding + accept - taken)

            # The memory answers in the next cycle; pick the element out of each 16-bit word.
            wide = Signal(name=f"read{index}_wide")
            high_byte = Signal(name=f"read{index}_high_byte")
            with m.If(accept):
                m.d.sync += [wide.eq(request.payload.wide), high_byte.eq(request.payload.address[0])]
            read_data = Signal(elements, name=f"read{index}_data")
            for partition, bank in enumerate(banks):
                read = bank.read_port()
                m.d.comb += [read.addr.eq(request.payload.address[1:]), read.en.eq(accept)]
                byte = Mux(high_byte, read.data[8:], read.data[:8])
                m.d.comb += read_data[partition].eq(Mux(wide, read.data, byte))
            arrived = Signal(name=f"read{index}_arrived")
            m.d.sync += arrived.eq(accept)

            # Latency - 1 more cycles of delay, then a FIFO that holds what a withheld or unread port
            # has not yet given (never more than the reads outstanding).
            valid, value = arrived, read_data
            for stage in range(latency - 1):
                delayed_valid = Signal(name=f"read{index}_stage{stage}_valid")
                delayed = Signal(elements, name=f"read{index}_stage{stage}")
                m.d.sync += [delayed_valid.eq(valid), delayed.eq(value)]
                valid, value = delayed_valid, delayed
            m.submodules[f"read{index}_queue"] = queue = fifo.SyncFIFO(width=elements.size, depth=latency + 1)
            m.d.comb += [queue.w_en.eq(valid), queue.w_data.eq(value)]
            # A response that arrives to an empty queue goes straight out (so latency 1 means one cycle).
            bypass = ~queue.r_rdy
            m.d.comb += [
                response.valid.eq(~withhold & (queue.r_rdy | valid)),
                response.payload.eq(Mux(bypass, value, queue.r_data)),
                queue.r_en.eq(taken & queue.r_rdy),
            ]
            with m.If(bypass & taken):
                m.d.comb += queue.w_en.eq(0)
        return m


class TensorEngineBlock(wiring.Component):
    """The tensor engine with an :class:`SBUFModel` on its two read ports: what the block tests and
    ``trntile bench tensor`` simulate (top ``tensor_engine``).

    Parameters
    ----------
    partitions, dtypes, fp_cuts : int
        As for :class:`~trntile.hdl.tensor_engine.TensorEngine`.
    sbuf_bytes, sbuf_latency : int
        As for :class:`SBUFModel`.

    Members
    -------
    command, psum_read, psum_read_data, error_clear, idle, load_done, multiply_done, error, error_code, errors
        The engine's (:class:`~trntile.hdl.tensor_engine.TensorEngine`), and its ``busy_cycles``, ``macs`` and
        ``fault``.
    sbuf_write, stall
        The SBUF model's (``stall`` bits 0/1: stationary port requests/responses, bits 2/3: moving port).
    """

    _STATUS = ("idle", "load_done", "multiply_done", "error", "error_code", "errors", "busy_cycles", "macs", "fault")

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 sbuf_latency: int = SBUF_LATENCY.default, dtypes: int = DTYPES.default,
                 fp_cuts: int = FP_CUTS.default):
        from .tensor_engine import TensorEngine

        self._engine = TensorEngine(partitions=partitions, sbuf_bytes=sbuf_bytes, dtypes=dtypes, fp_cuts=fp_cuts)
        self._sbuf = SBUFModel(partitions=partitions, sbuf_bytes=sbuf_bytes, latency=sbuf_latency)
        engine = self._engine.signature.members
        members = {
            "command": engine["command"], "psum_read": engine["psum_read"],
            "psum_read_data": engine["psum_read_data"], "error_clear": engine["error_clear"],
            "sbuf_write": self._sbuf.signature.members["write"], "stall": In(4),
        }
        members.update({name: engine[name] for name in self._STATUS})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.sbuf = sbuf = self._sbuf
        wiring.connect(m, engine.stationary_read, sbuf.read0)
        wiring.connect(m, engine.moving_read, sbuf.read1)
        wiring.connect(m, wiring.flipped(self.command), engine.command)
        wiring.connect(m, wiring.flipped(self.psum_read), engine.psum_read)
        wiring.connect(m, engine.psum_read_data, wiring.flipped(self.psum_read_data))
        wiring.connect(m, wiring.flipped(self.sbuf_write), sbuf.write)
        m.d.comb += [sbuf.stall.eq(self.stall), engine.error_clear.eq(self.error_clear)]
        m.d.comb += [getattr(self, name).eq(getattr(engine, name)) for name in self._STATUS]
        return m
