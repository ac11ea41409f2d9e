# amaranth: UnusedElaboratable=no
"""The AXI4 crossbar: cocotb tests (trntile/tb/test_axi_crossbar.py) over the (N, M) sweep, and its
parameter checks."""

import pytest
from conftest import require_simulator, simulators

from trntile.hdl.axi_crossbar import AXI4Crossbar
from trntile.sim.runner import run

DEFAULTS = {"data_width": 128, "id_width": 4, "max_outstanding": 8, "register_slices": 0}

# The sweep on Verilator, (2, 2) on Icarus, and one more: register slices on every channel,
# a 32-bit bus, a 1-bit ID (cocotbext-axi needs ID signals), three masters.
SWEEP = [(1, 1), (1, 4), (4, 1), (2, 2), (4, 4)]
CASES = [pytest.param({"masters": n, "slaves": m}, "verilator", marks=pytest.mark.verilator, id=f"{n}x{m}-verilator")
         for n, m in SWEEP]
CASES.append(pytest.param({"masters": 2, "slaves": 2}, "icarus", marks=pytest.mark.icarus, id="2x2-icarus"))
CASES.append(pytest.param({"masters": 3, "slaves": 2, "data_width": 32, "id_width": 1, "register_slices": 1},
                          "verilator", marks=pytest.mark.verilator, id="3x2-slices-32bit-verilator"))


@pytest.mark.parametrize("params,sim", CASES)
def test_crossbar(params, sim):
    require_simulator(sim)
    run("axi_crossbar", {**DEFAULTS, **params}, "trntile.tb.test_axi_crossbar", sim=sim)


@pytest.mark.parametrize("address_map,message", [
    ([(0x0, 0x1000), (0x800, 0x1000)], r"address_map\[1\] = \(0x800, 0x1000\): base must be a multiple"),
    ([(0x0, 0x2000), (0x1000, 0x1000)], r"address_map\[1\] = \(0x1000, 0x1000\) overlaps address_map\[0\]"),
    ([(0x0, 0x800)], r"address_map\[0\] = \(0x0, 0x800\): size must be a power of two of at least 0x1000"),
    ([(0x0, 0x3000)], r"address_map\[0\] = \(0x0, 0x3000\): size must be a power of two"),
    ([(0xFFFF_F000, 0x2000)], r"base must be a multiple|does not fit"),
    ([], r"1\.\.16 entries"),
    ([(0x1000 * k, 0x1000) for k in range(17)], r"1\.\.16 entries"),
])
def test_bad_address_map(address_map, message):
    with pytest.raises(ValueError, match=message):
        AXI4Crossbar(masters=2, address_map=address_map)


def test_bad_address_map_entry_type():
    with pytest.raises(TypeError, match=r"address_map\[0\] must be a \(base, size\) pair"):
        AXI4Crossbar(masters=1, address_map=[(0, 0x1000, 5)])


@pytest.mark.parametrize("kwargs,error,message", [
    ({"masters": 0}, ValueError, r"masters must be an integer in 1\.\.8, not 0"),
    ({"masters": 9}, ValueError, r"masters must be an integer in 1\.\.8, not 9"),
    ({"masters": "2"}, TypeError, r"masters must be an integer"),
    ({"masters": 2, "data_width": 48}, ValueError, r"data_width must be a power of two in 8\.\.1024, not 48"),
    ({"masters": 2, "id_width": 16}, ValueError, r"id_width 16 plus 1 bits of port number exceeds"),
    ({"masters": 2, "max_outstanding": 0}, ValueError, r"max_outstanding must be an integer in 1\.\.64, not 0"),
    ({"masters": 2, "register_slices": 1}, TypeError, r"register_slices must be True or False, not 1"),
])
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        AXI4Crossbar(address_map=[(0, 0x1000)], **kwargs)


def test_ports_follow_the_naming_convention():
    xbar = AXI4Crossbar(masters=3, address_map=[(0, 0x1000), (0x10000, 0x10000)], id_width=2)
    names = {"__".join(path) for path, _, _ in xbar.signature.flatten(xbar)}
    assert {"s0_axi__awaddr", "s2_axi__rready", "m1_axi__wdata", "m0_axi__bid"} <= names
    assert not any(name.startswith(("s3_", "m2_")) for name in names)
    assert xbar.m0_axi.awid.shape().width == 2 + 2  # master ID plus two bits of port number


@pytest.mark.parametrize("sim", simulators())
def test_protocol_checker_catches_violations(sim):
    """The checker, attached to every AXI test, reports each kind of violation it claims to."""
    require_simulator(sim)
    run("axi_crossbar", {**DEFAULTS, "masters": 2, "slaves": 2}, "trntile.tb.test_axi_checker", sim=sim)
