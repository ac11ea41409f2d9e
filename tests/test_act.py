# amaranth: UnusedElaboratable=no
"""The ACT engine: cocotb tests (trntile/tb/test_act.py) against the golden model, and its parameter checks."""

import pytest
from conftest import require_simulator

from trntile.hdl.act import ACTEngine
from trntile.sim.runner import run

CASES = [
    pytest.param({"partitions": 4, "sbuf_bytes": 2048, "data_width": 128}, "verilator",
                 marks=pytest.mark.verilator, id="P4-verilator"),
    pytest.param({"partitions": 8, "sbuf_bytes": 1024, "data_width": 512, "act_lanes": 2}, "verilator",
                 marks=pytest.mark.verilator, id="P8-512bit-2lanes-verilator"),
    pytest.param({"partitions": 4, "sbuf_bytes": 1024, "data_width": 32}, "icarus",
                 marks=pytest.mark.icarus, id="P4-icarus"),
]


@pytest.mark.parametrize("params,sim", CASES)
def test_act(params, sim):
    require_simulator(sim)
    run("act", params, "trntile.tb.test_act", sim=sim)


@pytest.mark.parametrize("given,message", [
    ({"partitions": 3}, r"partitions must be a power of two in 4\.\.128, not 3"),
    ({"sbuf_bytes": 512}, r"sbuf_bytes must be a power of two in 1024\.\.262144, not 512"),
    ({"act_lanes": 3}, r"act_lanes must be a power of two in 1\.\.128, not 3"),
])
def test_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        ACTEngine(**given)
