# amaranth: UnusedElaboratable=no
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


@pytest.mark.parametrize("pipelined", [1, ("total", "rounded"), ["total"]])
def test_pipelined_names_steps_of_the_unit(pipelined):
    from trntile.hdl.fp import FP32Adder

    with pytest.raises(ValueError, match=r"pipelined must be True, False or a tuple of steps from \('ordered', "):
        FP32Adder(pipelined=pipelined)


def test_some_cuts_only():
    """A tuple of steps registers those only: the latency counts them, and ``advance`` exists."""
    from trntile.hdl.fp import FP32Adder

    adder = FP32Adder(pipelined=("total",))
    assert adder.latency == 1 and "advance" in adder.signature.members
    assert FP32Adder(pipelined=True).latency == len(FP32Adder.CUTS)
    assert FP32Adder().latency == 0 and "advance" not in FP32Adder().signature.members
