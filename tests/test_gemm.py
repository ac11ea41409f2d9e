"""The GEMM kernel on the golden ISA simulator (pure Python): bit for bit against numerics.chunked_matmul, for
every dtype and the awkward shapes; then on the RTL tile (trntile/tb/test_gemm.py), many GEMMs per simulation,
each equal to the golden simulator."""

import json

import random

import numpy as np
import pytest
from conftest import require_simulator

from trntile.golden import numerics
from trntile.golden.tile import TileModel
from trntile.hdl.isa import EngineState
from trntile.sim.runner import run
from trntile.sw.gemm import gemm_kernel, gemm_tile_params

P = 4


def run_golden(m, n, k, dtype, seed=0, schedule=None, strategy="auto"):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)) * 2, rng.standard_normal((k, n)) * 2
    if dtype == "int8":
        a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    kernel = gemm_kernel(m, n, k, dtype, partitions=P, queues=4, sbuf_bytes=2048, dram_bytes=1 << 18,
                         strategy=strategy)
    model = TileModel(partitions=P, sbuf_bytes=2048, dram_bytes=1 << 18, queues=4)
    model.dram[:] = kernel.dram_image({"at": a.T, "b": b})
    model.start(kernel.program_addresses())
    model.run(rng=None if schedule is None else random.Random(schedule))
    assert all(s.state == EngineState.DONE for s in model.status), model.status
    got = kernel.read(model.dram, "c")
    want = numerics.chunked_matmul(numerics.cast(a, dtype), numerics.cast(b, dtype), dtype, partitions=P)
    return got, want


@pytest.mark.parametrize("strategy", ["resident", "stream"])
@pytest.mark.parametrize("dtype", ["bf16", "fp8_e4m3", "fp8_e5m2", "int8"])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (P, 4 * P, P), (P + 1, 4 * P + 3, 3 * P + 1), (2, 9 * P, 5)])
def test_gemm_matches_the_chunked_model(m, n, k, dtype, strategy):
    got, want = run_golden(m, n, k, dtype, strategy=strategy)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("strategy", ["resident", "stream"])
@pytest.mark.parametrize("schedule", range(4))
def test_gemm_is_free_of_races(schedule, strategy):
    """Engines interleaved at random, a few instructions at a time: the same result every time, so every
    dependency is ordered by a semaphore."""
    got, want = run_golden(P + 2, 6 * P, 2 * P + 3, "bf16", seed=1, schedule=schedule, strategy=strategy)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_golden_gemm_is_close_to_float64():
    """Within the error bound of fp32 sums: |C - C64| <= K * 2**-23 * sum|a||b| (plus bf16 input rounding
    taken out by using the cast operands in both)."""
    m, n, k = 6, 20, 13
    rng = np.random.default_rng(9)
    a, b = numerics.cast(rng.standard_normal((m, k)), "bf16"), numerics.cast(rng.standard_normal((k, n)), "bf16")
    got = numerics.chunked_matmul(a, b, "bf16", partitions=P).astype(np.float64)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = k * 2.0 ** -23 * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    assert (np.abs(got - exact) <= bound).all()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"m must be a positive integer, not 0"):
        gemm_kernel(0, 4, 4, "bf16", partitions=P)
    with pytest.raises(ValueError, match=r"dtype must be one of bf16, fp8_e4m3, fp8_e5m2, int8, not 'fp16'"):
        gemm_kernel(4, 4, 4, "fp16", partitions=P)
    with pytest.raises(ValueError, match=r"strategy must be auto, resident or stream, not 'fast'"):
        gemm_kernel(4, 4, 4, "bf16", partitions=P, strategy="fast")


DTYPE_NAMES = ["bf16", "fp8_e4m3", "fp8_e5m2", "int8"]
# M, N, K = 1; non-multiples of P; K = 3P + 1 with N > 4P; several M blocks and N tiles (the passes of the
# resident strategy); each also streamed.
RTL_SHAPES = [(1, 1, 1), (P + 1, 7, 9), (P + 1, 4 * P + 1, 3 * P + 1), (2 * P + 1, 8 * P + 1, P)]
RTL_CASES = {
    "verilator": [[*shape, dtype, "resident"] for dtype in DTYPE_NAMES for shape in RTL_SHAPES]
                 + [[P + 1, 4 * P + 1, 3 * P + 1, dtype, "stream"] for dtype in DTYPE_NAMES] + ["random"] * 6,
    "icarus": [[P + 1, 4 * P + 1, 3 * P + 1, dtype, strategy] for dtype, strategy in
               zip(DTYPE_NAMES, ["resident", "stream", "resident", "stream"])] + ["random"],
}
RTL_PARAMS = {
    # the tile trntile matmul / bench gemm build at P = 4, so the two share one build
    "verilator": gemm_tile_params(P),
    "icarus": {"partitions": P, "sbuf_bytes": 4096, "data_width": 32, "queues": 2, "outstanding": 4,
               "dram_bytes": 1 << 18, "semaphores": 32},
}


@pytest.mark.parametrize("sim", [pytest.param(sim, marks=getattr(pytest.mark, sim)) for sim in RTL_CASES])
def test_gemm_on_the_rtl(sim):
    require_simulator(sim)
    run("tile_bench", RTL_PARAMS[sim], "trntile.tb.test_gemm", sim=sim,
        extra_env={"TRNTILE_GEMM_CASES": json.dumps(RTL_CASES[sim]), "TRNTILE_GEMM_LATENCY": "20"})
