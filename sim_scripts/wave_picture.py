"""Draw ``docs/waves_skew.svg``: the systolic skew of one MultiplyMoving, from a real simulation's waves.

Runs ``trntile.tb.waves_skew`` (one LoadStationary and one MultiplyMoving of 6 columns on the P = 4 tensor
engine, checked against the golden model) with waves, reads the FST through ``fst2vcd`` and draws, one row
per signal, what an engineer looks at in GTKWave: the command handshake, the element entering each array row
(row k k cycles after row 0), the partial sums leaving each row of array column 0, and PSUM's write
commands. Values are decoded (bf16 elements, fp32 sums), one box per clock cycle where they change::

    python -m trntile.sim.wave_picture [--sim icarus|verilator] [--out docs/waves_skew.svg]

The drawing is plain SVG text, written the same way on every run, so ``tests/test_wave_picture.py`` can
check that the committed picture is what the script draws today.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

__all__ = ["PARTITIONS", "SEED", "signals", "read_vcd", "draw", "main"]

PARTITIONS = 4
SEED = 1          # the run is deterministic anyway (fixed operands, no pauses); fixed for a stable log
_ELEMENT_VALUE, _ELEMENT_ITEM = (0, 16), 16   # bits of the array's element struct: value[0:16], item[16]


def signals(p: int = PARTITIONS) -> list[tuple[str, str, str]]:
    """``(label, path suffix, kind)`` of each row of the picture, top to bottom; ``kind`` says how to show it:
    ``clock``, ``bit``, ``element`` (a bf16 value when the element's ``item`` bit is set), ``fp32``, or
    ``result<m>`` (array column m's result, an fp32 value when its ``valid`` bit is set)."""
    # The command stream at the top's ports: inside the engine, Amaranth may give the name command__valid to
    # PSUM's command instead and rename the engine's own input port.
    rows = [("clk", "clk", "clock"), ("command valid", "command__valid", "bit"),
            ("command ready", "command__ready", "bit")]
    rows += [(f"row {k} in", f"engine.array.row{k}_in" if k == 0 else f"engine.array.row{k}_skew{k - 1}", "element")
             for k in range(p)]
    rows += [(f"row {k} sum, column 0", f"engine.array.row{k}.pe_0_s_out", "fp32") for k in range(p)]
    rows += [("PSUM command", "engine.psum.command__valid", "bit")]
    rows += [(f"result, column {m}", "engine.array.result", f"result{m}") for m in (0, p - 1)]
    return rows


def read_vcd(text: str, suffixes: list[str]) -> tuple[dict[str, list[tuple[int, int]]], dict[str, str]]:
    """The value changes ``[(time, value), ...]`` of the signals whose dotted path ends with one of
    ``suffixes`` (the shortest such path wins), and the full path found for each suffix."""
    ids, paths, scope = {}, {}, []
    header, _, body = text.partition("$enddefinitions")
    for line in header.splitlines():
        line = line.strip()
        if match := re.match(r"\$scope \w+ (\S+) \$end", line):
            scope.append(match[1])
        elif line.startswith("$upscope"):
            scope.pop()
        elif match := re.match(r"\$var \w+ \d+ (\S+) (\S+)( \[[\d:]+\])? \$end", line):
            path = ".".join([*scope, match[2]])
            for suffix in suffixes:
                if (path == suffix or path.endswith("." + suffix)) and \
                        (suffix not in paths or len(path) < len(paths[suffix])):
                    paths[suffix] = path
                    ids[suffix] = match[1]
    missing = [suffix for suffix in suffixes if suffix not in ids]
    if missing:
        raise ValueError(f"the waves hold no signal called {', '.join(missing)}")
    wanted = {identifier: [] for identifier in ids.values()}
    time, vector = 0, None
    for token in body.split():
        if vector is not None:          # the identifier after a vector value (it may start with '#')
            if token in wanted:
                wanted[token].append((time, int(re.sub("[xzXZ]", "0", vector), 2)))
            vector = None
        elif token[0] in "bB":
            vector = token[1:]
        elif token[0] in "rR":
            vector = "0"                # a real value: none of ours
        elif token[0] == "#" and token[1:].isdigit():
            time = int(token[1:])
        elif token[0] in "01xzXZ" and token[1:] in wanted:
            wanted[token[1:]].append((time, int(token[0]) if token[0] in "01" else 0))
    return {suffix: wanted[ids[suffix]] for suffix in suffixes}, paths


def _value_at(changes: list[tuple[int, int]], time: int) -> int:
    value = 0
    for when, new in changes:
        if when > time:
            break
        value = new
    return value


def _bf16(bits: int) -> float:
    return float(np.array([bits << 16], dtype=np.uint32).view(np.float32)[0])


def _fp32(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def _number(value: float) -> str:
    return f"{value:g}"


def _show(kind: str, value: int) -> str | None:
    """The text of a box for a sampled ``value`` of a signal of ``kind``; ``None`` for no element or result."""
    if kind == "element":
        return _number(_bf16(value & 0xFFFF)) if value >> _ELEMENT_ITEM & 1 else None
    if kind.startswith("result"):
        result = value >> (33 * int(kind[len("result"):]))   # result[m] = {valid, value[32]}, valid lowest
        return _number(_fp32(result >> 1 & 0xFFFFFFFF)) if result & 1 else None
    return _number(_fp32(value))


def draw(traces: dict[str, list[tuple[int, int]]], rows: list[tuple[str, str, str]], period: int,
         first: int, last: int) -> str:
    """The SVG of cycles ``first .. last`` (rising edges at ``cycle x period``), sampling each signal just
    after each rising edge."""
    cycles = list(range(first, last + 1))
    label_width, cell, height, gap = 150, 34, 18, 8
    width = label_width + cell * len(cycles) + 10
    total = 30 + len(rows) * (height + gap)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
           f'font-family="monospace" font-size="11">',
           f'<rect width="{width}" height="{total}" fill="white"/>']
    for index, cycle in enumerate(cycles):
        x = label_width + index * cell
        out.append(f'<line x1="{x}" y1="12" x2="{x}" y2="{total - 4}" stroke="#ddd"/>')
        if index % 2 == 0:
            out.append(f'<text x="{x + 2}" y="10" fill="#888">{cycle - first}</text>')
    for row, (label, suffix, kind) in enumerate(rows):
        top = 20 + row * (height + gap)
        out.append(f'<text x="4" y="{top + 13}">{escape(label)}</text>')
        changes = traces[suffix]
        if kind == "clock":
            points = []
            for index in range(len(cycles)):
                x = label_width + index * cell
                points += [(x, top + height), (x, top), (x + cell / 2, top), (x + cell / 2, top + height)]
            out.append('<polyline fill="none" stroke="#2a6" points="'
                       + " ".join(f"{x:g},{y:g}" for x, y in points) + '"/>')
            continue
        samples = [_value_at(changes, cycle * period + 1) for cycle in cycles]
        if kind == "bit":
            points = []
            for index, value in enumerate(samples):
                x, y = label_width + index * cell, top + (2 if value else height)
                points += [(x, y), (x + cell, y)]
                if value:   # shade the cycles a bit is high, so that high and low read apart at a glance
                    out.append(f'<rect x="{x}" y="{top + 2}" width="{cell}" height="{height - 2}" fill="#dde8f8"/>')
            out.append('<polyline fill="none" stroke="#26a" points="'
                       + " ".join(f"{x:g},{y:g}" for x, y in points) + '"/>')
            continue
        shown = [_show(kind, value) for value in samples]
        start = 0
        for index in range(1, len(shown) + 1):   # one box per run of equal values
            if index < len(shown) and shown[index] == shown[start]:
                continue
            x0, x1 = label_width + start * cell, label_width + index * cell
            if shown[start] is None:
                out.append(f'<line x1="{x0}" y1="{top + height / 2}" x2="{x1}" y2="{top + height / 2}" '
                           f'stroke="#26a"/>')
            else:
                out.append(f'<polygon fill="#eef4ff" stroke="#26a" points="{x0 + 3},{top} {x1 - 3},{top} '
                           f'{x1},{top + height / 2} {x1 - 3},{top + height} {x0 + 3},{top + height} '
                           f'{x0},{top + height / 2}"/>')
                out.append(f'<text x="{(x0 + x1) / 2:g}" y="{top + 13}" text-anchor="middle">'
                           f'{escape(shown[start])}</text>')
            start = index
    out.append("</svg>")
    return "\n".join(out) + "\n"


def picture(sim: str = "icarus") -> str:
    """Run the MultiplyMoving with waves on ``sim`` and return the SVG."""
    from trntile.hdl.sbuf_model import TEST_SBUF_BYTES
    from trntile.sim.runner import run
    from trntile.tb.common import CLOCK_PERIOD_NS

    tool = shutil.which("fst2vcd")
    if tool is None:
        raise FileNotFoundError("fst2vcd is not installed (it comes with GTKWave: apt-get install gtkwave)")
    result = run("tensor_engine", {"partitions": PARTITIONS, "sbuf_bytes": TEST_SBUF_BYTES},
                 "trntile.tb.waves_skew", sim=sim, seed=SEED, waves=True)
    text = subprocess.run([tool, "-f", str(result.waves)], capture_output=True, text=True, check=True).stdout
    rows = signals()
    traces, _paths = read_vcd(text, [suffix for _label, suffix, _kind in rows])
    period = _vcd_ticks(text, CLOCK_PERIOD_NS)
    entered = [time for time, value in traces["engine.array.row0_in"] if value >> _ELEMENT_ITEM & 1]
    if not entered:
        raise RuntimeError("the waves show no column entering the array")
    # From the cycle before the commands were offered until the last column's result has left the last array
    # column, 2P cycles after that column entered row 0.
    offered = [time for time, value in traces["command__valid"] if value and time < entered[0]]
    first = (offered[0] if offered else entered[0]) // period - 1
    last = entered[-1] // period + 2 * PARTITIONS + 2
    return draw(traces, rows, period, first, last)


def _vcd_ticks(text: str, nanoseconds: int) -> int:
    """VCD time units in ``nanoseconds``, from the dump's ``$timescale``."""
    match = re.search(r"\$timescale\s+(\d+)\s*(s|ms|us|ns|ps|fs)\s+\$end", text)
    if match is None:
        raise ValueError("the VCD has no $timescale")
    unit = int(match[1]) * {"s": 10**15, "ms": 10**12, "us": 10**9, "ns": 10**6, "ps": 10**3, "fs": 1}[match[2]]
    return nanoseconds * 10**6 // unit


def main(argv: list[str] | None = None) -> int:
    """``python -m trntile.sim.wave_picture``: draw the picture (see the module docstring) and write it."""
    parser = argparse.ArgumentParser(prog="python -m trntile.sim.wave_picture", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", choices=("icarus", "verilator"), default="icarus")
    parser.add_argument("--out", type=Path, default=Path("docs/waves_skew.svg"))
    args = parser.parse_args(argv)
    args.out.write_text(picture(args.sim))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
