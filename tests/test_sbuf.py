# amaranth: UnusedElaboratable=no
"""The SBUF: cocotb tests (trntile/tb/test_sbuf.py) against a numpy mirror, and its parameter checks."""

import pytest
from conftest import require_simulator

from trntile.hdl.sbuf import SBUF
from trntile.sim.runner import run

CASES = [pytest.param(4, 128, "verilator", marks=pytest.mark.verilator, id="P4-128bit-verilator"),
         pytest.param(8, 512, "verilator", marks=pytest.mark.verilator, id="P8-512bit-verilator"),
         pytest.param(4, 32, "icarus", marks=pytest.mark.icarus, id="P4-32bit-icarus")]


@pytest.mark.parametrize("partitions,data_width,sim", CASES)
def test_sbuf(partitions, data_width, sim):
    require_simulator(sim)
    run("sbuf", {"partitions": partitions, "sbuf_bytes": 1024, "data_width": data_width}, "trntile.tb.test_sbuf",
        sim=sim)


@pytest.mark.parametrize("given,error,message", [
    ({"partitions": 6}, ValueError, r"partitions must be a power of two in 4\.\.128, not 6"),
    ({"data_width": 100}, ValueError, r"data_width must be a power of two in 32\.\.512, not 100"),
    ({"sbuf_bytes": 1 << 19}, ValueError, r"sbuf_bytes must be a power of two in 1024\.\.262144"),
])
def test_parameters_are_checked(given, error, message):
    with pytest.raises(error, match=message):
        SBUF(**given)
