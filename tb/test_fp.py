"""cocotb tests for the binary32 units, bit for bit against numpy: ``adder_matches_numpy`` runs on the top
``fp32_adder``, ``multiplier_matches_numpy`` on ``fp_multiplier``, ``fp32_multiplier_matches_numpy`` on
``fp32_multiplier`` and ``narrow_matches_ml_dtypes`` on ``fp_narrow`` (the pytest entry picks the one that fits).

The binary32 adder, multiplier and narrowing tops are the pipelined units the ACT engine uses: they take a
vector per advancing cycle, with cycles of no advance (and other operands on the inputs) between at random,
during which their result must not move, and give each vector's result as many advances later as they have
steps; the bf16/FP8 multiplier is combinational, each vector given 1 ns to settle. Each output is compared with
``golden.numerics``-style numpy arithmetic: float32 ``a + b``, ``float32(a) * float32(b)`` for binary32
operands and for operands decoded by ``ml_dtypes``, and ``float32(x).astype(t)`` for the narrowing to an
``ml_dtypes`` type ``t``. NaN results must be NaN; everything else must match to the bit.
"""

from __future__ import annotations

import random

import cocotb
import ml_dtypes
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from trntile.golden import numerics
from trntile.hdl.fp import FP32Adder, FP32Multiplier, FP32Narrow

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


async def _results(dut, unit, output: str, vectors: list[dict], rng: random.Random) -> list[int]:
    """``output`` for each of ``vectors`` (input name -> value) from the pipelined ``unit`` class's top.

    A vector goes in on each advancing cycle; between vectors, at random, cycles with ``advance`` low and
    random operands, after which the result showing must be the one showing before. The result of the vector
    that went in ``len(unit.CUTS)`` advances ago is read at each falling edge.
    """
    latency = len(unit.CUTS)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.advance.value = 0
    await FallingEdge(dut.clk)
    names = list(vectors[0])
    results: list[int] = [0] * len(vectors)
    entered: list[int | None] = []   # the vector that went in at each advance (None: padding at the end)
    for index in [*range(len(vectors)), *[None] * latency]:
        while rng.random() < 0.1:
            showing = int(getattr(dut, output).value)
            dut.advance.value = 0
            for name in names:
                getattr(dut, name).value = rng.getrandbits(len(getattr(dut, name)))
            await FallingEdge(dut.clk)
            assert int(getattr(dut, output).value) == showing, f"{output} moved on a cycle without advance"
        dut.advance.value = 1
        for name in names:
            handle = getattr(dut, name)
            handle.value = vectors[index][name] if index is not None else rng.getrandbits(len(handle))
        await FallingEdge(dut.clk)
        entered.append(index)
        if len(entered) >= latency and entered[-latency] is not None:
            results[entered[-latency]] = int(getattr(dut, output).value)
    return results


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
    errors = []
    pairs = list(_adder_vectors(rng, count))
    sums = await _results(dut, FP32Adder, "sum", [{"a": a, "b": b} for a, b in pairs], rng)
    with np.errstate(all="ignore"):
        for (a, b), got in zip(pairs, sums):
            _check(errors, got, _bits(np.float32(_f32(a) + _f32(b))), f"{a:#010x} + {b:#010x}")
    checked = len(pairs)
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


def _pair_from_significands(rng: random.Random, a_int: int, b_int: int, lsb_sum: int):
    """binary32 patterns of ``±a_int * 2**ea`` and ``±b_int * 2**eb`` with ``ea + eb == lsb_sum``, or None.

    ``ea`` is drawn among the splits that leave both operands representable (normal or subnormal).
    """
    na, nb = a_int.bit_length(), b_int.bit_length()
    low = max(-149, lsb_sum - (127 - (nb - 1)))
    high = min(127 - (na - 1), lsb_sum + 149)
    if low > high:
        return None
    ea = rng.randint(low, high)
    eb = lsb_sum - ea
    a = _bits(np.float32(a_int * 2.0**ea)) | (rng.getrandbits(1) << 31)  # exact: float64 holds both
    b = _bits(np.float32(b_int * 2.0**eb)) | (rng.getrandbits(1) << 31)
    return a, b


def _odd(rng: random.Random, width: int) -> int:
    """A random odd integer of exactly ``width`` bits."""
    return 1 if width == 1 else (1 << (width - 1)) | rng.getrandbits(width - 1) | 1


