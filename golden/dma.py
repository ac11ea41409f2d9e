"""The DMA engine's descriptors and their effect on DRAM, SBUF and the semaphores, as a numpy model.

A descriptor moves ``n`` elements of ``element_bytes`` (1, 2 or 4) bytes: element i of the source walk is
written to element i of the destination walk. Each side is an :class:`Endpoint`:

- **DRAM**: a byte address and up to four ``[stride, count]`` dimensions (outermost first, strides in
  elements, signed).
- **SBUF**: a first partition, a number of partitions, a byte offset within each partition, and up to
  three dimensions within the partition. The partitions are the outermost dimension of the walk, one
  after another (contiguous only, as on Trainium).

Both sides must walk the same number of elements. When the transfer is complete, semaphore
``semaphore`` is increased by ``increment`` (modulo 2**32); an increment of 0 signals nothing.

The model applies a descriptor as if every source element were read before any destination byte were
written; the RTL streams, so source and destination must not overlap, and :meth:`DmaModel.run` refuses
descriptors whose ranges overlap. Where the destination walk visits a byte twice, the later element stays.

:meth:`DmaModel.problem` gives the :class:`DmaError` the RTL reports for a descriptor it must refuse, and
why; checks run in the order of that enum. Codes 1-5 are errors of the format itself, which
:class:`Endpoint` and :class:`Descriptor` refuse with ``ValueError`` when built; the RTL reports them for
raw descriptor bits.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from ..hdl.params import PARTITIONS, SBUF_BYTES
from .access_pattern import MAX_PATTERN_DIMS, walk_offsets

__all__ = ["Space", "DmaError", "Endpoint", "Descriptor", "DmaModel", "ELEMENT_BYTES", "STRIDE_BITS",
           "COUNT_BITS", "ADDRESS_BITS", "SEMAPHORE_BITS", "INCREMENT_BITS"]

ELEMENT_BYTES = (1, 2, 4)
STRIDE_BITS = 24      # signed, in elements
COUNT_BITS = 16
ADDRESS_BITS = 32     # DRAM byte address, or SBUF byte offset within a partition
PARTITION_BITS = 8
SEMAPHORE_BITS = 8
INCREMENT_BITS = 8


class Space(enum.IntEnum):
    """Which memory one side of a descriptor is in."""

    DRAM = 0
    SBUF = 1


class DmaError(enum.IntEnum):
    """Why a queue stopped (the RTL's error code), in the order descriptors are checked."""

    NONE = 0
    ELEMENT_SIZE = 1         #: element size code not 1, 2 or 4 bytes
    SPACE = 2                #: a memory space that does not exist
    COUNT = 3                #: a count of 0
    PARTITION_STRIDE = 4     #: an SBUF partition dimension (dims[0]) over several partitions with a stride other than 1
    MISMATCH = 5             #: source and destination walk different numbers of elements
    SEMAPHORE = 6            #: an increment for a semaphore beyond the semaphore file
    PARTITIONS = 7           #: SBUF partitions outside 0..P-1
    SOURCE_BOUNDS = 8        #: the source walk leaves its memory
    DESTINATION_BOUNDS = 9   #: the destination walk leaves its memory
    READ_RESPONSE = 10       #: SLVERR or DECERR on a read (the RTL only)
    WRITE_RESPONSE = 11      #: SLVERR or DECERR on a write (the RTL only)


def _field(name: str, value, bits: int, *, signed: bool = False, low: int | None = None) -> int:
    lowest = -(1 << (bits - 1)) if signed else 0
    highest = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    lowest = lowest if low is None else low
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lowest <= value <= highest:
        raise ValueError(f"{name} must be an integer in {lowest}..{highest}, not {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One side of a transfer. Build it with :meth:`dram` or :meth:`sbuf`, which check every field."""

    space: Space
    address: int
    dims: tuple[tuple[int, int], ...]   # DRAM: the walk; SBUF: the walk within a partition
    partition: int = 0                  # SBUF only
    partitions: int = 1                 # SBUF only

    @classmethod
    def dram(cls, address: int, dims) -> "Endpoint":
        return cls(Space.DRAM, address, tuple((int(s), int(c)) for s, c in dims))._checked("dram", MAX_PATTERN_DIMS)

    @classmethod
    def sbuf(cls, partition: int, partitions: int, offset: int, dims) -> "Endpoint":
        endpoint = cls(Space.SBUF, offset, tuple((int(s), int(c)) for s, c in dims), partition, partitions)
        return endpoint._checked("sbuf", MAX_PATTERN_DIMS - 1)

    def _checked(self, what: str, max_dims: int) -> "Endpoint":
        if not 1 <= len(self.dims) <= max_dims:
            raise ValueError(f"{what} dims must have 1..{max_dims} dimensions, not {len(self.dims)}")
        _field(f"{what} address", self.address, ADDRESS_BITS)
        for index, (stride, count) in enumerate(self.dims):
            _field(f"{what} dims[{index}] stride", stride, STRIDE_BITS, signed=True)
            _field(f"{what} dims[{index}] count", count, COUNT_BITS, low=1)
        if self.space == Space.SBUF:
            _field("sbuf partition", self.partition, PARTITION_BITS)
            _field("sbuf partitions", self.partitions, COUNT_BITS, low=1)
        return self

    @property
    def elements(self) -> int:
        inner = int(np.prod([count for _, count in self.dims]))
        return inner * (self.partitions if self.space == Space.SBUF else 1)

    def byte_indices(self, element_bytes: int, sbuf_bytes: int) -> np.ndarray:
        """For each element in walk order, the flat indices of its bytes (DRAM, or SBUF as P x sbuf_bytes)."""
        inner = self.address + element_bytes * walk_offsets(self.dims)
        if self.space == Space.SBUF:
            rows = (self.partition + np.arange(self.partitions, dtype=np.int64)) * sbuf_bytes
            inner = (rows[:, None] + inner[None, :]).reshape(-1)
        return inner[:, None] + np.arange(element_bytes, dtype=np.int64)[None, :]


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """Move ``source`` to ``destination`` in elements of ``element_bytes``; then add ``increment`` to
    semaphore ``semaphore``. Checked on construction (``ValueError`` naming the field)."""

    source: Endpoint
    destination: Endpoint
    element_bytes: int
    semaphore: int = 0
    increment: int = 0

    def __post_init__(self):
        if self.element_bytes not in ELEMENT_BYTES:
            raise ValueError(f"element_bytes must be one of 1, 2, 4, not {self.element_bytes!r}")
        _field("semaphore", self.semaphore, SEMAPHORE_BITS)
        _field("increment", self.increment, INCREMENT_BITS)
        if self.source.elements != self.destination.elements:
            raise ValueError(f"source walks {self.source.elements} elements but destination "
                             f"{self.destination.elements}; they must be equal")

    @property
    def elements(self) -> int:
        return self.source.elements

    @property
    def bytes(self) -> int:
        return self.elements * self.element_bytes


class DmaModel:
    """DRAM (``dram_bytes``), SBUF (``partitions`` x ``sbuf_bytes``) and semaphores."""

    def __init__(self, *, dram_bytes: int, partitions: int, sbuf_bytes: int, semaphores: int = 32):
        self.partitions = PARTITIONS.validate(partitions)
        self.sbuf_bytes = SBUF_BYTES.validate(sbuf_bytes)
        if isinstance(dram_bytes, bool) or not isinstance(dram_bytes, int) or not 1 <= dram_bytes <= 1 << ADDRESS_BITS:
            raise ValueError(f"dram_bytes must be an integer in 1..{1 << ADDRESS_BITS}, not {dram_bytes!r}")
        self.dram = np.zeros(dram_bytes, dtype=np.uint8)
        self.sbuf = np.zeros((partitions, sbuf_bytes), dtype=np.uint8)
        self.semaphores = np.zeros(semaphores, dtype=np.uint32)

    def _memory(self, space: Space) -> np.ndarray:
        return self.dram if space == Space.DRAM else self.sbuf.reshape(-1)

    def _bounds_problem(self, endpoint: Endpoint, element_bytes: int) -> str | None:
        inner = endpoint.address + element_bytes * walk_offsets(endpoint.dims)
        low, high = int(inner.min()), int(inner.max()) + element_bytes
        size = self.dram.size if endpoint.space == Space.DRAM else self.sbuf_bytes
        if low < 0 or high > size:
            where = "DRAM" if endpoint.space == Space.DRAM else "the SBUF partition"
            return f"reaches bytes {low}..{high - 1}, outside {where}'s 0..{size - 1}"
        return None

    def problem(self, descriptor: Descriptor) -> tuple[DmaError, str] | None:
        """Why the RTL must refuse ``descriptor`` (its error code and a message), or ``None``."""
        if descriptor.increment and descriptor.semaphore >= self.semaphores.size:
            return (DmaError.SEMAPHORE, f"semaphore must be in 0..{self.semaphores.size - 1} "
                    f"when increment is not 0, not {descriptor.semaphore}")
        for name, endpoint in (("source", descriptor.source), ("destination", descriptor.destination)):
            if endpoint.space == Space.SBUF and endpoint.partition + endpoint.partitions > self.partitions:
                return (DmaError.PARTITIONS, f"{name} partitions {endpoint.partition}.."
                        f"{endpoint.partition + endpoint.partitions - 1} are outside 0..{self.partitions - 1}")
        for name, endpoint, error in (("source", descriptor.source, DmaError.SOURCE_BOUNDS),
                                      ("destination", descriptor.destination, DmaError.DESTINATION_BOUNDS)):
            problem = self._bounds_problem(endpoint, descriptor.element_bytes)
            if problem:
                return error, f"{name} {problem}"
        return None

    def run(self, descriptor: Descriptor) -> None:
        """Apply ``descriptor``; ``ValueError`` (and no change) if it would be refused or its source and
        destination overlap."""
        problem = self.problem(descriptor)
        if problem:
            raise ValueError(problem[1])
        size = descriptor.element_bytes
        sources = descriptor.source.byte_indices(size, self.sbuf_bytes)
        destinations = descriptor.destination.byte_indices(size, self.sbuf_bytes)
        if descriptor.source.space == descriptor.destination.space and np.intersect1d(sources, destinations).size:
            raise ValueError("source and destination overlap; the DMA streams, so they must not")
        values = self._memory(descriptor.source.space)[sources.reshape(-1)]
        flat = destinations.reshape(-1)
        # numpy leaves open which value a repeated index gets: take each byte's last visit explicitly.
        unique, first_from_end = np.unique(flat[::-1], return_index=True)
        self._memory(descriptor.destination.space)[unique] = values[flat.size - 1 - first_from_end]
        if descriptor.increment:
            index = descriptor.semaphore
            self.semaphores[index] = (int(self.semaphores[index]) + descriptor.increment) & 0xFFFF_FFFF
