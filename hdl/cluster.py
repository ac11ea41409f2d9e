"""A cluster of T tiles sharing DRAM, each able to reach the others' SBUF (trntile's analogue of NeuronLink).

::

    host --AXI4-Lite--> demux --> tile 0 .. tile T-1 registers (tile i at i x 4 KiB)

    tile 0 m_axi --+                          +--> m_axi: shared DRAM, [0, dram_bytes)
    ...            +--> crossbar (T x (T+1)) -+--> tile 0 s_axi: its SBUF, at SBUF_WINDOWS + 0 x window
    tile T-1 m_axi +                          +--> ...        tile j at SBUF_WINDOWS + j x window

Every tile sees the same 32-bit address space: shared DRAM from 0, then, from :data:`SBUF_WINDOWS` (2 GiB),
each tile's SBUF as a flat window (byte ``partition x sbuf_bytes + offset``, see
:mod:`trntile.hdl.sbuf_axi`), ``window`` = the SBUF's size rounded up to a power of two. A DMA descriptor
whose DRAM side points into tile j's window reads or writes tile j's SBUF; an address that is in no window
gets DECERR, which stops the DMA queue (or the instruction fetch) with its error code, as in a tile alone.
Each tile is built with ``dram_bytes`` = 4 GiB, so its own checks let every address through to the
crossbar, which decides.

The host reaches tile i's registers at ``i x 4 KiB`` (:class:`AXI4LiteDemux`); an address beyond the last
tile answers DECERR.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, AXI4Signature, Resp
from .axi_crossbar import AXI4Crossbar, _bits_for
from .params import (AXI_DATA_WIDTH, DMA_OUTSTANDING, DMA_QUEUES, DTYPES, PARTITIONS, SBUF_BYTES, SEMAPHORES,
                     Param)
from .tile import REGISTER_ADDRESS_BITS, S_AXI_ID_WIDTH, Tile

__all__ = ["Cluster", "ClusterBench", "AXI4LiteDemux", "TILES", "CLUSTER_DRAM_BYTES", "SBUF_WINDOWS",
           "sbuf_window_bytes"]

#: Tiles in a cluster.
TILES = Param("tiles", default=4, minimum=1, maximum=8, help="tiles in the cluster")

#: The shared DRAM, from address 0.
CLUSTER_DRAM_BYTES = Param("dram_bytes", default=1 << 24, minimum=4096, maximum=1 << 31, power_of_two=True,
                           help="bytes of shared DRAM from address 0 (the SBUF windows start at 2 GiB)")

#: Where the tiles' SBUF windows start in every tile's address space.
SBUF_WINDOWS = 1 << 31

#: The tile's memory master's ID bits (instruction fetch or DMA, from the tile's own crossbar).
_TILE_M_ID_WIDTH = 2


def sbuf_window_bytes(partitions: int, sbuf_bytes: int) -> int:
    """The size of one tile's SBUF window: ``partitions x sbuf_bytes`` (both powers of two)."""
    return partitions * sbuf_bytes


def _connect_axi4(m: Module, master, slave, *, window_bits: int) -> None:
    """Connect AXI4 ``master`` to ``slave`` whose ID is at least as wide: IDs are zero-extended towards the
    slave and cut back towards the master (the upper bits are then zero, since the slave echoes them).
    Addresses keep their low ``window_bits``: the crossbar passes the full address on, and the slave serves
    its window from 0."""
    for name, member in master.signature.members.items():
        towards_slave = (member.flow == Out)
        source, sink = (master, slave) if towards_slave else (slave, master)
        value = getattr(source, name)
        target = getattr(sink, name)
        if name in ("awaddr", "araddr"):
            value = value[:window_bits]
        m.d.comb += target.eq(value if len(value) <= len(target) else value[:len(target)])


