"""The DMA descriptor's binary format: one Amaranth layout for the RTL, the assembler and the testbenches.

A descriptor is :data:`DESCRIPTOR_BYTES` bytes in DRAM (little-endian, bit 0 first). Each endpoint is
``{space, partition, address, dims[4]}``, dims outermost first. For the SBUF, ``dims[0]`` walks the
partitions (stride 1, count = number of partitions) and ``dims[1:]`` walk within each partition; for
DRAM all four walk bytes of ``element_bytes``. Unused outer dimensions are ``[0, 1]``.
:func:`encode` and :func:`decode` convert a :class:`trntile.golden.dma.Descriptor` to and from those bytes.
"""

from amaranth.hdl import signed
from amaranth.lib import data

from ..golden.access_pattern import MAX_PATTERN_DIMS
from ..golden.dma import (ADDRESS_BITS, COUNT_BITS, ELEMENT_BYTES, INCREMENT_BITS, PARTITION_BITS, SEMAPHORE_BITS,
                          STRIDE_BITS, Descriptor, DmaError, Endpoint, Space)

__all__ = ["DESCRIPTOR_BYTES", "endpoint_layout", "descriptor_layout", "fields", "encode", "decode",
           "format_problem"]

DESCRIPTOR_BYTES = 64

endpoint_layout = data.StructLayout({
    "space": 2,                  # 0 DRAM, 1 SBUF; 2, 3 refused
    "partition": PARTITION_BITS,  # SBUF: first partition
    "address": ADDRESS_BITS,      # DRAM: byte address; SBUF: byte offset within each partition
    "dims": data.ArrayLayout(data.StructLayout({"stride": signed(STRIDE_BITS), "count": COUNT_BITS}),
                             MAX_PATTERN_DIMS),
})

descriptor_layout = data.StructLayout({
    "source": endpoint_layout,
    "destination": endpoint_layout,
    "element_size": 2,           # log2(element bytes): 0, 1, 2; 3 refused
    "semaphore": SEMAPHORE_BITS,  # semaphore to add to when complete
    "increment": INCREMENT_BITS,  # 0: signal nothing
})

assert descriptor_layout.size <= 8 * DESCRIPTOR_BYTES


def _endpoint_fields(endpoint: Endpoint) -> dict:
    if endpoint.space == Space.SBUF:
        dims = [(1, endpoint.partitions)] + [(0, 1)] * (MAX_PATTERN_DIMS - 1 - len(endpoint.dims)) + list(endpoint.dims)
    else:
        dims = [(0, 1)] * (MAX_PATTERN_DIMS - len(endpoint.dims)) + list(endpoint.dims)
    return {"space": int(endpoint.space), "partition": endpoint.partition, "address": endpoint.address,
            "dims": [{"stride": stride, "count": count} for stride, count in dims]}


def fields(descriptor: Descriptor) -> dict:
    """The :data:`descriptor_layout` fields of ``descriptor`` (already checked when it was built)."""
    return {"source": _endpoint_fields(descriptor.source), "destination": _endpoint_fields(descriptor.destination),
            "element_size": ELEMENT_BYTES.index(descriptor.element_bytes), "semaphore": descriptor.semaphore,
            "increment": descriptor.increment}


def encode(descriptor: Descriptor) -> bytes:
    """The :data:`DESCRIPTOR_BYTES` bytes of ``descriptor`` as it sits in DRAM."""
    raw = descriptor_layout.const(fields(descriptor)).as_value().value
    return raw.to_bytes(DESCRIPTOR_BYTES, "little")


def _view(raw: bytes | int):
    if isinstance(raw, (bytes, bytearray)):
        raw = int.from_bytes(raw, "little")
    return descriptor_layout.from_bits(raw & ((1 << descriptor_layout.size) - 1))


def format_problem(raw: bytes | int) -> tuple[DmaError, str] | None:
    """Why the bits in ``raw`` are not a descriptor: the :class:`~trntile.golden.dma.DmaError` the engine
    reports (codes 1-5, checked in that order) and a message naming the field; ``None`` if they are one."""
    view = _view(raw)
    if view.element_size >= len(ELEMENT_BYTES):
        return (DmaError.ELEMENT_SIZE,
                f"element_size must be 0..{len(ELEMENT_BYTES) - 1} (1, 2, 4 bytes), not {view.element_size}")
    sides = (("source", view.source), ("destination", view.destination))
    for name, side in sides:
        if side.space not in (Space.DRAM, Space.SBUF):
            return DmaError.SPACE, f"{name} space must be 0 (DRAM) or 1 (SBUF), not {side.space}"
    for name, side in sides:
        for index in range(MAX_PATTERN_DIMS):
            if side.dims[index].count == 0:
                return DmaError.COUNT, f"{name} dims[{index}] count must be in 1..{(1 << COUNT_BITS) - 1}, not 0"
    for name, side in sides:
        if side.space == Space.SBUF and side.dims[0].stride != 1 and side.dims[0].count > 1:
            return (DmaError.PARTITION_STRIDE,
                    f"{name} dims[0] walks partitions: its stride must be 1, not {side.dims[0].stride}")
    counts = []
    for _, side in sides:
        elements = 1
        for index in range(MAX_PATTERN_DIMS):
            elements *= side.dims[index].count
        counts.append(elements)
    if counts[0] != counts[1]:
        return DmaError.MISMATCH, f"source walks {counts[0]} elements but destination {counts[1]}; they must be equal"
    return None


def _endpoint(view) -> Endpoint:
    dims = [(view.dims[index].stride, view.dims[index].count) for index in range(MAX_PATTERN_DIMS)]
    if view.space == Space.SBUF:
        inner = dims[1:]
        while len(inner) > 1 and inner[0][1] == 1:  # padding
            inner = inner[1:]
        return Endpoint.sbuf(view.partition, dims[0][1], view.address, inner)
    while len(dims) > 1 and dims[0][1] == 1:  # padding
        dims = dims[1:]
    return Endpoint.dram(view.address, dims)


def decode(raw: bytes | int) -> Descriptor:
    """The descriptor in ``raw`` (its bytes, or their value); ``ValueError`` naming the field if the bits do
    not make one (:func:`format_problem`)."""
    problem = format_problem(raw)
    if problem:
        raise ValueError(problem[1])
    view = _view(raw)
    return Descriptor(_endpoint(view.source), _endpoint(view.destination), ELEMENT_BYTES[view.element_size],
                      view.semaphore, view.increment)
