"""binary32 adder and bf16/FP8 multiplier, bit for bit against numpy (cocotb tests in trntile/tb/test_fp.py).

On Verilator the multiplier sees every pair of FP8 operands in both formats; Icarus runs a random quarter.
"""

import pytest
from conftest import require_simulator, simulators

from trntile.sim.runner import run


TESTS = {"fp32_adder": "adder_matches_numpy", "fp_multiplier": "multiplier_matches_numpy"}


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("top", sorted(TESTS))
def test_fp_unit(top, sim):
    require_simulator(sim)
    run(top, {}, "trntile.tb.test_fp", sim=sim, testcase=TESTS[top])
