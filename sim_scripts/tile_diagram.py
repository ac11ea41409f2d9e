"""Draws ``docs/tile.svg``, the tile's block diagram, from the description below (boxes and the connections
between them). Run ``python -m trntile.sim.tile_diagram`` after changing it; ``tests/test_docgen.py`` checks
that the committed picture is what this script draws."""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ["BOXES", "LINKS", "draw", "main"]

OUT = Path(__file__).resolve().parent.parent / "docs" / "tile.svg"

#: name -> (x, y, width, height, label lines, fill)
BOXES = {
    "host": (20, 30, 140, 50, ["host", "AXI4-Lite"], "#eeeeee"),
    "regs": (210, 30, 200, 50, ["host registers", "start, status, counters"], "#dde8f5"),
    "sems": (540, 30, 150, 50, ["semaphore file", "and watchdog"], "#fbe5c8"),
    "seq_t": (210, 120, 120, 50, ["sequencer", "tensor"], "#fbe5c8"),
    "seq_a": (350, 120, 120, 50, ["sequencer", "act"], "#fbe5c8"),
    "seq_d": (490, 120, 150, 50, ["sequencers", "dma0 .. dma{Q-1}"], "#fbe5c8"),
    "fetch": (730, 120, 130, 50, ["instruction", "fetch"], "#fbe5c8"),
    "tensor": (210, 220, 120, 60, ["tensor engine", "P x P array"], "#d9f0d3"),
    "act": (350, 220, 120, 60, ["ACT engine", "P lanes"], "#d9f0d3"),
    "dma": (490, 220, 150, 60, ["DMA engine", "Q queues"], "#d9f0d3"),
    "xbar": (730, 220, 130, 60, ["AXI4 crossbar", "fetch + DMA"], "#dde8f5"),
    "psum": (210, 310, 120, 40, ["PSUM", "8 banks"], "#d9f0d3"),
    "sbuf": (210, 380, 430, 50, ["SBUF: P banks", "port A: moving | port B: stationary, dma, act, write"],
             "#e8daef"),
    "window": (660, 380, 120, 50, ["SBUF window", "AXI4 slave"], "#dde8f5"),
    "outside": (660, 480, 120, 45, ["host / other tiles", "AXI4 s_axi"], "#eeeeee"),
    "dram": (800, 480, 90, 45, ["DRAM", "AXI4 m_axi"], "#eeeeee"),
}

#: (from, to, label); arrows point at ``to``
LINKS = [
    ("host", "regs", ""), ("regs", "seq_t", "start"), ("regs", "seq_a", ""), ("regs", "seq_d", ""),
    ("seq_t", "tensor", "commands"), ("seq_a", "act", "commands"), ("seq_d", "dma", "descriptors"),
    ("seq_d", "sems", "signals, waits"), ("fetch", "seq_d", "words"), ("fetch", "xbar", ""), ("dma", "xbar", ""),
    ("xbar", "dram", ""), ("tensor", "psum", ""), ("psum", "act", "read"), ("tensor", "sbuf", "read"),
    ("act", "sbuf", "read, write"), ("dma", "sbuf", "words"), ("window", "sbuf", ""),
    ("outside", "window", ""),
]


def _centre(box):
    x, y, w, h = box[:4]
    return x + w / 2, y + h / 2


def _edge(box, towards):
    """Where the line from the box's centre towards ``towards`` leaves the box."""
    x, y, w, h = box[:4]
    cx, cy = _centre(box)
    dx, dy = towards[0] - cx, towards[1] - cy
    if dx == 0 and dy == 0:
        return cx, cy
    scale = min((w / 2) / abs(dx) if dx else float("inf"), (h / 2) / abs(dy) if dy else float("inf"))
    return cx + dx * scale, cy + dy * scale


def draw() -> str:
    """The SVG text."""
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="900" height="540" font-family="sans-serif" '
           'font-size="12">',
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
           '<path d="M0,0 L8,4 L0,8 z" fill="#444"/></marker></defs>',
           '<rect width="900" height="540" fill="white"/>',
           '<rect x="190" y="12" width="690" height="438" fill="none" stroke="#999" stroke-dasharray="6,4"/>',
           '<text x="196" y="444" fill="#777">tile</text>']
    for name, box in BOXES.items():
        x, y, w, h, lines, fill = box
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="#444"/>')
        for index, line in enumerate(lines):
            ty = y + h / 2 + (index - (len(lines) - 1) / 2) * 15 + 4
            weight = ' font-weight="bold"' if index == 0 else ""
            out.append(f'<text x="{x + w / 2}" y="{ty}" text-anchor="middle"{weight}>{escape(line)}</text>')
    for source, target, label in LINKS:
        a, b = BOXES[source], BOXES[target]
        x1, y1 = _edge(a, _centre(b))
        x2, y2 = _edge(b, _centre(a))
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#444" '
                   'marker-end="url(#arrow)"/>')
        if label:
            out.append(f'<text x="{(x1 + x2) / 2 + 4:.1f}" y="{(y1 + y2) / 2 - 3:.1f}" fill="#333" '
                       f'font-size="10">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    """``python -m trntile.sim.tile_diagram``: write docs/tile.svg."""
    OUT.write_text(draw())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
