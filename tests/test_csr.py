# amaranth: UnusedElaboratable=no
"""AXI4-Lite register blocks: cocotb tests (trntile/tb/test_csr.py) on both simulators, and the map builder."""

import doctest

import pytest
from conftest import require_simulator, simulators

import trntile.hdl.csr
from trntile.hdl.csr import Field, RegisterBlock, RegisterMap
from trntile.hdl.tops import example_register_map
from trntile.sim.runner import run


@pytest.mark.parametrize("sim", simulators())
def test_register_block(sim):
    require_simulator(sim)
    run("csr_example", {}, "trntile.tb.test_csr", sim=sim)


def test_docstring_examples_run():
    result = doctest.testmod(trntile.hdl.csr)
    assert result.attempted > 0 and result.failed == 0


def test_description_places_fields_from_bit_0():
    described = {r["name"]: r for r in example_register_map().describe()}
    ctrl = {f["name"]: f for f in described["ctrl"]["fields"]}
    assert (ctrl["enable"]["lsb"], ctrl["mode"]["lsb"], ctrl["threshold"]["lsb"]) == (0, 1, 4)
    assert described["scratch"]["offset"] == 0x20
    assert [r["offset"] for r in described.values()] == sorted(r["offset"] for r in described.values())


def test_a_table_is_registers_one_word_apart_behind_one_port():
    regs = example_register_map()
    described = {r["name"]: r for r in regs.describe()}
    entries = [described[f"entry{i}"] for i in range(5)]
    assert [(r["offset"], r["table"], r["index"]) for r in entries] == [(0x40 + 4 * i, "entry", i) for i in range(5)]
    assert described["scratch"]["table"] is None
    block = RegisterBlock(regs, addr_width=8)
    assert block.entry.index.shape().width == 3 and block.entry.value.shape().width == 20
    assert not any(hasattr(block, f"entry{i}") for i in range(5)), "a table's registers have no ports of their own"
    partly_free = RegisterMap()
    partly_free.add("b", Field("x", 1, "rw"), offset=8)
    with pytest.raises(ValueError, match="t2 at 0x8 collides"):
        partly_free.add_table("t", Field("x", 8, "ro"), count=3, offset=0)
    assert [r.name for r in partly_free.registers] == ["b"], "a refused table adds none of its registers"


def test_markdown_has_a_row_per_field():
    regs = example_register_map()
    table = regs.markdown().splitlines()
    assert table[0].startswith("| offset | register |")
    assert len(table) == 2 + sum(len(r.fields) for r in regs.registers)
    assert "| 0x0004 | ctrl | 15:4 | threshold | rw | 0x100 |" in regs.markdown()


@pytest.mark.parametrize("build,message", [
    (lambda r: r.add("a", Field("x", 1, "rw")) or r.add("a", Field("y", 1, "rw")), "'a' is already in the map"),
    (lambda r: r.add("a", Field("x", 1, "rw"), offset=2), "offset 0x2 is not a multiple of 4"),
    (lambda r: r.add("a", Field("x", 1, "rw"), offset=0) or r.add("b", Field("y", 1, "rw"), offset=0),
     "offset 0x0 is taken by 'a'"),
    (lambda r: r.add("a", Field("x", 20, "rw"), Field("y", 20, "rw")), "fields take 40 bits, the bus has 32"),
    (lambda r: r.add("a"), "'a' has no fields"),
    (lambda r: r.add("a", Field("x", 1, "rw"), Field("x", 1, "ro")), "two fields with one name"),
    (lambda r: r.add("a", Field("x", 1, "magic")), "access must be one of ro, rw, w1c, pulse, not 'magic'"),
    (lambda r: r.add("a", Field("x", 0, "rw")), "width must be a positive integer, not 0"),
    (lambda r: r.add("a", Field("x", 4, "rw", init=16)), "init 16 does not fit in 4 bits"),
    (lambda r: r.add("a", Field("x", 4, "rw", const=1)), "only a read-only field can be a constant"),
    (lambda r: r.add("not a name", Field("x", 1, "rw")), "identifier"),
    (lambda r: r.add_table("t", Field("x", 8, "ro"), count=0), "table 't': count must be an integer in 1..4096, not 0"),
    (lambda r: r.add_table("t", Field("x", 8, "rw"), count=2), "its field must be a read-only field that is not a constant"),
    (lambda r: r.add_table("t", Field("x", 8, "ro", const=3), count=2), "read-only field that is not a constant"),
    (lambda r: r.add_table("t", Field("index", 8, "ro"), count=2), "cannot be called 'index'"),
    (lambda r: r.add("b", Field("x", 1, "rw"), offset=8) or r.add_table("t", Field("x", 8, "ro"), count=4, offset=0),
     "table 't': t2 at 0x8 collides with 'b'"),
    (lambda r: r.add_table("t", Field("x", 8, "ro"), count=2) or r.add_table("t", Field("x", 8, "ro"), count=2),
     "table 't': the name is already in the map"),
    (lambda r: r.add_table("t", Field("x", 8, "ro"), count=2) or r.add("t", Field("x", 8, "ro")),
     "register 't': a table has that name"),
])
def test_bad_maps_are_refused(build, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(RegisterMap())


def test_block_refuses_an_address_width_too_small():
    regs = RegisterMap()
    regs.add("far", Field("x", 1, "rw"), offset=0x100)
    with pytest.raises(ValueError, match=r"addr_width 8 cannot reach offset 0x100 \(needs 9\)"):
        RegisterBlock(regs, addr_width=8)
    assert RegisterBlock(regs).s_axil.awaddr.shape().width == 9
    with pytest.raises(TypeError, match="addr_width must be an integer, not '9'"):
        RegisterBlock(regs, addr_width="9")


def test_docs_show_the_current_example_map():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "interconnect.md").read_text()
    assert example_register_map().markdown() in doc, "docs/interconnect.md has an out-of-date register table"
