"""IEEE-754 binary32 arithmetic for the tensor and activation engines, bit-exact to numpy and ml_dtypes.

:class:`FP32Adder` computes ``fp32(a + b)`` and :class:`FPMultiplier` computes ``fp32(a * b)`` for bf16,
FP8 E4M3 (``float8_e4m3fn``) and FP8 E5M2 operands, both rounding to nearest even with subnormals kept,
exactly as :mod:`trntile.golden.numerics` defines. :class:`FP32Multiplier` computes ``fp32(a * b)`` for
binary32 operands, and :class:`FP32Narrow` converts binary32 to bf16 or FP8 as ``ml_dtypes`` does. All are
combinational by default, for an engine that places its own registers around them; :class:`FP32Adder`,
:class:`FP32Multiplier` and :class:`FP32Narrow` can also be built ``pipelined``: registers inside, at the
points listed in each class's ``CUTS``, loaded when their ``advance`` input is high, so that the unit's
result for an operand comes ``len(CUTS)`` advances after the operand.

NaN results are the canonical quiet NaN ``0x7fc00000`` (any NaN is acceptable, per the architecture brief).

All units end in :func:`round_to_float` (:func:`round_to_fp32` for binary32): a non-zero integer
significand ``S`` and the exponent ``x`` of its least significant bit (the value is ``S * 2**x``) are
normalized (:func:`normalize`), shifted into the target's subnormal range when needed, rounded to nearest
even and packed (:func:`round_normalized`), with overflow to infinity (or, for ``float8_e4m3fn``, to its NaN).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FP32Adder", "FPMultiplier", "FP32Multiplier", "FP32Narrow", "FP_FORMATS", "normalize",
           "round_prepare", "round_finish", "round_normalized", "round_to_float", "round_to_fp32", "QUIET_NAN"]

QUIET_NAN = 0x7FC0_0000
POSITIVE_INFINITY = 0x7F80_0000

#: Format code (the ``dtype`` field of commands) -> (exponent bits, mantissa bits, bias, has infinities).
FP_FORMATS = {0: (8, 7, 127, True), 1: (4, 3, 7, False), 2: (5, 2, 15, True)}

_WORK = 48  # the widest significand a unit rounds: the binary32 multiplier's exact 24 x 24 product


def _leading_zeros(m, value, width):
    """Number of leading zeros of ``value`` (``width`` bits); ``width`` when it is zero.

    A tree, not a priority chain: ``value`` is padded below with ones to a power of two (so the padded value
    is never zero), and each level takes the upper half's count, or the lower half's plus the half's size
    when the upper half is zero: log2 levels of two-way choices in place of ``width`` chained ones."""
    size = 1 << width.bit_length()   # > width: at least one padding one
    padded = Cat(Const((1 << (size - width)) - 1, size - width), value)

    def count(bits):  # (leading zeros, if not all zero; all zero) of bits, len(bits) a power of two >= 2
        if len(bits) == 2:
            return ~bits[1], ~bits[1] & ~bits[0]
        half = len(bits) // 2
        (low_count, low_zero), (high_count, high_zero) = count(bits[:half]), count(bits[half:])
        return Cat(Mux(high_zero, low_count, high_count), high_zero), high_zero & low_zero

    zeros = Signal(range(width + 1))
    m.d.comb += zeros.eq(count(padded)[0])
    return zeros


def _low_bits_lost(value, width, shift):
    """Whether ``value >> shift`` drops a one: any of ``value``'s ``shift`` low bits is set (``shift`` may
    exceed ``width``). Each bit's test is a comparison with a constant, so this is shallow logic, where
    comparing ``(value >> shift) << shift`` with ``value`` would be two more shifters."""
    return Cat(*[value[i] & (shift > i) for i in range(width)]).any()


def normalize(m, significand, lsb_exponent, most=None):
    """The first half of :func:`round_to_float`: ``significand`` shifted left until its leading one is its
    top bit, and the exponent of that leading one (``signed(12)``; the value is ``1.f * 2**exponent``).
    ``significand`` is unsigned and non-zero, at most ``_WORK`` bits; the result has its width (the
    rounding pads a narrower one below), so a unit pays for the width of its own values only.

    With ``most``, the shift stops at ``most`` bits, the leading one then below the top bit: with ``most``
    the shift that brings the exponent to the target's smallest normal one, a value below the normal range
    comes out as a subnormal reads at that exponent, and the rounding needs no right shift
    (``round_prepare(..., in_range=True)``). That is the adder's case, whose sum's least significant bit is
    never below the subnormal range's guard bits, so no bit is lost either way."""
    width = len(Value.cast(significand))
    assert width <= _WORK, width
    s = Signal(width)
    m.d.comb += s.eq(significand)
    zeros = _leading_zeros(m, s, width)
    shift = zeros
    if most is not None:
        shift = Signal(range(width + 1))
        m.d.comb += shift.eq(Mux(zeros > most, most, zeros))
    normalized = Signal(width)
    m.d.comb += normalized.eq(s << shift)
    exponent = Signal(signed(12))
    m.d.comb += exponent.eq(lsb_exponent + (width - 1) - shift)
    return normalized, exponent


