"""`trntile matmul` through its command line: bad input exits 2 with one line, a small GEMM runs on the RTL tile
and equals the golden model."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import require_simulator

from trntile.golden import numerics


def trntile(*args):
    return subprocess.run([sys.executable, "-m", "trntile", *args], capture_output=True, text=True)


@pytest.fixture
def matrices(tmp_path):
    rng = np.random.default_rng(5)
    paths = {}
    for name, shape in (("a", (5, 9)), ("b", (9, 7)), ("b_wrong", (8, 7)), ("vector", (9,))):
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], rng.standard_normal(shape))
    paths["text"] = tmp_path / "text.npy"
    paths["text"].write_text("not numpy")
    paths["out"] = tmp_path / "c.npy"
    return paths


@pytest.mark.parametrize("change,message", [
    ({"--b": "b_wrong"}, "A is 5 x 9 and B 8 x 7: A's columns must equal B's rows"),
    ({"--a": "text"}, "is not a .npy file"),
    ({"--a": "vector"}, "must hold a non-empty 2-D numeric array"),
    ({"--a": "missing"}, "cannot read"),
    ({"--dtype": "fp16"}, "dtype must be one of bf16, fp8_e4m3, fp8_e5m2, int8, not 'fp16'"),
    ({"--partitions": "12"}, "partitions must be a power of two in 4..128, not 12"),
])
def test_bad_input_exits_2_with_one_line(matrices, change, message):
    args = {"--a": "a", "--b": "b", "--dtype": "bf16", "--out": "out"}
    args.update(change)
    argv = ["matmul"]
    for option, value in args.items():
        argv += [option, str(matrices.get(value, value)) if option != "--dtype" and option != "--partitions"
                 else value]
    result = trntile(*argv)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not matrices["out"].exists()


@pytest.mark.verilator
def test_a_small_gemm_on_the_rtl(matrices, tmp_path):
    require_simulator("verilator")
    figures = tmp_path / "figures.json"
    result = trntile("matmul", "--a", str(matrices["a"]), "--b", str(matrices["b"]), "--dtype", "bf16",
                     "--out", str(matrices["out"]), "--partitions", "4", "--json", str(figures))
    assert result.returncode == 0, result.stderr + result.stdout
    a, b = np.load(matrices["a"]), np.load(matrices["b"])
    want = numerics.chunked_matmul(numerics.cast(a, "bf16"), numerics.cast(b, "bf16"), "bf16", partitions=4)
    np.testing.assert_array_equal(np.load(matrices["out"]).view(np.uint32), want.view(np.uint32))
    report = json.loads(figures.read_text())
    assert set(report) == {"m", "n", "k", "dtype", "partitions", "cycles", "mfu", "sim_seconds"}
    assert (report["m"], report["n"], report["k"], report["partitions"]) == (5, 7, 9, 4)
    assert 0 < report["mfu"] <= 1 and report["cycles"] >= 5 * 7 * 9 / 16


@pytest.mark.verilator
def test_bench_gemm_writes_its_figures(tmp_path):
    require_simulator("verilator")
    out = tmp_path / "gemm.json"
    result = trntile("bench", "gemm", "--m", "8", "--n", "20", "--k", "9", "--dtype", "int8", "--partitions", "4",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr + result.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"m", "n", "k", "dtype", "partitions", "cycles", "mfu", "ideal_cycles"}
    assert figures["ideal_cycles"] == -(-8 * 20 * 9 // 16)
    assert figures["mfu"] == round(8 * 20 * 9 / (16 * figures["cycles"]), 4)


@pytest.mark.parametrize("args,message", [
    (["--m", "0", "--n", "4", "--k", "4"], "m must be a positive integer, not 0"),
    (["--m", "4", "--n", "4", "--k", "4", "--dtype", "fp16"], "dtype must be one of"),
    (["--m", "4", "--n", "4"], "the following arguments are required: --k"),
])
def test_bench_gemm_bad_input_exits_2(tmp_path, args, message):
    result = trntile("bench", "gemm", *args, "--json", str(tmp_path / "x.json"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.icarus
def test_matmul_leaves_waves(matrices, tmp_path):
    """--waves DIR: an FST of the run and a GTKWave save file that opens it (on Icarus, whose build with waves
    is quick)."""
    require_simulator("icarus")
    waves = tmp_path / "waves"
    result = trntile("matmul", "--a", str(matrices["a"]), "--b", str(matrices["b"]), "--dtype", "fp8_e4m3",
                     "--out", str(matrices["out"]), "--partitions", "4", "--sim", "icarus", "--waves", str(waves))
    assert result.returncode == 0, result.stderr + result.stdout
    fst, gtkw = waves / "tile_bench.fst", waves / "tile_bench.gtkw"
    assert fst.stat().st_size > 1000 and fst.read_bytes()[:1] == b"\x00"   # an FST header block
    assert f"trntile waves {waves}" in result.stdout and "m_axi" in gtkw.read_text()
    assert f'[dumpfile] "{fst.resolve()}"' in gtkw.read_text()   # the save file opens the copy


@pytest.mark.verilator
def test_demo_runs_checks_and_reports(tmp_path):
    """`trntile demo` end to end, at P = 4 so that it shares the build of the GEMM tests (the README's P = 16
    run is the same code on a larger tile)."""
    require_simulator("verilator")
    out = tmp_path / "demo.json"
    result = trntile("demo", "--partitions", "4", "--json", str(out))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "C matches the golden ISA simulator bit for bit (16384 elements)" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["ideal_cycles"] == 128 ** 3 // 16 and figures["counters"]["macs"] == 128 ** 3
    assert f"MFU {figures['mfu']:.3f}" in result.stdout and f"cycles: {figures['cycles']:,}" in result.stdout
    assert "simulating:" in result.stderr     # the progress display
    assert "trntile waves build/waves" in result.stdout
