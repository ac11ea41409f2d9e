"""A cache for the objects of Verilator's run-time library, shared by every build.

Every Verilator model links the same run-time library (``verilated.cpp``, ``verilated_vpi.cpp``, ...), and
Verilator's makefile compiles it again in each build directory: about 14 s of CPU per build, as much as the
model itself for a small design, and paid by every design of the test suite. Verilator's makefile runs
each compile as ``$(OBJCACHE) $(CXX) ...``; the runner sets ``OBJCACHE`` to this module
(:func:`make_variable`), which answers a compile of a file from Verilator's ``include`` folder from the
cache when it has compiled the same file with the same command before, and runs every other compile
(the model's own files) unchanged.

The key is the whole command line (compiler, flags, defines, source path), the compiler's identity
(resolved path, size and modification time) and the size and modification time of every file in the
source's folder (the headers it includes). A hit copies the object and its dependency file (``-MMD``) to
where the compiler would have written them. Concurrent builds (``pytest -n``) take a lock per key, so
one compiles and the others wait for its result. A failed compile is not cached.

Usage (what make runs)::

    python objcache.py CACHE_DIR c++ -Os ... -c -o verilated.o .../verilator/include/verilated.cpp
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["make_variable", "cache_key", "main"]

_SOURCE_SUFFIXES = (".cpp", ".cc", ".c")


def make_variable(cache_dir: Path) -> str:
    """The value of make's ``OBJCACHE`` that sends compiles through this cache in ``cache_dir``.

    Spaces are escaped for ``MAKEFLAGS`` (where the runner puts it), which splits on unescaped spaces.
    """
    words = [sys.executable, str(Path(__file__).resolve()), str(cache_dir)]
    return " ".join(shlex.quote(word) for word in words).replace(" ", "\\ ")


def _runtime_source(argv: list[str]) -> Path | None:
    """The source file of a compile of Verilator's run-time library, or ``None`` for any other command."""
    if "-c" not in argv or "-o" not in argv:
        return None
    source = Path(argv[-1])
    if source.suffix not in _SOURCE_SUFFIXES or not source.is_absolute():
        return None
    if source.parent.name != "include" or not (source.parent / "verilated.h").is_file():
        return None
    return source


def _stat_words(path: Path) -> list:
    status = path.stat()
    return [str(path), status.st_size, status.st_mtime_ns]


def cache_key(argv: list[str], source: Path) -> str:
    """The cache key of compile ``argv`` of ``source`` (see the module docstring)."""
    compiler = shutil.which(argv[0])
    headers = sorted(entry for entry in source.parent.iterdir() if entry.is_file())
    words = [argv, _stat_words(Path(compiler).resolve()) if compiler else argv[0],
             [_stat_words(header) for header in headers]]
    return hashlib.sha256(json.dumps(words).encode()).hexdigest()[:32]


def _copy(source: Path, destination: Path) -> None:
    partial = destination.with_name(f"{destination.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, partial)
    partial.replace(destination)  # atomic: a reader never sees half an object


def main(argv: list[str]) -> int:
    """Run compile ``argv[1:]`` through the cache in folder ``argv[0]``; return the compiler's exit status."""
    if len(argv) < 2:
        print("usage: objcache.py CACHE_DIR COMPILER ARGS...", file=sys.stderr)
        return 2
    cache_dir, command = Path(argv[0]), argv[1:]
    source = _runtime_source(command)
    if source is None:
        return subprocess.call(command)
    output = Path(command[command.index("-o") + 1])
    depfile = output.with_suffix(".d")
    key = cache_key(command, source)
    cached_object, cached_depfile = cache_dir / f"{key}.o", cache_dir / f"{key}.d"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached_object.exists():
            status = subprocess.call(command)
            if status != 0:
                return status
            if "-MMD" in command and depfile.exists():
                _copy(depfile, cached_depfile)
            _copy(output, cached_object)   # last: its presence means the entry is complete
            return 0
    _copy(cached_object, output)
    if cached_depfile.exists():
        _copy(cached_depfile, depfile)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