def _format_limits(exp_bits, man_bits, bias, has_inf):
    """(smallest normal exponent, largest finite exponent) of a format."""
    return 1 - bias, (1 << exp_bits) - 1 - bias - (1 if has_inf else 0)


def round_prepare(m, normalized, exponent, *, exp_bits, man_bits, bias, has_inf, in_range=False) -> dict:
    """The first half of :func:`round_normalized`: the significand shifted into the target's subnormal range
    when below it, cut to the target's bits, and the rounding decided. Returns a dict of values for
    :func:`round_finish` (a pipelined unit registers them between the two): ``kept`` (hidden bit and
    fraction), ``round_up``, ``biased_minus_one`` (the biased exponent less one, 0 below the normal range)
    and ``too_large`` (the exponent is above the largest finite one). ``in_range=True`` promises that
    ``exponent`` is never below the target's smallest normal exponent (a subnormal comes already shifted,
    its leading one below the top bit: :func:`normalize` with ``most``), and leaves out the shifter."""
    min_exponent, max_exponent = _format_limits(exp_bits, man_bits, bias, has_inf)
    normalized = Value.cast(normalized)
    if len(normalized) < man_bits + 2:   # too narrow for the target's bits and a guard bit: pad below
        normalized = Cat(Const(0, man_bits + 2 - len(normalized)), normalized)
    width = len(normalized)
    aligned, lost = Signal(width), Signal()   # lost: a one was shifted out
    if in_range:
        m.d.comb += aligned.eq(normalized)
    else:
        # Below the normal range the significand is shifted right so that the exponent reads as min_exponent.
        shift = Signal(range(width + 2))
        with m.If(exponent < min_exponent):
            with m.If(min_exponent - exponent > width + 1):
                m.d.comb += shift.eq(width + 1)
            with m.Else():
                m.d.comb += shift.eq(min_exponent - exponent)
        m.d.comb += [aligned.eq(normalized >> shift), lost.eq(_low_bits_lost(normalized, width, shift))]

    kept = aligned[width - (man_bits + 1):]  # hidden bit and the fraction bits
    guard = aligned[width - (man_bits + 2)]
    sticky = Signal()
    m.d.comb += sticky.eq((aligned[:width - (man_bits + 2)].any() if width > man_bits + 2 else 0) | lost)
    return {"kept": kept, "round_up": guard & (sticky | kept[0]),
            "biased_minus_one": (exponent + (bias - 1) if in_range else
                                 Mux(exponent < min_exponent, 0, exponent + (bias - 1)))[:12].as_signed(),
            "too_large": exponent > max_exponent}


