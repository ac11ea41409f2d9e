"""Number formats and the processing-element arithmetic of the tensor engine, in plain numpy.

These functions define trntile's numerics; the RTL must match them bit for bit.

Formats
    ``bf16``, ``fp8_e4m3`` (``float8_e4m3fn``: no infinities, one NaN pattern per sign), ``fp8_e5m2`` and
    ``int8``. A value is cast to a format with round-to-nearest-even (``ml_dtypes``); out-of-range values
    become Inf where the format has it (bf16, E5M2) and NaN in E4M3, as ``ml_dtypes`` does. Integers
    saturate when cast to int8 (see :func:`cast`).

Processing element (float formats)
    ``p = fp32(a * b)`` with ``a`` and ``b`` widened exactly to float32, then ``s = fp32(s_in + p)``: both
    IEEE-754 binary32 operations with round-to-nearest-even and subnormals kept. A column's sum starts
    from +0.0 and adds the products in k order 0, 1, ..., K-1.

Processing element (int8)
    ``p = a * b`` exactly in int32; ``s = s_in + p`` in int32 with two's complement wrap.

PSUM accumulate
    ``psum = fp32(psum + s)`` (int32 wrap for int8). A matmul with K split into chunks of at most P adds
    each chunk's sequential sum into PSUM, chunk by chunk in order.
"""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np

__all__ = ["DType", "DTYPES", "FLOAT_DTYPES", "dtypes_mask", "dtypes_in", "dtype", "cast", "to_bits", "from_bits", "pe_products", "column_sums",
           "accumulate", "matmul", "chunked_matmul"]


@dataclasses.dataclass(frozen=True)
class DType:
    """An input format of the tensor engine."""

    name: str
    numpy: np.dtype
    bits: int
    code: int  # the value of the dtype field in commands
    is_float: bool

    @property
    def accumulator(self) -> np.dtype:
        """The type of products, sums and PSUM words: float32, or int32 for int8."""
        return np.dtype(np.float32) if self.is_float else np.dtype(np.int32)


DTYPES: dict[str, DType] = {d.name: d for d in [
    DType("bf16", np.dtype(ml_dtypes.bfloat16), 16, 0, True),
    DType("fp8_e4m3", np.dtype(ml_dtypes.float8_e4m3fn), 8, 1, True),
    DType("fp8_e5m2", np.dtype(ml_dtypes.float8_e5m2), 8, 2, True),
    DType("int8", np.dtype(np.int8), 8, 3, False),
]}


#: The bits of the float formats in a ``dtypes`` mask (an engine with none of them has no float datapath).
FLOAT_DTYPES = sum(1 << d.code for d in DTYPES.values() if d.is_float)


def dtypes_mask(names) -> int:
    """The ``dtypes`` parameter (bit ``code`` set for each format) for format names, e.g. ``["int8"]`` -> 8."""
    return sum(1 << dtype(name).code for name in set(names))


def dtypes_in(mask: int) -> list[str]:
    """The format names a ``dtypes`` mask selects, in code order."""
    return [d.name for d in DTYPES.values() if mask >> d.code & 1]


def dtype(name: str | DType) -> DType:
    """The :class:`DType` called ``name``; ``ValueError`` naming the known ones otherwise."""
    if isinstance(name, DType):
        return name
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {name!r}") from None


def cast(values, to: str | DType) -> np.ndarray:
    """Cast any numeric array to format ``to``, rounding to nearest even.

    Floats go through ``ml_dtypes`` (which turns overflow into Inf, or NaN for E4M3). For int8 the
    value is rounded to an integer (ties to even) and saturated to -128..127; NaN is refused.
    """
    target = dtype(to)
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        array = array.astype(np.float64)  # exact below 2**53
    if target.is_float:
        with np.errstate(over="ignore"):
            return array.astype(target.numpy)
    as_float = array.astype(np.float64)
    if np.isnan(as_float).any():
        raise ValueError("cannot cast NaN to int8")
    return np.clip(np.rint(as_float), -128, 127).astype(np.int8)


