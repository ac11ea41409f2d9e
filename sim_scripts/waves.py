"""GTKWave save files for the waves a run records.

A save file opens the FST with the signals worth looking at already on screen: clock and reset first,
then the top's *probes* (internal signals grouped the way one debugs that block, e.g. each sequencer's PC,
state and semaphore wait in the tile; see ``Top.probes`` in :mod:`trntile.hdl.tops`), then one group per
interface of the top (``i``, ``o``, ...), valid and ready before the payload.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["write_gtkw", "fst_signals"]

# GTKWave trace flags: binary for 1-bit signals, hexadecimal for vectors; group begin/end markers.
_FLAG_BIN = "@28"
_FLAG_HEX = "@22"
_GROUP_BEGIN = "@800200"
_GROUP_END = "@1000200"

_HANDSHAKE_ORDER = {"valid": 0, "ready": 1}

# GTKWave stores the zoom as log2 of the time units per pixel, negated. Both simulators write the FST in
# picoseconds (timescale 1ns/1ps); -18 (found by looking) shows about 70 cycles of a 10 ns clock in a normal
# window, so the handshakes are visible when the file opens.
_ZOOM = -18


def _trace(scope: tuple[str, ...], name: str, width: int) -> str:
    path = ".".join((*scope, name))
    return f"{_FLAG_BIN}\n{path}" if width == 1 else f"{_FLAG_HEX}\n{path}[{width - 1}:0]"


def fst_signals(fst: Path) -> dict[str, int]:
    """Every signal an FST declares, as ``{"scope.sub.name": width}`` (read with ``fst2vcd``, header only);
    empty if ``fst2vcd`` is not installed."""
    tool = shutil.which("fst2vcd")
    if tool is None:
        return {}
    signals, scope = {}, []
    with subprocess.Popen([tool, "-f", str(fst)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as process:
        for line in process.stdout:
            if line.startswith("$enddefinitions"):
                break
            if match := re.match(r"\$scope \w+ (\S+) \$end", line):
                scope.append(match[1])
            elif line.startswith("$upscope"):
                scope.pop()
            elif match := re.match(r"\$var \w+ (\d+) \S+ (\S+)( \[[\d:]+\])? \$end", line):
                signals.setdefault(".".join([*scope, match[2]]), int(match[1]))
        process.kill()
    return signals


def write_gtkw(fst: Path, top: str, ports: tuple[tuple[str, int], ...] | list,
               probes: dict[str, list[str]] | None = None) -> Path:
    """Write ``<fst stem>.gtkw`` next to ``fst`` and return its path.

    Parameters
    ----------
    fst : Path
        The wave file the save file opens.
    top : str
        Name of the top module (used as the window title comment).
    ports : sequence of (name, width)
        The top's ports; names flattened with ``__`` as Amaranth writes them (``i__valid``).
    probes : dict of group name to signal paths, optional
        Internal signals, as paths below the top (``"tile.sequencer_tensor.pc"``), shown first. Their widths
        come from the FST; a probe the FST does not hold is listed in a ``[*] missing probes:`` comment line
        (tests/test_waves.py requires there are none), so a renamed signal is noticed, not silently dropped.

    Both simulators put the top module at the root of the FST (Verilator 5.048 also adds a ``$rootio``
    scope holding copies of the ports), so the signals are named ``<top>.<port>`` for either.
    """
    fst = Path(fst).resolve()
    gtkw = fst.with_suffix(".gtkw")
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, width in ports:
        group = "clock and reset" if name in ("clk", "rst") else name.split("__", 1)[0]
        groups.setdefault(group, []).append((name, width))

    def order(item: tuple[str, int]) -> tuple[int, str]:
        return (_HANDSHAKE_ORDER.get(item[0].rsplit("__", 1)[-1], 2), item[0])

    lines = [f"[*] trntile: {top}", f'[dumpfile] "{fst}"', f'[savefile] "{gtkw}"', "[timestart] 0",
             f"*{_ZOOM:.6f} -1"]
    probe_lines, missing = [], []
    if probes:
        declared = fst_signals(fst)
        for group, paths in probes.items():
            found = [(path, declared[f"{top}.{path}"]) for path in paths if f"{top}.{path}" in declared]
            missing += [path for path in paths if f"{top}.{path}" not in declared]
            if found:
                probe_lines += [_GROUP_BEGIN, f"-{group}"]
                probe_lines += [_trace((top,), path, width) for path, width in found]
                probe_lines += [_GROUP_END, f"-{group}"]
    if missing:
        lines.insert(1, f"[*] missing probes: {' '.join(missing)}")
    for group in sorted(groups, key=lambda g: (g != "clock and reset", g)):
        if group != "clock and reset" and probe_lines:
            lines += probe_lines
            probe_lines = []
        lines += [_GROUP_BEGIN, f"-{group}"]
        lines += [_trace((top,), name, width) for name, width in sorted(groups[group], key=order)]
        lines += [_GROUP_END, f"-{group}"]
    lines += probe_lines   # a top with no interface groups
    gtkw.write_text("\n".join(lines) + "\n")
    return gtkw
