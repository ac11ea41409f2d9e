"""AXI4 crossbar: N slave ports (masters connect here) to M master ports (targets connect here).

Address decode
    Master port *j* serves the window ``address_map[j] = (base, size)``: ``size`` a power of two of at
    least 4 KiB, ``base`` a multiple of ``size``, windows disjoint. An entry ``(base, size, ways, way)``
    serves only every ``ways``-th block of its window, those whose block number modulo ``ways`` is ``way``,
    blocks of 4 KiB or of ``granule`` bytes with ``(base, size, ways, way, granule)``: ``ways`` entries with
    the same window and ways 0..ways - 1 interleave it over ``ways`` ports (a legal burst never crosses
    4 KiB, so it stays on one). The full address is passed on. A
    request that hits no window goes to an internal slave that answers DECERR; a request that breaks a
    burst rule (an INCR burst crossing 4 KiB, a WRAP burst of a length other than 2/4/8/16 or not aligned
    to its beat size, a FIXED burst of more than 16 beats, the reserved burst type, or a beat wider than
    the bus) goes to an internal slave that answers SLVERR; that check comes first, so a burst that is
    both illegal and unmapped gets SLVERR. Both consume
    the write data and return the right number of read beats, so a bad request never hangs and never
    reaches a target. Because windows are 4 KiB-aligned and legal bursts never cross 4 KiB, a burst that
    reaches a target stays inside its window.

Arbitration
    Each target (and each internal error slave) takes one AW and one AR per cycle, chosen round-robin
    among the slave ports that request it. A grant is held while its VALID waits for READY. Write data
    follows the order in which the target accepted the AWs; a slave port sends its W beats to the targets
    of its AWs in the order it issued them. B and R responses for a slave port are chosen round-robin
    among the targets that have one for it, beat by beat: read data of different IDs from different
    targets may interleave on a slave port (AXI4 allows it; one ID's beats stay in order).

Requirement on targets
    A target must be able to accept an AW without first seeing WVALID (AXI allows a slave to wait for
    both): the crossbar routes W beats only after their AW is accepted.

IDs and ordering
    Target-side IDs are the master's ID with the slave port's index above it (``id_width +
    ceil(log2(N))`` bits), which routes the response back. Per slave port and direction, a table indexed
    by the low ``lookup_bits`` of the ID holds the target and count of outstanding transactions; a new
    transaction whose (low) ID is outstanding at a different target waits until those complete. So a
    master never sees two responses of one ID out of order. At most ``max_outstanding`` transactions per
    direction are outstanding per slave port.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature, Burst, Resp, channel_payload
from .params import MAX_OUTSTANDING, XBAR_MASTERS, XBAR_SLAVES, Param
from .stream import StreamRegisterSlice

__all__ = ["AXI4Crossbar", "AXI4ErrorSlave", "INTERLEAVE_BYTES", "validate_address_map"]


def _bits_for(count: int) -> int:
    """Bits to number ``count`` things (0 for one thing)."""
    return (count - 1).bit_length()


#: Low ID bits that index the ordering table.
LOOKUP_BITS = Param("lookup_bits", default=2, minimum=0, maximum=4,
                    help="low ID bits the crossbar's per-ID ordering table is indexed by")


#: The smallest (and default) interleaving granule of an interleaved window: 4 KiB, which a legal burst
#: never crosses, so a burst stays on one way.
INTERLEAVE_BYTES = 4096


def validate_address_map(address_map, addr_width: int) -> tuple[tuple[int, int, int, int, int], ...]:
    """Check an address map; return it as a tuple of ``(base, size, ways, way, granule)`` (``ways`` 1 for a
    plain window). Errors name the entry."""
    try:
        entries = [tuple(entry) for entry in address_map]
    except TypeError:
        raise TypeError(f"address_map must be a list of (base, size) pairs, not {address_map!r}") from None
    if not 1 <= len(entries) <= XBAR_SLAVES.maximum:
        raise ValueError(f"address_map must have 1..{XBAR_SLAVES.maximum} entries (one per master port), "
                         f"not {len(entries)}")
    normal = []
    for index, entry in enumerate(entries):
        if len(entry) not in (2, 4, 5) or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry):
            raise TypeError(f"address_map[{index}] must be a (base, size) pair or a (base, size, ways, way"
                            f"[, granule]) tuple of integers, not {entry!r}")
        base, size, ways, way, granule = (*entry, 1, 0, INTERLEAVE_BYTES)[:5] if len(entry) == 2 else \
            (*entry, INTERLEAVE_BYTES)[:5]
        if size < 4096 or size & (size - 1):
            raise ValueError(f"address_map[{index}] = ({base:#x}, {size:#x}): size must be a power of two "
                             f"of at least 0x1000 (4 KiB)")
        if base < 0 or base % size:
            raise ValueError(f"address_map[{index}] = ({base:#x}, {size:#x}): base must be a multiple of "
                             f"the size")
        if base + size > 1 << addr_width:
            raise ValueError(f"address_map[{index}] = ({base:#x}, {size:#x}) does not fit in a "
                             f"{addr_width}-bit address")
        if granule < INTERLEAVE_BYTES or granule & (granule - 1):
            raise ValueError(f"address_map[{index}]: granule must be a power of two of at least 0x1000 (4 KiB), "
                             f"not {granule:#x}")
        if ways < 1 or ways & (ways - 1) or ways * granule > size or not 0 <= way < ways:
            raise ValueError(f"address_map[{index}]: ways must be a power of two with ways x granule <= size "
                             f"({size:#x}), and way in 0..ways - 1, not ways {ways}, way {way}")
        normal.append((base, size, ways, way, granule))
    for i, (base_i, size_i, ways_i, way_i, granule_i) in enumerate(normal):
        for j, (base_j, size_j, ways_j, way_j, granule_j) in enumerate(normal[:i]):
            other_way = ((base_i, size_i, ways_i, granule_i) == (base_j, size_j, ways_j, granule_j)
                         and way_i != way_j)
            if base_i < base_j + size_j and base_j < base_i + size_i and not other_way:
                raise ValueError(f"address_map[{i}] = ({base_i:#x}, {size_i:#x}) overlaps address_map[{j}] = "
                                 f"({base_j:#x}, {size_j:#x})")
    return tuple(normal)


class _RoundRobin(Elaboratable):
    """Round-robin choice among ``n`` requests, with a hold for a grant whose transfer is not done.

    ``grant`` is the chosen index (meaningful when ``valid``). Set ``hold`` in a cycle where the granted
    request is offered but not taken, to keep the grant; set ``advance`` when it is taken, to move the
    priority past it. If the held request disappears the grant is released.
    """

    def __init__(self, n: int):
        self.n = n
        self.requests = Signal(n)
        self.grant = Signal(range(max(n, 2)))
        self.valid = Signal()
        self.hold = Signal()
        self.advance = Signal()

    def elaborate(self, platform):
        m = Module()
        last = Signal(range(max(self.n, 2)), init=self.n - 1)
        locked = Signal()
        held = Signal.like(self.grant)
        chosen = Signal.like(self.grant)
        with m.Switch(last):
            for previous in range(self.n):
                with m.Case(previous):
                    order = [(previous + k) % self.n for k in range(1, self.n + 1)]
                    with m.If(self.requests[order[0]]):
                        m.d.comb += chosen.eq(order[0])
                    for index in order[1:]:
                        with m.Elif(self.requests[index]):
                            m.d.comb += chosen.eq(index)
        m.d.comb += [
            self.grant.eq(Mux(locked, held, chosen)),
            self.valid.eq(self.requests.bit_select(self.grant, 1)),
        ]
        with m.If(self.advance):
            m.d.sync += [last.eq(self.grant), locked.eq(0)]
        with m.Elif(self.hold):
            m.d.sync += [held.eq(self.grant), locked.eq(1)]
        with m.Elif(~self.valid):
            m.d.sync += locked.eq(0)  # the held request went away (a protocol error upstream): do not stick
        return m


class AXI4ErrorSlave(wiring.Component):
    """An AXI4 slave that answers every request with one response code and no data.

    It takes one write at a time (AW, then its W beats up to WLAST, then B) and one read at a time
    (AR, then AxLEN + 1 beats of zero data with RLAST on the last).

    Parameters
    ----------
    signature : AXI4Signature
        The bus it sits on.
    resp : int
        ``Resp.DECERR`` or ``Resp.SLVERR``.

    Members
    -------
    s_axi : ``In(signature)``
        The slave port.
    """

    def __init__(self, signature: AXI4Signature, resp: int):
        self._resp = resp
        super().__init__({"s_axi": In(signature)})

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        has_id = "id" in bus.signature.fields("aw")
        write_id = Signal(bus.signature.id_width)
        read_id = Signal(bus.signature.id_width)
        beats_left = Signal(8)

        with m.FSM(name="write"):
            with m.State("ADDRESS"):
                m.d.comb += bus.awready.eq(1)
                with m.If(bus.awvalid):
                    if has_id:
                        m.d.sync += write_id.eq(bus.awid)
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += bus.wready.eq(1)
                with m.If(bus.wvalid & bus.wlast):
                    m.next = "RESPONSE"
            with m.State("RESPONSE"):
                m.d.comb += [bus.bvalid.eq(1), bus.bresp.eq(self._resp)]
                if has_id:
                    m.d.comb += bus.bid.eq(write_id)
                with m.If(bus.bready):
                    m.next = "ADDRESS"

        with m.FSM(name="read"):
            with m.State("ADDRESS"):
                m.d.comb += bus.arready.eq(1)
                with m.If(bus.arvalid):
                    m.d.sync += beats_left.eq(bus.arlen)
                    if has_id:
                        m.d.sync += read_id.eq(bus.arid)
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [bus.rvalid.eq(1), bus.rresp.eq(self._resp), bus.rlast.eq(beats_left == 0)]
                if has_id:
                    m.d.comb += bus.rid.eq(read_id)
                with m.If(bus.rready):
                    m.d.sync += beats_left.eq(beats_left - 1)
                    with m.If(beats_left == 0):
                        m.next = "ADDRESS"
        return m


def _slice_channel(m, name: str, source, sink, channel: str) -> None:
    """Put a register slice on ``channel`` between two buses with the same fields."""
    payload_in = channel_payload(source, channel)
    slice_ = StreamRegisterSlice(len(payload_in))
    m.submodules[name] = slice_
    m.d.comb += [
        slice_.i.payload.eq(payload_in),
        slice_.i.valid.eq(getattr(source, channel + "valid")),
        getattr(source, channel + "ready").eq(slice_.i.ready),
        channel_payload(sink, channel).eq(slice_.o.payload),
        getattr(sink, channel + "valid").eq(slice_.o.valid),
        slice_.o.ready.eq(getattr(sink, channel + "ready")),
    ]


def _burst_is_illegal(payload, prefix: str, max_size: int):
    """Whether an AW/AR request breaks a burst rule (see the module docstring)."""
    addr, length, size, burst = (getattr(payload, prefix + f) for f in ("addr", "len", "size", "burst"))
    offset = (addr[:12] >> size) << size  # start within the 4 KiB page, aligned down to the beat size
    span = (length + 1) << size  # bytes the burst covers from there
    crosses = (burst == Burst.INCR) & ((offset + span) > 4096)
    wrap_length_bad = (burst == Burst.WRAP) & ~((length == 1) | (length == 3) | (length == 7) | (length == 15))
    fixed_too_long = (burst == Burst.FIXED) & (length > 15)
    beat_mask = (Const(1, 8) << size) - 1  # low address bits inside one beat
    wrap_unaligned = (burst == Burst.WRAP) & ((addr[:8] & beat_mask[:8]) != 0)
    return crosses | wrap_length_bad | wrap_unaligned | fixed_too_long | (burst == 0b11) | (size > max_size)


class AXI4Crossbar(wiring.Component):
    """AXI4 crossbar with round-robin arbitration, ID-based response routing and per-ID ordering.

    See the module docstring for the decode, arbitration and ordering rules, and ``docs/interconnect.md``.

    Parameters
    ----------
    masters : int
        N, the number of slave ports ``s0_axi`` .. ``s{N-1}_axi``, 1..8.
    address_map : list of (base, size), (base, size, ways, way) or (base, size, ways, way, granule)
        One window (or one way of an interleaved window) per master port ``m0_axi`` .. ``m{M-1}_axi``, 1..16 of them.
    addr_width, data_width, id_width, user_width : int
        Bus widths on the slave ports; master ports have ``id_width + ceil(log2(N))`` ID bits.
    max_outstanding : int
        Transactions each slave port may have outstanding per direction, 1..64.
    lookup_bits : int
        Low ID bits the ordering table is indexed by, 0..4 (IDs that share them are ordered together).
    register_slices : bool
        Put a register slice on every channel of every port (one cycle each way, cuts all paths).

    Members
    -------
    s{i}_axi : ``In(AXI4Signature(...))``
        Slave ports.
    m{j}_axi : ``Out(AXI4Signature(..., id_width=id_width + ceil(log2(N))))``
        Master ports.
    """

    def __init__(self, *, masters: int, address_map, addr_width: int = 32, data_width: int = 128,
                 id_width: int = 4, user_width: int = 0, max_outstanding: int = 8, lookup_bits: int = 2,
                 register_slices: bool = False):
        self.masters = XBAR_MASTERS.validate(masters)
        self.slave_signature = AXI4Signature(addr_width=addr_width, data_width=data_width, id_width=id_width,
                                             user_width=user_width)
        self.address_map = validate_address_map(address_map, addr_width)
        self.port_bits = _bits_for(masters)
        if id_width + self.port_bits > 16:
            raise ValueError(f"id_width {id_width} plus {self.port_bits} bits of port number exceeds the 16 "
                             f"ID bits the bus carries")
        self.master_signature = AXI4Signature(addr_width=addr_width, data_width=data_width,
                                              id_width=id_width + self.port_bits, user_width=user_width)
        self.max_outstanding = MAX_OUTSTANDING.validate(max_outstanding)
        self.lookup_bits = min(LOOKUP_BITS.validate(lookup_bits), id_width)
        if not isinstance(register_slices, bool):
            raise TypeError(f"register_slices must be True or False, not {register_slices!r}")
        self.register_slices = register_slices
        members = {f"s{i}_axi": In(self.slave_signature) for i in range(masters)}
        members.update({f"m{j}_axi": Out(self.master_signature) for j in range(len(self.address_map))})
        super().__init__(members)

    @property
    def slaves(self) -> int:
        return len(self.address_map)

    def elaborate(self, platform):
        m = Module()
        n = self.masters
        decerr, slverr = self.slaves, self.slaves + 1
        id_width = self.slave_signature.id_width
        max_size = (self.slave_signature.data_width // 8).bit_length() - 1

        # The buses the core works on: the ports themselves, or the far side of register slices.
        ports = [self._core_bus(m, f"s{i}", self.slave_signature, master_outside=True) for i in range(n)]
        target_buses = [self._core_bus(m, f"m{j}", self.master_signature, master_outside=False)
                        for j in range(self.slaves)]
        for index, resp in ((decerr, Resp.DECERR), (slverr, Resp.SLVERR)):
            name = "decode_error" if resp == Resp.DECERR else "burst_error"
            slave = AXI4ErrorSlave(self.master_signature, resp)
            m.submodules[name] = slave
            bus = self.master_signature.create(path=(name,))
            wiring.connect(m, bus, slave.s_axi)
            target_buses.append(bus)

        self._request_path(m, "aw", ports, target_buses, decerr, slverr, max_size, id_width, write=True)
        self._request_path(m, "ar", ports, target_buses, decerr, slverr, max_size, id_width, write=False)
        return m

    def _core_bus(self, m, name, signature, *, master_outside):
        """Port ``<name>_axi`` itself, or (with register slices) a bus joined to it by a slice per channel.

        ``master_outside``: the port faces a master (a slave port), so requests flow inwards.
        """
        outer = getattr(self, f"{name}_axi")
        if not self.register_slices:
            return outer
        inner = signature.create(path=(f"{name}_core",))
        for ch, is_request in (("aw", True), ("w", True), ("ar", True), ("b", False), ("r", False)):
            inwards = is_request == master_outside
            _slice_channel(m, f"{name}_{ch}_slice", *((outer, inner) if inwards else (inner, outer)), ch)
        return inner

    def _decode(self, m, bus, prefix, decerr, slverr, max_size, name):
        target = Signal(range(self.slaves + 2), name=f"{name}_target")
        addr = getattr(bus, prefix + "addr")
        with m.If(_burst_is_illegal(bus, prefix, max_size)):
            m.d.comb += target.eq(slverr)
        for j, (base, size, ways, way, granule) in enumerate(self.address_map):
            way_bits, shift = ways.bit_length() - 1, granule.bit_length() - 1
            on_way = addr[shift:shift + way_bits] == way if ways > 1 else 1
            with m.Elif(((addr & ~(size - 1)) == base) & on_way):
                m.d.comb += target.eq(j)
        with m.Else():
            m.d.comb += target.eq(decerr)
        return target

    def _request_path(self, m, prefix, ports, target_buses, decerr, slverr, max_size, id_width, *, write):
        """One direction: AW (+W, B) when ``write``, else AR (+R)."""
        n, targets = self.masters, len(target_buses)
        resp_ch = "b" if write else "r"
        lookup = 1 << self.lookup_bits
        count_shape = range(self.max_outstanding + 1)
        requests = [[Signal(name=f"{prefix}_req_s{i}_t{t}") for t in range(targets)] for i in range(n)]
        accepted = [[Signal(name=f"{prefix}_acc_s{i}_t{t}") for t in range(targets)] for i in range(n)]
        issued = []  # per port: (fire, target, table index)
        routes = []  # per port (writes only): FIFO of targets for its W beats

        # --- slave-port side: decode, ordering table, outstanding limit ----------------------------------
        for i, bus in enumerate(ports):
            name = f"s{i}_{prefix}"
            target = self._decode(m, bus, prefix, decerr, slverr, max_size, name)
            index = getattr(bus, prefix + "id")[:self.lookup_bits] if self.lookup_bits else 0
            counts = Array(Signal(count_shape, name=f"{name}_count{e}") for e in range(lookup))
            owners = Array(Signal(range(targets), name=f"{name}_owner{e}") for e in range(lookup))
            total = Signal(count_shape, name=f"{name}_outstanding")
            allowed = Signal(name=f"{name}_allowed")
            conditions = ((counts[index] == 0) | (owners[index] == target)) & (total < self.max_outstanding)
            if write:
                route = fifo.SyncFIFO(width=max(_bits_for(targets), 1), depth=self.max_outstanding)
                m.submodules[f"s{i}_w_route"] = route
                routes.append(route)
                conditions &= route.w_rdy  # room to remember where its W beats go
            m.d.comb += allowed.eq(conditions)
            fire = Signal(name=f"{name}_fire")
            m.d.comb += fire.eq(Cat(accepted[i]).any())
            m.d.comb += getattr(bus, prefix + "ready").eq(fire)
            for t in range(targets):
                m.d.comb += requests[i][t].eq(getattr(bus, prefix + "valid") & allowed & (target == t))
            if write:
                m.d.comb += [route.w_data.eq(target), route.w_en.eq(fire)]

            # The response side frees table entries; see below. Collect what it needs.
            done = Signal(name=f"{name}_done")
            done_index = Signal(range(lookup), name=f"{name}_done_index")
            for e in range(lookup):
                up = fire & (index == e)
                down = done & (done_index == e)
                m.d.sync += counts[e].eq(counts[e] + up - down)
                with m.If(up):
                    m.d.sync += owners[e].eq(target)
            m.d.sync += total.eq(total + fire - done)
            issued.append((done, done_index))

        # --- target side: round-robin over requesting ports ----------------------------------------------
        orders = []
        for t, tbus in enumerate(target_buses):
            arbiter = _RoundRobin(n)
            m.submodules[f"t{t}_{prefix}_arbiter"] = arbiter
            m.d.comb += arbiter.requests.eq(Cat(requests[i][t] for i in range(n)))
            room = 1
            if write:
                order = fifo.SyncFIFO(width=max(self.port_bits, 1), depth=self.max_outstanding)
                m.submodules[f"t{t}_w_order"] = order
                orders.append(order)
                room = order.w_rdy
            valid = arbiter.valid & room
            ready = getattr(tbus, prefix + "ready")
            m.d.comb += [
                getattr(tbus, prefix + "valid").eq(valid),
                arbiter.hold.eq(valid & ~ready),
                arbiter.advance.eq(valid & ready),
            ]
            with m.Switch(arbiter.grant):
                for i, bus in enumerate(ports):
                    with m.Case(i):
                        for field in bus.signature.fields(prefix):
                            value = getattr(bus, prefix + field)
                            if field == "id" and self.port_bits:
                                value = Cat(value, Const(i, self.port_bits))
                            m.d.comb += getattr(tbus, prefix + field).eq(value)
                        if "id" not in bus.signature.fields(prefix) and self.port_bits:
                            m.d.comb += getattr(tbus, prefix + "id").eq(i)
            for i in range(n):
                m.d.comb += accepted[i][t].eq(valid & ready & (arbiter.grant == i))
            if write:
                m.d.comb += [order.w_data.eq(arbiter.grant), order.w_en.eq(valid & ready)]

        # --- write data: each port's W beats to its AWs' targets, in each target's AW order --------------
        if write:
            for t, (tbus, order) in enumerate(zip(target_buses, orders)):
                with m.Switch(order.r_data):
                    for i, (bus, route) in enumerate(zip(ports, routes)):
                        with m.Case(i):
                            mine = order.r_rdy & route.r_rdy & (route.r_data == t)
                            for field in tbus.signature.fields("w"):
                                m.d.comb += getattr(tbus, "w" + field).eq(getattr(bus, "w" + field))
                            m.d.comb += tbus.wvalid.eq(mine & bus.wvalid)
                            beat = mine & bus.wvalid & tbus.wready
                            m.d.comb += order.r_en.eq(beat & bus.wlast)
            for i, (bus, route) in enumerate(zip(ports, routes)):
                with m.Switch(route.r_data):
                    for t, (tbus, order) in enumerate(zip(target_buses, orders)):
                        with m.Case(t):
                            mine = route.r_rdy & order.r_rdy & (order.r_data == i)
                            m.d.comb += bus.wready.eq(mine & tbus.wready)
                            m.d.comb += route.r_en.eq(mine & tbus.wready & bus.wvalid & bus.wlast)

        # --- responses: back to the port named in the ID's top bits ---------------------------------------
        for i, bus in enumerate(ports):
            arbiter = _RoundRobin(targets)
            m.submodules[f"s{i}_{resp_ch}_arbiter"] = arbiter
            for t, tbus in enumerate(target_buses):
                mine = getattr(tbus, resp_ch + "valid")
                if self.port_bits:
                    mine = mine & (getattr(tbus, resp_ch + "id")[id_width:] == i)
                m.d.comb += arbiter.requests[t].eq(mine)
            ready = getattr(bus, resp_ch + "ready")
            valid = arbiter.valid
            last = bus.rlast if not write else 1
            m.d.comb += [
                getattr(bus, resp_ch + "valid").eq(valid),
                # Re-arbitrate every beat: a port takes read data from several targets interleaved (by
                # ID), so targets that interleave their own read data cannot deadlock two ports.
                arbiter.hold.eq(valid & ~ready),
                arbiter.advance.eq(valid & ready),
            ]
            with m.Switch(arbiter.grant):
                for t, tbus in enumerate(target_buses):
                    with m.Case(t):
                        for field in bus.signature.fields(resp_ch):
                            m.d.comb += getattr(bus, resp_ch + field).eq(getattr(tbus, resp_ch + field))
            done, done_index = issued[i]
            response_id = getattr(bus, resp_ch + "id") if id_width else 0
            m.d.comb += [
                done.eq(valid & ready & last),
                done_index.eq(response_id[:self.lookup_bits] if self.lookup_bits else 0),
            ]
        for t, tbus in enumerate(target_buses):
            taken = []
            for i, bus in enumerate(ports):
                arbiter = m.submodules[f"s{i}_{resp_ch}_arbiter"]
                taken.append(arbiter.valid & (arbiter.grant == t) & getattr(bus, resp_ch + "ready"))
            m.d.comb += getattr(tbus, resp_ch + "ready").eq(Cat(taken).any())
