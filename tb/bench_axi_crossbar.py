"""Throughput and fairness of the AXI4 crossbar, measured in cycles (``trntile bench xbar``).

Two traffic patterns, each run for writes and then for reads, with cocotbext-axi ``AxiMaster``s and
``AxiRam``s and no backpressure:

Each master issues all its bursts at once, so the figures measure the crossbar, not the issuing loop.

- **disjoint**: master *i* streams 4 KiB bursts (256 beats at 128 bits) to target *i*, for the first
  min(N, M) masters. Efficiency = data beats delivered per cycle / min(N, M), over the cycles from the
  first beat to the last.
- **hotspot**: every master streams bursts to target 0. Efficiency = target 0's beats per cycle over the
  same kind of window. Shares = each master's fraction of those beats while all of them still had work,
  i.e. up to the cycle the first master finished.

The figures are written as JSON to the file named by ``TRNTILE_BENCH_JSON``.
"""

from __future__ import annotations

import json
import logging
import os

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiMaster, AxiRam

from trntile.hdl.tops import XBAR_WINDOW
from trntile.tb.axi_checker import AxiProtocolChecker, until_done
from trntile.tb.common import ClockedTB

# Bursts per master and pattern: long enough for shares to settle within a burst or two.
BURSTS = int(os.environ.get("TRNTILE_BENCH_BURSTS", "32"))


class BeatLog:
    """Cycle numbers of the W and R data beats on one port."""

    def __init__(self, dut, prefix: str):
        self.handles = {ch: (getattr(dut, f"{prefix}__{ch}valid"), getattr(dut, f"{prefix}__{ch}ready"))
                        for ch in ("w", "r")}
        self.beats = {"w": [], "r": []}


async def log_beats(dut, logs: list[BeatLog], cycle: list[int]) -> None:
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cycle[0] += 1
        for log in logs:
            for channel, (valid, ready) in log.handles.items():
                if valid.value == 1 and ready.value == 1:
                    log.beats[channel].append(cycle[0])


def efficiency(beats: list[int], lanes: int) -> float:
    if not beats:
        return 0.0
    return len(beats) / ((max(beats) - min(beats) + 1) * lanes)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def bench(dut):
    tb = ClockedTB(dut)
    n, m = tb.params["masters"], tb.params["slaves"]
    burst_bytes = 256 * tb.params["data_width"] // 8
    masters = [AxiMaster(AxiBus.from_prefix(dut, f"s{i}_axi", bus_separator="__"), dut.clk, dut.rst)
               for i in range(n)]
    rams = [AxiRam(AxiBus.from_prefix(dut, f"m{j}_axi", bus_separator="__"), dut.clk, dut.rst, size=XBAR_WINDOW)
            for j in range(m)]
    for bfm in masters + rams:
        for part in (bfm.write_if, bfm.read_if):
            part.log.setLevel(logging.WARNING)
    checkers = [AxiProtocolChecker(dut, f"s{i}_axi", dut.clk, dut.rst) for i in range(n)]
    checkers += [AxiProtocolChecker(dut, f"m{j}_axi", dut.clk, dut.rst) for j in range(m)]
    master_logs = [BeatLog(dut, f"s{i}_axi") for i in range(n)]
    target_logs = [BeatLog(dut, f"m{j}_axi") for j in range(m)]
    cycle = [0]
    await tb.reset()
    cocotb.start_soon(log_beats(dut, master_logs + target_logs, cycle))

    # Each master owns a slice of each target window, so the patterns never overlap in memory.
    slice_bytes = XBAR_WINDOW // n

    async def stream(i: int, target: int, read: bool) -> int:
        """All of master i's bursts in flight at once (the crossbar limits how many are outstanding)."""
        base = target * XBAR_WINDOW + i * slice_bytes
        payload = bytes([i]) * burst_bytes
        tasks = []
        for k in range(BURSTS):
            address = base + (k * burst_bytes) % slice_bytes
            operation = masters[i].read(address, burst_bytes) if read else masters[i].write(address, payload)
            tasks.append(cocotb.start_soon(operation))
        for task in tasks:
            await task
        return cycle[0]

    figures = {}
    lanes = min(n, m)
    for read in (False, True):
        channel = "r" if read else "w"
        direction = "reads" if read else "writes"
        # Disjoint: master i -> target i.
        for log in master_logs + target_logs:
            log.beats[channel].clear()
        await until_done(dut.clk, checkers, *(stream(i, i, read) for i in range(lanes)))
        disjoint = efficiency([c for log in target_logs[:lanes] for c in log.beats[channel]], lanes)
        # Hotspot: everybody -> target 0.
        for log in master_logs + target_logs:
            log.beats[channel].clear()
        finished = await until_done(dut.clk, checkers, *(stream(i, 0, read) for i in range(n)))
        hot = target_logs[0].beats[channel]
        hotspot = efficiency(hot, 1)
        contended_until = min(finished)
        counts = [sum(1 for c in log.beats[channel] if c <= contended_until) for log in master_logs]
        shares = [count / sum(counts) for count in counts]
        figures[direction] = {"disjoint_efficiency": round(disjoint, 4), "hotspot_efficiency": round(hotspot, 4),
                              "shares": [round(s, 4) for s in shares]}
        tb.log.info("%s: disjoint %.4f, hotspot %.4f, shares %s", direction, disjoint, hotspot, figures[direction]["shares"])

    for checker in checkers:
        checker.check(idle=True)
    result = {
        "masters": n, "slaves": m,
        "disjoint_efficiency": min(f["disjoint_efficiency"] for f in figures.values()),
        "hotspot_efficiency": min(f["hotspot_efficiency"] for f in figures.values()),
        "min_share": min(min(f["shares"]) for f in figures.values()),
        "max_share": max(max(f["shares"]) for f in figures.values()),
        "data_width": tb.params["data_width"], "bursts_per_master": BURSTS, "burst_beats": 256,
        "by_direction": figures,
    }
    with open(os.environ["TRNTILE_BENCH_JSON"], "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
