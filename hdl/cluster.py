"""A cluster of T tiles sharing DRAM, each able to reach the others' SBUF and semaphores (trntile's analogue
of NeuronLink).

::

    host --AXI4-Lite--> demux --> tile 0 .. tile T-1 registers (tile i at i x 4 KiB)

    tile 0 m_axi --+                                +--> m0_axi .. m{D-1}_axi: shared DRAM, [0, dram_bytes),
    ...            +--> crossbar (T x (D + T)) -----+    4 KiB pages interleaved over the D ports
    tile T-1 m_axi +                                +--> tile j s_axi: its window, at TILE_WINDOWS + j x window

Every tile sees the same 32-bit address space: shared DRAM from 0, then, from :data:`TILE_WINDOWS` (2 GiB),
each tile's window (:attr:`~trntile.hdl.tile.Tile.window_bytes`, 2 x P x ``sbuf_bytes``): its SBUF, flat
(byte ``partition x sbuf_bytes + offset``, see :mod:`trntile.hdl.sbuf_axi`), then its semaphore window
(:mod:`trntile.hdl.semaphore_window`: a 4-byte write of ``v`` at ``+ 4 i`` adds ``v`` to semaphore i). A DMA
descriptor whose DRAM side points into tile j's window reads or writes tile j's SBUF, or signals tile j; an
address that is in no window gets DECERR, which stops the DMA queue (or the instruction fetch) with its
error code, as in a tile alone. Each tile is built with ``dram_bytes`` = 4 GiB, so its own checks let every
address through to the crossbar, which decides.

With D > 1 DRAM ports, DRAM block n (``dram_interleave`` bytes, 4 KiB by default) is on port ``n mod D``;
each port sees full addresses.

The host reaches tile i's registers at ``i x 4 KiB`` (:class:`AXI4LiteDemux`); an address beyond the last
tile answers DECERR.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, AXI4Signature, Resp, connect_axi4, pick
from .axi_crossbar import INTERLEAVE_BYTES, AXI4Crossbar, _bits_for
from .params import (AXI_DATA_WIDTH, DMA_OUTSTANDING, DMA_QUEUES, DTYPES, PARTITIONS, SBUF_BYTES, SEMAPHORES,
                     Param)
from .tile import REGISTER_ADDRESS_BITS, S_AXI_ID_WIDTH, Tile

__all__ = ["Cluster", "ClusterBench", "AXI4LiteDemux", "TILES", "CLUSTER_DRAM_BYTES", "DRAM_PORTS", "DRAM_INTERLEAVE",
           "TILE_WINDOWS", "tile_window_bytes", "sbuf_window_address", "semaphore_address"]

#: Tiles in a cluster.
TILES = Param("tiles", default=4, minimum=1, maximum=8, help="tiles in the cluster")

#: The shared DRAM, from address 0.
CLUSTER_DRAM_BYTES = Param("dram_bytes", default=1 << 24, minimum=4096, maximum=1 << 31, power_of_two=True,
                           help="bytes of shared DRAM from address 0 (the SBUF windows start at 2 GiB)")

#: The shared DRAM's AXI4 ports, its 4 KiB pages interleaved over them.
DRAM_PORTS = Param("dram_ports", default=1, minimum=1, maximum=8, power_of_two=True,
                   help="AXI4 ports to the shared DRAM, 4 KiB pages interleaved over them")

#: The interleaving granule of the DRAM ports.
DRAM_INTERLEAVE = Param("dram_interleave", default=4096, minimum=4096, maximum=1 << 30, power_of_two=True,
                        help="bytes of DRAM on one port before the next (4 KiB pages by default)")

#: Where the tiles' windows start in every tile's address space.
TILE_WINDOWS = 1 << 31

#: The tile's memory master's ID bits (instruction fetch or DMA, from the tile's own crossbar).
_TILE_M_ID_WIDTH = 2


def tile_window_bytes(partitions: int, sbuf_bytes: int) -> int:
    """The size of one tile's window: its SBUF (``partitions x sbuf_bytes``), then as much again, which starts
    with its semaphore window."""
    return 2 * partitions * sbuf_bytes


def sbuf_window_address(tile: int, partitions: int, sbuf_bytes: int) -> int:
    """Where tile ``tile``'s SBUF (flat) starts in every tile's address space."""
    return TILE_WINDOWS + tile * tile_window_bytes(partitions, sbuf_bytes)


def semaphore_address(tile: int, semaphore: int, partitions: int, sbuf_bytes: int) -> int:
    """The address a 4-byte write goes to, to add to semaphore ``semaphore`` of tile ``tile``."""
    return sbuf_window_address(tile, partitions, sbuf_bytes) + partitions * sbuf_bytes + 4 * semaphore


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
        m.d.comb += host.wready.eq(w_busy & ~w_sent & Mux(w_bad, 1, pick(w_port, [p.wready for p in ports])))
        with m.If(w_busy & w_bad & host.wvalid & host.wready):
            m.d.sync += [w_sent.eq(1), b_valid.eq(1), b_resp.eq(Resp.DECERR)]
        m.d.comb += [host.bvalid.eq(Mux(w_bad, b_valid, w_sent & pick(w_port, [p.bvalid for p in ports]))),
                     host.bresp.eq(Mux(w_bad, b_resp, pick(w_port, [p.bresp for p in ports])))]
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
            host.rvalid.eq(r_busy & Mux(r_bad, 1, ar_sent & pick(r_port, [p.rvalid for p in ports]))),
            host.rdata.eq(Mux(r_bad, 0, pick(r_port, [p.rdata for p in ports]))),
            host.rresp.eq(Mux(r_bad, Resp.DECERR, pick(r_port, [p.rresp for p in ports]))),
        ]
        with m.If(host.rvalid & host.rready):
            m.d.sync += r_busy.eq(0)
        return m


class Cluster(wiring.Component):
    """T tiles sharing DRAM and reaching each other's SBUF and semaphores (see the module docstring).

    Parameters
    ----------
    tiles : int
        T, 1..8.
    partitions, sbuf_bytes, data_width, queues, outstanding, semaphores, dtypes : int
        Every tile's (:class:`~trntile.hdl.tile.Tile`).
    dram_bytes : int
        The shared DRAM: a power of two in 4 KiB..2 GiB, from address 0.
    dram_ports : int
        D, the DRAM's AXI4 ports (1, 2, 4 or 8), interleaved.
    dram_interleave : int
        Bytes of DRAM on one port before the next: block n of ``dram_interleave`` bytes is on port n mod D
        (4 KiB, the default, up to ``dram_bytes / D``, where each port serves one contiguous slice).

    Members
    -------
    s_axil : ``In(AXI4LiteSignature(addr_width=12 + bits(T)))``
        The host: tile i's registers (:func:`~trntile.hdl.tile.tile_register_map`) at ``i x 4 KiB``.
    m{d}_axi : ``Out(AXI4Signature(addr_width=32, data_width, id_width=2 + bits(T)))``
        Shared DRAM port d: the tiles' instruction fetches and DMA transfers to the pages below
        ``dram_bytes`` whose page number modulo D is d (full addresses).
    irq : ``Out(T)``
        Tile i's interrupt line on bit i.
    """

    def __init__(self, *, tiles: int = TILES.default, partitions: int = PARTITIONS.default,
                 sbuf_bytes: int = SBUF_BYTES.default, data_width: int = AXI_DATA_WIDTH.default,
                 queues: int = DMA_QUEUES.default, outstanding: int = DMA_OUTSTANDING.default,
                 dram_bytes: int = CLUSTER_DRAM_BYTES.default, dram_ports: int = DRAM_PORTS.default,
                 dram_interleave: int = DRAM_INTERLEAVE.default, semaphores: int = SEMAPHORES.default,
                 dtypes: int = DTYPES.default):
        self.params = {
            "tiles": TILES.validate(tiles), "partitions": PARTITIONS.validate(partitions),
            "sbuf_bytes": SBUF_BYTES.validate(sbuf_bytes), "data_width": AXI_DATA_WIDTH.validate(data_width),
            "queues": DMA_QUEUES.validate(queues), "outstanding": DMA_OUTSTANDING.validate(outstanding),
            "dram_bytes": CLUSTER_DRAM_BYTES.validate(dram_bytes), "dram_ports": DRAM_PORTS.validate(dram_ports),
            "dram_interleave": DRAM_INTERLEAVE.validate(dram_interleave),
            "semaphores": SEMAPHORES.validate(semaphores), "dtypes": DTYPES.validate(dtypes)}
        tile_bits = _bits_for(tiles)
        if _TILE_M_ID_WIDTH + tile_bits > S_AXI_ID_WIDTH:
            raise ValueError(f"tiles must be at most {1 << (S_AXI_ID_WIDTH - _TILE_M_ID_WIDTH)} with the tile's "
                             f"{S_AXI_ID_WIDTH}-bit SBUF window IDs, not {tiles}")
        if dram_ports * INTERLEAVE_BYTES > dram_bytes:
            raise ValueError(f"dram_ports must be at most dram_bytes / 4 KiB ({dram_bytes // INTERLEAVE_BYTES}) "
                             f"so that every port has a page, not {dram_ports}")
        if dram_ports * dram_interleave > dram_bytes:
            raise ValueError(f"dram_interleave must be at most dram_bytes / dram_ports "
                             f"({dram_bytes // dram_ports:#x}), not {dram_interleave:#x}")
        self.window = tile_window_bytes(partitions, sbuf_bytes)
        dram = ([(0, dram_bytes)] if dram_ports == 1
                else [(0, dram_bytes, dram_ports, d, dram_interleave) for d in range(dram_ports)])
        self.address_map = dram + [(TILE_WINDOWS + j * self.window, self.window) for j in range(tiles)]
        members = {"s_axil": In(AXI4LiteSignature(addr_width=REGISTER_ADDRESS_BITS + max(1, tile_bits)))}
        members.update({f"m{d}_axi": Out(AXI4Signature(addr_width=32, data_width=data_width,
                                                       id_width=_TILE_M_ID_WIDTH + tile_bits))
                        for d in range(dram_ports)})
        members["irq"] = Out(tiles)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        prm = self.params
        count, ports = prm["tiles"], prm["dram_ports"]
        tile_params = {name: value for name, value in prm.items()
                       if name not in ("tiles", "dram_bytes", "dram_ports", "dram_interleave")}
        m.submodules.host = demux = AXI4LiteDemux(count=count, port_bits=REGISTER_ADDRESS_BITS)
        wiring.connect(m, wiring.flipped(self.s_axil), demux.s_axil)
        m.submodules.crossbar = crossbar = AXI4Crossbar(
            masters=count, address_map=self.address_map, addr_width=32, data_width=prm["data_width"],
            id_width=_TILE_M_ID_WIDTH, max_outstanding=16)
        for d in range(ports):
            wiring.connect(m, getattr(crossbar, f"m{d}_axi"), wiring.flipped(getattr(self, f"m{d}_axi")))
        for i in range(count):
            tile = Tile(**tile_params, dram_bytes=1 << 32)
            m.submodules[f"tile{i}"] = tile
            wiring.connect(m, getattr(demux, f"m{i}_axil"), tile.s_axil)
            wiring.connect(m, tile.m_axi, getattr(crossbar, f"s{i}_axi"))
            connect_axi4(m, getattr(crossbar, f"m{ports + i}_axi"), tile.s_axi,
                         window_bits=self.window.bit_length() - 1)
            m.d.comb += self.irq[i].eq(tile.irq)
        return m


class ClusterBench(wiring.Component):
    """What the cluster's tests simulate (top ``cluster_bench``): a :class:`Cluster` whose DRAM ports each go
    through an :class:`~trntile.hdl.axi_latency.AXI4Latency` (run-time ``latency`` on AR and B, the same for
    all) to the test's DRAM.

    Parameters
    ----------
    **params
        Those of :class:`Cluster`.

    Members
    -------
    s_axil, m{d}_axi, irq
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
        wiring.connect(m, wiring.flipped(self.s_axil), cluster.s_axil)
        for d in range(self.params["dram_ports"]):
            port = getattr(cluster, f"m{d}_axi")
            m.submodules[f"latency{d}"] = latency = AXI4Latency(port.signature, depth=16)
            wiring.connect(m, port, latency.s_axi)
            wiring.connect(m, latency.m_axi, wiring.flipped(getattr(self, f"m{d}_axi")))
            m.d.comb += latency.latency.eq(self.latency)
        m.d.comb += self.irq.eq(cluster.irq)
        return m