def round_finish(m, sign, prepared: dict, *, exp_bits, man_bits, bias, has_inf):
    """The second half of :func:`round_normalized`: :func:`round_prepare`'s values rounded and packed."""
    width = 1 + exp_bits + man_bits
    top_field = (1 << exp_bits) - 1
    rounded = Signal(man_bits + 2)
    m.d.comb += rounded.eq(prepared["kept"] + prepared["round_up"])

    # Adding the rounded significand (hidden bit included) to (biased exponent - 1) << man_bits carries a
    # rounding overflow into the exponent, and turns a subnormal that rounds up into the smallest normal.
    magnitude = Signal(signed(40))
    m.d.comb += magnitude.eq((prepared["biased_minus_one"] << man_bits) + rounded)
    result = Signal(width)
    if has_inf:
        infinity = top_field << man_bits
        overflow = prepared["too_large"] | (magnitude >= infinity)
        overflow_pattern = infinity
    else:
        largest = (1 << (exp_bits + man_bits)) - 2  # all ones but the last fraction bit
        overflow = prepared["too_large"] | (magnitude > largest)
        overflow_pattern = (1 << (exp_bits + man_bits)) - 1  # the NaN
    with m.If(overflow):
        m.d.comb += result.eq(Cat(Const(overflow_pattern, width - 1), sign))
    with m.Else():
        m.d.comb += result.eq(Cat(magnitude[:width - 1], sign))
    return result


def round_normalized(m, sign, normalized, exponent, **target):
    """The second half of :func:`round_to_float`: the bits of ``(-1)**sign * 1.f * 2**exponent``, from
    :func:`normalize`'s ``normalized`` and ``exponent``, in the ``target`` format (``exp_bits``,
    ``man_bits``, ``bias``, ``has_inf``), rounded to nearest even: :func:`round_prepare`, then
    :func:`round_finish`."""
    return round_finish(m, sign, round_prepare(m, normalized, exponent, **target), **target)


def round_to_float(m, sign, significand, lsb_exponent, *, exp_bits, man_bits, bias, has_inf):
    """Bits of ``(-1)**sign * significand * 2**lsb_exponent`` in a binary float format, rounded to nearest even.

    :func:`normalize` and then :func:`round_normalized`; a pipelined unit puts a register between the two.

    Parameters
    ----------
    m : Module
        The module the (combinational) logic is added to.
    sign : Value
        Sign of the result (1 negative).
    significand : Value
        Unsigned integer, non-zero (the caller handles exact zeros), at most ``_WORK`` bits.
    lsb_exponent : Value
        Signed exponent of ``significand``'s least significant bit (the leading one's must fit ``signed(12)``).
    exp_bits, man_bits, bias : int
        Exponent field width, stored fraction width and exponent bias of the target format.
    has_inf : bool
        ``True`` for IEEE-style formats: values that round beyond the largest finite number become
        signed infinity. ``False`` for the "fn" encoding (``float8_e4m3fn``: no infinities, the all-ones
        pattern is NaN): values that round beyond the largest finite number become that all-ones NaN
        pattern with the given sign, as ``ml_dtypes`` does.

    Returns
    -------
    Signal
        ``1 + exp_bits + man_bits`` bits: sign, biased exponent, fraction. Results below the normal range
        are subnormals (or a signed zero); a subnormal that rounds up to the smallest normal is packed as
        that normal.
    """
    normalized, exponent = normalize(m, significand, lsb_exponent)
    return round_normalized(m, sign, normalized, exponent, exp_bits=exp_bits, man_bits=man_bits, bias=bias,
                            has_inf=has_inf)


_FP32 = dict(exp_bits=8, man_bits=23, bias=127, has_inf=True)


def round_to_fp32(m, sign, significand, lsb_exponent):
    """binary32 bits of ``(-1)**sign * significand * 2**lsb_exponent``, rounded to nearest even.

    ``significand`` must be non-zero and at most ``_WORK`` bits; ``lsb_exponent`` a signed value.
    Overflow gives signed infinity. This is :func:`round_to_float` for binary32.
    """
    return round_to_float(m, sign, significand, lsb_exponent, **_FP32)


