"""The kernel API (trntile.sw.kernel): dependencies become semaphores, bad shapes are refused, and a small
GEMM built with it runs on the golden ISA simulator."""

import doctest

import numpy as np
import pytest

from trntile.golden import numerics
from trntile.golden.tile import TileModel
from trntile.hdl.isa import EngineState
from trntile.sw import kernel as kernel_module
from trntile.sw.asm import Nop
from trntile.sw.kernel import ACT, TENSOR, Kernel

P = 4


def _kernel(**kwargs) -> Kernel:
    return Kernel(partitions=P, sbuf_bytes=1024, queues=2, dram_bytes=1 << 16, **kwargs)


def _waits(program):
    return [(i.wait.semaphore, i.wait.value) if i.wait else None for i in program]


def test_module_examples():
    assert doctest.testmod(kernel_module).failed == 0


def test_read_after_write_between_engines_waits_for_the_writer():
    k = _kernel()
    a = k.dram("a", (P, P), "bf16")
    t = k.sbuf((P, P), "bf16")
    k.dma_copy(t, a, queue=1)
    k.matmul(k.psum((P, P)), t, t)
    programs = k.programs()
    assert _waits(programs[TENSOR]) == [(3, 1), None, None]   # the load waits for dma1's first copy
    assert _waits(programs[3]) == [None, None]


def test_write_after_read_waits_for_the_reader_and_write_after_write_for_the_writer():
    k = _kernel()
    a, b = k.dram("a", (P, P), "bf16"), k.dram("b", (P, P), "bf16")
    t, u = k.sbuf((P, P), "bf16"), k.sbuf((P, P), "bf16")
    k.dma_copy(t, a, queue=0)
    k.dma_copy(u, b, queue=1)
    k.matmul(k.psum((P, P)), t, u)         # load reads t (tensor's 1st), multiply reads u (tensor's 2nd)
    k.dma_copy(u, a, queue=0)              # WAR on u with the multiply, WAW on u with dma1's copy
    k.dma_copy(b, a, queue=1)              # WAR on b with dma1's own read (none), on a with nobody's write
    programs = k.programs()
    # One wait covers both: the multiply itself waited for dma1's copy, so tensor >= 2 implies dma1 >= 1.
    assert _waits(programs[2]) == [None, (0, 2), None]
    assert _waits(programs[0]) == [(2, 1), (3, 1), None]
    assert _waits(programs[3]) == [None, None, None]


def test_an_operation_that_needs_two_engines_gets_a_sem_wait_for_the_second():
    k = _kernel()
    x, y = k.dram("x", (P, 4), "fp32"), k.dram("y", (P, 1), "fp32")
    src, bias, dst = k.sbuf((P, 4), "fp32"), k.sbuf((P, 1), "fp32"), k.sbuf((P, 4), "bf16")
    k.dma_copy(src, x, queue=0)
    k.dma_copy(bias, y, queue=1)
    k.activation(dst, src, bias=bias)
    act = k.programs()[ACT]
    assert isinstance(act[0].op, Nop) and _waits(act) == [(2, 1), (3, 1), None]


def test_independent_work_gets_no_semaphore():
    k = _kernel()
    a, b = k.dram("a", (P, 8), "int8"), k.dram("b", (P, 8), "int8")
    t, u = k.sbuf((P, 8), "int8"), k.sbuf((P, 8), "int8")
    k.dma_copy(t, a, queue=0)
    k.dma_copy(u, b, queue=1)
    k.dma_copy(t, a, queue=0)              # same queue, same tile: in order, no wait
    programs = k.programs()
    assert all(w is None for program in programs.values() for w in _waits(program))


@pytest.mark.parametrize("build,message", [
    (lambda k: k.sbuf((P + 1, 4), "bf16"), r"5 partitions from 0 does not fit in P = 4"),
    (lambda k: k.sbuf((P, 600), "bf16"), r"does not fit in sbuf_bytes = 1024"),
    (lambda k: k.psum((P, 4 * P + 1)), r"at most P x 4P = 4 x 16"),
    (lambda k: k.dram("x", (1 << 16,), "fp32"), r"do not fit in 65536 bytes of DRAM"),
    (lambda k: k.dma_copy(k.sbuf((P, 4), "bf16"), k.dram("x", (P, 4), "fp32")), r"dtype mismatch"),
    (lambda k: k.dma_copy(k.sbuf((P, 4), "bf16"), k.dram("x", (P, 5), "bf16")), r"dst has 16 elements and src 20"),
    (lambda k: k.matmul(k.psum((P, P)), k.sbuf((P, P), "bf16"), k.sbuf((P, P), "int8")), r"dtype mismatch"),
    (lambda k: k.activation(k.sbuf((P, 4), "bf16"), k.psum((P, 4)), func="gelu"), r"func must be one of"),
    (lambda k: k.activation(k.sbuf((P, 4), "int8"), k.psum((P, 4)), scale=0.5), r"scale must be an integer"),
    (lambda k: k.sbuf((P, 4), "fp16"), r"dtype must be one of"),
])
def test_bad_requests_are_refused_with_the_limit(build, message):
    with pytest.raises(ValueError, match=message):
        build(_kernel())


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_a_small_gemm_runs_on_the_golden_simulator(dtype):
    """C = A @ B for M = N = P, K = 2P: two K chunks accumulated in PSUM, then ACT and DMA out."""
    rng = np.random.default_rng(3)
    m, n, kk = P, P, 2 * P
    k = _kernel()
    a, b = k.dram("a", (m, kk), dtype), k.dram("b", (kk, n), dtype)
    out = "fp32" if dtype != "int8" else "int32"
    c = k.dram("c", (m, n), out)
    ps = k.psum((m, n))
    for chunk in range(2):
        at, bt = k.sbuf((P, m), dtype), k.sbuf((P, n), dtype)
        k.dma_copy(at, a[:, chunk * P:(chunk + 1) * P].T)
        k.dma_copy(bt, b[chunk * P:(chunk + 1) * P, :])
        k.matmul(ps, at, bt, accumulate=chunk > 0)
    ct = k.sbuf((m, n), out)
    k.activation(ct, ps)
    k.dma_copy(c, ct)
    values = {"a": rng.integers(-3, 4, (m, kk)), "b": rng.integers(-3, 4, (kk, n))}
    model = TileModel(partitions=P, sbuf_bytes=1024, dram_bytes=1 << 16, queues=2)
    model.dram[:] = k.dram_image(values)
    model.start(k.program_addresses())
    model.run()
    assert all(s.state == EngineState.DONE for s in model.status), model.status
    want = numerics.chunked_matmul(numerics.cast(values["a"], dtype), numerics.cast(values["b"], dtype), dtype,
                                   partitions=P)
    np.testing.assert_array_equal(k.read(model.dram, "c"), want)
    assert ACT == 1
