# amaranth: UnusedElaboratable=no
"""Combinational chains across blocks (trntile.sim.comb_paths, `trntile paths`): found on a design built to
have a known chain, and kept short in the FPGA build of the tile."""

import subprocess
import sys

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from conftest import require

from trntile.sim import toolchain
from trntile.sim.comb_paths import chains
from trntile.sim.runner import design

#: The most blocks a combinational chain of the P = 4 tile's FPGA build may pass through. Each block on a
#: chain is placed apart from the others, so routing, not logic, sets the clock (docs/fpga.md).
TILE_MOST_BLOCKS = 5
TILE_FPGA_BUILD = {"partitions": 4, "dtypes": 8, "act_lanes": 2, "register_slices": 1}


class _Stage(wiring.Component):
    """``o = i + 1``, through a register when ``registered``."""
    i: In(8)
    o: Out(8)

    def __init__(self, registered: bool):
        self._registered = registered
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        domain = m.d.sync if self._registered else m.d.comb
        domain += self.o.eq(self.i + 1)
        return m


class _Pipeline(wiring.Component):
    """A register, then stages ``first``, ``second``, ``third`` in a row, each through a register where
    ``registered`` says so, into a register."""
    i: In(8)
    o: Out(8)

    def __init__(self, registered: tuple[bool, bool, bool]):
        self._registered = registered
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        held = Signal(8)
        m.d.sync += held.eq(self.i)
        source = held
        for name, registered in zip(("first", "second", "third"), self._registered):
            stage = m.submodules[name] = _Stage(registered)
            m.d.comb += stage.i.eq(source)
            source = stage.o
        m.d.sync += self.o.eq(source)
        return m


@pytest.mark.fpga
def test_finds_the_chain_through_the_blocks():
    require(toolchain.fpga_tools())
    found = chains(verilog.convert(_Pipeline((False, False, False)), name="pipeline"), "pipeline")
    # from the register `held` through the three adders (and the top's reset multiplexer) into `o`
    assert (found[0].blocks, found[0].start, found[0].end) == (("first", "second", "third", "pipeline"), "held", "o")
    assert found[0].depth >= 3 * 3, found[0]   # three 8-bit adders


@pytest.mark.fpga
def test_a_register_cuts_the_chain():
    require(toolchain.fpga_tools())
    found = chains(verilog.convert(_Pipeline((False, True, False)), name="pipeline"), "pipeline")
    assert max(len(chain.blocks) for chain in found) == 2, found
    assert not any("first" in chain.blocks and "third" in chain.blocks for chain in found), found


class _Table(wiring.Component):
    """A memory with two asynchronous read ports (distributed RAM on an FPGA)."""
    address: In(4).array(2)
    data: Out(8).array(2)

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = Memory(shape=8, depth=16, init=range(16))
        for address, data in zip(self.address, self.data):
            read = storage.read_port(domain="comb")
            m.d.comb += [read.addr.eq(address), data.eq(read.data)]
        return m


class _Lookup(wiring.Component):
    """Registers ``a`` and ``b``; port 0 of ``table`` read at ``first``'s ``a + 1``, port 1 at ``b``; each
    port's data into a register of its own, ``o0`` and ``o1``."""
    i: In(8)
    o0: Out(8)
    o1: Out(8)

    def elaborate(self, platform):
        m = Module()
        a, b = Signal(8, name="a"), Signal(8, name="b")
        m.d.sync += [a.eq(self.i), b.eq(self.i)]
        first = m.submodules.first = _Stage(False)
        table = m.submodules.table = _Table()
        m.d.comb += [first.i.eq(a), table.address[0].eq(first.o), table.address[1].eq(b)]
        m.d.sync += [self.o0.eq(table.data[0]), self.o1.eq(table.data[1])]
        return m


@pytest.mark.fpga
def test_a_memory_read_port_is_a_block_of_its_own_path():
    """Each read port's address reaches only its own data, and the memory belongs to its block (broken on
    purpose, each fails this: every address taken to every port's data; the memory counted as the top's)."""
    require(toolchain.fpga_tools())
    found = {chain.end: (chain.blocks, chain.start) for chain in chains(verilog.convert(_Lookup(), name="lookup"),
                                                                        "lookup")}
    assert found["o0"] == (("first", "table", "lookup"), "a"), found
    assert found["o1"] == (("table", "lookup"), "b"), found
    assert set(found) == {"o0", "o1", "a", "b"}, found   # the read addresses end no chain


@pytest.mark.fpga
def test_tile_fpga_build_has_no_long_chain():
    """The tile as `trntile fpga` builds it: no register's input chain passes through more than
    TILE_MOST_BLOCKS blocks. A cut removed fails this: without the window's slice, chains through 7 blocks;
    with the watchdog's `fire` combinational, 6 (a semaphore update into every sequencer's state)."""
    require(toolchain.fpga_tools())
    found = chains(design("tile", TILE_FPGA_BUILD).verilog, "tile")
    too_long = [chain for chain in found if len(chain.blocks) > TILE_MOST_BLOCKS]
    assert not too_long, "chains through more than {} blocks:\n{}".format(
        TILE_MOST_BLOCKS, "\n".join(map(str, too_long[:10])))


@pytest.mark.fpga
def test_cli_lists_the_worst_chains():
    require(toolchain.fpga_tools())
    done = subprocess.run([sys.executable, "-m", "trntile", "paths", "--top", "stream_fifo", "--count", "3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("stream_fifo {") and len(lines) == 4, done.stdout
    assert all(" blocks, depth " in line and " -> " in line for line in lines[1:]), done.stdout


def test_cli_refuses_a_bad_count():
    done = subprocess.run([sys.executable, "-m", "trntile", "paths", "--top", "tensor_engine", "--count", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "--count: count must be at least 1, not 0" in done.stderr, done.stderr
