"""docs/programming.md's examples run, in order, as one script, and print what the page shows."""

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "programming.md"


def test_programming_guide_examples_run_and_print_what_the_page_shows():
    blocks = re.findall(r"```(python|)\n(.*?)```", PAGE.read_text(), re.S)
    namespace: dict = {}
    pending_output = None
    for kind, text in blocks:
        if kind == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(text, str(PAGE), "exec"), namespace)
            pending_output = out.getvalue()
        elif pending_output is not None:   # a plain block right after an example: what it printed
            assert pending_output == text, f"the page shows\n{text}\nthe example printed\n{pending_output}"
            pending_output = None
    assert "k" in namespace and namespace["result"].shape == (4, 6)
