"""The ACT engine's ACTIVATE command and its effect on SBUF, as a numpy model.

``ACTIVATE`` works on partitions ``partition .. partition + partitions - 1`` (the lanes). Each lane walks
its source and destination patterns (the same walk in every lane, as every engine does) and, for element i,

    ``dst[i] = cast(f(src[i] * scale + bias[p]))``, or with ``accumulate``, ``dst[i] = f(src[i] * scale + dst[i])``

Float path (output ``bf16``, ``fp8_e4m3``, ``fp8_e5m2`` or ``fp32``)
    ``src`` is fp32. ``src * scale`` is one binary32 multiplication and ``+ bias`` one binary32 addition,
    each rounded to nearest even with subnormals kept (not a fused multiply-add). ``scale`` is an fp32
    immediate; ``bias[p]`` is the fp32 at byte ``bias_address`` of partition p, or, without a bias, nothing
    is added. ``relu(x)`` is x for x > 0, +0.0 for x <= 0 (so -0.0 becomes +0.0) and NaN for NaN. The cast
    rounds to nearest even as ``ml_dtypes`` does (overflow: Inf for bf16 and E5M2, NaN for E4M3).
Integer path (output ``int8`` or ``int32``)
    ``src``, ``scale`` and ``bias[p]`` are int32 and ``src * scale + bias`` is computed exactly (it fits in
    64 bits); ``relu(x) = max(x, 0)``; the cast saturates to the output's range.

NaN: any NaN the arithmetic produces (or passes on) becomes the positive quiet NaN before the cast, as in the
RTL (``0x7fc00000``; ``0x7fc0``, ``0x7f``, ``0x7e`` after the cast). The architecture allows any NaN; fixing
one makes results comparable byte for byte. (An E4M3 overflow keeps the sign ml_dtypes gives it.)

Accumulate (``accumulate`` set): the addend is the destination's own element instead of a bias, read
before it is overwritten, so ``dst += src * scale`` element by element; this is how a kernel adds two tensors
(an all-reduce adds what another tile sent into its own copy). The output must be fp32 or int32 (the
element read back is the addend's type), there is no bias, and the destination walk must visit each
element once, which the engine checks with a rule it can apply in hardware: sorted by ``|stride|``, each
dimension of count > 1 has a ``|stride|`` larger than the spans ``|stride| x (count - 1)`` of those
before it together (so a stride 0 or two equal strides are refused).

The source is PSUM (each partition's 8 banks x 4P words seen as ``128 P`` bytes: bank b, word w at byte
``4 (4P b + w)``) or SBUF; its elements are 4 bytes. The destination is SBUF, with elements of the output
type. Source and destination walk the same number of elements.

:meth:`ActModel.problem` gives the :class:`ActError` the RTL reports for a command it must refuse; checks
run in the order of that enum and the first that fails is the one reported.
"""

from __future__ import annotations

import dataclasses
import enum

import ml_dtypes
import numpy as np

from ..hdl.params import PARTITIONS, SBUF_BYTES
from .access_pattern import MAX_PATTERN_DIMS
from .tensor_engine import PSUM_BANKS, AccessPattern

#: The NaN the ACT arithmetic produces (and the tensor engine's PEs): positive, quiet.
QUIET_NAN = np.array([0x7FC0_0000], dtype=np.uint32).view(np.float32)[0]

__all__ = ["QUIET_NAN", "ActFunc", "ActError", "ActType", "ACT_TYPES", "Space", "Activate", "ActModel", "act_type",
           "activate_values", "psum_bytes", "visits_once"]


class ActFunc(enum.IntEnum):
    """The function of ACTIVATE: ``f(x) = x`` or ``relu(x)`` (see the module docstring)."""

    IDENTITY = 0
    RELU = 1


class Space(enum.IntEnum):
    """Where ACTIVATE reads its source: PSUM or SBUF."""

    PSUM = 0
    SBUF = 1


