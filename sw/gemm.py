"""The GEMM kernel: ``C = A @ B`` on the tile, tiled over the P x P array, built with :mod:`trntile.sw.kernel`.

DRAM layout (the host writes A transposed, so that every DMA reads whole rows):

- ``at``: A.T, K x M, in the operand type;
- ``b``: B, K x N, in the operand type;
- ``c``: C, M x N, fp32 (int32 for int8).

Tiling: C is cut into tiles of up to P rows (M) by 4P columns (N, one PSUM bank). For each tile, K is cut into
chunks of P rows, in order, the last one shorter; each chunk is one LoadStationary + MultiplyMoving, the first
overwriting the PSUM tile and the others accumulating into it. So C equals
:func:`trntile.golden.numerics.chunked_matmul` bit for bit. ACT then copies the tile to the SBUF, and a DMA
writes it to C.

Operands: when A.T and B fit in the SBUF (``strategy="resident"``, what ``auto`` picks when it can), each is
loaded once, one DMA per K chunk, and the tensor engine starts as soon as the first chunks are in. Otherwise
(``"stream"``) the A.T and B chunks of every step go through ``buffers`` SBUF buffers each, in turn, on DMA
queues of their own.
The dependency tracking of the kernel API makes a DMA wait only until the tensor engine is done with the buffer
it overwrites, so the loads of the next chunks run while the tensor engine multiplies. The PSUM tiles rotate
over the 8 banks, and the output tiles over their own SBUF buffers, so ACT and the DMA of one tile overlap the
multiplications of the next.
"""

from __future__ import annotations

from ..golden.numerics import DTYPES
from .kernel import PSUM_BANKS, Kernel, PsumTile

__all__ = ["gemm_kernel", "accumulator_dtype", "gemm_tile_params", "resident_sbuf_bytes"]


