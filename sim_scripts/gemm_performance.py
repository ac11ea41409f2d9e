"""Measures the GEMM kernel's MFU against size and dtype on the RTL tile and draws ``docs/performance.svg``.

    python -m trntile.sim.gemm_performance [--partitions 16] [--sizes 32 64 128 256] [--json FILE]
    python -m trntile.sim.gemm_performance --from-json FILE     # redraw from saved figures

Each point is one ``trntile bench gemm --m S --n S --k S --dtype D`` (Verilator; cycles and MACs from the
tile's own counters). Prints the Markdown table that ``docs/performance.md`` shows; the figures are exact
cycle counts, so a rerun gives the same table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DTYPES = ("bf16", "fp8_e4m3", "fp8_e5m2", "int8")
COLOURS = {"bf16": "#1f77b4", "fp8_e4m3": "#ff7f0e", "fp8_e5m2": "#2ca02c", "int8": "#d62728"}
WIDTHS = {"bf16": 2, "fp8_e4m3": 7, "fp8_e5m2": 4.5, "int8": 2}
OUT = Path(__file__).resolve().parent.parent / "docs" / "performance.svg"


def measure(size: int, dtype: str, partitions: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "gemm.json"
        result = subprocess.run([sys.executable, "-m", "trntile", "bench", "gemm", "--m", str(size), "--n", str(size),
                                 "--k", str(size), "--dtype", dtype, "--partitions", str(partitions),
                                 "--json", str(out)], capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"trntile bench gemm {size} {dtype} failed:\n{result.stderr}")
        return json.loads(out.read_text())


def svg(points: list[dict], partitions: int) -> str:
    """MFU against size (log2 axis), one line per dtype."""
    sizes = sorted({p["m"] for p in points})
    width, height, left, right, top, bottom = 640, 400, 60, 150, 40, 60
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(size):
        span = max(1, len(sizes) - 1)
        return left + plot_w * sizes.index(size) / span

    def y(mfu):
        return top + plot_h * (1 - mfu)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + plot_w / 2}" y="20" text-anchor="middle" font-size="14">GEMM MFU against size '
           f'(M = N = K, P = {partitions}, DRAM to DRAM)</text>']
    for tick in range(0, 11, 2):
        value = tick / 10
        out.append(f'<line x1="{left}" y1="{y(value)}" x2="{left + plot_w}" y2="{y(value)}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(value) + 4}" text-anchor="end">{value:.1f}</text>')
    for size in sizes:
        out.append(f'<text x="{x(size)}" y="{top + plot_h + 18}" text-anchor="middle">{size}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 18}" text-anchor="middle">M = N = K</text>')
    out.append(f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + plot_h / 2})">MFU</text>')
    out.append(f'<line x1="{left}" y1="{y(0.85)}" x2="{left + plot_w}" y2="{y(0.85)}" stroke="#999" '
               'stroke-dasharray="4 4"/>')
    out.append(f'<text x="{left + 6}" y="{y(0.85) - 6}" fill="#666">goal at 128: 0.85</text>')
    for row, dtype in enumerate(DTYPES):
        line = sorted((p["m"], p["mfu"]) for p in points if p["dtype"] == dtype)
        if not line:
            continue
        colour = COLOURS[dtype]
        # Drawn widest first, so that dtypes with the same figures show as nested stripes.
        out.append(f'<polyline fill="none" stroke-linejoin="round" stroke="{colour}" stroke-width="{WIDTHS[dtype]}" points="'
                   + " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in line) + '"/>')
        out.append(f'<line x1="{left + plot_w + 10}" y1="{top + 150 + 20 * row}" x2="{left + plot_w + 30}" '
                   f'y2="{top + 150 + 20 * row}" stroke="{colour}" stroke-width="{WIDTHS[dtype]}"/>')
        out.append(f'<text x="{left + plot_w + 36}" y="{top + 154 + 20 * row}">{dtype}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(points: list[dict]) -> str:
    sizes = sorted({p["m"] for p in points})
    lines = ["| M = N = K | " + " | ".join(DTYPES) + " |", "|---|" + "---|" * len(DTYPES)]
    for size in sizes:
        cells = []
        for dtype in DTYPES:
            found = [p for p in points if p["m"] == size and p["dtype"] == dtype]
            cells.append(f"{found[0]['mfu']:.3f} ({found[0]['cycles']:,})" if found else "-")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--json", help="also write every point's figures here")
    parser.add_argument("--from-json", metavar="FILE", help="draw and print from figures written by --json, "
                        "without simulating")
    args = parser.parse_args()
    if args.from_json:
        points = json.loads(Path(args.from_json).read_text())
    else:
        points = []
        for size in args.sizes:
            for dtype in DTYPES:
                points.append(measure(size, dtype, args.partitions))
                print(f"{size} {dtype}: {points[-1]['cycles']} cycles, MFU {points[-1]['mfu']}", file=sys.stderr)
    OUT.write_text(svg(points, points[0]["partitions"]))
    if args.json:
        Path(args.json).write_text(json.dumps(points, indent=2) + "\n")
    print(table(points))


if __name__ == "__main__":
    main()