class ActError(enum.IntEnum):
    """Why the ACT engine refused a command (its ``error_code``), in the order they are checked."""

    NONE = 0
    FUNC = 1                 #: not identity or relu
    DTYPE = 2                #: not one of the output type codes
    PARTITION = 3            #: partitions 0, or partition + partitions > P
    COUNT = 4                #: a count of 0, or source and destination walk different numbers of elements
    SOURCE_BOUNDS = 5        #: the source is not 4-byte aligned, or leaves its memory
    DESTINATION_BOUNDS = 6   #: the destination is not aligned to its element, or leaves the SBUF partition
    BIAS_BOUNDS = 7          #: the bias is not 4-byte aligned, or leaves the SBUF partition
    ACCUMULATE = 8           #: accumulate: an output not fp32 / int32, a bias, or a walk that may revisit


@dataclasses.dataclass(frozen=True)
class ActType:
    """An output type of ACTIVATE: its code in the command, numpy type and path."""

    name: str
    code: int
    numpy: np.dtype
    is_float: bool

    @property
    def bytes(self) -> int:
        return self.numpy.itemsize


ACT_TYPES: dict[str, ActType] = {t.name: t for t in [
    ActType("bf16", 0, np.dtype(ml_dtypes.bfloat16), True),
    ActType("fp8_e4m3", 1, np.dtype(ml_dtypes.float8_e4m3fn), True),
    ActType("fp8_e5m2", 2, np.dtype(ml_dtypes.float8_e5m2), True),
    ActType("int8", 3, np.dtype(np.int8), False),
    ActType("fp32", 4, np.dtype(np.float32), True),
    ActType("int32", 5, np.dtype(np.int32), False),
]}
_BY_CODE = {t.code: t for t in ACT_TYPES.values()}


def act_type(dtype) -> ActType | None:
    """The :class:`ActType` for a name or code; ``None`` for a code that is not one (the RTL refuses it)."""
    if isinstance(dtype, ActType):
        return dtype
    if isinstance(dtype, str):
        if dtype not in ACT_TYPES:
            raise ValueError(f"dtype must be one of {', '.join(ACT_TYPES)}, not {dtype!r}")
        return ACT_TYPES[dtype]
    return _BY_CODE.get(int(dtype))


@dataclasses.dataclass(frozen=True)
class Activate:
    """One ACTIVATE (see the module docstring). ``dtype`` is an output type name, or a raw code; ``scale`` a
    float (float outputs; rounded to fp32) or an int32 (integer outputs); ``bias`` an SBUF byte offset or
    ``None``. ``func`` and ``source_space`` may be raw codes too, so that bad commands can be expressed."""

    source: AccessPattern
    destination: AccessPattern
    partition: int = 0
    partitions: int = 1
    source_space: int = Space.PSUM
    func: int = ActFunc.IDENTITY
    dtype: str | int = "fp32"
    scale: float | int = 1.0
    bias: int | None = None
    accumulate: bool = False

    def scale_bits(self) -> int:
        """The 32 bits of the scale field."""
        fmt = act_type(self.dtype)
        if fmt is None or fmt.is_float:
            if isinstance(self.scale, (int, np.integer)) and fmt is None:
                return int(self.scale) & 0xFFFF_FFFF
            return int(np.array([self.scale], dtype=np.float32).view(np.uint32)[0])
        if isinstance(self.scale, bool) or not float(self.scale).is_integer():
            raise ValueError(f"scale must be an integer for {fmt.name} outputs, not {self.scale!r}")
        value = int(self.scale)
        if not -(1 << 31) <= value < 1 << 31:
            raise ValueError(f"scale must be an int32 (-2147483648..2147483647) for {fmt.name} outputs, not {value}")
        return value & 0xFFFF_FFFF


def psum_bytes(partitions: int) -> int:
    """Bytes of one partition's PSUM as the ACT engine's source sees it."""
    return PSUM_BANKS * 4 * partitions * 4


