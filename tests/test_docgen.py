"""The generated parts of docs/ match the code, and the docs' examples run."""

import contextlib
import io
import re
from pathlib import Path

import pytest

from trntile.sim import tile_diagram
from trntile.sw import docgen

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", sorted(docgen.SECTIONS))
def test_generated_sections_are_current(page):
    text = (DOCS / page).read_text()
    assert docgen.render(text, docgen.SECTIONS[page]) == text, \
        f"docs/{page} is stale: run python -m trntile.sw.docgen"


def test_tile_diagram_is_current():
    assert (DOCS / "tile.svg").read_text() == tile_diagram.draw(), \
        "docs/tile.svg is stale: run python -m trntile.sim.tile_diagram"


def test_isa_page_assembler_example_prints_its_listing():
    text = (DOCS / "isa.md").read_text()
    section = text[text.index("## The assembler"):]
    code, shown = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)[:2]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/isa.md", "exec"), {})
    assert out.getvalue() == shown