def _product_ties(rng: random.Random, count: int):
    """Operand pairs whose exact product is a rounding tie of binary32, or one bit beside one.

    The product's leading one lands anywhere from 2**-150 (half the smallest subnormal) to 2**127; its
    significand has exactly one bit more than the result keeps there (a tie: guard 1, nothing below) or
    two more with the last one set (just above or below a tie).
    """
    made = 0
    while made < count:
        lead = rng.randint(-150, 127)  # exponent of the product's leading one
        kept = 24 if lead >= -126 else 24 - (-126 - lead)  # bits of the result at that exponent
        length = kept + 1 + rng.choice((0, 0, 1))
        na = rng.randint(1, min(24, length))
        nb = length - na + rng.randint(0, 1)
        if not 1 <= nb <= 24:
            continue
        a_int, b_int = _odd(rng, na), _odd(rng, nb)
        if (a_int * b_int).bit_length() != length:
            continue
        pair = _pair_from_significands(rng, a_int, b_int, lead - (length - 1))
        if pair is not None:
            made += 1
            yield pair


def _fp32_multiplier_vectors(rng: random.Random, count: int):
    specials = _special32() + [0x4000_0000, 0x3F00_0000, 0x3FC0_0000, 0x3F7F_FFFF, 0x0000_0003, 0x3400_0000,
                               0x5F00_0000, 0x2000_0000, 0x7EFF_FFFF, 0x0080_0000 | 0x8000_0000]
    for a in specials:
        for b in specials:
            yield a, b
    # Overflow and underflow thresholds: the largest value and the smallest subnormals times neighbours
    # of 1, 2 and 1/2 (0x3f000000 * 2**-149 is a tie that rounds to zero, 3 * 2**-149 / 2 one that rounds up).
    near_one = [0x3EFF_FFFF, 0x3F00_0000, 0x3F00_0001, 0x3F7F_FFFF, 0x3F80_0000, 0x3F80_0001, 0x3FFF_FFFF,
                0x4000_0000, 0x4000_0001]
    for edge in [0x7F7F_FFFF, 0x7F7F_FFFE, 0x7F00_0000, 0x7EFF_FFFF, 0x0000_0001, 0x0000_0002, 0x0000_0003,
                 0x007F_FFFF, 0x0080_0000, 0x0080_0001, 0x00FF_FFFF]:
        for scale in near_one:
            yield edge, scale
            yield scale ^ 0x8000_0000, edge
    # Exact ties at the two carries: (2**25 - 1) * 2**103, halfway from the largest value to 2**128
    # (rounds to Inf), and (2**24 - 1) * 2**-150, halfway from the largest subnormal to 2**-126.
    for a_int, b_int, lsb_sum in [(31 * 601, 1801, 103), (4095, 4097, -150)]:
        for _ in range(16):
            pair = _pair_from_significands(rng, a_int, b_int, lsb_sum)
            yield pair
            yield pair[::-1]
    yield from _product_ties(rng, count // 3)
    for _ in range(count):
        if rng.random() < 0.5:  # any bit pattern: reaches NaN, Inf, subnormals
            yield rng.getrandbits(32), rng.getrandbits(32)
        else:  # biased exponents whose sum lands near binary32's subnormal, underflow and overflow edges
            ea = rng.randrange(0, 255)
            target = rng.choice([-126, -149, 128]) + 254  # ea + eb for a product near 2**target
            eb = min(max(target - ea + rng.randint(-3, 3), 0), 254)
            yield ((rng.getrandbits(1) << 31) | (ea << 23) | rng.getrandbits(23),
                   (rng.getrandbits(1) << 31) | (eb << 23) | rng.getrandbits(23))


@cocotb.test()
async def fp32_multiplier_matches_numpy(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    count = 3000 if "icarus" in cocotb.SIM_NAME.lower() else 30000
    pairs = list(_fp32_multiplier_vectors(rng, count))
    a_bits = np.array([a for a, _ in pairs], dtype=np.uint32)
    b_bits = np.array([b for _, b in pairs], dtype=np.uint32)
    with np.errstate(all="ignore"):
        wanted = (a_bits.view(np.float32) * b_bits.view(np.float32)).view(np.uint32)
    errors = []
    products = await _results(dut, FP32Multiplier, "product", [{"a": a, "b": b} for a, b in pairs], rng)
    for (a, b), want, got in zip(pairs, wanted, products):
        _check(errors, got, int(want), f"{a:#010x} * {b:#010x}")
    dut._log.info("fp32 multiplier: %d vectors, %d mismatches", len(pairs), len(errors))
    assert not errors, f"{len(errors)} of {len(pairs)} products differ from numpy, e.g. " + "; ".join(errors[:5])


def _narrow_formats():
    """(format code, name, ml_dtypes type, width, unsigned view type) of each narrowing target."""
    for code, fmt in FORMATS.items():
        target = numerics.dtype(fmt)
        yield code, fmt, target.numpy.type, target.bits, {8: np.uint8, 16: np.uint16}[target.bits]


def _finite_value(pattern: int, target) -> float:
    """Value of the non-negative ``pattern`` of ``target`` read as if every exponent field were finite.

    One past the largest finite pattern this gives the next step up (2**16 for E5M2, 480 for E4M3fn),
    which places the midpoint of the overflow rounding.
    """
    info = ml_dtypes.finfo(target)
    field, fraction = pattern >> info.nmant, pattern & ((1 << info.nmant) - 1)
    if field == 0:
        return fraction * 2.0 ** (info.minexp - info.nmant)
    return ((1 << info.nmant) | fraction) * 2.0 ** (field - 1 + info.minexp - info.nmant)


def _neighbourhood(target, unsigned, rng: random.Random, share: float = 1.0) -> list[int]:
    """binary32 patterns around every finite non-negative value ``v`` of ``target``, both signs.

    For ``v`` and its successor: ``v`` itself, their midpoint and the float32 values either side of the
    midpoint. The successor of the largest finite value is the next step up, so the overflow threshold
    is swept too. With ``share`` below 1 only that share of the values is taken, at random, apart from
    the subnormals, the smallest normal binade and the top binade, which are always taken.
    """
    info = ml_dtypes.finfo(target)
    largest = int(np.array([info.max], dtype=target).view(unsigned)[0])
    binade = 1 << info.nmant
    values = []
    for pattern in range(largest + 1):
        edge = pattern < 2 * binade or pattern > largest - binade
        if not edge and rng.random() >= share:
            continue
        here, successor = _finite_value(pattern, target), _finite_value(pattern + 1, target)
        midpoint = np.float32((here + successor) / 2)  # exact: a few bits more than the target has
        values += [np.float32(here), midpoint, np.nextafter(midpoint, np.float32(-np.inf)),
                   np.nextafter(midpoint, np.float32(np.inf))]
    bits = [_bits(value) for value in values]
    return bits + [b ^ 0x8000_0000 for b in bits]


def _narrow_random(rng: random.Random, target, count: int):
    """Random binary32 patterns: any bits, exponents around the target's range, and near-ties."""
    info = ml_dtypes.finfo(target)
    low = 127 + info.minexp - info.nmant - 3  # below half the smallest subnormal
    high = 127 + info.maxexp + 1  # above the overflow threshold
    drop = 23 - info.nmant  # binary32 fraction bits below the target's last one
    for _ in range(count):
        kind = rng.random()
        if kind < 0.3:
            yield rng.getrandbits(32)
            continue
        exponent = rng.randint(max(low, 0), min(high, 254))
        fraction = rng.getrandbits(23)
        if kind < 0.7:  # the dropped bits set to the tie, or within a few ulps of it
            tie = 1 << (drop - 1)
            fraction = (fraction >> drop << drop) | (tie + rng.randint(-3, 3)) % (1 << drop)
        yield (rng.getrandbits(1) << 31) | (exponent << 23) | fraction


@cocotb.test()
async def narrow_matches_ml_dtypes(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    icarus = "icarus" in cocotb.SIM_NAME.lower()
    count = 3000 if icarus else 30000
    errors, vectors, checks = [], [], []
    for code, fmt, target, width, unsigned in _narrow_formats():
        share = 1 / 16 if icarus and fmt == "bf16" else 1.0  # Icarus: a sixteenth of bf16's 32640 values
        values = _special32() + [0xFF80_0000, 0xFFC0_0000, 0x7FBF_FFFF, 0xFF80_0001, 0x7F7F_FFFF, 0xFF7F_FFFF]
        values += _neighbourhood(target, unsigned, rng, share) + list(_narrow_random(rng, target, count))
        inputs = np.array(values, dtype=np.uint32)
        with np.errstate(all="ignore"):
            narrowed = inputs.view(np.float32).astype(target)
        wanted, want_nan = narrowed.view(unsigned), np.isnan(narrowed.astype(np.float32))
        vectors += [{"value": value, "format": code} for value in values]
        checks += [(fmt, target, width, unsigned, value, int(want), nan)
                   for value, want, nan in zip(values, wanted, want_nan)]
    passed = _special32() + [rng.getrandbits(32) for _ in range(count // 10)]
    vectors += [{"value": value, "format": 3} for value in passed]   # binary32 unchanged, NaN payloads too
    results = await _results(dut, FP32Narrow, "result", vectors, rng)
    for (fmt, target, width, unsigned, value, want, nan), got in zip(checks, results):
        got_nan = got >> width == 0 and np.isnan(np.array([got], dtype=unsigned).view(target)[0].astype(np.float32))
        if got >> width or (nan and not got_nan) or (not nan and got != want):
            errors.append(f"{fmt} {value:#010x} ({_f32(value)!r}): got {got:#x}, want {want:#x}")
    for value, got in zip(passed, results[len(checks):]):
        if got != value:
            errors.append(f"passthrough {value:#010x}: got {got:#010x}")
    checked = len(vectors)
    dut._log.info("narrow: %d vectors, %d mismatches", checked, len(errors))
    assert not errors, f"{len(errors)} of {checked} conversions differ from ml_dtypes, e.g. " + "; ".join(errors[:5])
