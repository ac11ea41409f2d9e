"""binary32 adder and multiplier, bf16/FP8 multiplier and binary32 narrowing, bit for bit against numpy and
ml_dtypes (cocotb tests in trntile/tb/test_fp.py).

On Verilator the multiplier sees every pair of FP8 operands in both formats, and the narrowing the
neighbourhood of every finite value of each target format; Icarus runs a random quarter of the FP8 pairs
and a sixteenth of the bf16 values.
"""

import pytest
from conftest import require_simulator, simulators

from trntile.sim.runner import run


TESTS = {"fp32_adder": "adder_matches_numpy", "fp_multiplier": "multiplier_matches_numpy",
         "fp32_multiplier": "fp32_multiplier_matches_numpy", "fp_narrow": "narrow_matches_ml_dtypes"}


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("top", sorted(TESTS))
def test_fp_unit(top, sim):
    require_simulator(sim)
    run(top, {}, "trntile.tb.test_fp", sim=sim, testcase=TESTS[top])
