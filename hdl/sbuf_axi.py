"""An AXI4 slave window onto the SBUF: the host, a debugger or another tile reads and writes it as flat memory.

Address map
-----------
The SBUF is seen flat: byte ``A = partition * sbuf_bytes + offset`` holds byte ``offset`` of partition
``partition``, for ``A < partitions * sbuf_bytes`` (the *window*). Both factors are powers of two, so the
partition is the address bits above ``log2(sbuf_bytes)``. The window starts at address 0 of the port;
whoever maps it into a larger space (a crossbar) strips the base.

Bursts
------
- **INCR** and **FIXED** bursts of any length, 1..256 beats (FIXED too, though AXI4 limits masters to 16),
  and any AxSIZE up to the bus width.
- **WRAP** bursts follow the AXI4 rule: 2, 4, 8 or 16 beats, the start address aligned to AxSIZE, beat
  addresses wrapping at the ``beats * 2**AxSIZE`` boundary below the start.
- Each beat addresses the bus word containing its address. A write beat stores exactly the byte lanes its
  WSTRB sets, in that word (so lanes are as the master put them; narrow and unaligned beats need nothing
  special). A read beat returns the whole word; the master takes the lanes it asked for.
- The burst ends after AxLEN + 1 W beats; WLAST is not looked at (a master that drops it early cannot make
  the slave write past the range it checked).
- AxLOCK, AxCACHE, AxPROT, AxQOS, AxREGION are ignored; an exclusive access gets OKAY (it failed, by the
  AXI4 rule, since the slave has no exclusive monitor).

Errors
------
Each burst is checked whole, when its AW or AR is accepted, before any of its beats touch the SBUF. A burst
gets **SLVERR** if any byte its beats address lies at or beyond ``partitions * sbuf_bytes`` (so a burst that
straddles the end writes nothing at all), or if it breaks a rule the slave cannot follow: AxSIZE wider than
the bus, the reserved AxBURST ``0b11``, or a WRAP burst of a length other than 2, 4, 8, 16 beats or not
aligned to AxSIZE. A refused write still takes all its AxLEN + 1 W beats, then answers B with SLVERR; a
refused read answers AxLEN + 1 R beats of zero data with SLVERR, RLAST on the last. Nothing hangs.

Ordering and throughput
-----------------------
- **Reads.** One read burst issues its SBUF reads at a time, up to :attr:`~trntile.hdl.sbuf.SBUF.ANSWERS`
  (3) in flight, so with the SBUF port free and RREADY high a burst streams one beat per cycle, two cycles
  after its first read is granted. The next AR is accepted in the cycle the current burst issues its last
  SBUF read; up to 4 bursts may be waiting for their R beats, which return in order with RID = ARID.
- **Writes.** One write burst at a time: AW, then its W beats at one per cycle while the SBUF port is
  granted (a W beat is taken in the cycle its SBUF write is granted), then B with BID = AWID, one cycle
  after the last W beat; the next AW is taken at the earliest in the cycle B is taken (so back-to-back
  write bursts lose one cycle each). A write is in the SBUF when its B is sent.
- **Sharing the SBUF port.** Read and write beats share the one ``sbuf`` port. When both want it they
  alternate; a request offered and not yet granted stays offered (same side, same payload) until it is.
- No ordering between reads and writes: a master that needs a read to see a write waits for its B.

Counters (modulo 2**32, from reset): ``reads`` and ``writes`` count accepted AR and AW bursts; ``errors``
counts those of either kind answered with SLVERR.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature, Burst, Resp
from .params import AXI_DATA_WIDTH, AXI_ID_WIDTH, PARTITIONS, SBUF_BYTES
from .sbuf import SBUF, sbuf_word_signature

__all__ = ["SBUFAXISlave", "SBUFAXIBlock", "ADDR_WIDTH"]

#: AxADDR width of the slave port.
ADDR_WIDTH = 32

#: Read bursts whose R beats may be pending at once (accepted, not yet fully answered).
_READ_BURSTS = 4


class SBUFAXISlave(wiring.Component):
    """AXI4 slave giving flat access to the SBUF (see the module docstring for the whole contract).

    Parameters
    ----------
    partitions : int
        P, a power of two in 4..128.
    sbuf_bytes : int
        Bytes per partition, a power of two in 1 KiB..256 KiB.
    data_width : int
        AXI and SBUF word width in bits, a power of two in 32..512.
    id_width : int
        AXI ID width, 0..8.

    Members
    -------
    s_axi : ``In(AXI4Signature(addr_width=32, data_width=data_width, id_width=id_width))``
        The slave port; the window is addresses ``0 .. partitions * sbuf_bytes - 1``.
    sbuf : ``Out(sbuf_word_signature(data_width))``
        To the SBUF's ``dma`` port (or any port with its contract: reads answered in order, at most
        ``SBUF.ANSWERS`` outstanding before their answers are taken).
    reads, writes, errors : ``Out(32)``
        Accepted read bursts, accepted write bursts, bursts answered with SLVERR.
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 data_width: int = AXI_DATA_WIDTH.default, id_width: int = AXI_ID_WIDTH.default):
        self._p = PARTITIONS.validate(partitions)
        self._bytes = SBUF_BYTES.validate(sbuf_bytes)
        self._width = AXI_DATA_WIDTH.validate(data_width)
        self._id_width = AXI_ID_WIDTH.validate(id_width)
        super().__init__({
            "s_axi": In(AXI4Signature(addr_width=ADDR_WIDTH, data_width=self._width, id_width=self._id_width)),
            "sbuf": Out(sbuf_word_signature(self._width)),
            "reads": Out(32),
            "writes": Out(32),
            "errors": Out(32),
        })

    @property
    def partitions(self) -> int:
        return self._p

    @property
    def sbuf_bytes(self) -> int:
        return self._bytes

    @property
    def data_width(self) -> int:
        return self._width

    @property
    def id_width(self) -> int:
        return self._id_width

    @property
    def window_bytes(self) -> int:
        """Bytes the window spans: ``partitions * sbuf_bytes``."""
        return self._p * self._bytes

    def _decode(self, m, channel: str):
        """What the slave needs of the AW or AR request on the bus now: ``error`` (SLVERR, see the module
        docstring), ``start`` (the first beat's address aligned to AxSIZE, in window bits), ``mask`` (the
        address bits that step from beat to beat: all for INCR, the wrap span for WRAP), ``fixed``."""
        bus = self.s_axi
        addr, length, size, burst = (getattr(bus, channel + field) for field in ("addr", "len", "size", "burst"))
        window_bits = (self.window_bytes - 1).bit_length()
        max_size = (self._width // 8 - 1).bit_length()
        step_mask = Signal(ADDR_WIDTH, name=f"{channel}_step_mask")  # 2**AxSIZE - 1
        span_mask = Signal(12, name=f"{channel}_span_mask")         # beats * 2**AxSIZE - 1 (WRAP)
        last_beat = Signal(ADDR_WIDTH + 1, name=f"{channel}_last_beat")  # highest beat address, no wrap-around
        m.d.comb += [
            step_mask.eq((Const(1, 8) << size) - 1),
            span_mask.eq(((length + 1) << size) - 1),
        ]
        aligned = addr & ~step_mask
        with m.Switch(burst):
            with m.Case(Burst.FIXED):
                m.d.comb += last_beat.eq(addr)
            with m.Case(Burst.WRAP):
                m.d.comb += last_beat.eq(addr | span_mask)
            with m.Default():
                m.d.comb += last_beat.eq(aligned + (length << size))
        wrap_length_ok = (length == 1) | (length == 3) | (length == 7) | (length == 15)
        bad_wrap = (burst == Burst.WRAP) & (~wrap_length_ok | ((addr & step_mask) != 0))
        # The window is a multiple of the bus word, so a beat's bytes are all inside it when its address is.
        outside = last_beat >= self.window_bytes
        error = Signal(name=f"{channel}_error")
        m.d.comb += error.eq(outside | bad_wrap | (burst == 0b11) | (size > max_size))
        mask = Signal(window_bits, name=f"{channel}_mask")
        m.d.comb += mask.eq(Mux(burst == Burst.WRAP, span_mask, (1 << window_bits) - 1))
        return {"error": error, "start": aligned[:window_bits], "mask": mask, "fixed": burst == Burst.FIXED,
                "size": size, "length": length}

    def _walker(self, m, name: str):
        """Registers that walk one burst's beat addresses: ``load(decoded)`` and ``advance`` statements, and
        ``address`` (the current beat's), ``left`` (beats after this one)."""
        window_bits = (self.window_bytes - 1).bit_length()
        state = {
            "address": Signal(window_bits, name=f"{name}_address"),
            "mask": Signal(window_bits, name=f"{name}_mask"),
            "size": Signal(3, name=f"{name}_size"),
            "fixed": Signal(name=f"{name}_fixed"),
            "left": Signal(8, name=f"{name}_left"),
        }
        address, mask = state["address"], state["mask"]
        stepped = (address + (Const(1, 8) << state["size"]))[:window_bits]
        following = Mux(state["fixed"], address, (address & ~mask) | (stepped & mask))

        def load(decoded):
            return [address.eq(decoded["start"]), mask.eq(decoded["mask"]), state["size"].eq(decoded["size"]),
                    state["fixed"].eq(decoded["fixed"]), state["left"].eq(decoded["length"])]

        def advance():
            return [address.eq(following), state["left"].eq(state["left"] - 1)]

        return state, load, advance

    def _request(self, address, *, write, data_, strobe):
        partition_shift = (self._bytes - 1).bit_length()
        return {"write": write, "partition": address[partition_shift:], "address": address[:partition_shift],
                "data": data_, "strobe": strobe}

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        has_id = self._id_width > 0
        request, response = self.sbuf.request, self.sbuf.response

        # ---- arbitration of the one SBUF port between the read and write sides --------------------------
        read_wants, write_wants = Signal(), Signal()
        pick_read = Signal()            # the side offered to the SBUF this cycle
        holding = Signal()              # an offer was not granted last cycle: keep offering that side
        held_read = Signal()
        last_was_read = Signal()        # the side granted most recently, to alternate when both want
        m.d.comb += pick_read.eq(Mux(holding, held_read, read_wants & (~write_wants | ~last_was_read)))
        m.d.comb += request.valid.eq(Mux(pick_read, read_wants, write_wants))
        granted = request.valid & request.ready
        read_granted, write_granted = granted & pick_read, granted & ~pick_read
        with m.If(granted):
            m.d.sync += [holding.eq(0), last_was_read.eq(pick_read)]
        with m.Elif(request.valid):
            m.d.sync += [holding.eq(1), held_read.eq(pick_read)]
        with m.Else():      # (only a master dropping WVALID before WREADY gets here)
            m.d.sync += holding.eq(0)

        # ---- reads: AR -> a burst queue for R, and a walker issuing SBUF reads --------------------------
        ar = self._decode(m, "ar")
        read, read_load, read_advance = self._walker(m, "read")
        read_active = Signal()          # the walker has SBUF reads left to issue
        outstanding = Signal(range(SBUF.ANSWERS + 1))   # SBUF reads granted and not yet answered to R
        read_bursts = fifo.SyncFIFO(width=self._id_width + 8 + 1, depth=_READ_BURSTS)
        m.submodules.read_bursts = read_bursts
        burst_layout = data.StructLayout({"id": self._id_width, "length": 8, "error": 1})
        issuing_last = read_granted & (read["left"] == 0)
        m.d.comb += [
            read_wants.eq(read_active & (outstanding < SBUF.ANSWERS)),
            bus.arready.eq(read_bursts.w_rdy & (~read_active | issuing_last)),
            read_bursts.w_en.eq(bus.arvalid & bus.arready),
        ]
        queued = data.View(burst_layout, read_bursts.w_data)
        m.d.comb += [queued.length.eq(bus.arlen), queued.error.eq(ar["error"])]
        if has_id:
            m.d.comb += queued.id.eq(bus.arid)
        with m.If(read_granted):
            m.d.sync += read_advance()
            with m.If(read["left"] == 0):
                m.d.sync += read_active.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += self.reads.eq(self.reads + 1)
            with m.If(~ar["error"]):
                m.d.sync += [read_active.eq(1), *read_load(ar)]

        # R: the head burst's beats, from the SBUF's answers, or zeros with SLVERR for a refused burst.
        head = data.View(burst_layout, read_bursts.r_data)
        r_beat = Signal(8)
        m.d.comb += [
            bus.rvalid.eq(read_bursts.r_rdy & (head.error | response.valid)),
            bus.rdata.eq(Mux(head.error, 0, response.payload.data)),
            bus.rresp.eq(Mux(head.error, Resp.SLVERR, Resp.OKAY)),
            bus.rlast.eq(r_beat == head.length),
            response.ready.eq(read_bursts.r_rdy & ~head.error & bus.rready),
            read_bursts.r_en.eq(bus.rvalid & bus.rready & bus.rlast),
        ]
        if has_id:
            m.d.comb += bus.rid.eq(head.id)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += r_beat.eq(Mux(bus.rlast, 0, r_beat + 1))
        answered = response.valid & response.ready
        m.d.sync += outstanding.eq(outstanding + read_granted - answered)

        # ---- writes: AW, then AxLEN + 1 W beats straight to the SBUF, then B ----------------------------
        aw = self._decode(m, "aw")
        write, write_load, write_advance = self._walker(m, "write")
        write_error = Signal()
        write_id = Signal(max(self._id_width, 1))
        def take_address():
            m.d.sync += [*write_load(aw), write_error.eq(aw["error"]), self.writes.eq(self.writes + 1)]
            if has_id:
                m.d.sync += write_id.eq(bus.awid)

        with m.FSM(name="write"):
            with m.State("ADDRESS"):
                m.d.comb += bus.awready.eq(1)
                with m.If(bus.awvalid):
                    take_address()
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [write_wants.eq(bus.wvalid & ~write_error),
                             bus.wready.eq(write_error | write_granted)]
                with m.If(bus.wvalid & bus.wready):
                    m.d.sync += write_advance()
                    with m.If(write["left"] == 0):
                        m.next = "RESPONSE"
            with m.State("RESPONSE"):
                # The next AW may come in the cycle B goes, so bursts follow one another with one idle cycle.
                m.d.comb += [bus.bvalid.eq(1), bus.bresp.eq(Mux(write_error, Resp.SLVERR, Resp.OKAY)),
                             bus.awready.eq(bus.bready)]
                if has_id:
                    m.d.comb += bus.bid.eq(write_id)
                with m.If(bus.bready):
                    with m.If(bus.awvalid):
                        take_address()
                        m.next = "DATA"
                    with m.Else():
                        m.next = "ADDRESS"

        refused = ((bus.arvalid & bus.arready & ar["error"]).as_unsigned()
                   + (bus.awvalid & bus.awready & aw["error"]).as_unsigned())
        m.d.sync += self.errors.eq(self.errors + refused)

        # ---- the SBUF request of the side picked ---------------------------------------------------------
        reading = self._request(read["address"], write=0, data_=0, strobe=0)
        writing = self._request(write["address"], write=1, data_=bus.wdata, strobe=bus.wstrb)
        for field in ("write", "partition", "address", "data", "strobe"):
            m.d.comb += getattr(request.payload, field).eq(Mux(pick_read, reading[field], writing[field]))
        return m


class SBUFAXIBlock(wiring.Component):
    """What the ``sbuf_axi`` tests simulate: an :class:`SBUFAXISlave` on the ``dma`` port of a real
    :class:`~trntile.hdl.sbuf.SBUF`.

    Parameters
    ----------
    partitions, sbuf_bytes, data_width, id_width : int
        As for :class:`SBUFAXISlave`.

    Members
    -------
    s_axi, reads, writes, errors
        The slave's (:class:`SBUFAXISlave`).
    moving
        The SBUF's moving read port, a second path to the contents (the SBUF's other port-B requesters are
        idle).
    """

    _COUNTERS = ("reads", "writes", "errors")

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 data_width: int = AXI_DATA_WIDTH.default, id_width: int = AXI_ID_WIDTH.default):
        self._slave = SBUFAXISlave(partitions=partitions, sbuf_bytes=sbuf_bytes, data_width=data_width,
                                   id_width=id_width)
        self._sbuf = SBUF(partitions=partitions, sbuf_bytes=sbuf_bytes, data_width=data_width)
        slave, sbuf = self._slave.signature.members, self._sbuf.signature.members
        members = {name: slave[name] for name in ("s_axi",) + self._COUNTERS}
        members["moving"] = sbuf["moving"]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.slave = slave = self._slave
        m.submodules.sbuf = sbuf = self._sbuf
        wiring.connect(m, slave.sbuf, sbuf.dma)
        wiring.connect(m, wiring.flipped(self.s_axi), slave.s_axi)
        wiring.connect(m, wiring.flipped(self.moving), sbuf.moving)
        m.d.comb += [getattr(self, name).eq(getattr(slave, name)) for name in self._COUNTERS]
        return m
