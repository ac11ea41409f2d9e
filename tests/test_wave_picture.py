"""docs/waves_skew.svg is what sim_scripts/wave_picture.py draws from a real simulation today."""

import pytest
from conftest import ROOT, require, require_simulator

from trntile.sim import toolchain, wave_picture

VCD = """$timescale 1ps $end
$scope module top $end
$var wire 1 ! clk $end
$scope module engine $end
$var wire 21 " row0_in [20:0] $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
0!
b0 "
#5000
1!
b10011111110000000 "
#10000
0!
b0 "
"""


def test_read_vcd_finds_signals_by_suffix_and_reads_their_changes():
    traces, paths = wave_picture.read_vcd(VCD, ["clk", "engine.row0_in"])
    assert paths == {"clk": "top.clk", "engine.row0_in": "top.engine.row0_in"}
    assert traces["clk"] == [(0, 0), (5000, 1), (10000, 0)]
    assert traces["engine.row0_in"] == [(0, 0), (5000, 0x13F80), (10000, 0)]
    assert wave_picture._vcd_ticks(VCD, 10) == 10_000


def test_read_vcd_names_a_missing_signal():
    with pytest.raises(ValueError, match="no signal called engine.row1_in"):
        wave_picture.read_vcd(VCD, ["clk", "engine.row1_in"])


@pytest.mark.icarus
def test_committed_picture_is_what_the_script_draws():
    require_simulator("icarus")
    require(toolchain.gtkwave())  # for fst2vcd
    drawn = wave_picture.picture("icarus")
    # What the picture must show: row k takes column 0's element (1 + 10 k) k cycles after row 0, and
    # column 0's partial sums grow 1, 12, 33, 64 down the rows.
    for text in (">row 3 in<", ">31<", ">1<", ">12<", ">33<", ">64<"):
        assert text in drawn, f"the picture lacks {text}"
    committed = (ROOT / "docs" / "waves_skew.svg").read_text()
    assert drawn == committed, "docs/waves_skew.svg is stale: run python -m trntile.sim.wave_picture"
