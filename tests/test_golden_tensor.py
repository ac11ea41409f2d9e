"""Self-tests of the golden tensor-engine numerics and command model (pure Python, no simulator)."""

from dataclasses import replace

import numpy as np
import pytest

from trntile.golden import numerics as nu
from trntile.golden.tensor_engine import AccessPattern, LoadStationary, MultiplyMoving, TensorEngineModel

FLOATS = ["bf16", "fp8_e4m3", "fp8_e5m2"]
U32 = 2.0**-24  # unit roundoff of binary32
TINY = 2.0**-149  # smallest binary32 subnormal


def bits(x) -> int:
    return int(np.asarray(x, dtype=np.float32).view(np.uint32))


@pytest.mark.parametrize("fmt", FLOATS)
@pytest.mark.parametrize("k", [1, 3, 16, 64, 128])
def test_matmul_within_the_sequential_sum_error_bound(fmt, k):
    """|C - exact| <= (K + 1) u sum_k |a_k b_k| + K * 2^-149: one rounding per product and per add."""
    rng = np.random.default_rng(k * 7 + len(fmt))
    scale = 8.0 if fmt == "fp8_e4m3" else 1.0
    a = nu.cast(rng.standard_normal((k, 5)) * scale, fmt)
    b = nu.cast(rng.standard_normal((k, 7)) * scale, fmt)
    got = nu.matmul(a, b, fmt).astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = a64.T @ b64
    bound = (k + 1) * U32 * (np.abs(a64).T @ np.abs(b64)) + k * TINY
    assert got.dtype == np.float64 and np.all(np.abs(got - exact) <= bound)


def test_sum_runs_in_k_order():
    """Products 2^24, 1, -2^24 sum to 0 in k order (the 1 is lost to rounding) and to 1 reversed."""
    a = nu.cast(np.array([[2.0**12], [1.0], [-(2.0**12)]]), "bf16")
    b = nu.cast(np.array([[2.0**12], [1.0], [2.0**12]]), "bf16")
    assert nu.matmul(a, b, "bf16")[0, 0] == 0.0
    assert nu.matmul(a[::-1], b[::-1], "bf16")[0, 0] == 1.0


def test_sum_starts_from_positive_zero():
    a = nu.cast(np.array([[-0.0], [1.0]]), "bf16")
    b = nu.cast(np.array([[1.0], [-0.0]]), "bf16")  # both products are -0.0
    assert bits(nu.matmul(a, b, "bf16")[0, 0]) == 0x0000_0000


def test_special_values():
    inf, nan = np.inf, np.nan
    a = nu.cast(np.array([[nan, inf, inf, 1.0, 3.0e38]]), "bf16")
    b = nu.cast(np.array([[1.0, 0.0, 1.0, -inf, 2.0]]), "bf16")
    products = nu.pe_products(a, b, "bf16")[0].diagonal()
    assert np.isnan(products[0]) and np.isnan(products[1])  # NaN in, and Inf x 0
    assert products[2] == inf and products[3] == -inf
    assert products[4] == inf  # overflow to Inf
    cancel = nu.matmul(nu.cast([[inf], [inf]], "bf16"), nu.cast([[1.0], [-1.0]], "bf16"), "bf16")
    assert np.isnan(cancel[0, 0])  # Inf + -Inf


def test_subnormal_products_are_kept():
    a = nu.cast(np.array([[2.0**-70]]), "bf16")
    product = nu.matmul(a, a, "bf16")[0, 0]
    assert product == np.float32(2.0**-140) and bits(product) == 1 << 9
    tiny = nu.matmul(nu.cast([[2.0**-75]], "bf16"), nu.cast([[2.0**-76]], "bf16"), "bf16")[0, 0]
    assert bits(tiny) == 0  # 2^-151 rounds to +0 (below half the smallest subnormal)


def test_int8_extremes_and_wrap():
    k = 128
    a = np.full((k, 1), -128, dtype=np.int8)
    assert nu.matmul(a, a, "int8")[0, 0] == 128 * 128 * k  # 2^21, no wrap yet
    big = np.array([[2**31 - 100]], dtype=np.int32)
    wrapped = nu.accumulate(big, np.array([[16384]], dtype=np.int32), "int8")
    assert wrapped[0, 0] == 2**31 - 100 + 16384 - 2**32
    # Repeated accumulation wraps the same way as int64 arithmetic modulo 2^32.
    psum = np.zeros((1, 1), dtype=np.int32)
    for _ in range(200):
        psum = nu.accumulate(psum, nu.matmul(a, a, "int8"), "int8")
    assert psum[0, 0] == ((200 * 2**21 + 2**31) % 2**32) - 2**31


def test_chunked_matmul_adds_chunks_in_order():
    rng = np.random.default_rng(5)
    a = nu.cast(rng.standard_normal((6, 37)), "bf16")
    b = nu.cast(rng.standard_normal((37, 4)), "bf16")
    by_hand = nu.matmul(a[:, :16].T, b[:16], "bf16")
    by_hand = nu.accumulate(by_hand, nu.matmul(a[:, 16:32].T, b[16:32], "bf16"), "bf16")
    by_hand = nu.accumulate(by_hand, nu.matmul(a[:, 32:].T, b[32:], "bf16"), "bf16")
    assert np.array_equal(nu.chunked_matmul(a, b, "bf16", partitions=16), by_hand)
    assert np.array_equal(nu.chunked_matmul(a[:, :8], b[:8], "bf16", partitions=16), nu.matmul(a[:, :8].T, b[:8], "bf16"))


