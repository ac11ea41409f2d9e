"""The semaphore window: an AXI4 slave through which another tile (or any bus master) adds to a tile's
semaphores.

A write of one aligned 32-bit word ``v`` at byte offset ``4 i`` of the window adds ``v`` to semaphore ``i``
(modulo 2^32) and is answered OKAY once the add is done, so a master that has its B response knows the
semaphore has moved. Everything else is answered SLVERR and changes nothing:

- a burst of more than one beat, or a beat whose strobes are not exactly the four bytes of one aligned
  word (the word is found from the strobes, so the address may be the word's or the beat's);
- a word beyond the last semaphore (``i >= semaphores``);
- a write while ``refuse`` is high (the tile is in soft reset: the add would be lost, so the writer is
  told);
- every read (the host reads semaphores through the tile's registers).

The slave takes one write and one read at a time; it accepts an AW without waiting for W (as the crossbar
requires), takes every W beat of the burst whatever the answer, and returns ``len + 1`` read beats with
``rlast`` on the last, so a bad request never hangs the bus.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature, Resp
from .params import AXI_DATA_WIDTH, SEMAPHORES
from .sequencer import update_layout

__all__ = ["SemaphoreWindow", "SEMAPHORE_WINDOW_BYTES"]

#: Bytes of address space the window serves (256 semaphores at most, 4 bytes each, rounded up to 4 KiB so
#: that it can be a crossbar window).
SEMAPHORE_WINDOW_BYTES = 4096


class SemaphoreWindow(wiring.Component):
    """AXI4 slave that adds written words to semaphores (see the module docstring).

    Parameters
    ----------
    semaphores : int
        Semaphores in the tile (1..256).
    data_width, id_width : int
        The AXI4 port's widths; its address is 12 bits, the offset in the window.

    Members
    -------
    s_axi : ``In(AXI4Signature(addr_width=12, data_width, id_width))``
        The window.
    update : ``Out(stream.Signature(update_layout))``
        One add per accepted write, to a :class:`~trntile.hdl.sequencer.SemaphoreFile` source.
    refuse : ``In(1)``
        Answer writes SLVERR instead of adding (the tile is in soft reset).
    adds, refused : ``Out(32)``
        Counters: writes added; requests answered SLVERR.
    clear : ``In(1)``
        Zero both counters (the tile's soft reset; the window itself is never reset).
    """

    def __init__(self, *, semaphores: int = SEMAPHORES.default, data_width: int = AXI_DATA_WIDTH.default,
                 id_width: int = 0):
        self._semaphores = SEMAPHORES.validate(semaphores)
        self._signature = AXI4Signature(addr_width=12, data_width=AXI_DATA_WIDTH.validate(data_width),
                                        id_width=id_width)
        super().__init__({
            "s_axi": In(self._signature),
            "update": Out(stream.Signature(update_layout)),
            "refuse": In(1),
            "adds": Out(32), "refused": Out(32), "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        data_bytes = self._signature.data_width // 8
        words = data_bytes // 4
        beat_shift = data_bytes.bit_length() - 1

        # ---- writes: AW, the W beats, the add (when the write is good), B -------------------------------
        w_busy, w_id, w_addr, w_single, w_data_done = (Signal(), Signal.like(bus.awid), Signal(12), Signal(),
                                                       Signal())
        good, index, value = Signal(), Signal(10), Signal(32)
        b_valid, b_resp = Signal(), Signal(2)
        m.d.comb += bus.awready.eq(~w_busy)
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [w_busy.eq(1), w_id.eq(bus.awid), w_addr.eq(bus.awaddr), w_single.eq(bus.awlen == 0),
                         w_data_done.eq(0)]

        # The beat's one strobed word, if its strobes are exactly the four bytes of one aligned word.
        one_word, which = Signal(), Signal(range(max(words, 2)))
        lanes = [bus.wstrb[4 * k:4 * k + 4] for k in range(words)]
        for k in range(words):
            rest_empty = Cat(*(lanes[j] == 0 for j in range(words) if j != k)).all() if words > 1 else 1
            with m.If((lanes[k] == 0xF) & rest_empty):
                m.d.comb += [one_word.eq(1), which.eq(k)]
        beat_index = Signal(10)
        m.d.comb += beat_index.eq(Cat(which[:beat_shift - 2], w_addr[beat_shift:]) if words > 1 else w_addr[2:])
        m.d.comb += bus.wready.eq(w_busy & ~w_data_done)
        with m.If(bus.wvalid & bus.wready & bus.wlast):
            m.d.sync += [w_data_done.eq(1), index.eq(beat_index),
                         value.eq(bus.wdata.word_select(which, 32) if words > 1 else bus.wdata[:32]),
                         good.eq(w_single & one_word & (beat_index < self._semaphores))]

        adding = w_data_done & ~b_valid & good
        m.d.comb += [self.update.valid.eq(adding & ~self.refuse), self.update.payload.index.eq(index),
                     self.update.payload.set.eq(0), self.update.payload.value.eq(value)]
        with m.If(self.update.valid & self.update.ready):
            m.d.sync += [b_valid.eq(1), b_resp.eq(Resp.OKAY), self.adds.eq(self.adds + 1)]
        with m.Elif(w_data_done & ~b_valid & (~good | self.refuse)):
            m.d.sync += [b_valid.eq(1), b_resp.eq(Resp.SLVERR)]
        m.d.comb += [bus.bvalid.eq(b_valid), bus.bid.eq(w_id), bus.bresp.eq(b_resp)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += [w_busy.eq(0), b_valid.eq(0), w_data_done.eq(0)]

        # ---- reads: len + 1 beats of SLVERR --------------------------------------------------------------
        r_busy, r_id, r_left = Signal(), Signal.like(bus.arid), Signal(8)
        m.d.comb += [bus.arready.eq(~r_busy), bus.rvalid.eq(r_busy), bus.rid.eq(r_id), bus.rdata.eq(0),
                     bus.rresp.eq(Resp.SLVERR), bus.rlast.eq(r_left == 0)]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [r_busy.eq(1), r_id.eq(bus.arid), r_left.eq(bus.arlen)]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += r_left.eq(r_left - 1)
            with m.If(bus.rlast):
                m.d.sync += r_busy.eq(0)

        refused_b = bus.bvalid & bus.bready & (b_resp == Resp.SLVERR)
        refused_r = bus.rvalid & bus.rready & bus.rlast
        m.d.sync += self.refused.eq(self.refused + refused_b + refused_r)
        with m.If(self.clear):
            m.d.sync += [self.adds.eq(0), self.refused.eq(0)]
        return m
