"""Simulation speed of the whole tile (``trntile bench tile``): simulated clock cycles per wall-clock second.

Runs the directed matmul (P x P x 4P, bf16) and three constrained-random program sets on the tile, each checked
against the golden ISA simulator, and times the simulation of each run (the wall clock between the start
register write and the tile finishing, so the golden model and the set-up are left out), with the three
AXI protocol checkers on (as in the tests) or, with ``TRNTILE_BENCH_CHECKERS=0``, off. Writes
``{"partitions", "sim", "protocol_checkers", "runs": [{"name", "cycles", "seconds", "cycles_per_second"}], "cycles",
"seconds", "cycles_per_second"}`` to ``TRNTILE_BENCH_JSON``.
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb
from cocotb.triggers import ClockCycles

from trntile.tb.test_tile import TileTB
from trntile.tb.tile_programs import matmul_program, random_programs


async def _timed(tb: TileTB, programs, name: str) -> dict:
    await tb.soft_reset()
    await tb.window.write(0, bytes(tb.p * tb.sbuf_bytes))
    model = tb.golden(programs)
    begin = cocotb.utils.get_sim_time("ns")
    started = time.perf_counter()
    cycles = await tb.run(programs)
    seconds = time.perf_counter() - started
    simulated = round((cocotb.utils.get_sim_time("ns") - begin) / 10)
    await tb.compare(model, name)
    return {"name": name, "tile_cycles": cycles, "cycles": simulated, "seconds": round(seconds, 3),
            "cycles_per_second": round(simulated / seconds) if seconds else None}


@cocotb.test(timeout_time=5000, timeout_unit="ms")
async def tile_speed(dut):
    checkers = os.environ.get("TRNTILE_BENCH_CHECKERS", "1") != "0"
    tb = TileTB(dut, checkers=checkers)
    await tb.start()
    await ClockCycles(dut.clk, 10)
    runs = [await _timed(tb, matmul_program(tb.np_rng, partitions=tb.p, queues=tb.queues, dram_bytes=tb.dram_bytes,
                                             n=4 * tb.p), "matmul")]
    rng = random.Random(tb.rng.getrandbits(32))
    for index in range(3):
        programs = random_programs(rng, partitions=tb.p, queues=tb.queues, dram_bytes=tb.dram_bytes,
                                   sbuf_bytes=tb.sbuf_bytes, semaphores=tb.semaphores, operations=40)
        runs.append(await _timed(tb, programs, f"random{index}"))
    cycles, seconds = sum(r["cycles"] for r in runs), sum(r["seconds"] for r in runs)
    result = {"partitions": tb.p, "sim": cocotb.SIM_NAME, "protocol_checkers": checkers, "runs": runs, "cycles": cycles,
              "seconds": round(seconds, 3), "cycles_per_second": round(cycles / seconds)}
    tb.log.info("%s", result)
    with open(os.environ["TRNTILE_BENCH_JSON"], "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
