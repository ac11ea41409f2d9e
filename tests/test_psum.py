# amaranth: UnusedElaboratable=no
"""PSUM: cocotb tests (trntile/tb/test_psum.py), every word compared with a numpy model."""

import pytest
from conftest import require_simulator

from trntile.hdl.psum import PSUM
from trntile.sim.runner import run

CASES = [pytest.param(4, 0, "verilator", marks=pytest.mark.verilator, id="P4-verilator"),
         pytest.param(8, 0, "verilator", marks=pytest.mark.verilator, id="P8-verilator"),
         pytest.param(4, 1, "verilator", marks=pytest.mark.verilator, id="P4-cuts1-verilator"),
         pytest.param(4, 2, "verilator", marks=pytest.mark.verilator, id="P4-cuts2-verilator"),
         pytest.param(4, 0, "icarus", marks=pytest.mark.icarus, id="P4-icarus"),
         pytest.param(4, 1, "icarus", marks=pytest.mark.icarus, id="P4-cuts1-icarus")]


@pytest.mark.parametrize("partitions,fp_cuts,sim", CASES)
def test_psum(partitions, fp_cuts, sim):
    require_simulator(sim)
    run("psum", {"partitions": partitions, "fp_cuts": fp_cuts}, "trntile.tb.test_psum", sim=sim)


def test_partitions_are_checked():
    with pytest.raises(ValueError, match=r"partitions must be a power of two in 4\.\.128, not 6"):
        PSUM(partitions=6)
