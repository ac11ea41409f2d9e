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
its allowed range, and changes nothing. :meth:`TensorEngineModel.problem` also gives the
:class:`TensorError` code the RTL reports for it: the checks run in the order of that enum and the first
that fails is the one reported, in the model and in the RTL alike.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from . import numerics
from ..hdl.params import DTYPES, PARTITIONS, SBUF_BYTES
from .access_pattern import MAX_PATTERN_DIMS, walk_offsets

__all__ = ["PSUM_BANKS", "MAX_PATTERN_DIMS", "TensorError", "AccessPattern", "LoadStationary", "MultiplyMoving",
           "TensorEngineModel"]

PSUM_BANKS = 8


class TensorError(enum.IntEnum):
    """Why the tensor engine refused a command (the RTL's ``error_code``), in the order they are checked."""

    NONE = 0
    DTYPE = 1           #: not one of the known dtype codes, or one the engine was built without
    K = 2               #: K outside 1..P
    PARTITION = 3       #: partition + K > P
    SIZE = 4            #: M outside 1..P (LoadStationary), N outside 1..4P (MultiplyMoving)
    PSUM_BANK = 5       #: bank >= 8
    PSUM_OFFSET = 6     #: offset + N > 4P: the result would leave its bank
    PATTERN_COUNT = 7   #: the pattern does not walk exactly M (N) elements, or a count is 0
    PATTERN_BOUNDS = 8  #: the pattern's address is not element-aligned, or it reaches outside the SBUF partition
    NO_STATIONARY = 9   #: MultiplyMoving before any LoadStationary
    MISMATCH = 10       #: MultiplyMoving's K or dtype differs from the stationary operand's


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
        return walk_offsets(self.dims)

    @property
    def count(self) -> int:
        return int(np.prod([count for _, count in self.dims])) if self.dims else 0

    def problem(self, what: str, elements: int, element_bytes: int, sbuf_bytes: int) -> tuple[TensorError, str] | None:
        """Why this pattern cannot feed a command that needs ``elements`` elements, or ``None``."""
        if not 1 <= len(self.dims) <= MAX_PATTERN_DIMS:
            return TensorError.PATTERN_COUNT, f"{what}.pattern must have 1..{MAX_PATTERN_DIMS} dimensions, not {len(self.dims)}"
        if any(count < 1 for _, count in self.dims):
            return TensorError.PATTERN_COUNT, f"{what}.pattern counts must be at least 1, not {[c for _, c in self.dims]}"
        if self.count != elements:
            return TensorError.PATTERN_COUNT, f"{what}.pattern walks {self.count} elements; the command needs {elements}"
        if self.address < 0 or self.address % element_bytes:
            return (TensorError.PATTERN_BOUNDS,
                    f"{what}.address must be a non-negative multiple of {element_bytes}, not {self.address}")
        offsets = self.offsets()
        low, high = self.address + element_bytes * offsets.min(), self.address + element_bytes * (offsets.max() + 1)
        if low < 0 or high > sbuf_bytes:
            return (TensorError.PATTERN_BOUNDS, f"{what}.pattern reaches bytes {low}..{high - 1}, outside the "
                    f"partition's 0..{sbuf_bytes - 1}")
        return None


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