def accumulator_dtype(dtype: str) -> str:
    """The type of C: fp32, or int32 for int8."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    return "fp32" if DTYPES[dtype].is_float else "int32"


def gemm_kernel(m: int, n: int, k: int, dtype: str, *, partitions: int = 16, queues: int = 4,
                sbuf_bytes: int = 16 * 1024, dram_bytes: int = 1 << 24, buffers: int = 2,
                strategy: str = "auto", data_address: int = 0) -> Kernel:
    """The kernel for ``C[m, n] = A[m, k] @ B[k, n]`` (see the module docstring); its DRAM tensors are
    ``at``, ``b`` and ``c``.

    ``strategy``: ``"resident"`` loads A.T and B into the SBUF once, one DMA per K chunk of each, and every
    tile multiplies from there; ``"stream"`` loads the two chunks of every step into rotating buffers;
    ``"auto"`` (the default) takes ``resident`` when A.T and B fit in the SBUF beside the output buffers.
    ``data_address``: where its DRAM tensors start (its programs follow them), so that several kernels can
    share one DRAM, as the tiles of a cluster do."""
    for name, value in (("m", m), ("n", n), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if not 1 <= buffers <= 4:
        raise ValueError(f"buffers must be in 1..4, not {buffers}")
    if strategy not in ("auto", "resident", "stream"):
        raise ValueError(f"strategy must be auto, resident or stream, not {strategy!r}")
    out = accumulator_dtype(dtype)
    kernel = Kernel(partitions=partitions, sbuf_bytes=sbuf_bytes, queues=queues, dram_bytes=dram_bytes,
                    data_address=data_address)
    p = kernel.partitions
    width = 4 * p
    size = DTYPES[dtype].numpy.itemsize
    if strategy == "auto":
        fits = resident_sbuf_bytes(m, n, k, dtype, partitions=p) <= kernel.sbuf_bytes
        strategy = "resident" if fits else "stream"
    at = kernel.dram("at", (k, m), dtype)
    b = kernel.dram("b", (k, n), dtype)
    c = kernel.dram("c", (m, n), out)
    queue_a, queue_b, queue_c = 0, 1 % queues, 2 % queues

    if strategy == "resident":
        stationary, moving = [], []
        for index, k0 in enumerate(range(0, k, p)):
            depth = min(p, k - k0)
            stationary.append(kernel.sbuf((p, m), dtype)[:depth])
            moving.append(kernel.sbuf((p, n), dtype)[:depth])
            kernel.dma_copy(stationary[-1], at[k0:k0 + depth], queue=queue_a)
            kernel.dma_copy(moving[-1], b[k0:k0 + depth], queue=queue_b)

        def operands(step, index, k0, depth, m0, rows, n0, cols):
            return stationary[index][:, m0:m0 + rows], moving[index][:, n0:n0 + cols]
    else:
        stationary = [kernel.sbuf((p, min(m, p)), dtype) for _ in range(buffers)]
        moving = [kernel.sbuf((p, min(n, width)), dtype) for _ in range(buffers)]

        def operands(step, index, k0, depth, m0, rows, n0, cols):
            s_tile = stationary[step % buffers][:depth, :rows]
            m_tile = moving[step % buffers][:depth, :cols]
            kernel.dma_copy(s_tile, at[k0:k0 + depth, m0:m0 + rows], queue=queue_a)
            kernel.dma_copy(m_tile, b[k0:k0 + depth, n0:n0 + cols], queue=queue_b)
            return s_tile, m_tile

    tiles = [(m0, min(p, m - m0), n0, min(width, n - n0)) for m0 in range(0, m, p) for n0 in range(0, n, width)]
    chunks = [(index, k0, min(p, k - k0)) for index, k0 in enumerate(range(0, k, p))]
    outputs = min(len(tiles), PSUM_BANKS) if strategy == "resident" else buffers
    results = [kernel.sbuf((min(m, p), min(n, width)), out) for _ in range(outputs)]
    step = 0
    # The DMA brings a K chunk of A.T and B, P (M + N) elements, at up to 2P bytes a cycle on the bus of
    # gemm_tile_params. The first pass multiplies 1.5 times as many columns per chunk as that takes, so the
    # tensor engine rarely waits for a chunk (measured: less slows 128^3 down); no more, so that the
    # results of small GEMMs start leaving early.
    chunk_cycles = -(-(m + n) * size // 2)
    first_pass = -(-3 * chunk_cycles // (2 * min(n, width)))
    for first, last in _passes(tiles, -(-n // width), resident=strategy == "resident", first=first_pass):
        members = list(enumerate(tiles[first:last], start=first))
        for index, k0, depth in chunks:
            for tile, (m0, rows, n0, cols) in members:
                s_tile, m_tile = operands(step, index, k0, depth, m0, rows, n0, cols)
                kernel.matmul(PsumTile(tile % PSUM_BANKS, 0, (rows, cols)), s_tile, m_tile, accumulate=k0 > 0)
                step += 1
        for tile, (m0, rows, n0, cols) in members:
            result = results[tile % outputs][:rows, :cols]
            kernel.activation(result, PsumTile(tile % PSUM_BANKS, 0, (rows, cols)))
            kernel.dma_copy(c[m0:m0 + rows, n0:n0 + cols], result, queue=queue_c)
    return kernel


def _passes(tiles: list, row: int, *, resident: bool, first: int = PSUM_BANKS) -> list[tuple[int, int]]:
    """The order of the multiplications: ``(first, last)`` ranges of ``tiles`` (M-major, ``row`` tiles per M
    block), each multiplied K chunk by K chunk, every tile of the range in turn for each chunk.

    Streamed operands go one tile at a time: each chunk is loaded for the one tile that uses it. Resident
    operands: the first pass takes ``first`` tiles (at most as many as there are PSUM banks), so that it has
    work for each K chunk as soon as that chunk's DMA lands rather than waiting for all of K; then one M block at a time (at most
    PSUM_BANKS tiles), so that results leave steadily and the last pass is short. Within a pass the tiles of
    one M block follow each other and share one LoadStationary per chunk."""
    if not resident:
        return [(t, t + 1) for t in range(len(tiles))]
    passes = [(0, min(len(tiles), PSUM_BANKS, max(1, first)))]
    start = passes[0][1]
    while start < len(tiles):
        end = min(len(tiles), start + min(PSUM_BANKS, row - start % row))
        passes.append((start, end))
        start = end
    return passes


def resident_sbuf_bytes(m: int, n: int, k: int, dtype: str, *, partitions: int) -> int:
    """The SBUF bytes per partition that ``gemm_kernel(..., strategy="resident")`` needs: every K chunk of A.T
    and B, and an output buffer per PSUM bank in use."""
    size = DTYPES[dtype].numpy.itemsize
    chunks = -(-k // partitions)
    tiles = -(-m // partitions) * -(-n // (4 * partitions))
    def row(count):
        return -(-count * size // 4) * 4           # allocations are 4-byte aligned
    return chunks * (row(m) + row(n)) + min(tiles, PSUM_BANKS) * min(n, 4 * partitions) * 4


def gemm_tile_params(partitions: int, m: int = 1, n: int = 1, k: int = 1, dtype: str = "bf16") -> dict:
    """The tile that ``trntile matmul``, ``trntile demo`` and ``trntile bench gemm`` run a GEMM on.

    One tile per P for every GEMM up to 256 x 256 x 256 (so one build serves them all):

    - the AXI data width is 16 P bits (128 at least, 512 at most): DRAM then delivers one bf16 column of P
      elements a cycle, what the array consumes; at 128 bits and P = 16, the DMA's one SBUF word a cycle
      cannot carry A, B and C as fast as the array computes (see docs/performance.md);
    - 64 KiB of SBUF per partition, enough to keep A.T and B resident; more, up to the largest SBUF, for a
      larger GEMM that then still fits;
    - 16 MiB of DRAM, more for a larger GEMM (``ValueError`` beyond the 4 GiB a tile can address);
    - three DMA queues, one each for A.T, B and C (:func:`gemm_kernel`), and no fourth one to build."""
    from ..hdl.params import PARTITIONS

    partitions = PARTITIONS.validate(partitions)
    size = DTYPES[dtype].numpy.itemsize
    resident = resident_sbuf_bytes(m, n, k, dtype, partitions=partitions)
    sbuf = 64 * 1024
    if sbuf < resident <= 256 * 1024:
        sbuf = 1 << (resident - 1).bit_length()
    data = (k * m + k * n) * size + 4 * m * n + 3 * 4096
    tensor_ops = 2 * -(-m // partitions) * -(-n // (4 * partitions)) * -(-k // partitions)
    programs = 64 * (4 * tensor_ops + 64)
    dram = max(1 << 24, 1 << (data + programs + 65536).bit_length())
    if dram > 1 << 32:
        raise ValueError(f"a {m} x {k} by {k} x {n} GEMM needs more than the 4 GiB of DRAM a tile can have")
    return {"partitions": partitions, "sbuf_bytes": sbuf, "data_width": min(512, max(128, 16 * partitions)),
            "queues": 3, "outstanding": 8, "dram_bytes": dram, "semaphores": 32}