def _pattern_problem(pattern: AccessPattern, element_bytes: int, size: int) -> str | None:
    if pattern.address < 0 or pattern.address % element_bytes:
        return f"address must be a non-negative multiple of {element_bytes}, not {pattern.address}"
    offsets = pattern.offsets()
    low = pattern.address + element_bytes * int(offsets.min())
    high = pattern.address + element_bytes * (int(offsets.max()) + 1)
    if low < 0 or high > size:
        return f"reaches bytes {low}..{high - 1}, outside 0..{size - 1}"
    return None


def visits_once(dims) -> bool:
    """The accumulate rule (module docstring): sorted by ``|stride|``, each dimension of count > 1 has a
    ``|stride|`` larger than the spans of those before it (ties count as before it), so that no element of the
    walk is visited twice."""
    for d, (stride, count) in enumerate(dims):
        if count <= 1:
            continue
        inside = sum(abs(s) * (c - 1) for e, (s, c) in enumerate(dims)
                     if e != d and c > 1 and abs(s) <= abs(stride))
        if abs(stride) <= inside:
            return False
    return True


def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def activate_values(values: np.ndarray, func: int, fmt: ActType, scale_bits: int, bias: np.ndarray | None) -> np.ndarray:
    """The ACT lane arithmetic on raw 32-bit source words ``values[p, i]`` with ``bias[p]`` (raw words) or
    ``None`` (or ``bias[p, i]``, one per element, when accumulating): an array of the output type."""
    words = np.asarray(values, dtype=np.uint32)
    if fmt.is_float:
        x = words.view(np.float32)
        scale = np.array([scale_bits], dtype=np.uint32).view(np.float32)[0]
        with np.errstate(all="ignore"):
            t = np.multiply(x, scale, dtype=np.float32)
            if bias is not None:
                addend = np.asarray(bias, dtype=np.uint32).view(np.float32)
                t = np.add(t, addend if addend.ndim == 2 else addend[:, None], dtype=np.float32)
            if func == ActFunc.RELU:
                t = np.where(np.isnan(t) | (t > 0), t, np.float32(0.0)).astype(np.float32)
            t = np.where(np.isnan(t), QUIET_NAN, t).astype(np.float32)
            return t.astype(fmt.numpy)
    x = words.view(np.int32).astype(object)
    scale = int(np.array([scale_bits], dtype=np.uint32).view(np.int32)[0])
    t = x * scale
    if bias is not None:
        addend = np.asarray(bias, dtype=np.uint32).view(np.int32).astype(object)
        t = t + (addend if addend.ndim == 2 else addend[:, None])
    if func == ActFunc.RELU:
        t = np.where(t > 0, t, 0)
    info = np.iinfo(fmt.numpy)
    return np.clip(t, info.min, info.max).astype(np.int64).astype(fmt.numpy)


