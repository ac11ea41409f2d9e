"""IEEE-754 binary32 arithmetic for the tensor engine's processing elements, bit-exact to numpy.

:class:`FP32Adder` computes ``fp32(a + b)`` and :class:`FPMultiplier` computes ``fp32(a * b)`` for bf16,
FP8 E4M3 (``float8_e4m3fn``) and FP8 E5M2 operands, both rounding to nearest even with subnormals kept,
exactly as :mod:`trntile.golden.numerics` defines. Both are combinational; the processing element decides
where the registers go.

NaN results are the canonical quiet NaN ``0x7fc00000`` (any NaN is acceptable, per the architecture brief).

Both units end in :func:`round_to_fp32`: a non-zero integer significand ``S`` and the exponent ``x`` of its
least significant bit (the value is ``S * 2**x``) are normalized, shifted into the subnormal range when
needed, rounded to nearest even and packed, with overflow to infinity.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FP32Adder", "FPMultiplier", "FP_FORMATS", "round_to_fp32", "QUIET_NAN"]

QUIET_NAN = 0x7FC0_0000
POSITIVE_INFINITY = 0x7F80_0000

#: Format code (the ``dtype`` field of commands) -> (exponent bits, mantissa bits, bias, has infinities).
FP_FORMATS = {0: (8, 7, 127, True), 1: (4, 3, 7, False), 2: (5, 2, 15, True)}

_WORK = 48  # internal significand width: holds the adder's 24 + 1 + 3 bits and the multiplier's 16


def _leading_zeros(m, value, width):
    """Number of leading zeros of ``value`` (``width`` bits); ``width`` when it is zero."""
    count = Signal(range(width + 1))
    m.d.comb += count.eq(width)
    for position in range(width):  # the highest set bit wins, so it is assigned last
        with m.If(value[position]):
            m.d.comb += count.eq(width - 1 - position)
    return count


def round_to_fp32(m, sign, significand, lsb_exponent):
    """binary32 bits of ``(-1)**sign * significand * 2**lsb_exponent``, rounded to nearest even.

    ``significand`` must be non-zero and at most ``_WORK`` bits; ``lsb_exponent`` a signed value.
    """
    s = Signal(_WORK)
    m.d.comb += s.eq(significand)
    zeros = _leading_zeros(m, s, _WORK)
    normalized = Signal(_WORK)
    m.d.comb += normalized.eq(s << zeros)
    # Exponent of the leading one: the value is 1.f * 2**exponent.
    exponent = Signal(signed(12))
    m.d.comb += exponent.eq(lsb_exponent + (_WORK - 1) - zeros)

    # Below the normal range the significand is shifted right so that the exponent reads as -126.
    shift = Signal(range(_WORK + 2))
    with m.If(exponent < -126):
        with m.If(-126 - exponent > _WORK + 1):
            m.d.comb += shift.eq(_WORK + 1)
        with m.Else():
            m.d.comb += shift.eq(-126 - exponent)
    aligned = Signal(_WORK)
    m.d.comb += aligned.eq(normalized >> shift)
    lost = Signal()  # a one was shifted out
    m.d.comb += lost.eq((aligned << shift)[:_WORK] != normalized)

    kept = aligned[_WORK - 24:]  # hidden bit and 23 fraction bits
    guard = aligned[_WORK - 25]
    sticky = Signal()
    m.d.comb += sticky.eq(aligned[:_WORK - 25].any() | lost)
    rounded = Signal(25)
    m.d.comb += rounded.eq(kept + (guard & (sticky | kept[0])))

    # Adding the rounded significand (hidden bit included) to (biased exponent - 1) << 23 carries a
    # rounding overflow into the exponent, and turns a subnormal that rounds up into the smallest normal.
    biased_minus_one = Signal(signed(12))
    m.d.comb += biased_minus_one.eq(Mux(exponent < -126, 0, exponent + 126))
    magnitude = Signal(signed(40))
    m.d.comb += magnitude.eq((biased_minus_one << 23) + rounded)
    result = Signal(32)
    with m.If((exponent > 127) | (magnitude >= POSITIVE_INFINITY)):
        m.d.comb += result.eq(Cat(Const(POSITIVE_INFINITY, 31), sign))
    with m.Else():
        m.d.comb += result.eq(Cat(magnitude[:31], sign))
    return result


class FP32Adder(wiring.Component):
    """``sum = fp32(a + b)``: binary32 addition, round to nearest even, subnormals kept. Combinational.

    Members
    -------
    a, b : ``In(32)``
        binary32 operands (bit patterns).
    sum : ``Out(32)``
        binary32 result: NaN if either operand is NaN or for Inf + -Inf; an exact zero sum is +0 unless both
        operands are -0.
    """

    a: In(32)
    b: In(32)
    sum: Out(32)

    def elaborate(self, platform):
        m = Module()

        def unpack(bits):
            exponent_field, fraction = bits[23:31], bits[:23]
            significand = Cat(fraction, exponent_field != 0)  # hidden bit
            exponent = Mux(exponent_field == 0, 1, exponent_field)  # biased; subnormals share 1 with 2^-126
            return bits[31], exponent_field, fraction, significand, exponent

        sign_a, field_a, frac_a, sig_a, exp_a = unpack(self.a)
        sign_b, field_b, frac_b, sig_b, exp_b = unpack(self.b)
        nan_a = (field_a == 0xFF) & (frac_a != 0)
        nan_b = (field_b == 0xFF) & (frac_b != 0)
        inf_a = (field_a == 0xFF) & (frac_a == 0)
        inf_b = (field_b == 0xFF) & (frac_b == 0)

        # Order the operands by magnitude: big >= small.
        a_is_bigger = Signal()
        m.d.comb += a_is_bigger.eq(self.a[:31] >= self.b[:31])
        big_sign, small_sign = Signal(), Signal()
        big_sig, small_sig = Signal(24), Signal(24)
        big_exp, small_exp = Signal(8), Signal(8)
        m.d.comb += [
            big_sign.eq(Mux(a_is_bigger, sign_a, sign_b)), small_sign.eq(Mux(a_is_bigger, sign_b, sign_a)),
            big_sig.eq(Mux(a_is_bigger, sig_a, sig_b)), small_sig.eq(Mux(a_is_bigger, sig_b, sig_a)),
            big_exp.eq(Mux(a_is_bigger, exp_a, exp_b)), small_exp.eq(Mux(a_is_bigger, exp_b, exp_a)),
        ]
        # Three extra low bits (guard, round, sticky) keep the rounding exact after alignment.
        distance = Signal(8)
        m.d.comb += distance.eq(big_exp - small_exp)
        small_wide = Cat(Const(0, 3), small_sig)  # 27 bits
        clamped = Signal(range(28))
        m.d.comb += clamped.eq(Mux(distance > 27, 27, distance))
        shifted = Signal(27)
        m.d.comb += shifted.eq(small_wide >> clamped)
        sticky = Signal()
        m.d.comb += sticky.eq((shifted << clamped)[:27] != small_wide)
        small_aligned = Cat(sticky | shifted[0], shifted[1:])
        big_wide = Cat(Const(0, 3), big_sig)
        total = Signal(28)
        with m.If(big_sign == small_sign):
            m.d.comb += total.eq(big_wide + small_aligned)
        with m.Else():
            m.d.comb += total.eq(big_wide - small_aligned)

        rounded = round_to_fp32(m, big_sign, total, big_exp - (127 + 26))  # exponent of total's LSB
        with m.If(nan_a | nan_b | (inf_a & inf_b & (sign_a != sign_b))):
            m.d.comb += self.sum.eq(QUIET_NAN)
        with m.Elif(inf_a | inf_b):
            m.d.comb += self.sum.eq(Cat(Const(POSITIVE_INFINITY, 31), Mux(inf_a, sign_a, sign_b)))
        with m.Elif(total == 0):
            m.d.comb += self.sum.eq(Cat(Const(0, 31), sign_a & sign_b))  # x + (-x) = +0
        with m.Else():
            m.d.comb += self.sum.eq(rounded)
        return m


class FPMultiplier(wiring.Component):
    """``product = fp32(a * b)`` for two operands of one float format. Combinational.

    Members
    -------
    a, b : ``In(16)``
        Operands: bf16 bit patterns, or FP8 patterns in the low 8 bits.
    format : ``In(2)``
        0 bf16, 1 FP8 E4M3 (``float8_e4m3fn``), 2 FP8 E5M2 (see ``FP_FORMATS``).
    product : ``Out(32)``
        binary32 product: NaN for a NaN operand or Inf x 0, signed Inf for overflow, signed zero for
        underflow below half the smallest subnormal.
    """

    a: In(16)
    b: In(16)
    format: In(2)
    product: Out(32)

    def elaborate(self, platform):
        m = Module()

        def decode(bits, name):
            """(sign, 8-bit significand with 7 fraction bits, unbiased exponent, is_nan, is_inf)."""
            sign = Signal(name=f"{name}_sign")
            significand = Signal(8, name=f"{name}_significand")
            exponent = Signal(signed(10), name=f"{name}_exponent")
            nan, inf = Signal(name=f"{name}_nan"), Signal(name=f"{name}_inf")
            with m.Switch(self.format):
                for code, (exp_bits, man_bits, bias, has_inf) in FP_FORMATS.items():
                    with m.Case(code):
                        width = 1 + exp_bits + man_bits
                        field = bits[man_bits:man_bits + exp_bits]
                        fraction = bits[:man_bits]
                        top = (1 << exp_bits) - 1
                        m.d.comb += [
                            sign.eq(bits[width - 1]),
                            # Fraction left-aligned to 7 bits under the hidden bit.
                            significand.eq(Cat(Const(0, 7 - man_bits), fraction, field != 0)),
                            exponent.eq(Mux(field == 0, 1, field) - bias),
                        ]
                        if has_inf:
                            m.d.comb += [nan.eq((field == top) & (fraction != 0)),
                                         inf.eq((field == top) & (fraction == 0))]
                        else:  # E4M3fn: S.1111.111 is NaN, there is no infinity
                            m.d.comb += nan.eq((field == top) & (fraction == (1 << man_bits) - 1))
            return sign, significand, exponent, nan, inf

        sign_a, sig_a, exp_a, nan_a, inf_a = decode(self.a, "a")
        sign_b, sig_b, exp_b, nan_b, inf_b = decode(self.b, "b")
        sign = sign_a ^ sign_b
        product = Signal(16)
        m.d.comb += product.eq(sig_a * sig_b)  # exact; 14 fraction bits
        zero_a, zero_b = sig_a == 0, sig_b == 0
        rounded = round_to_fp32(m, sign, product, exp_a + exp_b - 14)
        with m.If(nan_a | nan_b | (inf_a & zero_b) | (inf_b & zero_a)):
            m.d.comb += self.product.eq(QUIET_NAN)
        with m.Elif(inf_a | inf_b):
            m.d.comb += self.product.eq(Cat(Const(POSITIVE_INFINITY, 31), sign))
        with m.Elif(zero_a | zero_b):
            m.d.comb += self.product.eq(Cat(Const(0, 31), sign))
        with m.Else():
            m.d.comb += self.product.eq(rounded)
        return m