def _range_problem(name: str, value: int, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        return f"{name} must be an integer in {low}..{high}, not {value!r}"
    return None


def command_dtype(command) -> numerics.DType:
    """The command's :class:`~trntile.golden.numerics.DType`; its ``dtype`` is a name or a code."""
    if isinstance(command.dtype, (int, np.integer)) and not isinstance(command.dtype, bool):
        for fmt in numerics.DTYPES.values():
            if fmt.code == command.dtype:
                return fmt
        raise ValueError(f"dtype must be one of codes {sorted(f.code for f in numerics.DTYPES.values())} "
                         f"({', '.join(numerics.DTYPES)}), not {command.dtype}")
    return numerics.dtype(command.dtype)


class TensorEngineModel:
    """SBUF, PSUM and the stationary registers of one tensor engine with P = ``partitions``, built for the
    operand formats of the mask ``dtypes`` (:func:`trntile.golden.numerics.dtypes_mask`; default all)."""

    def __init__(self, partitions: int, *, sbuf_bytes: int = 16 * 1024, dtypes: int = DTYPES.default):
        self.partitions = PARTITIONS.validate(partitions)
        self.sbuf_bytes = SBUF_BYTES.validate(sbuf_bytes)
        self.dtypes = DTYPES.validate(dtypes)
        self.sbuf = np.zeros((partitions, sbuf_bytes), dtype=np.uint8)
        self.psum = np.zeros((partitions, PSUM_BANKS, 4 * partitions), dtype=np.uint32)
        self.stationary: np.ndarray | None = None  # K x M, in its format
        self.stationary_dtype: str | None = None

    @property
    def bank_words(self) -> int:
        return 4 * self.partitions

    # -- SBUF helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _byte_columns(pattern: AccessPattern, size: int) -> np.ndarray:
        """Byte indices of each element of ``pattern``, one row of ``size`` bytes per element."""
        return pattern.address + size * pattern.offsets()[:, None] + np.arange(size)[None, :]

    def write_sbuf(self, partition: int, pattern: AccessPattern, values: np.ndarray) -> None:
        """Place ``values[k, i]`` at partition ``partition + k``, element i of ``pattern`` (little-endian).
        Where the pattern visits an element twice, the later value stays."""
        values = np.asarray(values)
        size = values.dtype.itemsize
        raw = np.ascontiguousarray(values).view(np.uint8).reshape(values.shape[0], -1, size)
        columns = self._byte_columns(pattern, size)
        for i in range(columns.shape[0]):
            self.sbuf[partition:partition + values.shape[0], columns[i]] = raw[:, i, :]

    def read_sbuf(self, partition: int, pattern: AccessPattern, rows: int, fmt) -> np.ndarray:
        """``rows`` x ``pattern.count`` elements of format ``fmt`` from partitions ``partition`` onwards."""
        f = numerics.dtype(fmt)
        size = f.numpy.itemsize
        raw = self.sbuf[partition:partition + rows][:, self._byte_columns(pattern, size).reshape(-1)]
        return np.ascontiguousarray(raw).view(f.numpy).reshape(rows, pattern.count)

    def psum_values(self, bank: int, fmt: str) -> np.ndarray:
        """PSUM bank ``bank`` as a P x 4P array of float32 (int32 for int8)."""
        return numerics.from_bits(self.psum[:, bank, :], numerics.dtype(fmt).accumulator)

    # -- commands --------------------------------------------------------------------------------------

    def problem(self, command) -> tuple[TensorError, str] | None:
        """Why ``command`` would be refused now (its error code and a message naming the field), or ``None``."""
        if not isinstance(command, (LoadStationary, MultiplyMoving)):
            raise TypeError(f"not a tensor engine command: {command!r}")
        p = self.partitions
        try:
            fmt = command_dtype(command)
        except ValueError as error:
            return TensorError.DTYPE, str(error)
        if not self.dtypes >> fmt.code & 1:
            return TensorError.DTYPE, (f"dtype {fmt.name} is not built into this engine (dtypes "
                                       f"{self.dtypes}: {', '.join(numerics.dtypes_in(self.dtypes))})")
        problem = _range_problem("k", command.k, 1, p)
        if problem:
            return TensorError.K, problem
        problem = _range_problem("partition", command.partition, 0, p - command.k)
        if problem:
            return TensorError.PARTITION, problem
        if isinstance(command, LoadStationary):
            problem = _range_problem("m", command.m, 1, p)
            if problem:
                return TensorError.SIZE, problem
            return command.pattern.problem("stationary", command.m, fmt.numpy.itemsize, self.sbuf_bytes)
        problem = _range_problem("n", command.n, 1, 4 * p)
        if problem:
            return TensorError.SIZE, problem
        problem = _range_problem("psum_bank", command.psum_bank, 0, PSUM_BANKS - 1)
        if problem:
            return TensorError.PSUM_BANK, problem
        problem = _range_problem("psum_offset", command.psum_offset, 0, self.bank_words - command.n)
        if problem:
            return TensorError.PSUM_OFFSET, problem
        problem = command.pattern.problem("moving", command.n, fmt.numpy.itemsize, self.sbuf_bytes)
        if problem:
            return problem
        if self.stationary is None:
            return TensorError.NO_STATIONARY, "MultiplyMoving before any LoadStationary"
        if command.k != self.stationary.shape[0]:
            return TensorError.MISMATCH, f"k must match the stationary operand's K = {self.stationary.shape[0]}, not {command.k}"
        if fmt.name != self.stationary_dtype:
            return TensorError.MISMATCH, f"dtype must match the stationary operand's {self.stationary_dtype}, not {fmt.name}"
        return None

    def check(self, command) -> None:
        """Raise ``ValueError`` if ``command`` is not valid now; otherwise do nothing."""
        problem = self.problem(command)
        if problem:
            raise ValueError(problem[1])

    def load_stationary(self, command: LoadStationary) -> None:
        """Latch ``command``'s K x M operand from SBUF; ``ValueError`` (and no change) if it would be refused."""
        self.check(command)
        fmt = command_dtype(command)
        self.stationary = self.read_sbuf(command.partition, command.pattern, command.k, fmt)
        self.stationary_dtype = fmt.name

    def multiply_moving(self, command: MultiplyMoving) -> None:
        """``psum[bank][:M, offset:offset + N] (+)= stationary.T @ moving``, with the arithmetic of
        :mod:`trntile.golden.numerics`; ``ValueError`` (and no change) if ``command`` would be refused."""
        self.check(command)
        fmt = command_dtype(command)
        moving = self.read_sbuf(command.partition, command.pattern, command.k, fmt)
        sums = numerics.matmul(self.stationary, moving, fmt)  # M x N
        m, n = sums.shape
        window = (slice(0, m), command.psum_bank, slice(command.psum_offset, command.psum_offset + n))
        if command.accumulate:
            sums = numerics.accumulate(numerics.from_bits(self.psum[window], fmt.accumulator), sums, fmt)
        self.psum[window] = numerics.to_bits(sums.astype(fmt.accumulator))

    def run(self, commands) -> None:
        """Apply ``commands`` in order; stops with ``ValueError`` at the first that would be refused."""
        for command in commands:
            if isinstance(command, LoadStationary):
                self.load_stationary(command)
            else:
                self.multiply_moving(command)