class _Steps:
    """The registers between a unit's steps. ``step(name, key=value, ...)`` returns the values as they are in
    a combinational unit, and in a pipelined one registers named ``<name>_<key>`` that load them when
    ``advance`` is high. The unit checks that its steps are the ``CUTS`` it declares."""

    def __init__(self, m, advance=None, cuts=()):
        self._m, self._advance, self._cuts, self.names = m, advance, frozenset(cuts), []

    def __call__(self, name, **values):
        return tuple(self.carry(name, values).values())

    def carry(self, name, values: dict) -> dict:
        """The same, for a dict of values: a dict of the values or of their registers, by the same keys."""
        self.names.append(name)
        if name not in self._cuts:
            return dict(values)
        registers = {}
        for key, value in values.items():
            value = Value.cast(value)
            registers[key] = register = Signal(value.shape(), name=f"{name}_{key}")
            with self._m.If(self._advance):
                self._m.d.sync += register.eq(value)
        return registers


class _PipelinedUnit(wiring.Component):
    """A unit that is combinational, or with ``pipelined=True`` has a register after each step named in
    ``CUTS`` and an ``advance`` input that loads them all (its result comes :attr:`latency` advances after
    its operands). ``pipelined`` may also name some of the ``CUTS`` (a tuple): registers after those steps
    only."""

    CUTS: tuple[str, ...] = ()

    def __init__(self, members: dict, *, pipelined: bool | tuple[str, ...] = False):
        if isinstance(pipelined, bool):
            cuts = self.CUTS if pipelined else ()
        elif isinstance(pipelined, tuple) and set(pipelined) <= set(self.CUTS):
            cuts = tuple(name for name in self.CUTS if name in pipelined)
        else:
            raise ValueError(f"pipelined must be True, False or a tuple of steps from {self.CUTS}, "
                             f"not {pipelined!r}")
        self._cuts = cuts
        if cuts:
            members = {**members, "advance": In(1)}
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Advances from an operand to its result: the number of registered steps (``len(CUTS)`` with
        ``pipelined=True``, 0 when combinational)."""
        return len(self._cuts)

    def _steps(self, m) -> _Steps:
        return _Steps(m, self.advance if self._cuts else None, self._cuts)

    def _check_steps(self, steps: _Steps) -> None:
        assert tuple(steps.names) == self.CUTS, f"{type(self).__name__}: steps {steps.names} != {self.CUTS}"


# Which result a unit gives, decided before rounding and carried through its steps with the operands.
_FINITE, _NAN, _INF, _ZERO = range(4)


def _special_result(m, result, special, special_sign, rounded) -> None:
    """Drive ``result`` with the quiet NaN, a signed infinity or a signed zero (``special_sign``) as
    ``special`` says, or else with the rounded finite value."""
    with m.Switch(special):
        with m.Case(_NAN):
            m.d.comb += result.eq(QUIET_NAN)
        with m.Case(_INF):
            m.d.comb += result.eq(Cat(Const(POSITIVE_INFINITY, 31), special_sign))
        with m.Case(_ZERO):
            m.d.comb += result.eq(Cat(Const(0, 31), special_sign))
        with m.Default():
            m.d.comb += result.eq(rounded)


class FP32Adder(_PipelinedUnit):
    """``sum = fp32(a + b)``: binary32 addition, round to nearest even, subnormals kept.

    Steps (``CUTS``, the registers when pipelined): order the operands by magnitude and take their exponent
    distance; align the smaller and add; normalize; shift into the subnormal range and decide the rounding;
    round and pack.

    Parameters
    ----------
    pipelined : bool or tuple of str
        ``False`` (default): combinational. ``True``: a register after each step of ``CUTS``, loaded when
        ``advance`` is high; the result comes :attr:`latency` advances after its operands. A tuple of step
        names from ``CUTS``: registers after those steps only.

    Members
    -------
    a, b : ``In(32)``
        binary32 operands (bit patterns).
    sum : ``Out(32)``
        binary32 result: NaN if either operand is NaN or for Inf + -Inf; an exact zero sum is +0 unless both
        operands are -0.
    advance : ``In(1)``, when pipelined
        Loads every step's register.
    """

    CUTS = ("ordered", "total", "normalized", "aligned")

    def __init__(self, *, pipelined: bool = False):
        super().__init__({"a": In(32), "b": In(32), "sum": Out(32)}, pipelined=pipelined)

    def elaborate(self, platform):
        m = Module()
        step = self._steps(m)
        sign_a, sig_a, exp_a, nan_a, inf_a = _binary32_fields(self.a)
        sign_b, sig_b, exp_b, nan_b, inf_b = _binary32_fields(self.b)
        special = Mux(nan_a | nan_b | (inf_a & inf_b & (sign_a != sign_b)), _NAN,
                      Mux(inf_a | inf_b, _INF, _FINITE))

        # Order the operands by magnitude: big >= small.
        a_is_bigger = Signal()
        m.d.comb += a_is_bigger.eq(self.a[:31] >= self.b[:31])
        big_exp = Mux(a_is_bigger, exp_a, exp_b)
        big_sign, small_sign, big_sig, small_sig, big_exp, distance, special, special_sign, zero_sign = step(
            "ordered", big_sign=Mux(a_is_bigger, sign_a, sign_b), small_sign=Mux(a_is_bigger, sign_b, sign_a),
            big_sig=Mux(a_is_bigger, sig_a, sig_b), small_sig=Mux(a_is_bigger, sig_b, sig_a), big_exp=big_exp,
            distance=(big_exp - Mux(a_is_bigger, exp_b, exp_a))[:8], special=special,
            special_sign=Mux(inf_a, sign_a, sign_b), zero_sign=sign_a & sign_b)

        # Three extra low bits (guard, round, sticky) keep the rounding exact after alignment.
        small_wide = Cat(Const(0, 3), small_sig)  # 27 bits
        clamped = Signal(range(28))
        m.d.comb += clamped.eq(Mux(distance > 27, 27, distance))
        shifted = Signal(27)
        m.d.comb += shifted.eq(small_wide >> clamped)
        small_aligned = Cat(_low_bits_lost(small_wide, 27, clamped) | shifted[0], shifted[1:])
        big_wide = Cat(Const(0, 3), big_sig)
        total = Signal(28)
        with m.If(big_sign == small_sign):
            m.d.comb += total.eq(big_wide + small_aligned)
        with m.Else():
            m.d.comb += total.eq(big_wide - small_aligned)
        sign, total, big_exp, special, special_sign, zero_sign = step(
            "total", sign=big_sign, total=total, big_exp=big_exp, special=special, special_sign=special_sign,
            zero_sign=zero_sign)
        # A zero sum is found after the step's register, beside the normalization's count of leading zeros,
        # rather than after the add in the same cycle (the slowest path of a cut adder).
        zero_total = (special == _FINITE) & (total == 0)   # x + (-x) = +0, and -0 + -0 = -0
        special, special_sign = Mux(zero_total, _ZERO, special), Mux(zero_total, zero_sign, special_sign)

        # total's LSB weighs 2**(big_exp - 127 - 26), so its top bit (27) has exponent big_exp - 126, and a
        # left shift by big_exp brings that to -126, the smallest normal exponent: no further. The sum's
        # bits then sit where the rounding wants them, subnormal or not, and no bit is lost.
        normalized, exponent = normalize(m, total, big_exp - (127 + 26), most=big_exp)
        sign, normalized, exponent, special, special_sign = step(
            "normalized", sign=sign, normalized=normalized, exponent=exponent, special=special,
            special_sign=special_sign)

        prepared = step.carry("aligned", {"sign": sign, "special": special, "special_sign": special_sign,
                                          **round_prepare(m, normalized, exponent, **_FP32, in_range=True)})
        rounded = round_finish(m, prepared["sign"], prepared, **_FP32)
        _special_result(m, self.sum, prepared["special"], prepared["special_sign"], rounded)
        self._check_steps(step)
        return m


class FPMultiplier(_PipelinedUnit):
    """``product = fp32(a * b)`` for two operands of one float format.

    Steps (``CUTS``, the register when pipelined): decode the operands and take the exact significand product
    and exponent sum; round and pack.

    Parameters
    ----------
    pipelined : bool or tuple of str
        ``False`` (default): combinational. ``True`` (or ``("exact",)``): a register after the exact product,
        loaded when ``advance`` is high; the product comes one advance after its operands.

    Members
    -------
    a, b : ``In(16)``
        Operands: bf16 bit patterns, or FP8 patterns in the low 8 bits.
    format : ``In(2)``
        0 bf16, 1 FP8 E4M3 (``float8_e4m3fn``), 2 FP8 E5M2 (see ``FP_FORMATS``).
    product : ``Out(32)``
        binary32 product: NaN for a NaN operand or Inf x 0, signed Inf for overflow, signed zero for
        underflow below half the smallest subnormal.
    advance : ``In(1)``, when pipelined
        Loads the step's register.
    """

    CUTS = ("exact",)

    def __init__(self, *, pipelined: bool | tuple[str, ...] = False):
        super().__init__({"a": In(16), "b": In(16), "format": In(2), "product": Out(32)}, pipelined=pipelined)

    def elaborate(self, platform):
        m = Module()
        step = self._steps(m)

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
        exact = Signal(16)
        m.d.comb += exact.eq(sig_a * sig_b)  # exact; 14 fraction bits
        exponent = Signal(signed(12))
        m.d.comb += exponent.eq(exp_a + exp_b - 14)
        sign, product, exponent, nan_a, inf_a, zero_a, nan_b, inf_b, zero_b = step(
            "exact", sign=sign_a ^ sign_b, product=exact, exponent=exponent, nan_a=nan_a, inf_a=inf_a,
            zero_a=sig_a == 0, nan_b=nan_b, inf_b=inf_b, zero_b=sig_b == 0)
        rounded = round_to_fp32(m, sign, product, exponent)
        _select_product(m, self.product, sign, rounded, (nan_a, inf_a, zero_a), (nan_b, inf_b, zero_b))
        self._check_steps(step)
        return m


def _select_product(m, product, sign, rounded, a, b) -> None:
    """Drive ``product`` with the special cases of a multiplication (``a``, ``b`` = (is_nan, is_inf,
    is_zero) of each operand) or else the rounded finite product: NaN for a NaN or Inf x 0, signed Inf,
    signed zero."""
    (nan_a, inf_a, zero_a), (nan_b, inf_b, zero_b) = a, b
    with m.If(nan_a | nan_b | (inf_a & zero_b) | (inf_b & zero_a)):
        m.d.comb += product.eq(QUIET_NAN)
    with m.Elif(inf_a | inf_b):
        m.d.comb += product.eq(Cat(Const(POSITIVE_INFINITY, 31), sign))
    with m.Elif(zero_a | zero_b):
        m.d.comb += product.eq(Cat(Const(0, 31), sign))
    with m.Else():
        m.d.comb += product.eq(rounded)


def _binary32_fields(bits):
    """(sign, significand with hidden bit, biased exponent, is_nan, is_inf) of binary32 ``bits``.

    Subnormals read with biased exponent 1 (the scale of 2**-126) and a zero hidden bit.
    """
    field, fraction = bits[23:31], bits[:23]
    significand = Cat(fraction, field != 0)
    exponent = Mux(field == 0, 1, field)
    nan = (field == 0xFF) & (fraction != 0)
    inf = (field == 0xFF) & (fraction == 0)
    return bits[31], significand, exponent, nan, inf


class FP32Multiplier(_PipelinedUnit):
    """``product = fp32(a * b)``: binary32 multiplication, round to nearest even, subnormals kept.

    Matches numpy's ``np.float32(a) * np.float32(b)`` bit for bit on every non-NaN result. Steps (``CUTS``,
    the registers when pipelined): the exact 24 x 24 significand product; normalize; shift into the subnormal
    range and decide the rounding; round and pack.

    Parameters
    ----------
    pipelined : bool or tuple of str
        ``False`` (default): combinational. ``True``: a register after each step of ``CUTS``, loaded when
        ``advance`` is high; the result comes :attr:`latency` advances after its operands. A tuple of step
        names from ``CUTS``: registers after those steps only.

    Members
    -------
    a, b : ``In(32)``
        binary32 operands (bit patterns); subnormal operands are used as they are (no flushing).
    product : ``Out(32)``
        binary32 product. :data:`QUIET_NAN` for a NaN operand or Inf x 0; signed Inf for an infinite
        operand or a product that rounds beyond the largest finite value; subnormals where the product
        falls below 2**-126; a zero (exact, or underflow below half the smallest subnormal) has the sign
        ``sign(a) xor sign(b)``.
    advance : ``In(1)``, when pipelined
        Loads every step's register.
    """

    CUTS = ("product", "normalized", "aligned")

    def __init__(self, *, pipelined: bool = False):
        super().__init__({"a": In(32), "b": In(32), "product": Out(32)}, pipelined=pipelined)

    def elaborate(self, platform):
        m = Module()
        step = self._steps(m)
        sign_a, sig_a, exp_a, nan_a, inf_a = _binary32_fields(self.a)
        sign_b, sig_b, exp_b, nan_b, inf_b = _binary32_fields(self.b)
        zero_a, zero_b = sig_a == 0, sig_b == 0
        special = Mux(nan_a | nan_b | (inf_a & zero_b) | (inf_b & zero_a), _NAN,
                      Mux(inf_a | inf_b, _INF, Mux(zero_a | zero_b, _ZERO, _FINITE)))
        # Each operand is sig * 2**(exp - 127 - 23), so the product's LSB weighs 2**(exp_a + exp_b - 300).
        sign, product, lsb_exponent, special = step(
            "product", sign=sign_a ^ sign_b, product=(sig_a * sig_b)[:48],   # exact: 46 fraction bits
            lsb_exponent=exp_a + exp_b - (2 * 127 + 46), special=special)

        normalized, exponent = normalize(m, product, lsb_exponent)
        sign, normalized, exponent, special = step(
            "normalized", sign=sign, normalized=normalized, exponent=exponent, special=special)

        prepared = step.carry("aligned", {"sign": sign, "special": special,
                                          **round_prepare(m, normalized, exponent, **_FP32)})
        rounded = round_finish(m, prepared["sign"], prepared, **_FP32)
        _special_result(m, self.product, prepared["special"], prepared["sign"], rounded)
        self._check_steps(step)
        return m


class FP32Narrow(_PipelinedUnit):
    """``result = value`` converted from binary32 to bf16, FP8 E4M3 or FP8 E5M2, as ``ml_dtypes`` does it.

    Round to nearest even, with the target format's subnormals produced (nothing is flushed) and negative
    zero kept. Matches ``np.float32(value).astype(t)`` bit for bit for every non-NaN ``value``, with ``t``
    ``ml_dtypes.bfloat16``, ``float8_e4m3fn`` or ``float8_e5m2``. Steps (``CUTS``, the registers when
    pipelined): normalize (once for every target); shift into each target's subnormal range and decide its
    rounding; round, pack and choose the target's result.

    Overflow
        bf16 and E5M2 give signed Inf for magnitudes at or above the midpoint between the largest finite
        value and the next power-of-two step (bf16: ``0x7f7f8000`` and up; E5M2: 61440 and up, largest
        finite 57344), and for Inf.

        E4M3 (``float8_e4m3fn``) has no infinities; its largest finite value is 448 (``0x7e``) and
        ``S.1111.111`` is NaN. ``ml_dtypes`` 0.6 rounds as if 480 followed 448: up to 464 inclusive
        gives 448 (464 is the tie, and 448 is the even side; 463.99997 (``0x43e7ffff``) gives 448 too);
        anything above 464 (464.00003, ``0x43e80001``, and up, including the largest binary32) gives NaN
        ``0x7f``, or ``0xff`` when negative. +Inf gives ``0x7f`` and -Inf ``0xff``: NaN, not the largest
        value (no saturation).

    Parameters
    ----------
    pipelined : bool or tuple of str
        ``False`` (default): combinational. ``True``: a register after each step of ``CUTS``, loaded when
        ``advance`` is high; the result comes :attr:`latency` advances after its operands. A tuple of step
        names from ``CUTS``: registers after those steps only.

    Members
    -------
    value : ``In(32)``
        binary32 bit pattern.
    format : ``In(2)``
        Target: 0 bf16, 1 FP8 E4M3 (``float8_e4m3fn``), 2 FP8 E5M2 (the codes of :data:`FP_FORMATS`);
        3 passes ``value`` through unchanged.
    result : ``Out(32)``
        The narrowed bit pattern in the low 16 (bf16) or 8 (FP8) bits, upper bits zero; all 32 for
        format 3. A NaN ``value`` gives the target's quiet NaN: ``0x7fc0`` (bf16), ``0x7f`` (E4M3),
        ``0x7e`` (E5M2).
    advance : ``In(1)``, when pipelined
        Loads every step's register.
    """

    CUTS = ("normalized", "aligned")

    def __init__(self, *, pipelined: bool = False):
        super().__init__({"value": In(32), "format": In(2), "result": Out(32)}, pipelined=pipelined)

    def elaborate(self, platform):
        m = Module()
        step = self._steps(m)
        sign, significand, exponent, nan, inf = _binary32_fields(self.value)
        special = Mux(nan, _NAN, Mux(inf, _INF, Mux(significand == 0, _ZERO, _FINITE)))
        # One normalization serves every target format (only the rounding differs).
        normalized, exponent = normalize(m, significand, exponent - (127 + 23))
        sign, normalized, exponent, special, passed, chosen = step(
            "normalized", sign=sign, normalized=normalized, exponent=exponent, special=special, value=self.value,
            format=self.format)

        targets = {code: dict(exp_bits=e, man_bits=f, bias=b, has_inf=i) for code, (e, f, b, i) in FP_FORMATS.items()}
        prepared = {f"{key}{code}": part for code, target in targets.items()
                    for key, part in round_prepare(m, normalized, exponent, **target).items()}
        carried = step.carry("aligned", {"sign": sign, "special": special, "value": passed, "format": chosen,
                                         **prepared})
        sign, special = carried["sign"], carried["special"]
        narrowed = {}
        for code, (exp_bits, man_bits, bias, has_inf) in FP_FORMATS.items():
            width = 1 + exp_bits + man_bits
            top_field = (1 << exp_bits) - 1
            rounded = round_finish(m, sign, {key: carried[f"{key}{code}"] for key in
                                             ("kept", "round_up", "biased_minus_one", "too_large")}, **targets[code])
            if has_inf:
                quiet_nan = (top_field << man_bits) | (1 << (man_bits - 1))
                infinity = Cat(Const(top_field << man_bits, width - 1), sign)
            else:  # "fn": the all-ones pattern is the only NaN, and Inf becomes NaN as overflow does
                quiet_nan = (1 << (width - 1)) - 1
                infinity = Cat(Const(quiet_nan, width - 1), sign)
            bits = Signal(width, name=f"narrowed_{code}")
            with m.Switch(special):
                with m.Case(_NAN):
                    m.d.comb += bits.eq(quiet_nan)
                with m.Case(_INF):
                    m.d.comb += bits.eq(infinity)
                with m.Case(_ZERO):
                    m.d.comb += bits.eq(Cat(Const(0, width - 1), sign))
                with m.Default():
                    m.d.comb += bits.eq(rounded)
            narrowed[code] = bits

        with m.Switch(carried["format"]):
            for code, bits in narrowed.items():
                with m.Case(code):
                    m.d.comb += self.result.eq(bits)  # zero-extended
            with m.Default():
                m.d.comb += self.result.eq(carried["value"])
        self._check_steps(step)
        return m