class ActModel:
    """The ACT engine over an SBUF (P x ``sbuf_bytes`` bytes) and a PSUM (P x 8 x 4P words), which may be
    shared with other models."""

    def __init__(self, partitions: int, *, sbuf_bytes: int = 16 * 1024, sbuf: np.ndarray | None = None,
                 psum: np.ndarray | None = None):
        self.partitions = PARTITIONS.validate(partitions)
        self.sbuf_bytes = SBUF_BYTES.validate(sbuf_bytes)
        self.sbuf = np.zeros((partitions, sbuf_bytes), dtype=np.uint8) if sbuf is None else sbuf
        self.psum = np.zeros((partitions, PSUM_BANKS, 4 * partitions), dtype=np.uint32) if psum is None else psum

    def problem(self, command: Activate) -> tuple[ActError, str] | None:
        """Why ``command`` would be refused (its error code and a message naming the field), or ``None``."""
        if int(command.func) not in tuple(ActFunc):
            return ActError.FUNC, f"func must be 0 (identity) or 1 (relu), not {int(command.func)}"
        fmt = act_type(command.dtype)
        if fmt is None:
            return ActError.DTYPE, (f"dtype must be one of codes 0..5 ({', '.join(ACT_TYPES)}), "
                                    f"not {command.dtype}")
        p = self.partitions
        if not 1 <= command.partitions <= p or not 0 <= command.partition <= p - command.partitions:
            return ActError.PARTITION, (f"partitions {command.partition}..{command.partition + command.partitions - 1}"
                                        f" must be a non-empty range inside 0..{p - 1}")
        for name, pattern in (("source", command.source), ("destination", command.destination)):
            if not 1 <= len(pattern.dims) <= MAX_PATTERN_DIMS or any(c < 1 for _, c in pattern.dims):
                return ActError.COUNT, f"{name} counts must be at least 1, not {[c for _, c in pattern.dims]}"
        if command.source.count != command.destination.count:
            return ActError.COUNT, (f"source walks {command.source.count} elements but destination "
                                    f"{command.destination.count}; they must be equal")
        source_size = psum_bytes(p) if int(command.source_space) == Space.PSUM else self.sbuf_bytes
        problem = _pattern_problem(command.source, 4, source_size)
        if problem:
            return ActError.SOURCE_BOUNDS, f"source {problem}"
        problem = _pattern_problem(command.destination, fmt.bytes, self.sbuf_bytes)
        if problem:
            return ActError.DESTINATION_BOUNDS, f"destination {problem}"
        if command.bias is not None and (command.bias < 0 or command.bias % 4 or command.bias + 4 > self.sbuf_bytes):
            return ActError.BIAS_BOUNDS, (f"bias must be a multiple of 4 in 0..{self.sbuf_bytes - 4}, "
                                          f"not {command.bias}")
        if command.accumulate:
            if fmt.name not in ("fp32", "int32") or command.bias is not None:
                return ActError.ACCUMULATE, (f"accumulate needs an fp32 or int32 output and no bias, not "
                                             f"{fmt.name}{' with a bias' if command.bias is not None else ''}")
            if not visits_once(command.destination.dims):
                return ActError.ACCUMULATE, (f"accumulate needs a destination walk that visits each element "
                                             f"once (sorted by |stride|, each stride larger than the spans "
                                             f"inside it), not {list(command.destination.dims)}")
        return None

    def check(self, command: Activate) -> None:
        """Raise ``ValueError`` naming the problem if the RTL would refuse ``command``; otherwise do nothing."""
        problem = self.problem(command)
        if problem:
            raise ValueError(problem[1])

    def _source_words(self, command: Activate) -> np.ndarray:
        lanes = slice(command.partition, command.partition + command.partitions)
        if int(command.source_space) == Space.PSUM:
            memory = self.psum[lanes].reshape(command.partitions, -1).astype("<u4").view(np.uint8)
        else:
            memory = self.sbuf[lanes]
        columns = command.source.address + 4 * command.source.offsets()[:, None] + np.arange(4)[None, :]
        raw = np.ascontiguousarray(memory[:, columns.reshape(-1)])
        return raw.view("<u4").reshape(command.partitions, -1)

    def run(self, command: Activate) -> None:
        """Apply ``command``; ``ValueError`` (and no change) if it would be refused."""
        self.check(command)
        fmt = act_type(command.dtype)
        lanes = slice(command.partition, command.partition + command.partitions)
        bias = None
        if command.bias is not None:
            bias = np.ascontiguousarray(self.sbuf[lanes, command.bias:command.bias + 4]).view("<u4")[:, 0]
        if command.accumulate:
            columns = command.destination.address + 4 * command.destination.offsets()[:, None] + np.arange(4)
            bias = np.ascontiguousarray(self.sbuf[lanes][:, columns.reshape(-1)]).view("<u4").reshape(
                command.partitions, -1)
        out = activate_values(self._source_words(command), int(command.func), fmt, command.scale_bits(), bias)
        raw = np.ascontiguousarray(out).view(np.uint8).reshape(command.partitions, -1, fmt.bytes)
        columns = command.destination.address + fmt.bytes * command.destination.offsets()
        for i, column in enumerate(columns):  # in walk order, so a byte visited twice keeps the later value
            self.sbuf[lanes, column:column + fmt.bytes] = raw[:, i, :]
