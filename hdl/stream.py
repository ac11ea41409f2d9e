"""Stream building blocks: a register slice (skid buffer), a ready slice and a FIFO, all with ``lib.stream``
ports.

All follow the transfer rules of :mod:`amaranth.lib.stream`: a beat moves on a rising clock edge where
``valid`` and ``ready`` are both high; once ``valid`` is high, it and ``payload`` hold until that edge.
No block drops, duplicates or reorders a beat.
"""

from amaranth.hdl import Module, Mux, ResetSignal, Shape, ShapeCastable, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import FIFO_DEPTH

__all__ = ["StreamRegisterSlice", "StreamReadySlice", "StreamFIFO"]


def _payload_shape(payload_shape):
    try:
        shape = Shape.cast(payload_shape)
    except TypeError:
        raise TypeError(f"payload_shape must be a shape-castable object (an int width, a Shape, or a "
                        f"data layout), not {payload_shape!r}") from None
    if shape.width < 1:
        raise ValueError(f"payload_shape must be at least 1 bit wide, not {payload_shape!r}")
    return payload_shape


class _StreamSlice(wiring.Component):
    """What both slices share: a stream in, ``i``, and the same stream out, ``o``."""

    def __init__(self, payload_shape):
        self._payload_shape = _payload_shape(payload_shape)
        super().__init__({
            "i": In(stream.Signature(self._payload_shape)),
            "o": Out(stream.Signature(self._payload_shape)),
        })

    @property
    def payload_shape(self):
        return self._payload_shape


class StreamRegisterSlice(_StreamSlice):
    """Register slice for a stream: breaks every combinational path between its two sides.

    A two-entry skid buffer. ``o.valid`` and ``o.payload`` come straight from flip-flops, and so does
    ``i.ready``: nothing on the output side reaches the input side in the same cycle, which is what lets
    a slice cut a long ready chain for timing.

    Timing: a beat accepted at edge *t* is offered on ``o`` from edge *t*, so it can leave at edge *t* + 1
    (one cycle of latency). With ``o.ready`` held high the slice moves one beat per cycle indefinitely.
    When ``o`` stalls, the slice still takes the beat already on its input (into the skid register) and
    then lowers ``i.ready`` until the skid register empties. ``i.ready`` is low while ``rst`` is high and
    for the first cycle after, so nothing is accepted during reset.

    Parameters
    ----------
    payload_shape : ShapeLike
        Shape of the payload: an integer width, a :class:`Shape`, or a :mod:`amaranth.lib.data` layout.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
        Input stream.
    o : ``Out(stream.Signature(payload_shape))``
        Output stream.
    """

    def elaborate(self, platform):
        m = Module()

        skid_payload = Signal(self._payload_shape)
        skid_valid = Signal()
        skid_valid_next = Signal()

        accept = Signal()  # a beat enters this cycle
        out_free = Signal()  # the output register can load this cycle
        m.d.comb += [
            accept.eq(self.i.valid & self.i.ready),
            out_free.eq(~self.o.valid | self.o.ready),
            skid_valid_next.eq(skid_valid),
        ]

        with m.If(out_free):
            with m.If(skid_valid):
                # The parked beat is older than anything on the input (i.ready is low while it waits).
                m.d.sync += self.o.payload.eq(skid_payload)
                m.d.sync += self.o.valid.eq(1)
                m.d.comb += skid_valid_next.eq(0)
            with m.Else():
                m.d.sync += self.o.valid.eq(accept)
                with m.If(accept):
                    m.d.sync += self.o.payload.eq(self.i.payload)
        with m.Elif(accept):
            # Output is stalled and full: park the incoming beat.
            m.d.sync += skid_payload.eq(self.i.payload)
            m.d.comb += skid_valid_next.eq(1)

        m.d.sync += [
            skid_valid.eq(skid_valid_next),
            # A register, and a function of this block's own state only.
            self.i.ready.eq(~skid_valid_next),
        ]
        return m


