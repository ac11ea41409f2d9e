# amaranth: UnusedElaboratable=no
"""The systolic array: cocotb tests (trntile/tb/test_systolic.py), bit for bit against golden.numerics.

P = 4 here; the tensor engine's tests run the array at P = 4, 8 and 16 inside the engine."""

import pytest
from conftest import require_simulator

from trntile.hdl.systolic import SystolicArray
from trntile.sim.runner import run

CASES = [pytest.param(4, 0, "verilator", marks=pytest.mark.verilator, id="P4-verilator"),
         pytest.param(4, 1, "verilator", marks=pytest.mark.verilator, id="P4-cuts1-verilator"),
         pytest.param(4, 2, "verilator", marks=pytest.mark.verilator, id="P4-cuts2-verilator"),
         pytest.param(4, 0, "icarus", marks=pytest.mark.icarus, id="P4-icarus")]


@pytest.mark.parametrize("partitions,fp_cuts,sim", CASES)
def test_systolic_array(partitions, fp_cuts, sim):
    require_simulator(sim)
    run("systolic_array", {"partitions": partitions, "fp_cuts": fp_cuts}, "trntile.tb.test_systolic", sim=sim)


@pytest.mark.parametrize("partitions,error", [(12, ValueError), (2, ValueError), (256, ValueError), ("4", TypeError)])
def test_partitions_are_checked(partitions, error):
    with pytest.raises(error, match=r"partitions must be a power of two in 4\.\.128"):
        SystolicArray(partitions=partitions)
