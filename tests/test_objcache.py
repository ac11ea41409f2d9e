"""The run-time object cache (trntile.sim.objcache), with a stand-in compiler that counts its runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trntile.sim import objcache

# A "compiler" that writes the object (its command line and the source's text) and, with -MMD, a
# dependency file, and appends one line to a log per run; it fails for sources containing "error".
FAKE_COMPILER = textwrap.dedent("""\
    import sys
    from pathlib import Path
    args = sys.argv[1:]
    with open(Path(__file__).with_suffix(".log"), "a") as log:
        log.write(" ".join(args) + "\\n")
    source = Path(args[-1])
    text = source.read_text()
    if "error" in text:
        sys.exit(1)
    output = Path(args[args.index("-o") + 1])
    output.write_text(" ".join(args[:-1]) + "|" + text)
    if "-MMD" in args:
        output.with_suffix(".d").write_text(f"{output.name}: {source}\\n")
    """)


@pytest.fixture
def setup(tmp_path):
    include = tmp_path / "verilator" / "include"
    include.mkdir(parents=True)
    (include / "verilated.h").write_text("// header\n")
    (include / "verilated.cpp").write_text("int runtime;\n")
    compiler = tmp_path / "cxx.py"
    compiler.write_text(FAKE_COMPILER)
    builds = [tmp_path / "build1", tmp_path / "build2"]
    for build in builds:
        build.mkdir()
    return include, compiler, builds, tmp_path / "cache"


def compile_in(build: Path, cache: Path, compiler: Path, *args: str) -> int:
    command = [sys.executable, str(objcache.__file__), str(cache), sys.executable, str(compiler), *args]
    return subprocess.call(command, cwd=build)


def runs(compiler: Path) -> int:
    log = compiler.with_suffix(".log")
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_second_build_reuses_the_runtime_object(setup):
    include, compiler, (first, second), cache = setup
    args = ("-Os", "-MMD", "-c", "-o", "verilated.o", str(include / "verilated.cpp"))
    assert compile_in(first, cache, compiler, *args) == 0
    assert compile_in(second, cache, compiler, *args) == 0
    assert runs(compiler) == 1
    assert (second / "verilated.o").read_text() == (first / "verilated.o").read_text()
    assert (second / "verilated.d").read_text() == (first / "verilated.d").read_text()


@pytest.mark.parametrize("change", ["flags", "header", "source"])
def test_a_change_of_command_or_headers_compiles_again(setup, change):
    include, compiler, (first, second), cache = setup
    args = ["-Os", "-c", "-o", "verilated.o", str(include / "verilated.cpp")]
    assert compile_in(first, cache, compiler, *args) == 0
    if change == "flags":
        args[0] = "-O2"
    elif change == "header":
        (include / "verilated.h").write_text("// another header, another size\n")
    else:
        (include / "verilated.cpp").write_text("int runtime_changed;\n")
    assert compile_in(second, cache, compiler, *args) == 0
    assert runs(compiler) == 2
    if change != "header":  # the stand-in's object does not depend on the header
        assert (second / "verilated.o").read_text() != (first / "verilated.o").read_text()


def test_model_files_are_never_cached(setup):
    _include, compiler, (first, second), cache = setup
    for build in (first, second):
        (build / "Vtop.cpp").write_text(f"int model_{build.name};\n")
        assert compile_in(build, cache, compiler, "-c", "-o", "Vtop.o", str(build / "Vtop.cpp")) == 0
    assert runs(compiler) == 2
    assert "model_build2" in (second / "Vtop.o").read_text()
    assert not cache.exists() or not list(cache.glob("*.o"))


def test_a_failed_compile_is_reported_and_not_cached(setup):
    include, compiler, (first, second), cache = setup
    (include / "verilated.cpp").write_text("error\n")
    args = ("-c", "-o", "verilated.o", str(include / "verilated.cpp"))
    assert compile_in(first, cache, compiler, *args) == 1
    assert compile_in(second, cache, compiler, *args) == 1
    assert runs(compiler) == 2
    assert not list(cache.glob("*.o"))


def test_make_variable_survives_makeflags(tmp_path):
    """The value goes through MAKEFLAGS (spaces escaped) and reaches the recipe as one command prefix."""
    cache = tmp_path / "with space" / "cache"
    (tmp_path / "Makefile").write_text("all:\n\t@printf '%s\\n' $(OBJCACHE)\n")
    env = dict(os.environ, MAKEFLAGS=f"OBJCACHE={objcache.make_variable(cache)}")
    out = subprocess.run(["make", "-s", "-C", str(tmp_path)], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [sys.executable, str(Path(objcache.__file__).resolve()), str(cache)]
