# amaranth: UnusedElaboratable=no
"""The AXI4 window onto the SBUF: cocotb tests (trntile/tb/test_sbuf_axi.py) against a flat byte model, and
its parameter checks."""

import pytest
from conftest import require_simulator

from trntile.hdl.sbuf_axi import SBUFAXISlave
from trntile.sim.runner import run

CASES = [
    pytest.param({"partitions": 4, "sbuf_bytes": 1024, "data_width": 128}, "verilator",
                 marks=pytest.mark.verilator, id="P4-1KiB-128bit-verilator"),
    pytest.param({"partitions": 4, "sbuf_bytes": 1024, "data_width": 32}, "icarus",
                 marks=pytest.mark.icarus, id="P4-1KiB-32bit-icarus"),
]


@pytest.mark.parametrize("params,sim", CASES)
def test_sbuf_axi(params, sim):
    require_simulator(sim)
    run("sbuf_axi", params, "trntile.tb.test_sbuf_axi", sim=sim)


@pytest.mark.parametrize("given,error,message", [
    ({"partitions": 6}, ValueError, r"partitions must be a power of two in 4\.\.128, not 6"),
    ({"sbuf_bytes": 512}, ValueError, r"sbuf_bytes must be a power of two in 1024\.\.262144, not 512"),
    ({"data_width": 48}, ValueError, r"data_width must be a power of two in 32\.\.512, not 48"),
    ({"id_width": 9}, ValueError, r"id_width must be an integer in 0\.\.8, not 9"),
    ({"partitions": 4.0}, TypeError, r"partitions must be a power of two in 4\.\.128, not 4\.0"),
])
def test_parameters_are_checked(given, error, message):
    with pytest.raises(error, match=message):
        SBUFAXISlave(**given)


def test_window_and_members():
    slave = SBUFAXISlave(partitions=8, sbuf_bytes=2048, data_width=64, id_width=0)
    assert slave.window_bytes == 8 * 2048
    assert (slave.partitions, slave.sbuf_bytes, slave.data_width, slave.id_width) == (8, 2048, 64, 0)
    members = slave.signature.members
    assert set(members) == {"s_axi", "sbuf", "reads", "writes", "errors"}
    assert "awid" not in members["s_axi"].signature.members