def test_casts_round_to_nearest_even_and_saturate():
    assert nu.cast([1 + 2.0**-8], "bf16")[0] == 1.0  # a tie, to even
    assert nu.cast([1 + 3 * 2.0**-8], "bf16")[0] == 1 + 2.0**-6
    assert nu.cast([464.0], "fp8_e4m3")[0] == 448 and np.isnan(nu.cast([480.0], "fp8_e4m3")[0])
    assert nu.cast([1e6], "fp8_e5m2")[0] == np.inf
    assert list(nu.cast([-300, -128.5, 2.5, 3.5, 300], "int8")) == [-128, -128, 2, 4, 127]
    with pytest.raises(ValueError, match="NaN"):
        nu.cast([np.nan], "int8")
    with pytest.raises(ValueError, match="dtype must be one of bf16, fp8_e4m3, fp8_e5m2, int8, not 'fp16'"):
        nu.cast([1.0], "fp16")


def _loaded_model(p=4, k=4, m=3, fmt="bf16"):
    te = TensorEngineModel(p)
    rng = np.random.default_rng(3)
    stationary = nu.cast(rng.standard_normal((k, m)), fmt)
    te.write_sbuf(0, AccessPattern.contiguous(0, m), stationary)
    te.load_stationary(LoadStationary(0, AccessPattern.contiguous(0, m), k, m, fmt))
    return te, stationary, rng


def test_model_overwrites_and_accumulates_in_place():
    te, stationary, rng = _loaded_model()
    moving = nu.cast(rng.standard_normal((4, 6)), "bf16")
    strided = AccessPattern(256, ((2, 3), (1, 2)))  # elements 0, 1, 2, 3, 4, 5 in a 2-D walk
    te.write_sbuf(0, strided, moving)
    before = te.psum.copy()
    command = MultiplyMoving(0, strided, 4, 6, "bf16", psum_bank=5, psum_offset=10, accumulate=False)
    te.multiply_moving(command)
    once = nu.matmul(stationary, moving, "bf16")
    assert np.array_equal(te.psum_values(5, "bf16")[:3, 10:16], once)
    te.multiply_moving(replace(command, accumulate=True))
    assert np.array_equal(te.psum_values(5, "bf16")[:3, 10:16], nu.accumulate(once, once, "bf16"))
    changed = np.argwhere(te.psum != before)
    assert {(int(p), int(b)) for p, b, _ in changed} <= {(0, 5), (1, 5), (2, 5)}
    assert all(10 <= int(w) < 16 for _, _, w in changed)


@pytest.mark.parametrize("changes,message", [
    ({"k": 5}, r"k must be an integer in 1\.\.4, not 5"),
    ({"n": 17}, r"n must be an integer in 1\.\.16, not 17"),
    ({"psum_bank": 8}, r"psum_bank must be an integer in 0\.\.7, not 8"),
    ({"psum_offset": 12}, r"psum_offset must be an integer in 0\.\.10, not 12"),
    ({"dtype": "fp16"}, r"dtype must be one of"),
    ({"dtype": "int8"}, r"dtype must match the stationary operand's bf16"),
    ({"k": 3}, r"k must match the stationary operand's K = 4"),
    ({"partition": 1}, r"partition must be an integer in 0\.\.0, not 1"),
    ({"pattern": AccessPattern(16382, ((1, 6),))}, r"moving\.pattern reaches bytes 16382\.\.16393"),
    ({"pattern": AccessPattern(0, ((1, 5),))}, r"moving\.pattern walks 5 elements; the command needs 6"),
])
def test_model_refuses_bad_commands_and_changes_nothing(changes, message):
    te, _, _ = _loaded_model()
    good = MultiplyMoving(0, AccessPattern.contiguous(512, 6), 4, 6, "bf16", psum_bank=0, psum_offset=0,
                          accumulate=False)
    before = te.psum.copy()
    with pytest.raises(ValueError, match=message):
        te.multiply_moving(replace(good, **changes))
    assert np.array_equal(te.psum, before)
    te.multiply_moving(good)  # the next valid command still works


def test_load_stationary_limits():
    te = TensorEngineModel(4)
    with pytest.raises(ValueError, match=r"m must be an integer in 1\.\.4, not 5"):
        te.load_stationary(LoadStationary(0, AccessPattern.contiguous(0, 5), 4, 5, "bf16"))
    with pytest.raises(ValueError, match="MultiplyMoving before any LoadStationary"):
        te.multiply_moving(MultiplyMoving(0, AccessPattern.contiguous(0, 1), 1, 1, "bf16", 0, 0, False))


@pytest.mark.parametrize("given,message", [
    ({"partitions": 2}, r"partitions must be a power of two in 4\.\.128, not 2"),
    ({"partitions": 4, "sbuf_bytes": 1000}, r"sbuf_bytes must be a power of two in 1024\.\.262144, not 1000"),
])
def test_model_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        TensorEngineModel(**given)