class AXI4LiteDemux(wiring.Component):
    """One AXI4-Lite slave port onto ``count`` master ports, each a ``2 ** port_bits``-byte window: port i
    serves ``[i << port_bits, (i + 1) << port_bits)`` and sees the address within its window.

    One write and one read at a time (a register interface needs no more): the demux takes an AW, sends it
    and its W to the port the address selects, and returns that port's B; likewise AR and R. A request
    beyond the last port is answered DECERR (a write's data is taken), so a bad address never hangs the bus.

    Parameters
    ----------
    count : int
        Master ports, 1..256.
    port_bits : int
        Address bits of each port's window.

    Members
    -------
    s_axil : ``In(AXI4LiteSignature(addr_width=port_bits + bits(count)))``
        The host's port.
    m{i}_axil : ``Out(AXI4LiteSignature(addr_width=port_bits))``
        Port i.
    """

    def __init__(self, *, count: int, port_bits: int):
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 256:
            raise ValueError(f"count must be an integer in 1..256, not {count!r}")
        self._count, self._port_bits = count, port_bits
        index_bits = max(1, _bits_for(count))
        members = {"s_axil": In(AXI4LiteSignature(addr_width=port_bits + index_bits))}
        members.update({f"m{i}_axil": Out(AXI4LiteSignature(addr_width=port_bits)) for i in range(count)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        host = self.s_axil
        ports = [getattr(self, f"m{i}_axil") for i in range(self._count)]
        bits = self._port_bits

        # ---- writes: AW taken, then AW and W forwarded (each until taken), then B returned ----------------
        w_busy, w_port, w_bad, aw_sent, w_sent = Signal(), Signal(range(self._count)), Signal(), Signal(), Signal()
        w_addr, w_prot = Signal(bits), Signal(3)
        b_valid, b_resp = Signal(), Signal(2)   # the DECERR answer of a bad write
        index = host.awaddr[bits:]
        m.d.comb += host.awready.eq(~w_busy)
        with m.If(host.awvalid & host.awready):
            m.d.sync += [w_busy.eq(1), w_addr.eq(host.awaddr[:bits]), w_prot.eq(host.awprot),
                         w_port.eq(Mux(index < self._count, index, 0)), w_bad.eq(index >= self._count),
                         aw_sent.eq(0), w_sent.eq(0)]
        for i, port in enumerate(ports):
            mine = w_busy & ~w_bad & (w_port == i)
            m.d.comb += [port.awaddr.eq(w_addr), port.awprot.eq(w_prot), port.awvalid.eq(mine & ~aw_sent),
                         port.wdata.eq(host.wdata), port.wstrb.eq(host.wstrb),
                         port.wvalid.eq(mine & ~w_sent & host.wvalid), port.bready.eq(mine & w_sent & host.bready)]
            with m.If(mine):
                with m.If(port.awvalid & port.awready):
                    m.d.sync += aw_sent.eq(1)
                with m.If(port.wvalid & port.wready):
                    m.d.sync += w_sent.eq(1)
        m.d.comb += host.wready.eq(w_busy & ~w_sent & Mux(w_bad, 1, _pick(w_port, [p.wready for p in ports])))
        with m.If(w_busy & w_bad & host.wvalid & host.wready):
            m.d.sync += [w_sent.eq(1), b_valid.eq(1), b_resp.eq(Resp.DECERR)]
        m.d.comb += [host.bvalid.eq(Mux(w_bad, b_valid, w_sent & _pick(w_port, [p.bvalid for p in ports]))),
                     host.bresp.eq(Mux(w_bad, b_resp, _pick(w_port, [p.bresp for p in ports])))]
        with m.If(host.bvalid & host.bready):
            m.d.sync += [w_busy.eq(0), b_valid.eq(0)]

        # ---- reads: AR taken, forwarded until taken, then R returned --------------------------------------
        r_busy, r_port, r_bad, ar_sent = Signal(), Signal(range(self._count)), Signal(), Signal()
        r_addr, r_prot = Signal(bits), Signal(3)
        index = host.araddr[bits:]
        m.d.comb += host.arready.eq(~r_busy)
        with m.If(host.arvalid & host.arready):
            m.d.sync += [r_busy.eq(1), r_addr.eq(host.araddr[:bits]), r_prot.eq(host.arprot),
                         r_port.eq(Mux(index < self._count, index, 0)), r_bad.eq(index >= self._count),
                         ar_sent.eq(0)]
        for i, port in enumerate(ports):
            mine = r_busy & ~r_bad & (r_port == i)
            m.d.comb += [port.araddr.eq(r_addr), port.arprot.eq(r_prot), port.arvalid.eq(mine & ~ar_sent),
                         port.rready.eq(mine & ar_sent & host.rready)]
            with m.If(mine & port.arvalid & port.arready):
                m.d.sync += ar_sent.eq(1)
        m.d.comb += [
            host.rvalid.eq(r_busy & Mux(r_bad, 1, ar_sent & _pick(r_port, [p.rvalid for p in ports]))),
            host.rdata.eq(Mux(r_bad, 0, _pick(r_port, [p.rdata for p in ports]))),
            host.rresp.eq(Mux(r_bad, Resp.DECERR, _pick(r_port, [p.rresp for p in ports]))),
        ]
        with m.If(host.rvalid & host.rready):
            m.d.sync += r_busy.eq(0)
        return m


def _pick(index, values):
    """``values[index]`` as a chain of muxes (``values[0]`` for an index beyond the list)."""
    result = values[0]
    for i, value in enumerate(values[1:], start=1):
        result = Mux(index == i, value, result)
    return result


class Cluster(wiring.Component):
    """T tiles sharing DRAM and reaching each other's SBUF (see the module docstring).

    Parameters
    ----------
    tiles : int
        T, 1..8.
    partitions, sbuf_bytes, data_width, queues, outstanding, semaphores, dtypes : int
        Every tile's (:class:`~trntile.hdl.tile.Tile`).
    dram_bytes : int
        The shared DRAM: a power of two in 4 KiB..2 GiB, from address 0.

    Members
    -------
    s_axil : ``In(AXI4LiteSignature(addr_width=12 + bits(T)))``
        The host: tile i's registers (:func:`~trntile.hdl.tile.tile_register_map`) at ``i x 4 KiB``.
    m_axi : ``Out(AXI4Signature(addr_width=32, data_width, id_width=2 + bits(T)))``
        Shared DRAM: the tiles' instruction fetches and DMA transfers below ``dram_bytes``.
    irq : ``Out(T)``
        Tile i's interrupt line on bit i.
    """

    def __init__(self, *, tiles: int = TILES.default, partitions: int = PARTITIONS.default,
                 sbuf_bytes: int = SBUF_BYTES.default, data_width: int = AXI_DATA_WIDTH.default,
                 queues: int = DMA_QUEUES.default, outstanding: int = DMA_OUTSTANDING.default,
                 dram_bytes: int = CLUSTER_DRAM_BYTES.default, semaphores: int = SEMAPHORES.default,
                 dtypes: int = DTYPES.default):
        self.params = {
            "tiles": TILES.validate(tiles), "partitions": PARTITIONS.validate(partitions),
            "sbuf_bytes": SBUF_BYTES.validate(sbuf_bytes), "data_width": AXI_DATA_WIDTH.validate(data_width),
            "queues": DMA_QUEUES.validate(queues), "outstanding": DMA_OUTSTANDING.validate(outstanding),
            "dram_bytes": CLUSTER_DRAM_BYTES.validate(dram_bytes), "semaphores": SEMAPHORES.validate(semaphores),
            "dtypes": DTYPES.validate(dtypes)}
        tile_bits = _bits_for(tiles)
        if _TILE_M_ID_WIDTH + tile_bits > S_AXI_ID_WIDTH:
            raise ValueError(f"tiles must be at most {1 << (S_AXI_ID_WIDTH - _TILE_M_ID_WIDTH)} with the tile's "
                             f"{S_AXI_ID_WIDTH}-bit SBUF window IDs, not {tiles}")
        self.window = sbuf_window_bytes(partitions, sbuf_bytes)
        self.address_map = [(0, dram_bytes)] + [(SBUF_WINDOWS + j * self.window, self.window) for j in range(tiles)]
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_width=REGISTER_ADDRESS_BITS + max(1, tile_bits))),
            "m_axi": Out(AXI4Signature(addr_width=32, data_width=data_width, id_width=_TILE_M_ID_WIDTH + tile_bits)),
            "irq": Out(tiles),
        })

    def elaborate(self, platform):
        m = Module()
        prm = self.params
        count = prm["tiles"]
        tile_params = {name: value for name, value in prm.items() if name not in ("tiles", "dram_bytes")}
        m.submodules.host = demux = AXI4LiteDemux(count=count, port_bits=REGISTER_ADDRESS_BITS)
        wiring.connect(m, wiring.flipped(self.s_axil), demux.s_axil)
        m.submodules.crossbar = crossbar = AXI4Crossbar(
            masters=count, address_map=self.address_map, addr_width=32, data_width=prm["data_width"],
            id_width=_TILE_M_ID_WIDTH, max_outstanding=16)
        wiring.connect(m, crossbar.m0_axi, wiring.flipped(self.m_axi))
        for i in range(count):
            tile = Tile(**tile_params, dram_bytes=1 << 32)
            m.submodules[f"tile{i}"] = tile
            wiring.connect(m, getattr(demux, f"m{i}_axil"), tile.s_axil)
            wiring.connect(m, tile.m_axi, getattr(crossbar, f"s{i}_axi"))
            _connect_axi4(m, getattr(crossbar, f"m{i + 1}_axi"), tile.s_axi, window_bits=self.window.bit_length() - 1)
            m.d.comb += self.irq[i].eq(tile.irq)
        return m


