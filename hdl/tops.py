"""Blocks that can be generated on their own as Verilog tops (``trntile verilog --top NAME``).

Each entry names the block's parameters (from :mod:`trntile.hdl.params`) and a factory that builds it
from keyword arguments; the test runner and the command line both build designs through :func:`build`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from amaranth.lib import wiring

from . import params as p
from .act import ACT_LANE_MODULE, ACTBlock, act_lane_verilog
from .axi_crossbar import AXI4Crossbar
from .cluster import CLUSTER_DRAM_BYTES, DRAM_INTERLEAVE, DRAM_PORTS, TILES, Cluster, ClusterBench
from .csr import Field, RegisterBlock, RegisterMap
from .dma import DMABlock
from .fp import FP32Adder, FP32Multiplier, FP32Narrow, FPMultiplier
from .psum import PSUM, psum_partition_module, psum_partition_verilog
from .sbuf import SBUF, SBUF_BANK_MODULE, sbuf_bank_verilog
from .sbuf_axi import SBUFAXIBlock
from .sbuf_model import TensorEngineBlock
from .systolic import PE_MODULE, SystolicArray, pe_module, pe_row_module, pe_row_verilog, pe_verilog
from .stream import StreamFIFO, StreamReadySlice, StreamRegisterSlice
from .tile import Tile, TileBench

#: Window of each crossbar master port in a generated crossbar top: port j serves [j, j + 1) x this.
XBAR_WINDOW = 0x10000


def _crossbar(*, masters, slaves, data_width, id_width, max_outstanding, register_slices):
    return AXI4Crossbar(masters=masters, address_map=[(j * XBAR_WINDOW, XBAR_WINDOW) for j in range(slaves)],
                        addr_width=32, data_width=data_width, id_width=id_width,
                        max_outstanding=max_outstanding, register_slices=bool(register_slices))

__all__ = ["Top", "TOPS", "ALL_PARAMS", "get_top", "resolve_params", "build", "to_verilog", "shared_modules_in",
           "HIERARCHICAL_MODULES"]


@dataclasses.dataclass(frozen=True)
class Top:
    """A block that can be generated on its own: its name, one line saying what it is, its parameters, the
    factory that builds it, and optionally its *probes*: for given parameters, groups of internal signals
    (paths below the top) that a GTKWave save file shows first (:func:`trntile.sim.waves.write_gtkw`)."""

    name: str
    description: str
    params: tuple[p.Param, ...]
    factory: Callable[..., wiring.Component]
    probes: Callable[[dict], dict[str, list[str]]] | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.params)


def example_register_map() -> RegisterMap:
    """A register map with every field kind, a table, gaps, and fields across byte lanes (tests and docs use it)."""
    regs = RegisterMap()
    regs.add("ident", Field("magic", 16, "ro", const=0x7A7E), Field("version", 8, "ro", const=1),
             doc="identity: constants")
    regs.add("ctrl", Field("enable", 1, "rw"), Field("mode", 3, "rw", init=2),
             Field("threshold", 12, "rw", init=0x100, doc="crosses a byte lane"), doc="control")
    regs.add("status", Field("busy", 1, "ro"), Field("count", 16, "ro"), doc="status from the design")
    regs.add("irq", Field("done", 1, "w1c"), Field("error", 3, "w1c"), doc="events: write 1 to clear")
    regs.add("cmd", Field("start", 1, "pulse"), Field("spare", 7, "ro", const=0), Field("kick", 8, "pulse"),
             doc="commands: a write pulses the bits")
    regs.add("scratch", Field("value", 32, "rw", init=0x12345678), offset=0x20, doc="after a gap at 0x14..0x1c")
    regs.add_table("entry", Field("value", 20, "ro"), count=5, offset=0x40,
                   doc="a table: five registers read through one lookup port")
    return regs


def _tensor_engine_probes(params: dict, prefix: str = "engine.",
                          command_valid: str = "command__valid") -> dict[str, list[str]]:
    """The command stream, the skewed moving inputs of rows 0 and P - 1, the partial sums leaving column 0,
    and PSUM's write commands. ``command_valid`` is the command's valid where it is driven (the top's port,
    the tensor sequencer's): inside the engine, Amaranth may give the name ``command__valid`` to PSUM's
    command and rename the engine's own input port."""
    last = params["partitions"] - 1
    array = f"{prefix}array."
    return {
        "tensor: commands": [command_valid] + [f"{prefix}{name}" for name in ("command__ready", "check_busy", "idle",
                                                                              "error", "error_code")],
        "tensor: array rows 0 and P-1 (skewed)": [f"{array}row0_in", f"{array}row{last}_skew{last - 1}"],
        "tensor: column 0 partial sums": [f"{array}row0.pe_0_s_out", f"{array}row{last}.pe_0_s_out"],
        "tensor: PSUM writes": [f"{prefix}psum.command__valid", f"{prefix}psum.command__payload"],
    }


def _dma_probes(params: dict, engine: str = "engine.", *, signals: bool = True) -> dict[str, list[str]]:
    """The descriptors offered to each queue, the AXI4 read (AR, R) and write (AW, W, B) channels, and
    (``signals``) the semaphore increments, of the DMA engine at path ``engine``."""
    axi = f"{engine}m_axi__"
    probes = {
        "dma: descriptors": [f"{engine}queues__{q}__{name}" for q in range(params["queues"])
                             for name in ("valid", "ready")],
        "dma: AR and R": [axi + name for name in ("arvalid", "arready", "araddr", "arlen", "rvalid", "rready",
                                                   "rlast", "rresp")],
        "dma: AW, W and B": [axi + name for name in ("awvalid", "awready", "awaddr", "awlen", "wvalid", "wready",
                                                      "wlast", "bvalid", "bready", "bresp")],
    }
    if signals:
        probes["dma: semaphore increments"] = [f"{engine}signal__valid", f"{engine}signal__payload"]
    return probes


def _tile_probes(params: dict, prefix: str = "") -> dict[str, list[str]]:
    """Each engine's sequencer: PC, state, error, semaphore wait and instructions issued."""
    from .isa import engine_names

    return {f"sequencer {name}": [f"{prefix}sequencer_{name}.{signal}" for signal in
                                  ("pc", "state", "error", "waiting", "semaphore_index", "executed")]
            for name in engine_names(params["queues"])}


TOPS: dict[str, Top] = {top.name: top for top in [
    Top("stream_register_slice", "stream skid buffer: registered valid, payload and ready",
        (p.STREAM_WIDTH,), lambda *, width: StreamRegisterSlice(width)),
    Top("stream_ready_slice", "stream ready slice: registered ready, valid and payload passed through",
        (p.STREAM_WIDTH,), lambda *, width: StreamReadySlice(width)),
    Top("stream_fifo", "stream FIFO, full rate from depth 2, with an occupancy port",
        (p.STREAM_WIDTH, p.FIFO_DEPTH), lambda *, width, depth: StreamFIFO(width, depth=depth)),
    Top("axi_crossbar", "AXI4 crossbar, port j mapped at j x 64 KiB (64 KiB each), 32-bit addresses",
        (p.XBAR_MASTERS, p.XBAR_SLAVES, p.AXI_DATA_WIDTH, p.AXI_ID_WIDTH, p.MAX_OUTSTANDING, p.REGISTER_SLICES),
        _crossbar),
    Top("csr_example", "AXI4-Lite register block for example_register_map(): every field kind",
        (), lambda: RegisterBlock(example_register_map(), addr_width=8)),
    Top("fp32_adder", "binary32 adder, round to nearest even, subnormals kept (pipelined: 4 steps, as in ACT)",
        (), lambda: FP32Adder(pipelined=True)),
    Top("fp_multiplier", "bf16 / FP8 E4M3 / FP8 E5M2 product to binary32 (combinational)", (), FPMultiplier),
    Top("fp32_multiplier", "binary32 multiplier, round to nearest even, subnormals kept (pipelined: 3 steps, "
        "as in ACT)", (), lambda: FP32Multiplier(pipelined=True)),
    Top("fp_narrow", "binary32 to bf16 / FP8 E4M3 / FP8 E5M2 as ml_dtypes rounds it (pipelined: 2 steps, as in ACT)",
        (), lambda: FP32Narrow(pipelined=True)),
    Top("systolic_array", "P x P weight-stationary array: PEs, skew, double-buffered weights",
        (p.PARTITIONS, p.DTYPES, p.FP_CUTS), lambda **kwargs: SystolicArray(**kwargs)),
    Top("psum", "PSUM: P partitions x 8 banks x 4P words, overwrite or accumulate",
        (p.PARTITIONS, p.FP_CUTS), lambda **kwargs: PSUM(**kwargs)),
    Top("sbuf", "SBUF: P banks of bus words; a dedicated moving-read port and a round-robin shared port",
        (p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH),
        lambda *, partitions, sbuf_bytes, data_width: SBUF(partitions=partitions, sbuf_bytes=sbuf_bytes,
                                                             data_width=data_width)),
    Top("sbuf_axi", "AXI4 slave window onto a P-bank SBUF (flat addresses), with the SBUF's moving-read port",
        (p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH),
        lambda *, partitions, sbuf_bytes, data_width: SBUFAXIBlock(partitions=partitions, sbuf_bytes=sbuf_bytes,
                                                                     data_width=data_width)),
    Top("act", "ACT engine (P lanes: scale, bias, relu, cast) with its SBUF and a test-writable PSUM",
        (p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH, p.ACT_LANES), lambda **kwargs: ACTBlock(**kwargs)),
    Top("tensor_engine", "tensor engine (commands, array, PSUM) on a P-bank SBUF model with stall inputs",
        (p.PARTITIONS, p.SBUF_BYTES, p.SBUF_LATENCY, p.DTYPES, p.FP_CUTS), lambda **kwargs: TensorEngineBlock(**kwargs),
        _tensor_engine_probes),
    Top("dma", "DMA engine with its SBUF and a DRAM latency model on its AXI4 port",
        (p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH, p.DMA_QUEUES, p.DMA_OUTSTANDING, p.DRAM_BYTES),
        lambda **kwargs: DMABlock(**kwargs), _dma_probes),
    Top("tile", "the tile: tensor, ACT and DMA engines, SBUF, PSUM, sequencers, semaphores, host registers",
        (p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH, p.DMA_QUEUES, p.DMA_OUTSTANDING, p.DRAM_BYTES, p.SEMAPHORES,
         p.DTYPES, p.ACT_LANES, p.REGISTER_SLICES, p.FP_CUTS), lambda **kwargs: Tile(**kwargs),
        lambda params: {**_tile_probes(params),
                        **_tensor_engine_probes(params, "tensor.", "sequencer_tensor.command__valid"),
                        **_dma_probes(params, "dma.", signals=False)}),
    Top("tile_bench", "the tile with a DRAM latency model on its AXI4 master port (the tile tests' top)",
        (p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH, p.DMA_QUEUES, p.DMA_OUTSTANDING, p.DRAM_BYTES, p.SEMAPHORES,
         p.DTYPES, p.ACT_LANES, p.REGISTER_SLICES, p.FP_CUTS), lambda **kwargs: TileBench(**kwargs),
        lambda params: {**_tile_probes(params, "tile."),
                        **_tensor_engine_probes(params, "tile.tensor.", "tile.sequencer_tensor.command__valid"),
                        **_dma_probes(params, "tile.dma.", signals=False)}),
    Top("cluster", "T tiles sharing DRAM, each reaching the others' SBUF and semaphore windows; host registers of "
        "tile i at i x 4 KiB",
        (TILES, p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH, p.DMA_QUEUES, p.DMA_OUTSTANDING, CLUSTER_DRAM_BYTES,
         DRAM_PORTS, DRAM_INTERLEAVE, p.SEMAPHORES, p.DTYPES), lambda **kwargs: Cluster(**kwargs)),
    Top("cluster_bench", "the cluster with a DRAM latency model on each DRAM port (the cluster tests' top)",
        (TILES, p.PARTITIONS, p.SBUF_BYTES, p.AXI_DATA_WIDTH, p.DMA_QUEUES, p.DMA_OUTSTANDING, CLUSTER_DRAM_BYTES,
         DRAM_PORTS, DRAM_INTERLEAVE, p.SEMAPHORES, p.DTYPES), lambda **kwargs: ClusterBench(**kwargs),
        lambda params: {f"tile {t}: {name}": signals for t in range(params["tiles"])
                        for name, signals in _tile_probes(params, f"cluster.tile{t}.").items()}),
]}

#: Every parameter some top takes, by name (the command line offers each as an option).
ALL_PARAMS: dict[str, p.Param] = {p.PARTITIONS.name: p.PARTITIONS}
for _top in TOPS.values():
    for _param in _top.params:
        ALL_PARAMS.setdefault(_param.name, _param)


def get_top(name: str) -> Top:
    """The registered top called ``name``; ``ValueError`` naming the known tops otherwise."""
    try:
        return TOPS[name]
    except KeyError:
        raise ValueError(f"unknown top {name!r}; known tops: {', '.join(sorted(TOPS))}") from None


def resolve_params(top: Top, given: Mapping[str, object]) -> dict[str, int]:
    """Validate ``given`` against ``top`` and fill in defaults. Raises ``ValueError``/``TypeError``."""
    unknown = sorted(set(given) - set(top.param_names))
    if unknown:
        takes = ", ".join(top.param_names) or "no parameters"
        raise ValueError(f"top {top.name!r} has no parameter {unknown[0]!r} (it takes: {takes})")
    return {param.name: param.validate(given.get(param.name, param.default)) for param in top.params}


def build(name: str, **given) -> tuple[wiring.Component, dict[str, int]]:
    """Build top ``name`` with the given parameters; returns the component and every parameter used."""
    top = get_top(name)
    resolved = resolve_params(top, given)
    return top.factory(**resolved), resolved


#: Verilog modules that designs instantiate by name rather than elaborate inline, with their generators.
#: A name with fields stands for a family, one module per value of each field, which the generator takes
#: as a keyword: ``{p}`` for P (PSUM partition, PE row), ``{d}`` for the dtype mask of a PE built for some
#: formats only.
SHARED_MODULES: dict[str, Callable[..., str]] = {
    PE_MODULE: pe_verilog, pe_module("{d}"): lambda d: pe_verilog(d),
    pe_module("{d}", "{c}"): lambda d, c: pe_verilog(d, c),
    pe_row_module("{p}"): lambda p: pe_row_verilog(p), pe_row_module("{p}", "{d}"): lambda p, d: pe_row_verilog(p, d),
    pe_row_module("{p}", "{d}", "{c}"): lambda p, d, c: pe_row_verilog(p, d, c),
    SBUF_BANK_MODULE: sbuf_bank_verilog, ACT_LANE_MODULE: act_lane_verilog,
    psum_partition_module("{p}"): lambda p: psum_partition_verilog(p),
    psum_partition_module("{p}", floats=False): lambda p: psum_partition_verilog(p, floats=False),
    psum_partition_module("{p}", cuts="{c}"): lambda p, c: psum_partition_verilog(p, cuts=c)}

#: The shared modules worth verilating once as hierarchical blocks: many instances of real logic (a RAM
#: is simpler left to Verilator as it is). The array's rows are, and the PEs inside a row are not: a
#: hierarchical block costs its parent glue code per instance, which for P x P PEs outweighed the PE.
HIERARCHICAL_MODULES = (pe_row_module("{p}"), pe_row_module("{p}", "{d}"), pe_row_module("{p}", "{d}", "{c}"),
                        ACT_LANE_MODULE, psum_partition_module("{p}"), psum_partition_module("{p}", floats=False),
                        psum_partition_module("{p}", cuts="{c}"))


def _shared_module(name: str) -> tuple[str, Callable[[], str]] | None:
    """``(pattern, generator of its Verilog)`` if ``name`` is a shared module, else ``None``."""
    import re

    for pattern, generate in SHARED_MODULES.items():
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>\\d+)", re.escape(pattern))
        match = re.fullmatch(regex, name)
        if match:
            fields = {key: int(value) for key, value in match.groupdict().items()}
            return pattern, lambda: generate(**fields)
    return None


def shared_modules_in(verilog: str, *, hierarchical: bool = False) -> list[str]:
    """The shared modules (:data:`SHARED_MODULES`) that ``verilog`` instantiates; with ``hierarchical``,
    only those of :data:`HIERARCHICAL_MODULES`."""
    import re

    names = sorted(set(re.findall(r"^\s*(trntile_\w+) ", verilog, re.M)))
    found = [(name, _shared_module(name)) for name in names]
    return [name for name, shared in found
            if shared is not None and (not hierarchical or shared[0] in HIERARCHICAL_MODULES)]


def to_verilog(component: wiring.Component, name: str) -> str:
    """The Verilog of ``component`` as module ``name``, followed by every shared module it instantiates."""
    from amaranth.back import verilog

    text = verilog.convert(component, name=name)
    done, pending = set(), shared_modules_in(text)
    while pending:   # a shared module may instantiate another
        module = pending.pop()
        if module not in done:
            done.add(module)
            module_text = _shared_module(module)[1]()
            text += module_text
            pending += shared_modules_in(module_text)
    return text
