"""DMA bandwidth, measured in cycles on the RTL (``trntile bench dma``).

Three runs, each a stream of equal transfers spread round-robin over every queue, each queue given its next
descriptor as soon as the last one completes (so up to ``queues`` descriptors overlap in the engine):

- **read**: ``TRNTILE_BENCH_BYTES`` bytes from contiguous DRAM to the SBUF, spread evenly over its partitions;
- **write**: the same bytes from the SBUF back to DRAM;
- **small**: 256-byte transfers from DRAM to the SBUF.

DRAM answers after ``TRNTILE_BENCH_LATENCY`` cycles (reads and write responses), with no other stalls. A run's
figure is its steady state: ``bytes`` moved by every transfer but the first, over the ``cycles`` from the first
transfer's completion to the last one's, so the memory latency paid once at the start is left out;
``efficiency = bytes_per_cycle / bus_bytes_per_cycle``. ``first_transfer_cycles`` is the first transfer alone,
from its descriptor taken to its completion, latency included. Every byte of DRAM and SBUF is compared with the
golden model at the end, so the figures are for correct transfers.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from trntile.golden.dma import Descriptor, Endpoint
from trntile.tb.test_dma import DmaTB, raw

SMALL_BYTES = 256  # the small run moves 8 x as many of these (``trntile bench dma`` sizes the SBUF for both)


def transfers(tb: DmaTB, direction: str, size: int, count: int) -> list[Descriptor]:
    """``count`` transfers of ``size`` bytes: 4-byte elements, DRAM contiguous, the SBUF split evenly over as
    many partitions as divide the transfer into whole elements per partition."""
    element = 4 if size % 4 == 0 else 1
    elements = size // element
    partitions = max(d for d in range(1, tb.p + 1) if elements % d == 0 and tb.p % d == 0)
    per_partition = elements // partitions
    span = per_partition * element
    result = []
    for index in range(count):
        dram = Endpoint.dram(index * size, [(1, elements)])
        sbuf = Endpoint.sbuf(0, partitions, index * span, [(1, per_partition)])   # its own place
        source, destination = (dram, sbuf) if direction == "read" else (sbuf, dram)
        if direction == "write":
            # SBUF to DRAM: back to the upper half of DRAM, each transfer to its own place.
            destination = Endpoint.dram(tb.dram_bytes // 2 + index * size, [(1, elements)])
        result.append(Descriptor(source, destination, element))
    return result


async def measure(tb: DmaTB, descriptors: list[Descriptor]) -> dict:
    dut = tb.dut
    queues = tb.queues
    waiting = [descriptors[q::queues] for q in range(queues)]
    counts = [tb.status(q)["completed"] for q in range(queues)]
    taken_at, completed_at = None, []
    busy = [False] * queues
    while len(completed_at) < len(descriptors):
        await ReadOnly()
        statuses = [tb.status(q) for q in range(queues)]
        await RisingEdge(dut.clk)
        for q, status in enumerate(statuses):
            assert status["error"] == 0, f"queue {q} stopped: {status}"
            if busy[q] and status["completed"] != counts[q]:
                counts[q] = status["completed"]
                busy[q] = False
                completed_at.append(tb.cycle)
        for q in range(queues):
            if not busy[q] and waiting[q]:
                descriptor = waiting[q].pop(0)
                await tb.submit(q, raw(descriptor))
                if taken_at is None:
                    taken_at = tb.cycle
                busy[q] = True
        assert tb.cycle - (completed_at[-1] if completed_at else taken_at or 0) < 200_000, "the DMA stopped"
    for descriptor in descriptors:
        tb.model.run(descriptor)
    size = descriptors[0].bytes
    moved = size * (len(descriptors) - 1)
    cycles = completed_at[-1] - completed_at[0]
    per_cycle = moved / cycles if cycles else float(size)
    return {"transfer_bytes": size, "transfers": len(descriptors), "bytes": moved, "cycles": cycles,
            "bytes_per_cycle": round(per_cycle, 3), "efficiency": round(per_cycle / tb.word, 4),
            "first_transfer_cycles": completed_at[0] - taken_at}


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def dma_bandwidth(dut):
    latency = int(os.environ.get("TRNTILE_BENCH_LATENCY", "64"))
    size = int(os.environ.get("TRNTILE_BENCH_BYTES", str(16 * 1024)))
    count = int(os.environ.get("TRNTILE_BENCH_TRANSFERS", "8"))
    tb = DmaTB(dut, latency=latency)
    await tb.start()
    result = {"bus_bytes_per_cycle": tb.word, "latency": latency, "partitions": tb.p, "queues": tb.queues,
              "outstanding": tb.params["outstanding"]}
    result["read"] = await measure(tb, transfers(tb, "read", size, count))
    result["write"] = await measure(tb, transfers(tb, "write", size, count))
    result["small"] = await measure(tb, transfers(tb, "read", SMALL_BYTES, 8 * count))
    tb.check_dram()
    await tb.check_sbuf()
    tb.checker.check(idle=True)
    tb.log.info("%s", result)
    with open(os.environ["TRNTILE_BENCH_JSON"], "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
