"""The ``trntile`` command line.

Bad input (an unknown top, a parameter out of range, a malformed option) exits with status 2 and one
line on standard error that names the parameter and what it accepts; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "COMMANDS"]

COMMANDS = ("doctor", "verilog", "bench", "matmul", "demo", "fpga", "paths", "waves")


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before its message; we want one line.
    def error(self, message):
        raise UsageError(message)


def _doctor(args) -> int:
    from trntile.sim import toolchain

    tools = toolchain.probe_all()
    width = max(len(name) for name in tools)
    print(f"{'tool':<{width}}  {'version':<12}  path")
    for name, tool in tools.items():
        version = tool.version or ("MISSING" if tool.required else "missing")
        print(f"{name:<{width}}  {version:<12}  {tool.path or '-'}")
        if tool.problem:
            print(f"{'':<{width}}  problem: {tool.problem}")
        if tool.note:
            print(f"{'':<{width}}  note: {tool.note}")
        if not tool.found:
            need = "needed" if tool.required else f"needed for {tool.purpose}"
            print(f"{'':<{width}}  {need}; install with: {tool.install}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({n: t.as_json() for n, t in tools.items()}, indent=2) + "\n")
    missing = [name for name, tool in tools.items() if tool.required and not tool.found]
    if missing:
        print(f"missing required tools: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def _verilog(args) -> int:
    from trntile import __version__
    from trntile.hdl.tops import TOPS, build, to_verilog

    if args.list:
        for top in TOPS.values():
            options = " ".join(f"[{param.option} {param.default}]" for param in top.params)
            print(f"{top.name:<24} {options:<32} {top.description}")
        return 0
    top, params = _top_and_params(args)
    if args.output is None:
        raise UsageError("-o/--output DIR is required")
    try:
        component, used = build(top, **params)
    except (TypeError, ValueError) as error:   # a rule between parameters, checked by the block itself
        raise UsageError(str(error)) from None

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    verilog_path = out / f"{args.top}.v"
    verilog_path.write_text(to_verilog(component, args.top))
    (out / "params.json").write_text(json.dumps(
        {"top": args.top, "params": used, "trntile": __version__}, indent=2) + "\n")
    settings = ", ".join(f"{k}={v}" for k, v in used.items())
    print(f"wrote {verilog_path} and {out / 'params.json'} ({args.top}{', ' + settings if settings else ''})")
    return 0


def _top_and_params(args) -> tuple[str, dict]:
    """The ``--top`` and the hardware parameters given on the command line, each checked against its range."""
    from trntile.hdl.tops import ALL_PARAMS, TOPS, get_top, resolve_params

    if args.top is None:
        raise UsageError(f"--top is required; known tops: {', '.join(sorted(TOPS))}")
    if args.top not in TOPS:
        raise UsageError(f"unknown top {args.top!r}; known tops: {', '.join(sorted(TOPS))}")
    given = {name: getattr(args, name) for name in ALL_PARAMS if getattr(args, name, None) is not None}
    for name, value in given.items():
        try:
            ALL_PARAMS[name].validate(value)
        except (TypeError, ValueError) as error:
            raise UsageError(f"{ALL_PARAMS[name].option}: {error}") from None
    try:
        return args.top, resolve_params(get_top(args.top), given)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None


def _fpga(args) -> int:
    from trntile.sim.fpga import FIELDS, FlowError, run_flow

    top, params = _top_and_params(args)
    out = Path(args.json).parent / f"{Path(args.json).stem}-logs"
    try:
        # run_flow checks the frequency and the tools before it generates anything
        report = run_flow(top, params, device=args.device, freq_mhz=args.freq, out=out, router=args.router,
                          placer_density=args.placer_density,
                          started=lambda: print(f"trntile fpga: {top} {params} on {args.device} at {args.freq:g} MHz;"
                                                f" logs in {out}", file=sys.stderr))
    except ValueError as error:   # "freq must be ..." or "device must be ...": name the option
        raise UsageError(f"--{str(error).split()[0]}: {error}") from None
    except FileNotFoundError as error:   # the tools are not installed
        raise UsageError(str(error)) from None
    except FlowError as error:
        print(f"trntile fpga: {error}", file=sys.stderr)
        return 1
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    width = max(map(len, FIELDS))
    for field in FIELDS:
        value = report[field]
        shown = "-" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
            else str(value)
        print(f"{field:<{width}}  {shown}")
    for name, use in (report.get("utilization") or {}).items():
        print(f"{'':<{width}}  {name}: {use['used']:,} of {use['available']:,}")
    path = report.get("critical_path")
    if path:
        print(f"slowest path: {path['from']} -> {path['to']} ({path['logic_ns']:g} ns of logic, "
              f"{path['routing_ns']:g} ns of routing)")
    print(f"wrote {args.json} in {report['seconds']:.0f} s (target {args.freq:g} MHz)")
    return 0 if report["fits"] else 1


def _paths(args) -> int:
    from trntile.sim.comb_paths import chains
    from trntile.sim.runner import design

    top, params = _top_and_params(args)
    if args.count < 1:
        raise UsageError(f"--count: count must be at least 1, not {args.count}")
    try:
        found = chains(design(top, params).verilog, top)
    except FileNotFoundError as error:   # Yosys (the fpga extra) is not installed
        raise UsageError(str(error)) from None
    except (TypeError, ValueError) as error:   # a rule between parameters, checked by the block itself
        raise UsageError(str(error)) from None
    print(f"{top} {params}: {len(found)} registers and memories; the {min(args.count, len(found))} whose "
          f"combinational input chain passes through the most blocks:")
    for chain in found[:args.count]:
        print(f"  {chain}")
    return 0


def _waves(args) -> int:
    """Open the waves in a folder (``--waves DIR`` of matmul and demo, or a test's run folder) in GTKWave."""
    import os
    import shlex
    import shutil
    import subprocess

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    dumps = sorted(folder.glob("*.fst"), key=lambda path: path.stat().st_mtime)
    if not dumps:
        raise UsageError(f"no .fst in {folder}: record one with WAVES=1 pytest ..., or trntile matmul/demo --waves DIR")
    dump = dumps[-1]   # the newest
    save = dump.with_suffix(".gtkw")
    command = ["gtkwave", str(dump)] + ([str(save)] if save.exists() else [])
    gtkwave = shutil.which("gtkwave")
    shown = " ".join(shlex.quote(part) for part in command)
    if gtkwave is None:
        print(f"GTKWave is not installed (apt-get install gtkwave); then run: {shown}")
        return 1
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print(f"no display here; where there is one, run: {shown}")
        return 0
    print(f"+ {shown}")
    subprocess.Popen([gtkwave, *command[1:]], start_new_session=True)
    return 0


def _bench_run(bench: str, top: str, params: dict, module: str, sim: str, json_path: str, env: dict) -> dict | None:
    """Run bench module ``module`` on ``top``; its figures (the JSON it wrote to ``json_path``), or ``None``
    after saying on standard error why the run failed."""
    from trntile.sim.runner import SimulationFailed, run

    out = Path(json_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        run(top, params, module, sim=sim, extra_env={"TRNTILE_BENCH_JSON": str(out), **env})
    except (SimulationFailed, FileNotFoundError, RuntimeError) as error:
        print(f"trntile bench {bench}: {error}", file=sys.stderr)
        return None
    return json.loads(out.read_text())


def _bench_xbar(args) -> int:
    from trntile.hdl.params import AXI_DATA_WIDTH, XBAR_MASTERS, XBAR_SLAVES

    params = {}
    for param, value in ((XBAR_MASTERS, args.masters), (XBAR_SLAVES, args.slaves), (AXI_DATA_WIDTH, args.data_width)):
        try:
            params[param.name] = param.validate(value)
        except (TypeError, ValueError) as error:
            raise UsageError(f"{param.option}: {error}") from None
    figures = _bench_run("xbar", "axi_crossbar", params, "trntile.tb.bench_axi_crossbar", args.sim, args.json, {})
    if figures is None:
        return 1
    for key in ("masters", "slaves", "disjoint_efficiency", "hotspot_efficiency", "min_share", "max_share"):
        print(f"{key:<20} {figures[key]}")
    print(f"wrote {Path(args.json).resolve()}")
    return 0


def _bench_tensor(args) -> int:
    from trntile.golden.numerics import DTYPES
    from trntile.hdl.params import FP_CUTS, PARTITIONS
    from trntile.hdl.sbuf_model import TEST_SBUF_BYTES

    try:
        p = PARTITIONS.validate(args.partitions)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--partitions: {error}") from None
    try:
        fp_cuts = FP_CUTS.validate(args.fp_cuts)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--fp-cuts: {error}") from None
    n = 4 * p if args.n is None else args.n
    if not 1 <= n <= 4 * p:
        raise UsageError(f"--n: n must be an integer in 1..{4 * p} (4P for P = {p}), not {n}")
    if not 1 <= args.pairs <= 4096:
        raise UsageError(f"--pairs: pairs must be an integer in 1..4096, not {args.pairs}")
    # Two operand sets of P + N elements each, with gaps; the block tests' SBUF size when they fit.
    needed = 2 * (p + n) * DTYPES[args.dtype].numpy.itemsize + 64
    sbuf_bytes = max(TEST_SBUF_BYTES, 1 << (needed - 1).bit_length())
    f = _bench_run("tensor", "tensor_engine", {"partitions": p, "sbuf_bytes": sbuf_bytes, "fp_cuts": fp_cuts},
                   "trntile.tb.bench_tensor_engine", args.sim, args.json,
                   {"TRNTILE_BENCH_DTYPE": args.dtype, "TRNTILE_BENCH_N": str(n), "TRNTILE_BENCH_PAIRS": str(args.pairs)})
    if f is None:
        return 1
    cuts = f" fp_cuts={f['fp_cuts']}" if f["fp_cuts"] else ""
    print(f"tensor P={f['partitions']} {f['dtype']} N={f['n']}{cuts}: {f['pairs']} LoadStationary+MultiplyMoving pairs, "
          f"{f['macs']} MACs in {f['cycles']} cycles, mfu {f['mfu']:.4f} (one pair alone: {f['single_pair_cycles']} "
          f"cycles); wrote {Path(args.json).resolve()}")
    return 0


def _bench_dma(args) -> int:
    from trntile.hdl.params import PARTITIONS
    from trntile.hdl.axi_latency import LATENCY_BITS

    try:
        p = PARTITIONS.validate(args.partitions)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--partitions: {error}") from None
    if not 0 <= args.latency < 1 << LATENCY_BITS:
        raise UsageError(f"--latency: latency must be an integer in 0..{(1 << LATENCY_BITS) - 1}, not {args.latency}")
    transfers = 8
    largest = 4 * 65535 * p  # a transfer is at most 65535 four-byte elements per partition
    if not 256 <= args.bytes <= min(largest, 64 * 1024):
        raise UsageError(f"--bytes: bytes must be an integer in 256..65536, not {args.bytes}")
    # Every transfer gets its own place in the SBUF and in both halves of DRAM.
    span = -(-args.bytes // p)
    small_span = 256 // min(p, 64)  # the small run: 8 x as many 256-byte transfers
    sbuf_bytes = max(1024, 1 << (max(transfers * span, 8 * transfers * small_span) - 1).bit_length())
    dram_bytes = max(1 << 20, 1 << (2 * transfers * args.bytes - 1).bit_length())
    if sbuf_bytes > 256 * 1024:
        raise UsageError(f"--bytes: {args.bytes} bytes x {transfers} transfers do not fit a {p}-partition SBUF")
    params = {"partitions": p, "sbuf_bytes": sbuf_bytes, "dram_bytes": dram_bytes}
    f = _bench_run("dma", "dma", params, "trntile.tb.bench_dma", args.sim, args.json,
                   {"TRNTILE_BENCH_LATENCY": str(args.latency), "TRNTILE_BENCH_BYTES": str(args.bytes),
                    "TRNTILE_BENCH_TRANSFERS": str(transfers)})
    if f is None:
        return 1
    for name in ("read", "write", "small"):
        run_ = f[name]
        print(f"dma {name:<5} {run_['transfer_bytes']:>6}-byte transfers, latency {f['latency']}: "
              f"{run_['bytes_per_cycle']:.2f} of {f['bus_bytes_per_cycle']} bytes/cycle, efficiency "
              f"{run_['efficiency']:.4f} (one transfer alone: {run_['first_transfer_cycles']} cycles)")
    print(f"wrote {Path(args.json).resolve()}")
    return 0


def _bench_tile(args) -> int:
    from trntile.hdl.params import PARTITIONS

    try:
        p = PARTITIONS.validate(args.partitions)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--partitions: {error}") from None
    params = {"partitions": p, "sbuf_bytes": 4096, "data_width": 128, "queues": 2, "outstanding": 8,
              "dram_bytes": 1 << 16, "semaphores": 32}
    f = _bench_run("tile", "tile_bench", params, "trntile.tb.bench_tile", args.sim, args.json,
                   {"TRNTILE_BENCH_CHECKERS": "0" if args.no_checkers else "1"})
    if f is None:
        return 1
    for run_ in f["runs"]:
        print(f"tile P={p} {args.sim}: {run_['name']:<8} {run_['cycles']:>7} cycles in {run_['seconds']:.2f} s "
              f"= {run_['cycles_per_second']} cycles/s")
    print(f"tile P={p} {args.sim}: {f['cycles']} cycles in {f['seconds']:.2f} s = {f['cycles_per_second']} cycles/s")
    print(f"wrote {Path(args.json).resolve()}")
    return 0


def _bench_cluster(args) -> int:
    from trntile.golden.numerics import DTYPES
    from trntile.hdl.cluster import DRAM_INTERLEAVE, DRAM_PORTS, TILES
    from trntile.hdl.params import PARTITIONS

    try:
        tiles = TILES.validate(args.tiles)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--tiles: {error}") from None
    try:
        p = PARTITIONS.validate(args.partitions)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--partitions: {error}") from None
    ports = tiles if args.dram_ports is None else args.dram_ports
    try:
        DRAM_PORTS.validate(ports)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--dram-ports: {error}") from None
    if args.dtype not in DTYPES:
        raise UsageError(f"--dtype: dtype must be one of {', '.join(DTYPES)}, not {args.dtype!r}")
    for name in ("m", "k"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name}: {name} must be a positive integer, not {getattr(args, name)}")
    if args.n < tiles:
        raise UsageError(f"--n: n must be at least the number of tiles ({tiles}), not {args.n}")
    if args.elements < tiles:
        raise UsageError(f"--elements: elements must be at least the number of tiles ({tiles}), not {args.elements}")
    params = _gemm_tile_params(p, args.m, args.n, args.k, args.dtype)
    sbuf = params["sbuf_bytes"]
    needed = 4 * args.elements + 4 * (tiles - 1) * -(-args.elements // tiles)
    if needed > sbuf:
        raise UsageError(f"--elements: the all-reduce needs {needed} bytes of each SBUF partition, more than the "
                         f"{sbuf} the GEMM's tile has; at most {sbuf * tiles // (8 * tiles - 4)}")
    dram = min(1 << 31, params["dram_bytes"] * tiles)
    interleave = dram // ports if args.dram_interleave is None else args.dram_interleave
    try:
        DRAM_INTERLEAVE.validate(interleave)
        if interleave * ports > dram:
            raise ValueError(f"dram_interleave must be at most dram_bytes / dram_ports ({dram // ports}), "
                             f"not {interleave}")
    except (TypeError, ValueError) as error:
        raise UsageError(f"--dram-interleave: {error}") from None
    params = {"tiles": tiles, "partitions": p, "sbuf_bytes": sbuf, "data_width": params["data_width"],
              "queues": params["queues"], "outstanding": params["outstanding"], "dram_bytes": dram,
              "dram_ports": ports, "dram_interleave": interleave, "semaphores": 32}
    spec = {"m": args.m, "n": args.n, "k": args.k, "dtype": args.dtype, "elements": args.elements}
    f = _bench_run("cluster", "cluster_bench", params, "trntile.tb.bench_cluster", args.sim, args.json,
                   {"TRNTILE_BENCH_SPEC": json.dumps(spec), "TRNTILE_BENCH_CHECKERS": "0" if args.no_checkers else "1"})
    if f is None:
        return 1
    print(f"cluster T={tiles} P={p}, {f['data_width']}-bit, {ports} DRAM port(s) interleaved by {interleave}: "
          f"GEMM {args.m} x {args.n} x {args.k} {args.dtype}: {f['gemm_cycles_1']} cycles on 1 tile, "
          f"{f['gemm_cycles_t']} on {tiles}, speedup {f['gemm_speedup']:.3f}")
    peak = f["allreduce_peak_bytes_per_cycle"]
    print(f"all-reduce of {f['allreduce_bytes']} bytes per tile: {f['allreduce_cycles']} cycles, "
          f"{f['allreduce_bytes_per_cycle']:.2f} bytes/cycle" + (f" (the ports' peak: {peak:.2f})" if peak else ""))
    print(f"wrote {Path(args.json).resolve()}")
    return 0


def _gemm_tile_params(p: int, m: int, n: int, k: int, dtype: str) -> dict:
    from trntile.sw.gemm import gemm_tile_params

    try:
        return gemm_tile_params(p, m, n, k, dtype)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _in_thread(work, show, poll=None):
    """Run ``work()`` in a thread; while it runs, every half second tell standard error ``show(seconds,
    poll())`` on one line rewritten in place (a new line every 10 s when standard error is not a terminal).
    Returns what ``work`` returned, or raises what it raised."""
    import threading
    import time

    outcome = {}

    def target():
        try:
            outcome["value"] = work()
        except BaseException as error:   # handed to the caller's thread below
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    began = time.perf_counter()
    thread.start()
    tty = sys.stderr.isatty()
    shown = None
    while thread.is_alive():
        thread.join(0.5)
        seconds = time.perf_counter() - began
        if thread.is_alive() and (tty or seconds // 10 != shown):
            line = show(seconds, poll() if poll else None)
            print(f"\r{line}\033[K" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
            shown = seconds // 10
    if tty and shown is not None:
        print(file=sys.stderr)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"], time.perf_counter() - began


def _quietly(work, *args, **kwargs) -> None:
    """``work(*args, **kwargs)``, ignoring any failure (for work that only saves time later)."""
    try:
        work(*args, **kwargs)
    except Exception:   # noqa: BLE001 - the build that needs the result reports the problem itself
        pass


def _run_gemm(a, b, dtype: str, p: int, sim: str, *, waves: bool = False, checkers: bool = True,
              progress: bool = False):
    """Run the GEMM kernel on the RTL tile; returns C from the RTL and from the golden simulator (``None`` if the
    run ended before writing them), the figures (``None`` on a failure), the run result and the failure
    (a :class:`SimulationFailed`, or ``None``). ``progress``: say on standard error what is going on (the
    Verilog, the build, the cycles simulated)."""
    import tempfile

    import numpy as np

    from trntile.golden import numerics
    from trntile.sim.runner import SimulationFailed, build, design, run

    m, k = a.shape
    n = b.shape[1]
    params = _gemm_tile_params(p, m, n, k, dtype)
    work = Path(tempfile.mkdtemp(prefix="trntile-matmul-"))
    # Bit patterns: a .npy of an ml_dtypes type does not load back as that type.
    np.save(work / "a.npy", numerics.to_bits(numerics.cast(a, dtype)))
    np.save(work / "b.npy", numerics.to_bits(numerics.cast(b, dtype)))
    spec = {"m": m, "n": n, "k": k, "dtype": dtype, "a": str(work / "a.npy"), "b": str(work / "b.npy"),
            "out": str(work / "c.npy"), "golden": str(work / "golden.npy"), "json": str(work / "figures.json"),
            "checkers": checkers, "progress": str(work / "progress")}

    def simulate():
        return run("tile_bench", params, "trntile.tb.run_gemm", sim=sim, waves=waves,
                   extra_env={"TRNTILE_GEMM": json.dumps(spec)})

    result = failure = None
    try:
        if progress:
            import threading

            from trntile.sim.runner import warm_up

            # Verilator's run-time library compiles on the second core while this one generates the Verilog.
            threading.Thread(target=_quietly, args=(warm_up, sim), kwargs={"waves": waves}, daemon=True).start()
            what = f"the P = {p} tile ({params['data_width']}-bit bus) for {sim}{' with waves' if waves else ''}"
            d, seconds = _in_thread(lambda: design("tile_bench", params),
                                    lambda t, _: f"  generating the Verilog of {what}: {t:.0f} s")
            if seconds > 1:
                print(f"  generated the Verilog in {seconds:.0f} s (kept for the next run)", file=sys.stderr)
            folder, seconds = _in_thread(lambda: build(d, sim, waves=waves),
                                         lambda t, _: f"  building {what} (once per design): {t:.0f} s")
            print(f"  {'built' if seconds > 1 else 'reusing'} {folder}"
                  + (f" in {seconds:.0f} s" if seconds > 1 else ""), file=sys.stderr)

            def cycles():
                try:
                    return int((work / "progress").read_text())
                except (OSError, ValueError):
                    return 0
            result, _ = _in_thread(simulate, lambda t, c: f"  simulating: {c:,} cycles in {t:.0f} s"
                                   + (f" ({c / t:,.0f} cycles/s)" if c and t else ""), cycles)
        else:
            result = simulate()
    except SimulationFailed as error:
        failure = error
    outputs = [np.load(work / f"{name}.npy") if (work / f"{name}.npy").exists() else None for name in ("c", "golden")]
    figures = json.loads((work / "figures.json").read_text()) if failure is None else None
    return outputs[0], outputs[1], figures, result, failure


def _keep_waves(result, target: Path) -> None:
    """Copy a run's FST and GTKWave save file into ``target``, the save file pointing at the copy."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    fst, gtkw = target / result.waves.name, target / result.gtkw.name
    shutil.copy(result.waves, fst)
    lines = result.gtkw.read_text().splitlines()
    lines = [f'[dumpfile] "{fst.resolve()}"' if line.startswith("[dumpfile]") else
             f'[savefile] "{gtkw.resolve()}"' if line.startswith("[savefile]") else line for line in lines]
    gtkw.write_text("\n".join(lines) + "\n")
    print(f"waves: {fst}; open them with: trntile waves {target}")


def _load_matrix(option: str, path: str):
    import numpy as np

    try:
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise UsageError(f"{option}: {path} is not a .npy file")
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"{option}: cannot read {path}: {error}") from None
    if array.ndim != 2 or array.dtype.kind not in "biuf" or 0 in array.shape:
        raise UsageError(f"{option}: {path} must hold a non-empty 2-D numeric array, not {array.dtype} of shape "
                         f"{array.shape}")
    return array


def _matmul(args) -> int:
    import numpy as np

    from trntile.golden.numerics import DTYPES
    from trntile.hdl.params import PARTITIONS

    if args.dtype not in DTYPES:
        raise UsageError(f"--dtype: dtype must be one of {', '.join(DTYPES)}, not {args.dtype!r}")
    try:
        p = PARTITIONS.validate(args.partitions)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--partitions: {error}") from None
    a, b = _load_matrix("--a", args.a), _load_matrix("--b", args.b)
    if a.shape[1] != b.shape[0]:
        raise UsageError(f"A is {a.shape[0]} x {a.shape[1]} and B {b.shape[0]} x {b.shape[1]}: A's columns must "
                         f"equal B's rows")
    if args.dtype == "int8" and (np.isnan(a.astype(float)).any() or np.isnan(b.astype(float)).any()):
        raise UsageError("--dtype int8: A and B must not hold NaN")
    c, golden, figures, result, failure = _run_gemm(a, b, args.dtype, p, args.sim, waves=bool(args.waves))
    if args.waves and result is not None:   # kept before any verdict: a mismatch is when they are wanted
        _keep_waves(result, Path(args.waves))
    if c is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, c)
        mismatch = np.argwhere(c.view(np.uint32) != golden.view(np.uint32))
        if mismatch.size:
            i, j = mismatch[0]
            print(f"trntile matmul: C differs from the golden simulator at [{i}, {j}]: {c[i, j]} != {golden[i, j]}"
                  f" ({len(mismatch)} elements differ)", file=sys.stderr)
            return 1
    if failure is not None:   # the whole message: which test, the seed, the log, and where its waves are
        print(f"trntile matmul: the RTL run failed: {failure}", file=sys.stderr)
        return 1
    print(f"C = A @ B: {figures['m']} x {figures['n']} x {figures['k']} {args.dtype} on P = {p} ({args.sim}): "
          f"{figures['cycles']} cycles, MFU {figures['mfu']:.3f} (ideal {figures['ideal_cycles']} cycles); "
          f"matches the golden simulator; wrote {args.out}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        keys = ("m", "n", "k", "dtype", "partitions", "cycles", "mfu", "sim_seconds")
        Path(args.json).write_text(json.dumps({key: figures[key] for key in keys}, indent=2) + "\n")
    return 0


def _bench_gemm(args) -> int:
    import numpy as np

    from trntile.golden.numerics import DTYPES
    from trntile.hdl.params import PARTITIONS

    if args.dtype not in DTYPES:
        raise UsageError(f"--dtype: dtype must be one of {', '.join(DTYPES)}, not {args.dtype!r}")
    try:
        p = PARTITIONS.validate(args.partitions)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--partitions: {error}") from None
    for name in ("m", "n", "k"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name}: {name} must be a positive integer, not {getattr(args, name)}")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((args.m, args.k)), rng.standard_normal((args.k, args.n))
    _, _, figures, _, failure = _run_gemm(a, b, args.dtype, p, args.sim, checkers=False)
    if failure is not None:
        print(f"trntile bench gemm: {failure}", file=sys.stderr)
        return 1
    keys = ("m", "n", "k", "dtype", "partitions", "cycles", "mfu", "ideal_cycles")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({key: figures[key] for key in keys}, indent=2) + "\n")
    print(f"gemm {args.m} x {args.n} x {args.k} {args.dtype} P={p}: {figures['cycles']} cycles "
          f"(ideal {figures['ideal_cycles']}), MFU {figures['mfu']:.4f}; wrote {args.json}")
    return 0


DEMO_SHAPE = (128, 128, 128)   # M, N, K: 16 output tiles in 8 PSUM banks, 8 K chunks each


def _demo(args) -> int:
    import numpy as np

    from trntile.golden import numerics
    from trntile.hdl.params import PARTITIONS

    try:
        p = PARTITIONS.validate(args.partitions)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--partitions: {error}") from None
    m, n, k = DEMO_SHAPE
    rng = np.random.default_rng(args.seed)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    print(f"trntile demo: C = A @ B with A {m} x {k} and B {k} x {n} (standard normal, seed {args.seed}) cast to "
          f"bf16, C in fp32, on the RTL tile with P = {p}, simulated by {args.sim}")
    c, golden, figures, result, failure = _run_gemm(a, b, "bf16", p, args.sim, waves=bool(args.waves),
                                                     checkers=False, progress=True)
    if failure is not None:
        print(f"trntile demo: the RTL run failed: {failure}", file=sys.stderr)
        return 1
    mismatch = np.argwhere(c.view(np.uint32) != golden.view(np.uint32))
    if mismatch.size:
        i, j = mismatch[0]
        print(f"trntile demo: C differs from the golden simulator at [{i}, {j}]: {c[i, j]} != {golden[i, j]}",
              file=sys.stderr)
        if args.waves:
            _keep_waves(result, Path(args.waves))
        return 1
    exact = numerics.cast(a, "bf16").astype(np.float64) @ numerics.cast(b, "bf16").astype(np.float64)
    error = np.abs(c - exact).max()
    counters, cycles = figures["counters"], figures["cycles"]
    print(f"result: C matches the golden ISA simulator bit for bit ({m * n} elements); the largest difference "
          f"from a float64 product of the same bf16 operands is {error:.2e} (C's largest magnitude "
          f"{np.abs(exact).max():.1f})")
    print(f"  C[0, :4] = {np.array2string(c[0, :4], precision=4)}")
    print(f"cycles: {cycles:,} from start until every engine finished (ideal {figures['ideal_cycles']:,} = "
          f"M N K / P^2); MFU {figures['mfu']:.3f}")
    busy = counters["tensor_busy"]
    print(f"  tensor engine busy {busy:,} cycles ({busy / cycles:.0%}), {counters['macs']:,} useful MACs; "
          f"ACT busy {counters['act_busy']:,} cycles; the DMA moved {counters['dma_written_bytes']:,} bytes "
          f"(A.T and B into the SBUF, C out to DRAM)")
    engines = [name for name in counters if name.endswith("_executed")]
    print("  instructions issued (cycles waiting on semaphores): " + ", ".join(
        f"{name[:-9]} {counters[name]} ({counters[name[:-9] + '_wait_cycles']:,})" for name in engines
        if counters[name]))
    print("  these are the tile's own counters (cycles, tensor_busy, macs, act_busy, dma_read_bytes, "
          "dma_written_bytes and per-engine registers, docs/tile.md), read over AXI4-Lite after the run; "
          f"the simulation took {figures['sim_seconds']:.1f} s")
    if args.waves:
        _keep_waves(result, Path(args.waves))
    else:
        print("waves: run `trntile demo --waves build/waves` (a separate build that records every signal), "
              "then open them with: trntile waves build/waves")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _integer_for(param):
    def parse(text: str) -> int:
        try:
            return int(text, 0)
        except ValueError:
            pass
        if param.name == "dtypes":   # also by name: --dtypes int8 or --dtypes bf16,int8
            from trntile.golden.numerics import DTYPES, dtypes_mask

            names = [name.strip() for name in text.split(",")]
            unknown = [name for name in names if name not in DTYPES]
            if not unknown:
                return dtypes_mask(names)
            raise argparse.ArgumentTypeError(f"dtypes must be names from {', '.join(DTYPES)} joined by commas, or "
                                             f"{param.allowed}, not {unknown[0]!r}")
        raise argparse.ArgumentTypeError(f"{param.name} must be {param.allowed}, not {text!r}")
    parse.__name__ = param.name
    return parse


def _add_param_options(parser) -> None:
    """One option per hardware parameter (``--partitions``, ``--sbuf-bytes``, ...), defaulting to None."""
    from trntile.hdl.tops import ALL_PARAMS

    for param in ALL_PARAMS.values():
        parser.add_argument(param.option, dest=param.name, type=_integer_for(param), metavar="N",
                            help=f"{param.help} ({param.allowed}; default {param.default})")


def _parser() -> argparse.ArgumentParser:
    from trntile.hdl.tops import ALL_PARAMS
    from trntile.sim.fpga import DEVICES, PLACER_DENSITY, ROUTERS

    parser = _Parser(prog="trntile", description="trntile: a Trainium-style compute tile in Amaranth HDL")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    doctor = commands.add_parser("doctor", help="report simulators and generators, and how to install "
                                                "what is missing")
    doctor.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    doctor.set_defaults(run=_doctor)

    verilog = commands.add_parser("verilog", help="write the Verilog of a block and its params.json")
    verilog.add_argument("--top", metavar="NAME", help="registered top to generate (see --list)")
    verilog.add_argument("-o", "--output", metavar="DIR", help="output folder")
    verilog.add_argument("--list", action="store_true", help="list the tops and their parameters")
    _add_param_options(verilog)
    verilog.set_defaults(run=_verilog)

    bench = commands.add_parser("bench", help="measure a block in cycles on the RTL and write JSON")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BLOCK", parser_class=_Parser)
    xbar = benches.add_parser("xbar", help="AXI4 crossbar: disjoint and hot-spot efficiency, fairness")
    for param, default in ((ALL_PARAMS["masters"], 4), (ALL_PARAMS["slaves"], 4), (ALL_PARAMS["data_width"], 128)):
        xbar.add_argument(param.option, dest=param.name, type=_integer_for(param), default=default, metavar="N",
                          help=f"{param.help} ({param.allowed}; default {default})")
    xbar.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    xbar.add_argument("--json", metavar="FILE", required=True, help="where to write the figures")
    xbar.set_defaults(run=_bench_xbar)
    tensor = benches.add_parser("tensor", help="tensor engine: MFU of back-to-back LoadStationary + "
                                               "MultiplyMoving pairs")
    tensor.add_argument("--partitions", type=_integer_for(ALL_PARAMS["partitions"]), default=16, metavar="P",
                        help=f"{ALL_PARAMS['partitions'].help} ({ALL_PARAMS['partitions'].allowed}; default 16)")
    tensor.add_argument("--dtype", choices=("bf16", "fp8_e4m3", "fp8_e5m2", "int8"), default="bf16",
                        help="operand type (default bf16)")
    tensor.add_argument("--n", type=int, metavar="N", help="moving columns per MultiplyMoving, 1..4P (default 4P)")
    tensor.add_argument("--pairs", type=int, default=32, metavar="K", help="pairs in the sequence (default 32)")
    tensor.add_argument("--fp-cuts", type=int, default=0, metavar="C",
                        help="registers inside the tensor engine's float units, 0..2 (default 0; for FPGAs)")
    tensor.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    tensor.add_argument("--json", metavar="FILE", required=True, help="where to write the figures")
    tensor.set_defaults(run=_bench_tensor)
    dma = benches.add_parser("dma", help="DMA engine: DRAM-to-SBUF, SBUF-to-DRAM and small-transfer bandwidth")
    dma.add_argument("--partitions", type=_integer_for(ALL_PARAMS["partitions"]), default=16, metavar="P",
                     help="SBUF partitions (default 16)")
    dma.add_argument("--latency", type=int, default=64, metavar="L", help="DRAM latency in cycles (default 64)")
    dma.add_argument("--bytes", type=int, default=16 * 1024, metavar="B",
                     help="bytes per transfer for the read and write runs (default 16384)")
    dma.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    dma.add_argument("--json", metavar="FILE", required=True, help="where to write the figures")
    dma.set_defaults(run=_bench_dma)
    tile = benches.add_parser("tile", help="the whole tile: simulation speed (simulated cycles per second)")
    tile.add_argument("--partitions", type=_integer_for(ALL_PARAMS["partitions"]), default=16, metavar="P",
                      help="P (default 16)")
    tile.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    tile.add_argument("--no-checkers", action="store_true", help="leave the AXI protocol checkers out")
    tile.add_argument("--json", metavar="FILE", required=True, help="where to write the figures")
    tile.set_defaults(run=_bench_tile)
    gemm = benches.add_parser("gemm", help="the GEMM kernel on the tile: cycles and MFU from the tile's counters")
    for name in ("m", "n", "k"):
        gemm.add_argument(f"--{name}", type=int, required=True, metavar=name.upper(), help=f"{name.upper()} of the GEMM")
    gemm.add_argument("--dtype", default="bf16", help="bf16, fp8_e4m3, fp8_e5m2 or int8 (default bf16)")
    gemm.add_argument("--partitions", type=int, default=16, metavar="P", help="P (default 16)")
    gemm.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    gemm.add_argument("--json", metavar="FILE", required=True, help="where to write the figures")
    gemm.set_defaults(run=_bench_gemm)
    cluster = benches.add_parser("cluster", help="a cluster of tiles: one GEMM on 1 and on T tiles, and a ring "
                                                 "all-reduce, in cycles")
    cluster.add_argument("--tiles", type=int, default=4, metavar="T", help="T (default 4)")
    cluster.add_argument("--partitions", type=int, default=8, metavar="P", help="P (default 8)")
    cluster.add_argument("--dram-ports", type=int, default=None, metavar="D",
                         help="DRAM ports (default T)")
    cluster.add_argument("--dram-interleave", type=int, default=None, metavar="BYTES",
                         help="bytes of DRAM on one port before the next (default dram_bytes / D: each tile's "
                              "slice on a port of its own when D = T)")
    for name in ("m", "n", "k"):
        cluster.add_argument(f"--{name}", type=int, default=128, metavar=name.upper(),
                             help=f"{name.upper()} of the GEMM (default 128)")
    cluster.add_argument("--dtype", default="bf16", help="the GEMM's operand type (default bf16)")
    cluster.add_argument("--elements", type=int, default=2048, metavar="E",
                         help="fp32 elements per partition in the all-reduce (default 2048)")
    cluster.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    cluster.add_argument("--no-checkers", action="store_true", help="leave the AXI protocol checkers out")
    cluster.add_argument("--json", metavar="FILE", required=True, help="where to write the figures")
    cluster.set_defaults(run=_bench_cluster)
    matmul = commands.add_parser("matmul", help="C = A @ B on the RTL tile, checked against the golden simulator")
    matmul.add_argument("--a", required=True, metavar="A.npy", help="M x K, any numeric dtype")
    matmul.add_argument("--b", required=True, metavar="B.npy", help="K x N, any numeric dtype")
    matmul.add_argument("--dtype", required=True, help="operand type: bf16, fp8_e4m3, fp8_e5m2 or int8")
    matmul.add_argument("--out", required=True, metavar="C.npy", help="where to write C (fp32; int32 for int8)")
    matmul.add_argument("--partitions", type=int, default=16, metavar="P", help="P (default 16)")
    matmul.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    matmul.add_argument("--waves", metavar="DIR", help="leave an FST and a GTKWave save file in DIR")
    matmul.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    matmul.set_defaults(run=_matmul)
    fpga = commands.add_parser("fpga", help="synthesise a top with Yosys and place and route it with nextpnr "
                                            "(out of context): resources and Fmax")
    fpga.add_argument("--top", metavar="NAME", help="registered top (see trntile verilog --list)")
    _add_param_options(fpga)
    fpga.add_argument("--device", choices=tuple(DEVICES), default="ecp5-85k",
                      help="target FPGA (default ecp5-85k)")
    fpga.add_argument("--freq", type=float, default=100.0, metavar="MHZ", help="clock constraint (default 100)")
    fpga.add_argument("--router", choices=ROUTERS, default="router1",
                      help="nextpnr's router: router1 (default) times better, router2 routes a congested design "
                           "(a whole tile) much faster")
    fpga.add_argument("--placer-density", type=float, default=PLACER_DENSITY, metavar="SHARE",
                      help=f"highest share of a region's logic sites the placer fills, 0.5..1 (default "
                           f"{PLACER_DENSITY:g}); lower spreads a congested design out")
    fpga.add_argument("--json", metavar="FILE", required=True,
                      help="where to write the figures; the logs go in a folder named after it")
    fpga.set_defaults(run=_fpga)
    paths = commands.add_parser("paths", help="the combinational chains that pass through the most blocks "
                                              "(what sets an FPGA's clock), from Yosys's netlist in seconds")
    paths.add_argument("--top", metavar="NAME", help="registered top (see trntile verilog --list)")
    _add_param_options(paths)
    paths.add_argument("--count", type=int, default=20, metavar="N", help="chains to list (default 20)")
    paths.set_defaults(run=_paths)
    waves = commands.add_parser("waves", help="open the newest FST in a folder with its GTKWave save file "
                                              "(or print the command when there is no display)")
    waves.add_argument("folder", metavar="DIR", help="a --waves DIR of matmul or demo, or a test's run folder")
    waves.set_defaults(run=_waves)
    demo = commands.add_parser("demo", help=f"the main job: a {' x '.join(map(str, DEMO_SHAPE))} bf16 GEMM on the "
                               "RTL tile, checked, with cycles and MFU from the tile's counters")
    demo.add_argument("--partitions", type=int, default=16, metavar="P", help="P (default 16)")
    demo.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="simulator")
    demo.add_argument("--seed", type=int, default=0, help="seed of the random A and B (default 0)")
    demo.add_argument("--waves", metavar="DIR", help="leave an FST and a GTKWave save file in DIR")
    demo.add_argument("--json", metavar="FILE", help="write the figures and counters as JSON")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``trntile`` command: run ``argv`` (default ``sys.argv[1:]``) and return the exit status (2 for bad
    usage, with one line on standard error)."""
    argv = sys.argv[1:] if argv is None else argv
    prog = "trntile" + (f" {argv[0]}" if argv and argv[0] in COMMANDS else "")
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an output path that cannot be written: a file where a folder should be, ...
        print(f"{prog}: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