def to_bits(values: np.ndarray) -> np.ndarray:
    """The raw bit patterns of an array of a trntile format or of float32/int32 (as unsigned integers)."""
    array = np.asarray(values)
    unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32}[array.dtype.itemsize]
    return array.view(unsigned)


def from_bits(bits: np.ndarray, of: str | DType | np.dtype) -> np.ndarray:
    """An array of ``of`` (a format name, or float32/int32) from raw bit patterns."""
    target = dtype(of).numpy if isinstance(of, (str, DType)) else np.dtype(of)
    unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32}[target.itemsize]
    return np.asarray(bits).astype(unsigned).view(target)


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def pe_products(stationary: np.ndarray, moving: np.ndarray, fmt: str | DType) -> np.ndarray:
    """``p[k, m, n] = fp32(stationary[k, m] * moving[k, n])`` (exact int32 for int8).

    Both operands must already be in format ``fmt``.
    """
    f = dtype(fmt)
    a = np.asarray(stationary).astype(f.accumulator)[:, :, None]
    b = np.asarray(moving).astype(f.accumulator)[:, None, :]
    if f.is_float:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return np.multiply(a, b, dtype=np.float32)
    return (a.astype(np.int64) * b.astype(np.int64)).astype(np.int32)  # |product| <= 2**14: exact


def column_sums(products: np.ndarray, fmt: str | DType) -> np.ndarray:
    """``s[m, n]``: the sum over k of ``products[k, m, n]``, from +0.0, one fp32 (or int32) add at a time."""
    f = dtype(fmt)
    total = np.zeros(products.shape[1:], dtype=f.accumulator)
    for k in range(products.shape[0]):
        if f.is_float:
            with np.errstate(over="ignore", invalid="ignore"):
                total = np.add(total, products[k], dtype=np.float32)
        else:
            total = _wrap_int32(total.astype(np.int64) + products[k])
    return total


def accumulate(psum: np.ndarray, sums: np.ndarray, fmt: str | DType) -> np.ndarray:
    """``psum + sums`` as PSUM does it: one fp32 add (int32 wrap for int8)."""
    f = dtype(fmt)
    if f.is_float:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.add(np.asarray(psum, dtype=np.float32), sums, dtype=np.float32)
    return _wrap_int32(np.asarray(psum, dtype=np.int64) + sums)


def matmul(stationary: np.ndarray, moving: np.ndarray, fmt: str | DType) -> np.ndarray:
    """One MultiplyMoving: ``dst[M, N] = stationary[K, M].T @ moving[K, N]`` with the PE arithmetic."""
    stationary, moving = np.asarray(stationary), np.asarray(moving)
    if stationary.ndim != 2 or moving.ndim != 2 or stationary.shape[0] != moving.shape[0]:
        raise ValueError(f"stationary [K, M] and moving [K, N] must share K; got shapes {stationary.shape} "
                         f"and {moving.shape}")
    return column_sums(pe_products(stationary, moving, fmt), fmt)


def chunked_matmul(a: np.ndarray, b: np.ndarray, fmt: str | DType, *, partitions: int) -> np.ndarray:
    """``C[M, N] = A[M, K] @ B[K, N]`` as the tensor engine computes it with P = ``partitions``.

    K is split into chunks of ``partitions`` rows in order (the last one shorter); each chunk is one
    MultiplyMoving with ``stationary = A[:, chunk].T``, and its sums are added into PSUM (which starts as
    the first chunk's result). Inputs must already be in format ``fmt``.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"A [M, K] and B [K, N] must share K; got shapes {a.shape} and {b.shape}")
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions!r}")
    result = None
    for start in range(0, a.shape[1], partitions):
        chunk = matmul(a[:, start:start + partitions].T, b[start:start + partitions], fmt)
        result = chunk if result is None else accumulate(result, chunk, fmt)
    return result
