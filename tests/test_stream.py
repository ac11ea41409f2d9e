"""The stream register slice and FIFO on both simulators (cocotb tests in trntile/tb/test_stream.py)."""

import pytest
from conftest import require_simulator, simulators

from trntile.sim.runner import run

# Edges of the parameter space: a 1-bit payload, an odd width, the smallest FIFO, a wide deep one.
DESIGNS = [
    ("stream_register_slice", {"width": 1}),
    ("stream_register_slice", {"width": 37}),
    ("stream_fifo", {"width": 8, "depth": 2}),
    ("stream_fifo", {"width": 64, "depth": 16}),
]


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("top,params", DESIGNS, ids=[f"{t}-" + "-".join(f"{k}{v}" for k, v in p.items())
                                                     for t, p in DESIGNS])
def test_stream_block(top, params, sim):
    require_simulator(sim)
    run(top, params, "trntile.tb.test_stream", sim=sim)
