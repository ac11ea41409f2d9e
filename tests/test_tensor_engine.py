# amaranth: UnusedElaboratable=no
"""The tensor engine: cocotb tests (trntile/tb/test_tensor_engine.py) on Verilator for P = 4 and 16 and
on Icarus for P = 4, bit for bit against golden.tensor_engine; and its parameter and encoding checks.
(P = 8 went when the tile's tests arrived, for the suite's time: P = 4 and 16 bracket it.)"""

import pytest
from conftest import require_simulator

from trntile.golden.tensor_engine import AccessPattern, LoadStationary, MultiplyMoving
from trntile.hdl.sbuf_model import TEST_SBUF_BYTES
from trntile.hdl.tensor_engine import TensorEngine, encode_command
from trntile.sim.runner import run

# The SBUF model answers in 1 cycle unless said otherwise; with latency 4 up to 5 reads per port are
# outstanding, which exercises the engine's tag queue (the real SBUF is slower than the model).
# fp_cuts = 1 and 2 (registers inside the float units, for FPGAs) run at P = 4.
CASES = [pytest.param(4, 1, 0, "verilator", marks=pytest.mark.verilator, id="P4-verilator"),
         pytest.param(4, 4, 0, "verilator", marks=pytest.mark.verilator, id="P4-latency4-verilator"),
         pytest.param(4, 1, 1, "verilator", marks=pytest.mark.verilator, id="P4-cuts1-verilator"),
         pytest.param(4, 1, 2, "verilator", marks=pytest.mark.verilator, id="P4-cuts2-verilator"),
         pytest.param(16, 1, 0, "verilator", marks=pytest.mark.verilator, id="P16-verilator"),
         pytest.param(4, 1, 0, "icarus", marks=pytest.mark.icarus, id="P4-icarus")]

# Engines built for some formats only (the dtypes mask: 1 bf16, 2 E4M3, 4 E5M2, 8 int8): the random
# commands in the formats built, and the others refused. The other tests use bf16 and every format.
SUBSETS = [pytest.param(8, "verilator", marks=pytest.mark.verilator, id="int8-verilator"),
           pytest.param(6, "icarus", marks=pytest.mark.icarus, id="fp8-icarus")]


@pytest.mark.parametrize("partitions,latency,fp_cuts,sim", CASES)
def test_tensor_engine(partitions, latency, fp_cuts, sim):
    require_simulator(sim)
    run("tensor_engine", {"partitions": partitions, "sbuf_bytes": TEST_SBUF_BYTES, "sbuf_latency": latency,
                          "fp_cuts": fp_cuts}, "trntile.tb.test_tensor_engine", sim=sim)


@pytest.mark.parametrize("dtypes,sim", SUBSETS)
def test_tensor_engine_built_for_some_formats(dtypes, sim):
    require_simulator(sim)
    run("tensor_engine", {"partitions": 4, "sbuf_bytes": TEST_SBUF_BYTES, "dtypes": dtypes},
        "trntile.tb.test_tensor_engine", sim=sim, testcase=("random_commands", "formats_not_built_are_refused"))


@pytest.mark.parametrize("given,message", [
    ({"partitions": 12}, r"partitions must be a power of two in 4\.\.128, not 12"),
    ({"dtypes": 0}, r"dtypes must be an integer in 1\.\.15, not 0"),
    ({"dtypes": 16}, r"dtypes must be an integer in 1\.\.15, not 16"),
    ({"sbuf_bytes": 3000}, r"sbuf_bytes must be a power of two in 1024\.\.262144, not 3000"),
    ({"sbuf_bytes": 512}, r"sbuf_bytes must be a power of two in 1024\.\.262144, not 512"),
    ({"fp_cuts": 3}, r"fp_cuts must be an integer in 0\.\.2, not 3"),
])
def test_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        TensorEngine(**given)


@pytest.mark.parametrize("command,message", [
    (LoadStationary(0, AccessPattern(1 << 20, ((1, 4),)), 4, 4, "bf16"), r"pattern\.address must be an integer in 0\.\.1048575"),
    (LoadStationary(0, AccessPattern(0, ((1 << 19, 1), (1, 4))), 4, 4, "bf16"), r"pattern stride must be an integer in -524288\.\.524287"),
    (LoadStationary(0, AccessPattern(0, ((1, 1 << 16),)), 4, 4, "bf16"), r"pattern count must be an integer in 0\.\.65535"),
    (LoadStationary(0, AccessPattern(0, ((1, 1),) * 5), 4, 4, "bf16"), r"pattern must have 1\.\.4 dimensions, not 5"),
    (LoadStationary(0, AccessPattern(0, ((1, 4),)), 256, 4, "bf16"), r"k must be an integer in 0\.\.255"),
    (LoadStationary(0, AccessPattern(0, ((1, 4),)), 4, 4, "fp16"), r"dtype must be one of bf16, fp8_e4m3, fp8_e5m2, int8"),
    (MultiplyMoving(0, AccessPattern(0, ((1, 4),)), 4, 1024, "bf16", 0, 0, False), r"n must be an integer in 0\.\.1023"),
    (MultiplyMoving(0, AccessPattern(0, ((1, 4),)), 4, 4, "bf16", 16, 0, False), r"psum_bank must be an integer in 0\.\.15"),
])
def test_encoding_names_the_field_that_does_not_fit(command, message):
    with pytest.raises(ValueError, match=message):
        encode_command(command)
