"""A small AXI4 address split: one slave port onto a few master ports, each a window, for one master.

The tile uses it to put its SBUF window and its semaphore window behind one ``s_axi`` port. It does what the
general crossbar (:mod:`trntile.hdl.axi_crossbar`) does for one master, in far less logic:

- **Decode.** Port *j* serves ``windows[j] = (base, size)`` and sees the full address; an address in no
  window is answered DECERR by the split itself (a write's W beats are taken, a read gets ``len + 1`` beats
  with RLAST on the last), so a bad address never hangs.
- **Ordering.** A request may go to a port only while no request of that direction is outstanding at another
  port (or at the DECERR responder), so responses come back in request order for every ID without any ID
  bookkeeping. Requests to the same port pipeline freely, up to ``outstanding`` per direction.
- **Write data.** W beats go to the port of the oldest write whose data is not yet all through; a new AW is
  taken only once the previous write's last W beat has passed, so beats never need a routing queue.
- **Combinational** AW/AR/W ready follow the chosen port's ready (AXI allows it); no register slices.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature, Resp, pick

__all__ = ["AXI4Split"]


class AXI4Split(wiring.Component):
    """One AXI4 slave port onto ``len(windows)`` master ports (see the module docstring).

    Parameters
    ----------
    signature : AXI4Signature
        Both sides' bus.
    windows : list of (base, size)
        Port j's window: ``size`` a power of two, ``base`` a multiple of it, windows disjoint.
    outstanding : int
        Requests per direction in flight at once (1..64).

    Members
    -------
    s_axi : ``In(signature)``
        The master's port.
    m{j}_axi : ``Out(signature)``
        Port j.
    """

    def __init__(self, signature: AXI4Signature, windows, *, outstanding: int = 8):
        windows = [tuple(w) for w in windows]
        if not 1 <= len(windows) <= 8:
            raise ValueError(f"windows must have 1..8 entries, not {len(windows)}")
        for index, (base, size) in enumerate(windows):
            if size < 1 or size & (size - 1) or base % size:
                raise ValueError(f"windows[{index}] = ({base:#x}, {size:#x}): size must be a power of two and "
                                 f"base a multiple of it")
            for other, (base_o, size_o) in enumerate(windows[:index]):
                if base < base_o + size_o and base_o < base + size:
                    raise ValueError(f"windows[{index}] overlaps windows[{other}]")
        if isinstance(outstanding, bool) or not isinstance(outstanding, int) or not 1 <= outstanding <= 64:
            raise ValueError(f"outstanding must be an integer in 1..64, not {outstanding!r}")
        self._windows, self._outstanding = windows, outstanding
        members = {"s_axi": In(signature)}
        members.update({f"m{j}_axi": Out(signature) for j in range(len(windows))})
        super().__init__(members)

    def _decode(self, m, address, name):
        """The port for ``address``; ``len(windows)`` (the DECERR responder) when in none."""
        target = Signal(range(len(self._windows) + 1), name=f"{name}_target")
        m.d.comb += target.eq(len(self._windows))
        for j, (base, size) in enumerate(self._windows):
            with m.If((address & ~(size - 1)) == base):
                m.d.comb += target.eq(j)
        return target

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        ports = [getattr(self, f"m{j}_axi") for j in range(len(self._windows))]
        error = len(ports)   # the DECERR responder's index
        limit = self._outstanding

        # ---- writes -------------------------------------------------------------------------------------
        w_target = self._decode(m, bus.awaddr, "aw")
        w_busy = Signal(range(limit + 1))      # writes whose B has not gone back
        w_port = Signal(range(error + 1))      # where they are (all at one port)
        w_data = Signal()                      # a write's W beats are still to pass
        w_data_port = Signal(range(error + 1))
        err_b = Signal()                       # the DECERR responder owes a B
        err_b_id = Signal.like(bus.awid)
        aw_free = ~w_data & (w_busy < limit) & ((w_busy == 0) | (w_port == w_target))
        for j, port in enumerate(ports):
            _copy(m, bus, port, "aw")
            m.d.comb += port.awvalid.eq(bus.awvalid & aw_free & (w_target == j))
        m.d.comb += bus.awready.eq(aw_free & Mux(w_target == error, ~err_b,
                                                 pick(w_target, [p.awready for p in ports])))
        aw_fire = bus.awvalid & bus.awready
        with m.If(aw_fire):
            m.d.sync += [w_data.eq(1), w_data_port.eq(w_target), w_port.eq(w_target)]
            with m.If(w_target == error):
                m.d.sync += err_b_id.eq(bus.awid)

        for j, port in enumerate(ports):
            _copy(m, bus, port, "w")
            m.d.comb += port.wvalid.eq(bus.wvalid & w_data & (w_data_port == j))
        m.d.comb += bus.wready.eq(w_data & Mux(w_data_port == error, 1,
                                               pick(w_data_port, [p.wready for p in ports])))
        with m.If(bus.wvalid & bus.wready & bus.wlast):
            m.d.sync += w_data.eq(0)
            with m.If(w_data_port == error):
                m.d.sync += err_b.eq(1)

        b_valid = Mux(w_port == error, err_b, pick(w_port, [p.bvalid for p in ports]))
        m.d.comb += bus.bvalid.eq((w_busy != 0) & b_valid)
        for name in bus.signature.fields("b"):
            mine = pick(w_port, [getattr(p, "b" + name) for p in ports])
            answer = {"id": err_b_id, "resp": Resp.DECERR}.get(name, 0)
            m.d.comb += getattr(bus, "b" + name).eq(Mux(w_port == error, answer, mine))
        for j, port in enumerate(ports):
            m.d.comb += port.bready.eq(bus.bready & (w_busy != 0) & (w_port == j))
        b_fire = bus.bvalid & bus.bready
        with m.If(b_fire & (w_port == error)):
            m.d.sync += err_b.eq(0)
        m.d.sync += w_busy.eq(w_busy + aw_fire - b_fire)

        # ---- reads --------------------------------------------------------------------------------------
        r_target = self._decode(m, bus.araddr, "ar")
        r_busy = Signal(range(limit + 1))
        r_port = Signal(range(error + 1))
        err_r, err_r_id, err_r_left = Signal(), Signal.like(bus.arid), Signal(8)
        ar_free = (r_busy < limit) & ((r_busy == 0) | (r_port == r_target))
        for j, port in enumerate(ports):
            _copy(m, bus, port, "ar")
            m.d.comb += port.arvalid.eq(bus.arvalid & ar_free & (r_target == j))
        m.d.comb += bus.arready.eq(ar_free & Mux(r_target == error, ~err_r,
                                                 pick(r_target, [p.arready for p in ports])))
        ar_fire = bus.arvalid & bus.arready
        with m.If(ar_fire):
            m.d.sync += r_port.eq(r_target)
            with m.If(r_target == error):
                m.d.sync += [err_r.eq(1), err_r_id.eq(bus.arid), err_r_left.eq(bus.arlen)]
        on_error = r_port == error
        m.d.comb += bus.rvalid.eq((r_busy != 0) & Mux(on_error, err_r, pick(r_port, [p.rvalid for p in ports])))
        for name in bus.signature.fields("r"):
            mine = pick(r_port, [getattr(p, "r" + name) for p in ports])
            answer = {"id": err_r_id, "resp": Resp.DECERR, "last": err_r_left == 0}.get(name, 0)
            m.d.comb += getattr(bus, "r" + name).eq(Mux(on_error, answer, mine))
        for j, port in enumerate(ports):
            m.d.comb += port.rready.eq(bus.rready & (r_busy != 0) & (r_port == j))
        r_fire = bus.rvalid & bus.rready
        with m.If(r_fire & on_error):
            m.d.sync += err_r_left.eq(err_r_left - 1)
            with m.If(bus.rlast):
                m.d.sync += err_r.eq(0)
        m.d.sync += r_busy.eq(r_busy + ar_fire - (r_fire & bus.rlast))
        return m


def _copy(m, source, sink, channel: str) -> None:
    """Every payload field of ``channel`` from ``source`` to ``sink``."""
    for name in source.signature.fields(channel):
        m.d.comb += getattr(sink, channel + name).eq(getattr(source, channel + name))