class StreamReadySlice(_StreamSlice):
    """Ready slice for a stream: ``i.ready`` comes from a flip-flop, and a beat goes straight through.

    A one-entry skid buffer with a bypass. It cuts the combinational path from ``o.ready`` back to
    ``i.ready`` (a long ready chain) but not the forward one: while nothing is parked, ``o.valid`` and
    ``o.payload`` are ``i.valid`` and ``i.payload``, so a beat takes no cycle more and the output side sees
    the same beats in the same cycles as without the slice. When ``o`` stalls with a beat on the input, the
    slice takes the beat into its register and lowers ``i.ready`` until the beat has left; the sender has
    moved on a beat early, which is all the slice changes on its side. ``i.ready`` is low while ``rst`` is
    high and for the first cycle after, and so is ``o.valid``.

    Parameters
    ----------
    payload_shape : ShapeLike
        Shape of the payload: an integer width, a :class:`Shape`, or a :mod:`amaranth.lib.data` layout.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
        Input stream.
    o : ``Out(stream.Signature(payload_shape))``
        Output stream.
    """

    def elaborate(self, platform):
        m = Module()
        parked = Signal(self._payload_shape)
        full = Signal()        # a beat is parked
        ready = Signal()       # not full, and out of reset: i.ready
        m.d.comb += [
            self.i.ready.eq(ready),
            self.o.valid.eq(full | (self.i.valid & ready)),
            self.o.payload.eq(Mux(full, parked, self.i.payload)),
        ]
        with m.If(full):
            with m.If(self.o.ready):
                m.d.sync += [full.eq(0), ready.eq(1)]
        with m.Else():
            m.d.sync += ready.eq(1)
            with m.If(self.i.valid & ready & ~self.o.ready):
                m.d.sync += [full.eq(1), ready.eq(0), parked.eq(self.i.payload)]
        return m


class StreamFIFO(wiring.Component):
    """First-in first-out buffer for a stream, with its occupancy as a port.

    Built on :class:`amaranth.lib.fifo.SyncFIFO`. ``i.ready`` is high exactly when fewer than ``depth``
    beats are held and ``rst`` is low, and comes from registered state only (no path from ``o.ready``). A beat accepted at
    edge *t* is offered on ``o`` from edge *t* (one cycle of latency), so the FIFO sustains one beat per
    cycle in and out from ``depth`` = 2 up. The output is read from the FIFO memory without a register
    (distributed RAM on an FPGA); for a registered output, follow it with a :class:`StreamRegisterSlice`.

    Parameters
    ----------
    payload_shape : ShapeLike
        Shape of the payload: an integer width, a :class:`Shape`, or a :mod:`amaranth.lib.data` layout.
    depth : int
        Number of beats held, 2..65536.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
        Input stream.
    o : ``Out(stream.Signature(payload_shape))``
        Output stream.
    level : ``Out(range(depth + 1))``
        Number of beats held now.
    """

    def __init__(self, payload_shape, *, depth=FIFO_DEPTH.default):
        self._payload_shape = _payload_shape(payload_shape)
        self._depth = FIFO_DEPTH.validate(depth)
        super().__init__({
            "i": In(stream.Signature(self._payload_shape)),
            "o": Out(stream.Signature(self._payload_shape)),
            "level": Out(range(self._depth + 1)),
        })

    @property
    def payload_shape(self):
        return self._payload_shape

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._payload_shape).width
        m.submodules.buffer = buffer = fifo.SyncFIFO(width=width, depth=self._depth)
        payload_out = self.o.payload
        if isinstance(self._payload_shape, ShapeCastable):
            payload_out = payload_out.as_value()
        m.d.comb += [
            buffer.w_data.eq(self.i.payload),
            # Like the register slice, take nothing while in reset.
            buffer.w_en.eq(self.i.valid & ~ResetSignal()),
            self.i.ready.eq(buffer.w_rdy & ~ResetSignal()),
            payload_out.eq(buffer.r_data),
            self.o.valid.eq(buffer.r_rdy),
            buffer.r_en.eq(self.o.ready),
            self.level.eq(buffer.level),
        ]
        return m
