"""cocotb tests for the binary32 units, bit for bit against numpy: ``adder_matches_numpy`` runs on the top
``fp32_adder``, ``multiplier_matches_numpy`` on ``fp_multiplier`` (the pytest entry picks the one that fits).

Each vector is applied, given 1 ns to settle (the units are combinational), and the output compared with
``golden.numerics``-style numpy arithmetic: float32 ``a + b``, and ``float32(a) * float32(b)`` for
operands decoded by ``ml_dtypes``. NaN results must be NaN; everything else must match to the bit.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import Timer

from trntile.golden import numerics

FORMATS = {0: "bf16", 1: "fp8_e4m3", 2: "fp8_e5m2"}


def _f32(bits: int) -> np.float32:
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


def _is_nan(bits: int) -> bool:
    return (bits >> 23) & 0xFF == 0xFF and bits & 0x7FFFFF != 0


def _bits(value) -> int:
    return int(np.array([value], dtype=np.float32).view(np.uint32)[0])


def _check(errors: list, got: int, want: int, what: str) -> None:
    if (_is_nan(want) and not _is_nan(got)) or (not _is_nan(want) and got != want):
        errors.append(f"{what}: got {got:#010x}, want {want:#010x}")


def _special32() -> list[int]:
    return [0x0000_0000, 0x8000_0000, 0x0000_0001, 0x8000_0001, 0x007F_FFFF, 0x0080_0000, 0x0080_0001,
            0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0x3F80_0000,
            0xBF80_0000, 0x3F80_0001, 0x4B80_0000, 0x3380_0000, 0x0040_0000, 0x00FF_FFFF]


def _adder_vectors(rng: random.Random, count: int):
    specials = _special32()
    for a in specials:
        for b in specials:
            yield a, b
    for _ in range(count):
        kind = rng.random()
        if kind < 0.4:  # any bit pattern: reaches NaN, Inf, subnormals
            yield rng.getrandbits(32), rng.getrandbits(32)
        else:  # close exponents and opposite signs: alignment, cancellation, rounding ties
            exponent = rng.randrange(0, 255)
            other = min(max(exponent + rng.randint(-26, 26), 0), 254)
            a = (rng.getrandbits(1) << 31) | (exponent << 23) | rng.getrandbits(23)
            b = (rng.getrandbits(1) << 31) | (other << 23) | rng.getrandbits(23)
            if kind < 0.55:
                b = (a ^ 0x8000_0000) ^ rng.getrandbits(3)  # near-total cancellation
            yield a, b


@cocotb.test()
async def adder_matches_numpy(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    count = 3000 if "icarus" in cocotb.SIM_NAME.lower() else 30000
    errors, checked = [], 0
    with np.errstate(all="ignore"):
        for a, b in _adder_vectors(rng, count):
            dut.a.value, dut.b.value = a, b
            await Timer(1, "ns")
            _check(errors, int(dut.sum.value), _bits(np.float32(_f32(a) + _f32(b))), f"{a:#010x} + {b:#010x}")
            checked += 1
    dut._log.info("adder: %d vectors, %d mismatches", checked, len(errors))
    assert not errors, f"{len(errors)} of {checked} sums differ from numpy, e.g. " + "; ".join(errors[:5])


def _decode(bits: int, fmt: str) -> np.float32:
    f = numerics.dtype(fmt)
    return numerics.from_bits(np.array([bits]), f).astype(np.float32)[0]


@cocotb.test()
async def multiplier_matches_numpy(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    icarus = "icarus" in cocotb.SIM_NAME.lower()
    errors, checked = [], 0
    with np.errstate(all="ignore"):
        for code, fmt in FORMATS.items():
            dut.format.value = code
            if fmt == "bf16":
                specials = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0,
                            0x3F80, 0xBF80, 0x1F80, 0x2000, 0x5F80]
                pairs = [(a, b) for a in specials for b in specials]
                for _ in range(3000 if icarus else 30000):
                    if rng.random() < 0.5:
                        pairs.append((rng.getrandbits(16), rng.getrandbits(16)))
                    else:  # exponents whose sum lands near binary32's subnormal and overflow edges
                        ea = rng.randrange(1, 255)
                        eb = min(max(rng.choice([-126, 127]) + 254 - ea + rng.randint(-10, 10), 0), 255)
                        pairs.append(((rng.getrandbits(1) << 15) | (ea << 7) | rng.getrandbits(7),
                                      (rng.getrandbits(1) << 15) | (eb << 7) | rng.getrandbits(7)))
            else:  # every pair of FP8 values on Verilator; a quarter of them, at random, on Icarus
                pairs = [(a, b) for a in range(256) for b in range(256) if not icarus or rng.random() < 0.25]
            decoded = {}
            for a, b in pairs:
                dut.a.value, dut.b.value = a, b
                await Timer(1, "ns")
                for x in (a, b):
                    if x not in decoded:
                        decoded[x] = _decode(x, fmt)
                want = _bits(np.float32(decoded[a] * decoded[b]))
                _check(errors, int(dut.product.value), want, f"{fmt} {a:#06x} * {b:#06x}")
                checked += 1
    dut._log.info("multiplier: %d vectors, %d mismatches", checked, len(errors))
    assert not errors, f"{len(errors)} of {checked} products differ from numpy, e.g. " + "; ".join(errors[:5])
