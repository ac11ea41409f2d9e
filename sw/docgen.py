"""The parts of ``docs/`` that are generated from the code: the ISA's bit tables, the error codes and the
tile's register map. Each sits in its page between ``<!-- generated:NAME -->`` and ``<!-- end:NAME -->``.

``python -m trntile.sw.docgen`` rewrites them; ``tests/test_docgen.py`` fails when a page and the code differ.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["isa_tables", "error_tables", "register_table", "SECTIONS", "render", "main"]

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _table(layout, base: int = 0) -> str:
    lines = ["| bits | field | width |", "|---|---|---|"]
    for lsb, width, name in _flat(layout):
        bits = f"{base + lsb + width - 1}:{base + lsb}" if width > 1 else f"{base + lsb}"
        lines.append(f"| {bits} | `{name}` | {width} |")
    return "\n".join(lines)


def _flat(layout, prefix: str = "", offset: int = 0) -> list[tuple[int, int, str]]:
    if isinstance(layout, data.StructLayout):
        rows = []
        for name, field in layout:
            rows += _flat(field.shape, f"{prefix}.{name}" if prefix else name, offset + field.offset)
        return rows
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        rows = []
        for index in range(layout.length):
            rows += _flat(layout.elem_shape, f"{prefix}[{index}]", offset + index * width)
        return rows
    return [(offset, Shape.cast(layout).width, prefix)]


def isa_tables() -> str:
    """The header, the opcodes and every payload, as markdown."""
    from ..hdl.isa import ENGINE_OPCODES, HEADER_BITS, PAYLOAD_LAYOUTS, Opcode, header_layout

    parts = ["**Header** (bits 0..63 of every instruction):", "", _table(header_layout), "",
             "**Opcodes**:", "", "| opcode | name | engines | payload |", "|---|---|---|---|"]
    for opcode in Opcode:
        engines = ", ".join(kind.name.lower() for kind, codes in ENGINE_OPCODES.items() if opcode in codes)
        layout = PAYLOAD_LAYOUTS.get(opcode)
        payload = f"{layout.size} bits" if layout is not None else "none (ignored)"
        parts.append(f"| {int(opcode)} | `{opcode.name}` | {engines} | {payload} |")
    seen = set()
    for opcode, layout in PAYLOAD_LAYOUTS.items():
        if id(layout) in seen:
            continue
        seen.add(id(layout))
        names = " and ".join(f"`{o.name}`" for o, other in PAYLOAD_LAYOUTS.items() if other is layout)
        parts += ["", f"**{names} payload** (bit numbers in the instruction word):", "", _table(layout, HEADER_BITS)]
    return "\n".join(parts)


def error_tables() -> str:
    """Every error code an engine's status can show."""
    from ..golden.act import ActError
    from ..golden.dma import DmaError
    from ..golden.tensor_engine import TensorError
    from ..hdl.isa import EngineError

    rows = ["| code | name | meaning |", "|---|---|---|"]
    for error in EngineError:
        if error.value and error.value < 0x10:
            rows.append(f"| `{error.value:#04x}` | `{error.name}` | {_doc(EngineError, error)} |")
    for base, enum in ((EngineError.TENSOR, TensorError), (EngineError.ACT, ActError), (EngineError.DMA, DmaError)):
        for error in enum:
            if error.value:
                rows.append(f"| `{base + error.value:#04x}` | `{enum.__name__}.{error.name}` | {_doc(enum, error)} |")
    return "\n".join(rows)


def _doc(enum, member) -> str:
    """The ``#:`` comment of an enum member in its source."""
    import inspect

    source = inspect.getsource(enum)
    match = re.search(rf"^\s*{member.name}\s*=\s*[^#\n]*#:\s*(.*)$", source, re.M)
    return match.group(1).strip() if match else ""


def register_table() -> str:
    """The register map of the default tile, with the per-engine block shown once and the semaphores once."""
    from ..hdl.isa import engine_names
    from ..hdl.params import AXI_DATA_WIDTH, DMA_QUEUES, DRAM_BYTES, PARTITIONS, SBUF_BYTES, SEMAPHORES
    from ..hdl.tile import ENGINE_BASE, ENGINE_STRIDE, SEMAPHORE_BASE, tile_register_map
    from ..hdl.csr import RegisterMap

    queues, semaphores = DMA_QUEUES.default, SEMAPHORES.default
    full = tile_register_map(partitions=PARTITIONS.default, sbuf_bytes=SBUF_BYTES.default,
                             data_width=AXI_DATA_WIDTH.default, queues=queues, semaphores=semaphores,
                             dram_bytes=DRAM_BYTES.default)
    shown = RegisterMap()
    names = engine_names(queues)
    for register in full.registers:
        suffixes = ("program", "status", "fault", "pc", "wait_cycles", "executed")
        engine = next((n for n in names if register.name in {f"{n}_{x}" for x in suffixes}), None)
        if engine not in (None, "tensor") or register.index > 0:
            continue
        if register.table is not None:  # the first entry of a table stands for the table
            shown.add_table(register.table, *register.fields, count=1, offset=register.offset, doc=register.doc)
        else:
            shown.add(register.name, *register.fields, offset=register.offset, doc=register.doc)
    note = (f"\nThe block `tensor_*` at `{ENGINE_BASE:#05x}` repeats for every engine, {ENGINE_STRIDE:#x} bytes "
            f"apart: engine e (0 tensor, 1 act, 2 + q DMA queue q) at `{ENGINE_BASE:#05x} + {ENGINE_STRIDE:#x} e`, "
            f"named `<engine>_program`, `<engine>_status`, ... `semaphore<i>` is at `{SEMAPHORE_BASE:#05x} + 4 i` "
            f"for i < semaphores. Shown for the default tile ({queues} DMA queues, {semaphores} semaphores); "
            f"`config0` and `config1` hold the parameters of the tile at hand. Any other offset answers SLVERR.\n")
    return shown.markdown() + note


#: page -> section name -> generator
SECTIONS = {
    "isa.md": {"isa-tables": isa_tables, "error-codes": error_tables},
    "tile.md": {"register-map": register_table, "error-codes": error_tables},
}


def render(text: str, sections: dict) -> str:
    """``text`` with every generated section replaced by what its generator gives now."""
    for name, generate in sections.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- end:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"no generated section {name!r}")
        body = generate().rstrip("\n") + "\n"
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
    return text


def main(argv=None) -> int:
    """``python -m trntile.sw.docgen``: rewrite the generated sections of docs/ (``--check`` only compares)."""
    parser = argparse.ArgumentParser(description="rewrite the generated sections of docs/")
    parser.add_argument("--check", action="store_true", help="only report pages that differ (exit 1)")
    args = parser.parse_args(argv)
    stale = []
    for page, sections in SECTIONS.items():
        path = DOCS / page
        old = path.read_text()
        new = render(old, sections)
        if new != old:
            stale.append(page)
            if not args.check:
                path.write_text(new)
    if stale:
        print(("stale: " if args.check else "rewrote: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
