# amaranth: UnusedElaboratable=no
"""Every registered top lints clean under `verilator --lint-only -Wall` with the waivers of lint.vlt only."""

import pytest
from conftest import require

from trntile.hdl.sbuf_model import TEST_SBUF_BYTES
from trntile.hdl.tops import TOPS
from trntile.sim import toolchain
from trntile.sim.lint import WAIVERS, lint
from trntile.sim.runner import design

# Small configurations, the same as the simulation tests use where there is one, so the Verilog is
# generated once for both (it is cached on disk).
SMALL = {"partitions": 4}
PARAMS = {
    "tensor_engine": {"partitions": 4, "sbuf_bytes": TEST_SBUF_BYTES, "sbuf_latency": 1},
    "dma": {"partitions": 4, "sbuf_bytes": 4096, "queues": 4, "outstanding": 8, "dram_bytes": 1 << 20},
    "tile": {"partitions": 4, "sbuf_bytes": 1024, "semaphores": 32, "data_width": 128, "queues": 4, "outstanding": 8,
             "dram_bytes": 1 << 20},
}
PARAMS["tile_bench"] = PARAMS["tile"]
PARAMS["tile"] = {**PARAMS["tile"], "act_lanes": 2}   # and the ACT engine's passes through fewer lanes
PARAMS["cluster"] = PARAMS["cluster_bench"] = {"tiles": 2, "partitions": 4, "sbuf_bytes": 1024, "semaphores": 32,
                                               "dram_bytes": 1 << 20, "data_width": 128, "queues": 3,
                                               "outstanding": 8}


def _params(name: str) -> dict:
    if name in PARAMS:
        return PARAMS[name]
    return {key: value for key, value in SMALL.items() if key in TOPS[name].param_names}


@pytest.mark.verilator
@pytest.mark.parametrize("name", sorted(TOPS))
def test_top_lints_clean(name):
    require(toolchain.verilator())
    d = design(name, _params(name))
    warnings = lint(d.verilog, name)
    assert not warnings, f"{name} {d.params}: {len(warnings)} lint warnings beyond {WAIVERS.name}:\n" + \
        "\n".join(warnings[:20])


@pytest.mark.verilator
@pytest.mark.parametrize("fp_cuts", [1, 2])
def test_tensor_engine_with_fp_cuts_lints_clean(fp_cuts):
    """The PE, its row and the PSUM partition built with registers in their float units (``fp_cuts``)."""
    require(toolchain.verilator())
    d = design("tensor_engine", {**PARAMS["tensor_engine"], "fp_cuts": fp_cuts})
    warnings = lint(d.verilog, "tensor_engine")
    assert not warnings, f"{len(warnings)} lint warnings beyond {WAIVERS.name}:\n" + "\n".join(warnings[:20])


# A module with the defects the lint is there to catch: an output nobody drives, a signal driven from two
# always blocks on different clock edges, a latch, and a blocking assignment in a clocked block.
BROKEN = """
module broken (input clk, input a, input b, output reg y, output z, output reg q);
  reg t;
  always @(posedge clk) t = a;
  always @(posedge clk) y <= t;
  always @(negedge clk) y <= b;
  always @* if (a) q = b;
endmodule
"""


@pytest.mark.verilator
def test_lint_catches_real_defects_through_the_waivers():
    require(toolchain.verilator())
    warnings = lint(BROKEN, "broken")
    rules = {line.split(":")[0].removeprefix("%Warning-").removeprefix("%Error-") for line in warnings}
    assert {"UNDRIVEN", "MULTIDRIVEN", "LATCH", "BLKSEQ"} <= rules, warnings


def test_waivers_are_commented():
    """Every waiver in lint.vlt has a comment above it saying why (a bare waiver is a hidden defect)."""
    lines = WAIVERS.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith("lint_off"):
            block = lines[:index]
            while block and block[-1].startswith("lint_off"):
                block.pop()
            assert block and block[-1].startswith("//"), f"lint.vlt line {index + 1} has no comment: {line}"
