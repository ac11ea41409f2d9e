"""The tensor engine's commands and their effect on SBUF and PSUM, as a numpy model.

State: SBUF is ``partitions`` x ``sbuf_bytes`` bytes; PSUM is ``partitions`` x 8 banks x 4P words of 32 bits
(fp32, or int32 for int8). The engine holds the stationary operand that the last LoadStationary latched.

``LoadStationary``
    Latch ``stationary[k, m]`` (K x M) from SBUF: element (k, m) is in partition ``partition + k`` at the
    m-th element of the access pattern.
``MultiplyMoving``
    Stream ``moving[k, n]`` (K x N) from SBUF the same way and write ``dst[m, n] = (stationary.T @
    moving)[m, n]`` (the PE arithmetic of :mod:`trntile.golden.numerics`) to PSUM partition m, bank
    ``psum_bank``, word ``psum_offset + n``: overwriting it, or with ``accumulate`` adding to it. K and the
    dtype must be those of the stationary operand in use.

Every command is checked before it does anything; a bad one raises ``ValueError`` naming the field and
its allowed range, and changes nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import numerics

__all__ = ["PSUM_BANKS", "AccessPattern", "LoadStationary", "MultiplyMoving", "TensorEngineModel"]

PSUM_BANKS = 8
MAX_PATTERN_DIMS = 4


@dataclasses.dataclass(frozen=True)
class AccessPattern:
    """The free-dimension walk of an operand: ``address`` in bytes, then up to 4 ``[stride, count]`` in
    elements, outermost first. Every active partition walks the same pattern."""

    address: int
    dims: tuple[tuple[int, int], ...]

    @classmethod
    def contiguous(cls, address: int, count: int) -> "AccessPattern":
        return cls(address, ((1, count),))

    def offsets(self) -> np.ndarray:
        """Element offsets in walk order (the innermost dimension fastest)."""
        offsets = np.zeros(1, dtype=np.int64)
        for stride, count in self.dims:
            offsets = (offsets[:, None] + stride * np.arange(count)[None, :]).reshape(-1)
        return offsets

    @property
    def count(self) -> int:
        return int(np.prod([count for _, count in self.dims])) if self.dims else 0

    def check(self, what: str, elements: int, element_bytes: int, sbuf_bytes: int) -> None:
        if not 1 <= len(self.dims) <= MAX_PATTERN_DIMS:
            raise ValueError(f"{what}.pattern must have 1..{MAX_PATTERN_DIMS} dimensions, not {len(self.dims)}")
        if any(count < 1 for _, count in self.dims):
            raise ValueError(f"{what}.pattern counts must be at least 1, not {[c for _, c in self.dims]}")
        if self.count != elements:
            raise ValueError(f"{what}.pattern walks {self.count} elements; the command needs {elements}")
        if self.address < 0 or self.address % element_bytes:
            raise ValueError(f"{what}.address must be a non-negative multiple of {element_bytes}, not {self.address}")
        offsets = self.offsets()
        low, high = self.address + element_bytes * offsets.min(), self.address + element_bytes * (offsets.max() + 1)
        if low < 0 or high > sbuf_bytes:
            raise ValueError(f"{what}.pattern reaches bytes {low}..{high - 1}, outside the partition's "
                             f"0..{sbuf_bytes - 1}")


@dataclasses.dataclass(frozen=True)
class LoadStationary:
    partition: int
    pattern: AccessPattern
    k: int
    m: int
    dtype: str


@dataclasses.dataclass(frozen=True)
class MultiplyMoving:
    partition: int
    pattern: AccessPattern
    k: int
    n: int
    dtype: str
    psum_bank: int
    psum_offset: int
    accumulate: bool


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")


class TensorEngineModel:
    """SBUF, PSUM and the stationary registers of one tensor engine with P = ``partitions``."""

    def __init__(self, partitions: int, *, sbuf_bytes: int = 16 * 1024):
        if partitions < 1 or partitions & (partitions - 1) or partitions > 128:
            raise ValueError(f"partitions must be a power of two in 1..128, not {partitions!r}")
        self.partitions = partitions
        self.sbuf_bytes = sbuf_bytes
        self.sbuf = np.zeros((partitions, sbuf_bytes), dtype=np.uint8)
        self.psum = np.zeros((partitions, PSUM_BANKS, 4 * partitions), dtype=np.uint32)
        self.stationary: np.ndarray | None = None  # K x M, in its format
        self.stationary_dtype: str | None = None

    @property
    def bank_words(self) -> int:
        return 4 * self.partitions

    # -- SBUF helpers ----------------------------------------------------------------------------------

    def write_sbuf(self, partition: int, pattern: AccessPattern, values: np.ndarray) -> None:
        """Place ``values[k, i]`` at partition ``partition + k``, element i of ``pattern``."""
        values = np.asarray(values)
        raw = numerics.to_bits(values)
        size = values.dtype.itemsize
        for k in range(values.shape[0]):
            for i, offset in enumerate(pattern.offsets()):
                start = pattern.address + size * int(offset)
                self.sbuf[partition + k, start:start + size] = np.frombuffer(raw[k, i].tobytes(), dtype=np.uint8)

    def read_sbuf(self, partition: int, pattern: AccessPattern, rows: int, fmt: str) -> np.ndarray:
        f = numerics.dtype(fmt)
        size = f.numpy.itemsize
        out = np.zeros((rows, pattern.count), dtype=f.numpy)
        for k in range(rows):
            for i, offset in enumerate(pattern.offsets()):
                start = pattern.address + size * int(offset)
                out[k, i] = np.frombuffer(self.sbuf[partition + k, start:start + size].tobytes(), dtype=f.numpy)[0]
        return out

    def psum_values(self, bank: int, fmt: str) -> np.ndarray:
        """PSUM bank ``bank`` as a P x 4P array of float32 (int32 for int8)."""
        return numerics.from_bits(self.psum[:, bank, :], numerics.dtype(fmt).accumulator)

    # -- commands --------------------------------------------------------------------------------------

    def check(self, command) -> None:
        """Raise ``ValueError`` if ``command`` is not valid now; otherwise do nothing."""
        p = self.partitions
        fmt = numerics.dtype(command.dtype)
        _check_range("k", command.k, 1, p)
        _check_range("partition", command.partition, 0, p - command.k)
        if isinstance(command, LoadStationary):
            _check_range("m", command.m, 1, p)
            command.pattern.check("stationary", command.m, fmt.numpy.itemsize, self.sbuf_bytes)
        elif isinstance(command, MultiplyMoving):
            _check_range("n", command.n, 1, 4 * p)
            _check_range("psum_bank", command.psum_bank, 0, PSUM_BANKS - 1)
            _check_range("psum_offset", command.psum_offset, 0, self.bank_words - command.n)
            command.pattern.check("moving", command.n, fmt.numpy.itemsize, self.sbuf_bytes)
            if self.stationary is None:
                raise ValueError("MultiplyMoving before any LoadStationary")
            if command.k != self.stationary.shape[0]:
                raise ValueError(f"k must match the stationary operand's K = {self.stationary.shape[0]}, "
                                 f"not {command.k}")
            if fmt.name != self.stationary_dtype:
                raise ValueError(f"dtype must match the stationary operand's {self.stationary_dtype}, "
                                 f"not {fmt.name}")
        else:
            raise ValueError(f"not a tensor engine command: {command!r}")

    def load_stationary(self, command: LoadStationary) -> None:
        self.check(command)
        self.stationary = self.read_sbuf(command.partition, command.pattern, command.k, command.dtype)
        self.stationary_dtype = numerics.dtype(command.dtype).name

    def multiply_moving(self, command: MultiplyMoving) -> None:
        self.check(command)
        fmt = numerics.dtype(command.dtype)
        moving = self.read_sbuf(command.partition, command.pattern, command.k, command.dtype)
        sums = numerics.matmul(self.stationary, moving, fmt)  # M x N
        m, n = sums.shape
        window = (slice(0, m), command.psum_bank, slice(command.psum_offset, command.psum_offset + n))
        if command.accumulate:
            sums = numerics.accumulate(numerics.from_bits(self.psum[window], fmt.accumulator), sums, fmt)
        self.psum[window] = numerics.to_bits(sums.astype(fmt.accumulator))

    def run(self, commands) -> None:
        for command in commands:
            if isinstance(command, LoadStationary):
                self.load_stationary(command)
            else:
                self.multiply_moving(command)
