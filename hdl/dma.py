"""The DMA engine: descriptor queues, 4-D access patterns, AXI4 bursts to DRAM and bus words to the SBUF.

How a descriptor moves (see ``docs/dma.md`` for the whole story):

1. **Queues.** ``queues[q]`` takes descriptors (:data:`~trntile.hdl.dma_descriptor.descriptor_layout`).
   A queue hands over its next descriptor only when the previous one has completed, so descriptors of one
   queue run strictly one after another. Among queues with a descriptor waiting, the engine takes them
   round-robin.
2. **Check.** One descriptor at a time spends 6 cycles in the check stage: format, semaphore, partitions
   and bounds, in the order of :class:`~trntile.golden.dma.DmaError`. The decision waits a cycle in the
   verdict register while the check stage takes the next descriptor, so descriptors of different queues
   overlap. A refused descriptor stops its queue with the error code and touches nothing; an accepted one
   is dispatched to the two sides.
3. **Source side.** The walk is cut into *runs* (a whole innermost row when its stride is 1 element,
   otherwise one element), runs into *bursts* (at most 256 beats, never across 4 KiB), bursts into
   *beats* (one bus word each). DRAM bursts go out as AXI4 INCR reads (up to ``outstanding`` at once);
   SBUF beats are word reads. A packer squeezes the bytes of every beat into a dense byte stream of
   bus words, each descriptor starting on a fresh word.
4. **Destination side.** The same cut into runs, bursts and beats; an unpacker takes each beat's bytes
   from the stream and shifts them to the beat's byte lanes with matching strobes, for AXI4 writes (up to
   ``outstanding`` bursts awaiting their response) or SBUF word writes.
5. **Completion.** When the last write of a descriptor is done (its last B response, or its last SBUF
   word written) the descriptor completes in order: the queue is free again and, if ``increment`` is not
   0, ``signal`` carries ``{index: semaphore, increment}``. A read or write error response instead stops
   the queue with :attr:`~trntile.golden.dma.DmaError.READ_RESPONSE` or ``WRITE_RESPONSE``, and signals
   nothing.

All AXI transactions use ID 0, so responses return in order. Source and destination of one descriptor
must not overlap (the engine streams); the engine does not check that.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.dma import COUNT_BITS, STRIDE_BITS, DmaError, Space
from .access_pattern import PATTERN_DIMS, AccessPatternWalker, make_pattern_layout
from .axi import AXI4Signature, Burst
from .dma_descriptor import descriptor_layout
from .params import AXI_DATA_WIDTH, DMA_OUTSTANDING, DMA_QUEUES, DRAM_BYTES, PARTITIONS, SBUF_BYTES, SEMAPHORES
from .sbuf import SBUF, sbuf_word_signature
from .shift import shift_left, shift_right
from .stream import StreamReadySlice

__all__ = ["DMAEngine", "queue_status_layout", "signal_layout", "DRAM_ADDRESS_BITS"]

DRAM_ADDRESS_BITS = 32
_WALK_STRIDE_BITS = 24
_RUN_BITS = COUNT_BITS + 2      # a run is at most one innermost row: count x 4 bytes
_INDEX_BITS = 16

#: What each queue shows: ``error`` (a :class:`~trntile.golden.dma.DmaError`; not 0 = stopped), ``busy``
#: (a descriptor of the queue is in the engine), ``taken`` (descriptors taken since reset or clear, modulo
#: 2**16), ``completed`` (completed without error), ``fault_index`` (the index, counting from 0 in ``taken``
#: order, of the descriptor that stopped the queue).
queue_status_layout = data.StructLayout({"error": 4, "busy": 1, "taken": _INDEX_BITS, "completed": _INDEX_BITS,
                                         "fault_index": _INDEX_BITS})

#: A completed descriptor's semaphore update: add ``increment`` to semaphore ``index``.
signal_layout = data.StructLayout({"index": 8, "increment": 8})


def _side_command_layout():
    return data.StructLayout({"pattern": make_pattern_layout(DRAM_ADDRESS_BITS, _WALK_STRIDE_BITS), "shift": 2,
                              "run_bytes": _RUN_BITS, "sbuf": 1})


_run_layout = data.StructLayout({"address": DRAM_ADDRESS_BITS, "bytes": _RUN_BITS, "sbuf": 1, "last": 1})
_burst_layout = data.StructLayout({"address": DRAM_ADDRESS_BITS, "bytes": 13, "beats": 9, "sbuf": 1, "last": 1})


def _beat_layout(word_bytes: int) -> data.StructLayout:
    lane_bits = (word_bytes - 1).bit_length()
    return data.StructLayout({"address": DRAM_ADDRESS_BITS, "lo": max(lane_bits, 1), "n": lane_bits + 1,
                              "burst_last": 1, "sbuf": 1, "last": 1})


def _min(a, b):
    return Mux(a < b, a, b)


def _lanes_below(m, n, width: int, name: str) -> Signal:
    """A ``width``-bit signal with the low ``n`` bits set (``n`` in 0..width)."""
    mask = Signal(width, name=name)
    m.d.comb += mask.eq(Cat(*(n > lane for lane in range(width))))
    return mask


def _bytes_of(lanes: Signal):
    """The bit mask that keeps the bytes of the set ``lanes``."""
    return Cat(*(lanes[lane].replicate(8) for lane in range(len(lanes))))


def _fifo(m, name: str, layout, depth: int):
    """A first-word-fall-through FIFO of ``layout`` values (or of ``layout`` bits), with views of its write
    and read data. It holds exactly ``depth`` entries whenever it is not full, which the bookkeeping FIFOs
    below rely on (a buffered FIFO's output register can refuse a write while it fills)."""
    width = layout if isinstance(layout, int) else data.Layout.cast(layout).size
    queue = fifo.SyncFIFO(width=width, depth=depth)
    m.submodules[name] = queue
    if isinstance(layout, int):
        return queue, queue.w_data, queue.r_data
    return queue, data.View(layout, queue.w_data), data.View(layout, queue.r_data)


class _RunGenerator(wiring.Component):
    """A side command to its runs: the walker's addresses, each with the command's run length."""

    def __init__(self):
        super().__init__({"command": In(stream.Signature(_side_command_layout())),
                          "runs": Out(stream.Signature(_run_layout))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.walker = walker = AccessPatternWalker(address_bits=DRAM_ADDRESS_BITS,
                                                           stride_bits=_WALK_STRIDE_BITS)
        run_bytes, sbuf = Signal(_RUN_BITS), Signal()
        command = self.command
        m.d.comb += [
            walker.start.valid.eq(command.valid), command.ready.eq(walker.start.ready),
            walker.start.payload.pattern.eq(command.payload.pattern),
            walker.start.payload.shift.eq(command.payload.shift),
            self.runs.valid.eq(walker.address.valid), walker.address.ready.eq(self.runs.ready),
            self.runs.payload.address.eq(walker.address.payload.address),
            self.runs.payload.last.eq(walker.address.payload.last),
            self.runs.payload.bytes.eq(run_bytes), self.runs.payload.sbuf.eq(sbuf),
        ]
        with m.If(command.valid & command.ready):
            m.d.sync += [run_bytes.eq(command.payload.run_bytes), sbuf.eq(command.payload.sbuf)]
        return m


def _cutter(m, pieces_of: stream.Interface, pieces: stream.Interface, left_bits: int, cut):
    """Cuts each span {address, bytes, sbuf, last} taken from ``pieces_of`` into pieces offered on ``pieces``,
    one per cycle, taking the next span with the last piece of the current one.

    ``cut(address, left)`` gives a piece's figures as a dict of values: at least its ``size`` and whether it
    is its span's ``final`` piece. The cutter works them out a piece ahead (for the span's first piece as the
    span is taken; for the following piece from the current one) and keeps the current piece's in registers,
    so the handshake and the payload start at flip-flops. Returns the span registers and the current
    piece's figures."""
    valid, address, left = Signal(), Signal(DRAM_ADDRESS_BITS), Signal(left_bits)
    sbuf, last = Signal(), Signal()
    span = pieces_of.payload
    first = cut(span.address, span.bytes)
    current = {name: Signal(Value.cast(value).shape(), name=f"piece_{name}") for name, value in first.items()}
    following = cut((address + current["size"])[:DRAM_ADDRESS_BITS], (left - current["size"])[:left_bits])
    m.d.comb += [pieces.valid.eq(valid), pieces_of.ready.eq(~valid | (pieces.ready & current["final"]))]
    with m.If(pieces.valid & pieces.ready):
        m.d.sync += [address.eq(address + current["size"]), left.eq(left - current["size"])]
        m.d.sync += [current[name].eq(value) for name, value in following.items()]
        with m.If(current["final"]):
            m.d.sync += valid.eq(0)
    with m.If(pieces_of.valid & pieces_of.ready):
        m.d.sync += [valid.eq(1), address.eq(span.address), left.eq(span.bytes), sbuf.eq(span.sbuf),
                     last.eq(span.last)]
        m.d.sync += [current[name].eq(value) for name, value in first.items()]
    return address, sbuf, last, current


class _BurstSplitter(wiring.Component):
    """Runs to bursts: each burst ends at the end of its run, at a 4 KiB boundary, or after 256 beats,
    whichever comes first. One burst per cycle; the next run is taken with the last burst of the current."""

    def __init__(self, word_bytes: int):
        self._word = word_bytes
        super().__init__({"runs": In(stream.Signature(_run_layout)),
                          "bursts": Out(stream.Signature(_burst_layout))})

    def elaborate(self, platform):
        m = Module()
        word, lane_bits = self._word, (self._word - 1).bit_length()

        def cut(address, left):
            to_page = Const(4096) - address[:12]
            by_beats = Const(256 * word) - address[:lane_bits]
            size = _min(_min(left, to_page), by_beats)[:13]
            return {"size": size, "final": size == left,
                    "beats": ((address[:lane_bits] + size + word - 1) >> lane_bits)[:9]}

        address, sbuf, last, piece = _cutter(m, self.runs, self.bursts, _RUN_BITS, cut)
        out = self.bursts.payload
        m.d.comb += [out.address.eq(address), out.bytes.eq(piece["size"]), out.beats.eq(piece["beats"]),
                     out.sbuf.eq(sbuf), out.last.eq(last & piece["final"])]
        return m


class _BeatExpander(wiring.Component):
    """Bursts to beats: for each bus word of a burst, its first byte lane ``lo`` and byte count ``n``."""

    def __init__(self, word_bytes: int):
        self._word = word_bytes
        super().__init__({"bursts": In(stream.Signature(_burst_layout)),
                          "beats": Out(stream.Signature(_beat_layout(word_bytes)))})

    def elaborate(self, platform):
        m = Module()
        word, lane_bits = self._word, (self._word - 1).bit_length()

        def cut(address, left):
            # A beat reaches the end of its word: the next one starts at lane 0.
            room = (Const(word, lane_bits + 1) - address[:lane_bits])[:lane_bits + 1]
            return {"size": room, "final": left <= room, "n": _min(left, room)[:lane_bits + 1]}

        address, sbuf, last, piece = _cutter(m, self.bursts, self.beats, 13, cut)
        out = self.beats.payload
        m.d.comb += [out.address.eq(address), out.lo.eq(address[:lane_bits]), out.n.eq(piece["n"]),
                     out.burst_last.eq(piece["final"]), out.sbuf.eq(sbuf), out.last.eq(last & piece["final"])]
        return m


class _Packer(wiring.Component):
    """Source beats to a dense stream of bus words: the ``n`` bytes from lane ``lo`` of each beat are
    appended to the stream; after a descriptor's last beat the partly filled word goes out as it is, so
    the next descriptor starts on a fresh word."""

    def __init__(self, word_bytes: int):
        self._word = word_bytes
        lane_bits = (word_bytes - 1).bit_length()
        super().__init__({
            "beats": In(stream.Signature(data.StructLayout({"data": 8 * word_bytes, "lo": max(lane_bits, 1),
                                                            "n": lane_bits + 1, "last": 1}))),
            "words": Out(stream.Signature(8 * word_bytes)),
            "holding": Out(1),   # a partly filled word is waiting for more bytes (or to be flushed)
            "holding_next": Out(1),   # ``holding`` after this cycle's edge
        })

    def elaborate(self, platform):
        m = Module()
        word = self._word
        held = Signal(8 * word)                 # the first ``fill`` bytes of the next word; zero above
        fill = Signal(range(word))
        flush = Signal()                        # ``held`` must go out before the next beat
        beat = self.beats.payload
        kept = Signal(8 * word)
        combined = Signal(16 * word)
        total = Signal(range(2 * word))
        keep = _lanes_below(m, beat.n, word, "keep")
        m.d.comb += [
            kept.eq(shift_right(beat.data, beat.lo, 8) & _bytes_of(keep)),
            combined.eq(held | shift_left(Cat(kept, Const(0, 8 * word)), fill, 8)),
            total.eq(fill + beat.n),
        ]
        full = total >= word
        take = self.beats.valid & self.beats.ready
        m.d.comb += self.holding.eq((fill != 0) | flush)
        m.d.comb += [
            self.beats.ready.eq(~flush & self.words.ready),
            self.words.valid.eq(flush | (self.beats.valid & ~flush & (full | beat.last))),
            self.words.payload.eq(Mux(flush, held, combined[:8 * word])),
        ]
        m.d.comb += self.holding_next.eq(self.holding)
        with m.If(flush):
            with m.If(self.words.ready):
                m.d.sync += [flush.eq(0), held.eq(0), fill.eq(0)]
                m.d.comb += self.holding_next.eq(0)
        with m.Elif(take):
            with m.If(full):
                m.d.sync += [held.eq(combined[8 * word:]), fill.eq(total - word)]
                with m.If(beat.last & (total != word)):
                    m.d.sync += flush.eq(1)
                m.d.comb += self.holding_next.eq(total != word)
            with m.Elif(beat.last):
                m.d.sync += [held.eq(0), fill.eq(0)]
                m.d.comb += self.holding_next.eq(0)
            with m.Else():
                m.d.sync += [held.eq(combined[:8 * word]), fill.eq(total)]
                m.d.comb += self.holding_next.eq(total != 0)
        return m


class _Unpacker(wiring.Component):
    """The dense word stream back to destination beats: each beat takes the next ``n`` bytes of the stream
    and puts them at lanes ``lo`` and up, with strobes for exactly those lanes. After a descriptor's last
    beat the rest of the current word is dropped (the packer padded it)."""

    def __init__(self, word_bytes: int):
        self._word = word_bytes
        beat = _beat_layout(word_bytes)
        super().__init__({
            "words": In(stream.Signature(8 * word_bytes)),
            "beats": In(stream.Signature(beat)),
            "out": Out(stream.Signature(data.StructLayout({"beat": beat, "data": 8 * word_bytes,
                                                           "strobe": word_bytes}))),
        })

    def elaborate(self, platform):
        m = Module()
        word = self._word
        w0, w1 = Signal(8 * word), Signal(8 * word)  # the stream's head word and the one after it
        v0, v1 = Signal(), Signal()
        head = Signal(range(word))                    # bytes of w0 already used
        beat = self.beats.payload
        reach = Signal(range(2 * word + 1))
        m.d.comb += reach.eq(head + beat.n)
        spans_two = reach > word
        ready_words = v0 & (~spans_two | v1)
        # The beat's bytes only, lanes above them zero: a stalled beat's payload must not change when
        # the window refills behind it.
        keep = _lanes_below(m, beat.n, word, "keep")
        window = Signal(8 * word)
        m.d.comb += window.eq(shift_right(Cat(w0, w1), head, 8)[:8 * word] & _bytes_of(keep))
        strobe = Signal(word)
        m.d.comb += strobe.eq(keep << beat.lo)
        out = self.out
        m.d.comb += [
            out.valid.eq(self.beats.valid & ready_words),
            out.payload.beat.eq(beat),
            out.payload.data.eq(shift_left(window, beat.lo, 8)),
            out.payload.strobe.eq(strobe),
            self.beats.ready.eq(out.ready & ready_words),
        ]
        fire = out.valid & out.ready
        pop1, pop2 = Signal(), Signal()
        with m.If(fire):
            with m.If(beat.last):
                m.d.comb += [pop1.eq(~spans_two), pop2.eq(spans_two)]
                m.d.sync += head.eq(0)
            with m.Elif(reach >= word):
                m.d.comb += pop1.eq(1)
                m.d.sync += head.eq(reach - word)
            with m.Else():
                m.d.sync += head.eq(reach)
        # After the pops, refill the first empty slot from the stream.
        a0, a1, x0, x1 = Signal(), Signal(), Signal(8 * word), Signal(8 * word)
        m.d.comb += [
            a0.eq(Mux(pop2, 0, Mux(pop1, v1, v0))), a1.eq(Mux(pop1 | pop2, 0, v1)),
            x0.eq(Mux(pop1, w1, w0)), x1.eq(w1),
            self.words.ready.eq(~a1),
        ]
        refill = self.words.valid & self.words.ready
        m.d.sync += [v0.eq(a0 | refill), v1.eq(a1 | (refill & a0)),
                     w0.eq(Mux(refill & ~a0, self.words.payload, x0)),
                     w1.eq(Mux(refill & a0, self.words.payload, x1))]
        return m


class DMAEngine(wiring.Component):
    """The DMA engine (see the module docstring).

    Parameters
    ----------
    partitions : int
        P, SBUF partitions (a power of two in 4..128).
    sbuf_bytes : int
        Bytes per SBUF partition (a power of two in 1 KiB..256 KiB).
    data_width : int
        AXI data width and SBUF word width in bits (a power of two in 32..512).
    queues : int
        Descriptor queues, 1..16.
    outstanding : int
        AXI read bursts, and separately write bursts, in flight at once (1..32).
    dram_bytes : int
        DRAM starts at address 0 and has this many bytes; a walk outside is refused (a power of two in
        4 KiB..4 GiB).
    semaphores : int
        Semaphores in the file that ``signal`` updates; a higher index with an increment is refused.

    Members
    -------
    queues : ``In(stream.Signature(descriptor_layout)).array(queues)``
        Descriptor queues. A stopped queue takes nothing until cleared.
    clear : ``In(queues)``
        A cycle high on bit q clears queue q: its error, ``taken``, ``completed`` and ``fault_index``.
        A descriptor of the queue already in the engine finishes as usual.
    status : ``Out(queue_status_layout).array(queues)``
        Per queue, see :data:`queue_status_layout`.
    signal : ``Out(stream.Signature(signal_layout))``
        Semaphore updates of completed descriptors, in completion order.
    m_axi : ``Out(AXI4Signature(addr_width=32, data_width, id_width=1))``
        DRAM.
    sbuf : ``Out(sbuf_word_signature(data_width))``
        Word reads and writes to the SBUF's shared port.
    read_bytes, written_bytes, descriptors, errors, active_cycles : ``Out(32)``
        Bytes read (DRAM or SBUF, useful bytes only), bytes written, descriptors completed without error,
        descriptors that stopped their queue, and cycles with any descriptor in the engine.
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 data_width: int = AXI_DATA_WIDTH.default, queues: int = DMA_QUEUES.default,
                 outstanding: int = DMA_OUTSTANDING.default, dram_bytes: int = DRAM_BYTES.default,
                 semaphores: int = SEMAPHORES.default):
        self._p = PARTITIONS.validate(partitions)
        self._sbuf_bytes = SBUF_BYTES.validate(sbuf_bytes)
        self._width = AXI_DATA_WIDTH.validate(data_width)
        self._queues = DMA_QUEUES.validate(queues)
        self._outstanding = DMA_OUTSTANDING.validate(outstanding)
        self._dram_bytes = DRAM_BYTES.validate(dram_bytes)
        self._semaphores = SEMAPHORES.validate(semaphores)
        self.axi_signature = AXI4Signature(addr_width=DRAM_ADDRESS_BITS, data_width=self._width, id_width=1)
        super().__init__({
            "queues": In(stream.Signature(descriptor_layout)).array(self._queues),
            "clear": In(self._queues),
            "status": Out(queue_status_layout).array(self._queues),
            "signal": Out(stream.Signature(signal_layout)),
            "m_axi": Out(self.axi_signature),
            "sbuf": Out(sbuf_word_signature(self._width)),
            "read_bytes": Out(32), "written_bytes": Out(32), "descriptors": Out(32), "errors": Out(32),
            "active_cycles": Out(32),
        })

    # ---- check stage ---------------------------------------------------------------------------------
    def _side_command(self, m, side, element_size, name):
        """The walk of one endpoint as a side command: SBUF addresses are flat (partition x sbuf_bytes +
        offset), the innermost dimension becomes the run length when its stride is one element."""
        command = Signal(_side_command_layout(), name=name)
        sbuf = side.space == Space.SBUF
        partition_shift = (self._sbuf_bytes - 1).bit_length()
        contiguous = side.dims[PATTERN_DIMS - 1].stride == 1
        m.d.comb += [
            command.pattern.address.eq(Mux(sbuf, (side.partition << partition_shift) + side.address, side.address)),
            command.shift.eq(element_size),
            command.sbuf.eq(sbuf),
            command.run_bytes.eq(Mux(contiguous, side.dims[PATTERN_DIMS - 1].count << element_size,
                                     Const(1, 4) << element_size)),
        ]
        for d in range(PATTERN_DIMS):
            dim, walk = side.dims[d], command.pattern.dims[d]
            m.d.comb += [walk.stride.eq(dim.stride), walk.count.eq(dim.count)]
        m.d.comb += command.pattern.dims[0].stride.eq(Mux(sbuf, Const(self._sbuf_bytes, 19) >> element_size,
                                                          side.dims[0].stride))
        with m.If(contiguous):
            m.d.comb += [command.pattern.dims[PATTERN_DIMS - 1].stride.eq(0),
                         command.pattern.dims[PATTERN_DIMS - 1].count.eq(1)]
        return command

    def elaborate(self, platform):
        m = Module()
        word = self._width // 8
        q_count, outstanding = self._queues, self._outstanding
        queue_bits = max(1, (q_count - 1).bit_length())
        axi = self.m_axi

        # ---- queues and the round-robin choice ----------------------------------------------------------
        errors = [Signal(4, name=f"queue{q}_error") for q in range(q_count)]
        busy = [Signal(name=f"queue{q}_busy") for q in range(q_count)]
        taken = [Signal(_INDEX_BITS, name=f"queue{q}_taken") for q in range(q_count)]
        completed = [Signal(_INDEX_BITS, name=f"queue{q}_completed") for q in range(q_count)]
        faults = [Signal(_INDEX_BITS, name=f"queue{q}_fault_index") for q in range(q_count)]
        for q in range(q_count):
            m.d.comb += [self.status[q].error.eq(errors[q]), self.status[q].busy.eq(busy[q]),
                         self.status[q].taken.eq(taken[q]), self.status[q].completed.eq(completed[q]),
                         self.status[q].fault_index.eq(faults[q])]
        eligible = Signal(q_count)
        m.d.comb += eligible.eq(Cat(*(self.queues[q].valid & ~busy[q] & (errors[q] == 0) & ~self.clear[q]
                                      for q in range(q_count))))
        last_queue = Signal(queue_bits)
        above = Signal(q_count)
        m.d.comb += above.eq(eligible & ~((Const(2, q_count + 1) << last_queue) - 1)[:q_count])
        candidates = Signal(q_count)
        m.d.comb += candidates.eq(Mux(above.any(), above, eligible))
        chosen = Signal(queue_bits)
        for q in reversed(range(q_count)):
            with m.If(candidates[q]):
                m.d.comb += chosen.eq(q)

        # ---- check stage -----------------------------------------------------------------------------
        desc = Signal(descriptor_layout)
        desc_queue = Signal(queue_bits)
        desc_index = Signal(_INDEX_BITS)
        step = Signal(range(PATTERN_DIMS + 1))
        checking = Signal()        # a descriptor is in the check stage
        extent = signed(48)
        sums = {name: (Signal(extent, name=f"{name}_low"), Signal(extent, name=f"{name}_high"))
                for name in ("source", "destination")}
        elements = {name: Signal(64, name=f"{name}_elements") for name in ("source", "destination")}
        # Each side's dimensions, shifted one place per check step, with count - 1 and count == 0 worked
        # out as the descriptor is taken: the step's multiply starts at flip-flops, not at a step mux.
        walk_layout = data.StructLayout({"stride": signed(STRIDE_BITS), "count": COUNT_BITS, "less": COUNT_BITS,
                                         "zero": 1})
        walks = {name: [Signal(walk_layout, name=f"{name}_walk{d}") for d in range(PATTERN_DIMS)]
                 for name in ("source", "destination")}
        idle = ~checking
        for q in range(q_count):
            m.d.comb += self.queues[q].ready.eq(idle & eligible.any() & (chosen == q))
        with m.If(idle & eligible.any()):
            for q in range(q_count):
                with m.If(chosen == q):
                    m.d.sync += [desc.eq(self.queues[q].payload), desc_index.eq(taken[q]),
                                 taken[q].eq(taken[q] + 1), busy[q].eq(1)]
                    for name, walk in walks.items():
                        for d, dim in enumerate(getattr(self.queues[q].payload, name).dims):
                            m.d.sync += [walk[d].stride.eq(dim.stride), walk[d].count.eq(dim.count),
                                         walk[d].less.eq(dim.count - 1), walk[d].zero.eq(dim.count == 0)]
            m.d.sync += [checking.eq(1), desc_queue.eq(chosen), last_queue.eq(chosen), step.eq(0)]
            for name in sums:
                m.d.sync += [sums[name][0].eq(0), sums[name][1].eq(0), elements[name].eq(1)]

        # The walk's extent and element count, one dimension per cycle: one multiplier pair per side.
        with m.If(checking & (step < PATTERN_DIMS)):
            m.d.sync += step.eq(step + 1)
            for name, walk in walks.items():
                side, dim = getattr(desc, name), walk[0]
                m.d.sync += [walk[d].eq(walk[d + 1]) for d in range(PATTERN_DIMS - 1)]
                partitions = (side.space == Space.SBUF) & (step == 0)   # dims[0] of the SBUF walks partitions
                reach = Signal(signed(41), name=f"{name}_reach")
                m.d.comb += reach.eq(Mux(partitions | dim.zero, 0, dim.stride * dim.less))
                m.d.sync += elements[name].eq(elements[name] * dim.count)
                with m.If(reach < 0):
                    m.d.sync += sums[name][0].eq(sums[name][0] + reach)
                with m.Else():
                    m.d.sync += sums[name][1].eq(sums[name][1] + reach)

        element_size = desc.element_size
        code = Signal(4)
        sides = (desc.source, desc.destination)
        space_bad = Cat(*(side.space > Space.SBUF for side in sides)).any()
        count_bad = Cat(*(side.dims[d].count == 0 for side in sides for d in range(PATTERN_DIMS))).any()
        stride_bad = Cat(*((side.space == Space.SBUF) & (side.dims[0].stride != 1) & (side.dims[0].count > 1)
                           for side in sides)).any()
        partitions_bad = Cat(*((side.space == Space.SBUF) & (side.partition + side.dims[0].count > self._p)
                               for side in sides)).any()

        def out_of_bounds(name):
            side = getattr(desc, name)
            low, high = Signal(extent, name=f"{name}_first"), Signal(extent, name=f"{name}_end")
            m.d.comb += [low.eq(side.address + (sums[name][0] << element_size)),
                         high.eq(side.address + (sums[name][1] << element_size) + (Const(1, 4) << element_size))]
            size = Mux(side.space == Space.SBUF, self._sbuf_bytes, self._dram_bytes)
            return (low < 0) | (high > size)

        source_outside, destination_outside = out_of_bounds("source"), out_of_bounds("destination")
        with m.If(element_size == 3):
            m.d.comb += code.eq(DmaError.ELEMENT_SIZE)
        with m.Elif(space_bad):
            m.d.comb += code.eq(DmaError.SPACE)
        with m.Elif(count_bad):
            m.d.comb += code.eq(DmaError.COUNT)
        with m.Elif(stride_bad):
            m.d.comb += code.eq(DmaError.PARTITION_STRIDE)
        with m.Elif(elements["source"] != elements["destination"]):
            m.d.comb += code.eq(DmaError.MISMATCH)
        with m.Elif((desc.increment != 0) & (desc.semaphore >= self._semaphores)):
            m.d.comb += code.eq(DmaError.SEMAPHORE)
        with m.Elif(partitions_bad):
            m.d.comb += code.eq(DmaError.PARTITIONS)
        with m.Elif(source_outside):
            m.d.comb += code.eq(DmaError.SOURCE_BOUNDS)
        with m.Elif(destination_outside):
            m.d.comb += code.eq(DmaError.DESTINATION_BOUNDS)

        # The verdict: the decision, the two side commands and the completion entry wait in a register, so
        # the bounds and the error priority end at flip-flops and the dispatch starts at them. The check
        # stage hands over a descriptor as the verdict register empties, and takes the next one at once.
        depth = max(2, q_count)
        pending_layout = data.StructLayout({"queue": queue_bits, "index": _INDEX_BITS, "semaphore": 8,
                                            "increment": 8})
        verdict = Signal(data.StructLayout({
            "valid": 1, "code": 4, "source": _side_command_layout(), "destination": _side_command_layout(),
            "pending": pending_layout}))
        source_commands, source_command_in, _ = _fifo(m, "source_commands", _side_command_layout(), 2)
        destination_commands, destination_command_in, _ = _fifo(m, "destination_commands",
                                                                _side_command_layout(), 2)
        pending, pending_in, pending_out = _fifo(m, "pending", pending_layout, depth)
        m.d.comb += [source_command_in.eq(verdict.source), destination_command_in.eq(verdict.destination),
                     pending_in.eq(verdict.pending)]
        room = source_commands.w_rdy & destination_commands.w_rdy & pending.w_rdy
        refused = verdict.valid & (verdict.code != 0)
        dispatch = verdict.valid & (verdict.code == 0) & room
        m.d.comb += [source_commands.w_en.eq(dispatch), destination_commands.w_en.eq(dispatch),
                     pending.w_en.eq(dispatch)]
        decided = checking & (step == PATTERN_DIMS) & (~verdict.valid | refused | dispatch)
        with m.If(decided):
            m.d.sync += [
                checking.eq(0), verdict.valid.eq(1), verdict.code.eq(code),
                verdict.source.eq(self._side_command(m, desc.source, element_size, "source_command")),
                verdict.destination.eq(self._side_command(m, desc.destination, element_size,
                                                          "destination_command")),
                verdict.pending.queue.eq(desc_queue), verdict.pending.index.eq(desc_index),
                verdict.pending.semaphore.eq(desc.semaphore), verdict.pending.increment.eq(desc.increment),
            ]
        with m.Elif(refused | dispatch):
            m.d.sync += verdict.valid.eq(0)

        # ---- the SBUF port: source reads and destination writes, alternating when both want it ------
        sbuf_read = stream.Signature(data.StructLayout({"partition": 8, "address": 20})).create(
            path=("sbuf_read",))
        sbuf_write = stream.Signature(data.StructLayout({"partition": 8, "address": 20, "data": self._width,
                                                         "strobe": word})).create(path=("sbuf_write",))
        last_write = Signal()
        pick_write = sbuf_write.valid & (~sbuf_read.valid | ~last_write)
        port = self.sbuf.request
        m.d.comb += [
            port.valid.eq(sbuf_read.valid | sbuf_write.valid),
            port.payload.write.eq(pick_write),
            port.payload.partition.eq(Mux(pick_write, sbuf_write.payload.partition, sbuf_read.payload.partition)),
            port.payload.address.eq(Mux(pick_write, sbuf_write.payload.address, sbuf_read.payload.address)),
            port.payload.data.eq(sbuf_write.payload.data), port.payload.strobe.eq(sbuf_write.payload.strobe),
            sbuf_write.ready.eq(port.ready & pick_write), sbuf_read.ready.eq(port.ready & ~pick_write),
        ]
        with m.If(port.valid & port.ready):
            m.d.sync += last_write.eq(pick_write)
        partition_shift = (self._sbuf_bytes - 1).bit_length()

        def sbuf_place(flat):
            return flat[partition_shift:partition_shift + 8], flat[:partition_shift]

        def side(name, commands):
            """A side's commands to its runs, then bursts; and the beat expander its bursts go to."""
            m.submodules[f"{name}_runs"] = runs = _RunGenerator()
            # The burst splitter's ready (which waits on the read room or the write queue) stops at a flip-flop
            # here instead of going on into the walker; no cycle changes.
            m.submodules[f"{name}_run_slice"] = run_slice = StreamReadySlice(_run_layout)
            m.submodules[f"{name}_bursts"] = bursts = _BurstSplitter(word)
            m.submodules[f"{name}_beats"] = beats = _BeatExpander(word)
            m.d.comb += [runs.command.valid.eq(commands.r_rdy), runs.command.payload.eq(commands.r_data),
                         commands.r_en.eq(runs.command.ready)]
            wiring.connect(m, runs.runs, run_slice.i)
            wiring.connect(m, run_slice.o, bursts.runs)
            return bursts, beats

        # ---- source side ---------------------------------------------------------------------------------
        source_bursts, source_beats = side("source", source_commands)
        m.submodules.packer = packer = _Packer(word)

        # Room in the byte stream is reserved before anything is read: a read burst, or an SBUF word read, is
        # issued only if every beat requested and not yet packed, every word in the stream FIFO and the packer's
        # partial word still leave room for it (each beat makes at most one word). So read data is always
        # taken at once, and RREADY never waits on the writes that drain the stream.
        max_burst = min(256, 4096 // word)
        stream_depth = max(2 * max_burst, 256)
        m.submodules.stream = stream_fifo = fifo.SyncFIFOBuffered(width=8 * word, depth=stream_depth)
        # ``space`` is the stream's depth less what is spoken for (beats requested and not yet packed, words
        # in the stream FIFO, the packer's partial word), kept in a register by adding each cycle's changes,
        # so that the checks below start at a flip-flop, not at a sum of three counts.
        space = Signal(range(stream_depth + 1), init=stream_depth)

        reads_out = Signal(range(outstanding + 1))
        read_bursts, read_burst_in, read_burst_out = _fifo(m, "read_bursts", _burst_layout, max(2, outstanding))
        burst = source_bursts.bursts
        # (one place is kept for an SBUF read issued in the same cycle)
        read_room = read_bursts.w_rdy & (reads_out < outstanding) & (burst.payload.beats < space)
        m.d.comb += [
            axi.arvalid.eq(burst.valid & ~burst.payload.sbuf & read_room),
            axi.araddr.eq(burst.payload.address & ~(word - 1)),
            axi.arlen.eq(burst.payload.beats - 1),
            axi.arsize.eq((word - 1).bit_length()),
            axi.arburst.eq(Burst.INCR),
            axi.arid.eq(0),
            burst.ready.eq(Mux(burst.payload.sbuf, read_bursts.w_rdy, axi.arready & read_room)),
            read_bursts.w_en.eq(burst.valid & burst.ready),
            read_burst_in.eq(burst.payload),
            source_beats.bursts.valid.eq(read_bursts.r_rdy),
            source_beats.bursts.payload.eq(read_burst_out),
            read_bursts.r_en.eq(source_beats.bursts.ready),
        ]
        # Each beat in order: an SBUF beat is requested now; its data, or a DRAM beat's, comes later.
        beat_layout = _beat_layout(word)
        source_pending, source_pending_in, head = _fifo(m, "source_beats_pending", beat_layout, 4)
        beat = source_beats.beats
        partition, offset = sbuf_place(beat.payload.address)
        # At most SBUF.ANSWERS reads awaiting their answers: then the SBUF always has room to grant the
        # read, and a read can never stand in the way of the writes that drain the engine.
        sbuf_reads = Signal(range(SBUF.ANSWERS + 1))
        answer = self.sbuf.response
        m.d.sync += sbuf_reads.eq(sbuf_reads + (sbuf_read.valid & sbuf_read.ready)
                                  - (answer.valid & answer.ready))
        m.d.comb += [
            sbuf_read.valid.eq(beat.valid & beat.payload.sbuf & source_pending.w_rdy & (sbuf_reads < SBUF.ANSWERS)
                               & (space != 0)),
            sbuf_read.payload.partition.eq(partition), sbuf_read.payload.address.eq(offset),
            beat.ready.eq(source_pending.w_rdy & Mux(beat.payload.sbuf, sbuf_read.valid & sbuf_read.ready, 1)),
            source_pending.w_en.eq(beat.valid & beat.ready),
            source_pending_in.eq(beat.payload),
        ]
        arrived = Mux(head.sbuf, answer.valid, axi.rvalid)
        m.d.comb += [
            packer.beats.valid.eq(source_pending.r_rdy & arrived),
            packer.beats.payload.data.eq(Mux(head.sbuf, answer.payload.data, axi.rdata)),
            packer.beats.payload.lo.eq(head.lo), packer.beats.payload.n.eq(head.n),
            packer.beats.payload.last.eq(head.last),
            axi.rready.eq(source_pending.r_rdy & ~head.sbuf & packer.beats.ready),
            answer.ready.eq(source_pending.r_rdy & head.sbuf & packer.beats.ready),
            source_pending.r_en.eq(packer.beats.valid & packer.beats.ready),
        ]
        with m.If(axi.arvalid & axi.arready):
            with m.If(~(axi.rvalid & axi.rready & axi.rlast)):
                m.d.sync += reads_out.eq(reads_out + 1)
        with m.Elif(axi.rvalid & axi.rready & axi.rlast):
            m.d.sync += reads_out.eq(reads_out - 1)
        read_failed = Signal()
        read_results, read_result_in, read_result_out = _fifo(m, "read_results", 1, depth)
        bad_read = axi.rvalid & axi.rready & axi.rresp[1]
        packed = packer.beats.valid & packer.beats.ready
        m.d.comb += [read_results.w_en.eq(packed & head.last), read_result_in.eq(read_failed | bad_read)]
        with m.If(packed & head.last):
            m.d.sync += read_failed.eq(0)
        with m.Elif(bad_read):
            m.d.sync += read_failed.eq(1)
        with m.If(packed):
            m.d.sync += self.read_bytes.eq(self.read_bytes + head.n)
        asked = Mux(axi.arvalid & axi.arready, burst.payload.beats, 0) + (sbuf_read.valid & sbuf_read.ready)

        m.d.comb += [stream_fifo.w_en.eq(packer.words.valid), stream_fifo.w_data.eq(packer.words.payload),
                     packer.words.ready.eq(stream_fifo.w_rdy)]
        pushed = stream_fifo.w_en & stream_fifo.w_rdy
        popped = stream_fifo.r_en & stream_fifo.r_rdy
        m.d.sync += space.eq(space + packed + popped + packer.holding - asked - pushed - packer.holding_next)

        # ---- destination side ----------------------------------------------------------------------------
        destination_bursts, destination_beats = side("destination", destination_commands)
        m.submodules.unpacker = unpacker = _Unpacker(word)

        # Bursts waiting for their data, and, in the same order, writes waiting to be acknowledged: each
        # DRAM burst (until its B response) and each SBUF descriptor's end (until its last word is written).
        # A DRAM burst's address goes to its own queue, so write data never waits for AWREADY (AXI4 forbids
        # a master to make WVALID wait for it).
        writes_out = Signal(range(outstanding + 1))
        write_bursts, write_burst_in, write_burst_out = _fifo(m, "write_bursts", _burst_layout, max(2, outstanding))
        addresses, address_in, address_out = _fifo(m, "write_addresses",
                                                   data.StructLayout({"address": DRAM_ADDRESS_BITS, "beats": 9}),
                                                   max(2, outstanding))
        acks, ack_in, ack_out = _fifo(m, "acknowledgements", data.StructLayout({"sbuf": 1, "last": 1}),
                                      outstanding + 2)
        burst = destination_bursts.bursts
        dram_room = write_bursts.w_rdy & addresses.w_rdy & acks.w_rdy
        sbuf_room = write_bursts.w_rdy & (acks.w_rdy | ~burst.payload.last)
        cut = burst.valid & burst.ready
        m.d.comb += [
            burst.ready.eq(Mux(burst.payload.sbuf, sbuf_room, dram_room)),
            write_bursts.w_en.eq(cut), write_burst_in.eq(burst.payload),
            addresses.w_en.eq(cut & ~burst.payload.sbuf),
            address_in.address.eq(burst.payload.address), address_in.beats.eq(burst.payload.beats),
            acks.w_en.eq(cut & (~burst.payload.sbuf | burst.payload.last)),
            ack_in.sbuf.eq(burst.payload.sbuf), ack_in.last.eq(burst.payload.last),
            axi.awvalid.eq(addresses.r_rdy & (writes_out < outstanding)),
            axi.awaddr.eq(address_out.address & ~(word - 1)),
            axi.awlen.eq(address_out.beats - 1),
            axi.awsize.eq((word - 1).bit_length()),
            axi.awburst.eq(Burst.INCR),
            axi.awid.eq(0),
            addresses.r_en.eq(axi.awvalid & axi.awready),
            destination_beats.bursts.valid.eq(write_bursts.r_rdy),
            destination_beats.bursts.payload.eq(write_burst_out),
            write_bursts.r_en.eq(destination_beats.bursts.ready),
        ]
        wiring.connect(m, destination_beats.beats, unpacker.beats)
        m.d.comb += [unpacker.words.valid.eq(stream_fifo.r_rdy), unpacker.words.payload.eq(stream_fifo.r_data),
                     stream_fifo.r_en.eq(unpacker.words.ready)]
        out = unpacker.out
        partition, offset = sbuf_place(out.payload.beat.address)
        m.d.comb += [
            axi.wvalid.eq(out.valid & ~out.payload.beat.sbuf),
            axi.wdata.eq(out.payload.data), axi.wstrb.eq(out.payload.strobe),
            axi.wlast.eq(out.payload.beat.burst_last),
            sbuf_write.valid.eq(out.valid & out.payload.beat.sbuf),
            sbuf_write.payload.partition.eq(partition), sbuf_write.payload.address.eq(offset),
            sbuf_write.payload.data.eq(out.payload.data), sbuf_write.payload.strobe.eq(out.payload.strobe),
            out.ready.eq(Mux(out.payload.beat.sbuf, sbuf_write.ready, axi.wready)),
        ]
        written = out.valid & out.ready
        with m.If(written):
            m.d.sync += self.written_bytes.eq(self.written_bytes + out.payload.beat.n)
        sbuf_ends = Signal(range(depth + 1))   # SBUF descriptors whose last word is written
        sbuf_end = written & out.payload.beat.sbuf & out.payload.beat.last

        # Acknowledgements, in order.
        ack_sbuf = acks.r_rdy & ack_out.sbuf & (sbuf_ends != 0)
        m.d.comb += axi.bready.eq(acks.r_rdy & ~ack_out.sbuf)
        acked = ack_sbuf | (axi.bvalid & axi.bready)
        m.d.comb += acks.r_en.eq(acked)
        m.d.sync += sbuf_ends.eq(sbuf_ends + sbuf_end - ack_sbuf)
        with m.If(axi.awvalid & axi.awready):
            with m.If(~(axi.bvalid & axi.bready)):
                m.d.sync += writes_out.eq(writes_out + 1)
        with m.Elif(axi.bvalid & axi.bready):
            m.d.sync += writes_out.eq(writes_out - 1)
        write_failed = Signal()
        bad_write = axi.bvalid & axi.bready & axi.bresp[1]
        write_results, write_result_in, write_result_out = _fifo(m, "write_results", 1, depth)
        m.d.comb += [write_results.w_en.eq(acked & ack_out.last), write_result_in.eq(write_failed | bad_write)]
        with m.If(acked & ack_out.last):
            m.d.sync += write_failed.eq(0)
        with m.Elif(bad_write):
            m.d.sync += write_failed.eq(1)

        # ---- completion ------------------------------------------------------------------------------------
        finished = pending.r_rdy & read_results.r_rdy & write_results.r_rdy
        failed = read_result_out | write_result_out
        wants_signal = ~failed & (pending_out.increment != 0)
        m.d.comb += [
            self.signal.valid.eq(finished & wants_signal),
            self.signal.payload.index.eq(pending_out.semaphore),
            self.signal.payload.increment.eq(pending_out.increment),
        ]
        complete = finished & (~wants_signal | self.signal.ready)
        m.d.comb += [pending.r_en.eq(complete), read_results.r_en.eq(complete), write_results.r_en.eq(complete)]

        # ---- queue state ---------------------------------------------------------------------------------
        for q in range(q_count):
            # A clear first, so that an error arriving in the same cycle stands (a queue takes nothing while
            # it is cleared).
            with m.If(self.clear[q]):
                m.d.sync += [errors[q].eq(0), taken[q].eq(0), completed[q].eq(0), faults[q].eq(0)]
            with m.If(complete & (pending_out.queue == q)):
                m.d.sync += busy[q].eq(0)
                with m.If(failed):
                    m.d.sync += [errors[q].eq(Mux(read_result_out, DmaError.READ_RESPONSE,
                                                  DmaError.WRITE_RESPONSE)),
                                 faults[q].eq(pending_out.index)]
                with m.Else():
                    m.d.sync += completed[q].eq(Mux(self.clear[q], 1, completed[q] + 1))
            with m.If(refused & (verdict.pending.queue == q)):
                m.d.sync += [busy[q].eq(0), errors[q].eq(verdict.code), faults[q].eq(verdict.pending.index)]
        with m.If(complete):
            with m.If(failed):
                m.d.sync += self.errors.eq(self.errors + 1 + refused)
            with m.Else():
                m.d.sync += [self.descriptors.eq(self.descriptors + 1), self.errors.eq(self.errors + refused)]
        with m.Elif(refused):
            m.d.sync += self.errors.eq(self.errors + 1)
        with m.If(Cat(*busy).any()):
            m.d.sync += self.active_cycles.eq(self.active_cycles + 1)
        return m


class DMABlock(wiring.Component):
    """What the DMA tests and ``trntile bench dma`` simulate (top ``dma``): a :class:`DMAEngine` with its
    own :class:`~trntile.hdl.sbuf.SBUF`, and an :class:`~trntile.hdl.axi_latency.AXI4Latency` between its
    AXI port and ``m_axi``, where the test's DRAM model connects.

    Members: those of :class:`DMAEngine` except ``sbuf``; ``latency`` of the latency model; the SBUF's
    ``moving`` and ``stationary`` read ports, through which a testbench reads the SBUF back (``stationary``
    shares the SBUF port the DMA uses).
    """

    _COUNTERS = ("read_bytes", "written_bytes", "descriptors", "errors", "active_cycles")

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 data_width: int = AXI_DATA_WIDTH.default, queues: int = DMA_QUEUES.default,
                 outstanding: int = DMA_OUTSTANDING.default, dram_bytes: int = DRAM_BYTES.default):
        from .axi_latency import LATENCY_BITS, AXI4Latency

        self._engine = DMAEngine(partitions=partitions, sbuf_bytes=sbuf_bytes, data_width=data_width, queues=queues,
                                 outstanding=outstanding, dram_bytes=dram_bytes)
        self._sbuf = SBUF(partitions=partitions, sbuf_bytes=sbuf_bytes, data_width=data_width)
        self._latency = AXI4Latency(self._engine.axi_signature, depth=max(2 * outstanding, 4))
        engine, sbuf = self._engine.signature.members, self._sbuf.signature.members
        members = {name: engine[name] for name in ("queues", "clear", "status", "signal", "m_axi") + self._COUNTERS}
        members.update({"latency": In(LATENCY_BITS), "moving": sbuf["moving"], "stationary": sbuf["stationary"]})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.sbuf = sbuf = self._sbuf
        m.submodules.latency = latency = self._latency
        wiring.connect(m, engine.sbuf, sbuf.dma)
        wiring.connect(m, engine.m_axi, latency.s_axi)
        wiring.connect(m, latency.m_axi, wiring.flipped(self.m_axi))
        wiring.connect(m, wiring.flipped(self.moving), sbuf.moving)
        wiring.connect(m, wiring.flipped(self.stationary), sbuf.stationary)
        m.d.comb += latency.latency.eq(self.latency)
        for q in range(len(self.queues)):
            wiring.connect(m, wiring.flipped(self.queues[q]), engine.queues[q])
            m.d.comb += self.status[q].eq(engine.status[q])
        wiring.connect(m, engine.signal, wiring.flipped(self.signal))
        m.d.comb += engine.clear.eq(self.clear)
        m.d.comb += [getattr(self, name).eq(getattr(engine, name)) for name in self._COUNTERS]
        return m
