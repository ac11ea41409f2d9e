"""The examples of docs/programming.md and docs/numerics.md run, in order, as one script per page, and print
what the page shows (a plain code block right after an example is its output)."""

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def run_page(page: Path) -> dict:
    blocks = re.findall(r"```(python|)\n(.*?)```", page.read_text(), re.S)
    assert any(kind == "python" for kind, _ in blocks), f"{page.name} has no examples"
    namespace: dict = {}
    pending_output = None
    for kind, text in blocks:
        if kind == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(text, str(page), "exec"), namespace)
            pending_output = out.getvalue()
        elif pending_output is not None:   # a plain block right after an example: what it printed
            assert pending_output == text, f"{page.name} shows\n{text}\nthe example printed\n{pending_output}"
            pending_output = None
    return namespace


def test_programming_guide_examples_run_and_print_what_the_page_shows():
    namespace = run_page(DOCS / "programming.md")
    assert "k" in namespace and namespace["result"].shape == (4, 6)


def test_numerics_examples_run_and_print_what_the_page_shows():
    namespace = run_page(DOCS / "numerics.md")
    assert "out" in namespace and namespace["out"].shape == (1, 4)


def test_a_wrong_output_on_the_page_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(1 + 1)\n```\n\n```\n3\n```\n")
    with pytest.raises(AssertionError, match="the example printed"):
        run_page(page)