class ClusterBench(wiring.Component):
    """What the cluster's tests simulate (top ``cluster_bench``): a :class:`Cluster` whose ``m_axi`` goes
    through an :class:`~trntile.hdl.axi_latency.AXI4Latency` (run-time ``latency`` on AR and B) to the test's
    DRAM.

    Parameters
    ----------
    **params
        Those of :class:`Cluster`.

    Members
    -------
    s_axil, m_axi, irq
        The cluster's.
    latency : ``In(LATENCY_BITS)``
        DRAM latency in cycles.
    """

    def __init__(self, **params):
        from .axi_latency import LATENCY_BITS

        self._cluster = Cluster(**params)
        self.params = self._cluster.params
        members = dict(self._cluster.signature.members)
        members["latency"] = In(LATENCY_BITS)
        super().__init__(members)

    def elaborate(self, platform):
        from .axi_latency import AXI4Latency

        m = Module()
        m.submodules.cluster = cluster = self._cluster
        m.submodules.latency = latency = AXI4Latency(cluster.m_axi.signature, depth=16)
        wiring.connect(m, wiring.flipped(self.s_axil), cluster.s_axil)
        wiring.connect(m, cluster.m_axi, latency.s_axi)
        wiring.connect(m, latency.m_axi, wiring.flipped(self.m_axi))
        m.d.comb += [latency.latency.eq(self.latency), self.irq.eq(cluster.irq)]
        return m
