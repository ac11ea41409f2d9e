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
from .kernel import Kernel, PsumTile

__all__ = ["gemm_kernel", "accumulator_dtype"]


def accumulator_dtype(dtype: str) -> str:
    """The type of C: fp32, or int32 for int8."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    return "fp32" if DTYPES[dtype].is_float else "int32"


def gemm_kernel(m: int, n: int, k: int, dtype: str, *, partitions: int = 16, queues: int = 4,
                sbuf_bytes: int = 16 * 1024, dram_bytes: int = 1 << 24, buffers: int = 2,
                strategy: str = "auto") -> Kernel:
    """The kernel for ``C[m, n] = A[m, k] @ B[k, n]`` (see the module docstring); its DRAM tensors are
    ``at``, ``b`` and ``c``.

    ``strategy``: ``"resident"`` loads A.T and B into the SBUF once, one DMA per K chunk of each, and every
    tile multiplies from there; ``"stream"`` loads the two chunks of every step into rotating buffers;
    ``"auto"`` (the default) takes ``resident`` when A.T and B fit in the SBUF beside the output buffers."""
    for name, value in (("m", m), ("n", n), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if not 1 <= buffers <= 4:
        raise ValueError(f"buffers must be in 1..4, not {buffers}")
    if strategy not in ("auto", "resident", "stream"):
        raise ValueError(f"strategy must be auto, resident or stream, not {strategy!r}")
    out = accumulator_dtype(dtype)
    kernel = Kernel(partitions=partitions, sbuf_bytes=sbuf_bytes, queues=queues, dram_bytes=dram_bytes)
    p = kernel.partitions
    width = 4 * p
    size = DTYPES[dtype].numpy.itemsize
    chunks = -(-k // p)
    resident_bytes = chunks * (-(-m * size // 4) * 4 + -(-n * size // 4) * 4) + buffers * min(n, width) * 4
    if strategy == "auto":
        strategy = "resident" if resident_bytes <= kernel.sbuf_bytes else "stream"
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

    results = [kernel.sbuf((min(m, p), min(n, width)), out) for _ in range(buffers)]
    step = tile = 0
    for m0 in range(0, m, p):
        rows = min(p, m - m0)
        for n0 in range(0, n, width):
            cols = min(width, n - n0)
            psum = PsumTile(tile % 8, 0, (rows, cols))   # the banks in turn; a tile fills at most one bank
            for index, k0 in enumerate(range(0, k, p)):
                depth = min(p, k - k0)
                s_tile, m_tile = operands(step, index, k0, depth, m0, rows, n0, cols)
                kernel.matmul(psum, s_tile, m_tile, accumulate=k0 > 0)
                step += 1
            result = results[tile % buffers][:rows, :cols]
            kernel.activation(result, psum)
            kernel.dma_copy(c[m0:m0 + rows, n0:n0 + cols], result, queue=queue_c)
            tile += 1
    return kernel
