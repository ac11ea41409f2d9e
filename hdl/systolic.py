"""The P x P weight-stationary systolic array of the tensor engine.

Dataflow (``dst[m, n] = sum_k stationary[k, m] * moving[k, n]``):

- PE(k, m) holds ``stationary[k, m]`` in one of two weight registers (double buffering: a load fills one
  buffer while data that uses the other is still in flight).
- ``moving[k, n]`` enters row k at the left, k cycles after the column it belongs to was offered (the
  skew), and moves one PE to the right per cycle.
- A PE works in two stages (:data:`PE_STAGES`): in the cycle ``moving[k, n]`` reaches PE(k, m) it registers
  the product ``p = stationary[k, m] * moving[k, n]``; in the next, the partial sum from the row above arrives
  and the PE passes ``s + p`` down (or ``s`` unchanged if row k takes no part, ``k >= K``). The multiplier
  and the adder are so never in one cycle, and partial sums still move one row down per cycle. Sums start
  from +0.0 above row 0, so a column's sum is taken in k order exactly as :mod:`trntile.golden.numerics`
  defines.
- ``result[m]`` carries ``dst[m, n]`` out of the bottom of column m, ``P + 1 + m`` cycles
  (:func:`result_latency` + m) after column n was offered. Each column is its own PSUM partition, so no
  deskew is needed.
- Built with ``fp_cuts`` = c of 1 or 2 (for FPGAs), the PE's float multiplier has a register inside and its
  binary32 adder c: sums move down a row every :func:`row_pitch` = 1 + c cycles, the moving element enters
  row k (1 + c) k cycles late, and results come :func:`result_latency` ``(P, c) + m`` cycles after their
  column.

Cycle diagram for P = 3 (``xk`` = moving[k, n] for one n offered at cycle 0, its product taken; ``sk`` = the
partial sum after row k, added the cycle after)::

    cycle        0      1      2      3      4      5      6
    row 0  x   x0@m0  x0@m1  x0@m2
           s          s0@m0  s0@m1  s0@m2
    row 1  x          x1@m0  x1@m1  x1@m2
           s                 s1@m0  s1@m1  s1@m2
    row 2  x                 x2@m0  x2@m1  x2@m2
           s                        s2@m0  s2@m1  s2@m2
    result                                 dst[0] dst[1] dst[2]   (column m at cycle P + 1 + m)

Each element carries its own weight-buffer select, dtype and "row active" flag, so one MultiplyMoving
can follow another, or a LoadStationary, with no gap; the caller must not load a buffer while data that
uses it is still in the array (column c of a buffer is free ``P - 1 + c`` cycles after the last column
that uses it was offered).

The PE is generated once, as the Verilog module :data:`PE_MODULE`, and a row of P PEs once more, as
module :func:`pe_row_module`, instantiated P times: the Verilog of a P = 128 array stays as small as that of
P = 4, and simulators and synthesis tools compile the PE and the row once. (Verilator compiles the row as a
hierarchical block: P row instances cost its model far less glue than P x P PE instances would.)
:func:`trntile.hdl.tops.to_verilog` appends these modules to any design that uses them.
"""

import functools

from amaranth.hdl import ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.numerics import DTYPES as DTYPES_BY_NAME
from ..golden.numerics import FLOAT_DTYPES
from .fp import FP32Adder, FPMultiplier
from .params import DTYPES, FP_CUTS, PARTITIONS

__all__ = ["SystolicArray", "INT8", "PE_STAGES", "FP_CUT_STEPS", "float_cuts", "multiplier_cuts", "row_pitch",
           "result_latency", "delayed",
           "PE_MODULE", "pe_module", "pe_verilog", "pe_row_module", "pe_row_verilog",
           "load_layout", "moving_layout", "result_layout"]

#: Name of the processing element's Verilog module (built for every dtype).
PE_MODULE = "trntile_pe"

#: dtype code of int8 (codes 0..2 are the float formats of :data:`trntile.hdl.fp.FP_FORMATS`).
INT8 = 3

#: Cycles from a moving element reaching a PE to the PE's partial sum leaving it: the product is registered
#: in the first, added to the partial sum from above in the second.
PE_STAGES = 2

#: The steps of :class:`~trntile.hdl.fp.FP32Adder` after which ``fp_cuts`` = 1, 2 put registers, in the PE
#: and in PSUM's accumulate (:data:`trntile.hdl.params.FP_CUTS`): after alignment and add (about half of the
#: adder's logic on either side), then after normalization. The PE's :class:`~trntile.hdl.fp.FPMultiplier`
#: has one place for a register, after the exact product (:func:`multiplier_cuts`).
FP_CUT_STEPS = ("total", "normalized")


def float_cuts(dtypes: int, fp_cuts: int) -> int:
    """The registers inside each float unit (the PE's multiplier and adder, PSUM's adder) for a build of
    ``dtypes`` asking ``fp_cuts``: none when no float format is built (the integer path needs none)."""
    return fp_cuts if dtypes & FLOAT_DTYPES else 0


def delayed(m, value, cycles: int, name: str):
    """``value`` as it was ``cycles`` cycles ago, through registers named ``<name>_cut<i>``: what goes beside
    a float unit's registers (``value`` itself when ``cycles`` is 0)."""
    for index in range(cycles):
        register = Signal.like(value, name=f"{name}_cut{index}")
        m.d.sync += register.eq(value)
        value = register
    return value


def multiplier_cuts(cuts: int) -> int:
    """The registers inside the PE's float multiplier for ``cuts`` (:func:`float_cuts`): at most one."""
    return min(cuts, len(FPMultiplier.CUTS))


def row_pitch(cuts: int = 0) -> int:
    """Cycles between a partial sum entering a row and entering the next: 1, plus the adder's registers."""
    return 1 + cuts


def result_latency(partitions: int, cuts: int = 0) -> int:
    """Cycles from a column being offered to the array to its result leaving column 0 (column m's leaves m
    cycles later): P - 1 rows of skew (:func:`row_pitch` cycles each), then the last row's PE
    (:data:`PE_STAGES`, + :func:`multiplier_cuts` and ``cuts`` in its adder). ``cuts`` is :func:`float_cuts` of
    the build."""
    return (partitions - 1) * row_pitch(cuts) + PE_STAGES + multiplier_cuts(cuts) + cuts


def load_layout(partitions: int) -> data.StructLayout:
    """Payload of ``load``: write ``values[k]`` into weight buffer ``buffer`` of PE(k, ``column``)."""
    return data.StructLayout({"column": range(partitions), "buffer": 1, "values": data.ArrayLayout(16, partitions)})


def moving_layout(partitions: int) -> data.StructLayout:
    """Payload of ``moving``: one column of the moving operand, with its rows, weight buffer and dtype."""
    return data.StructLayout({"values": data.ArrayLayout(16, partitions), "active": partitions, "buffer": 1,
                              "dtype": 2})


def result_layout(partitions: int) -> data.ArrayLayout:
    """``result``: per column, a valid flag and the 32-bit sum."""
    return data.ArrayLayout(data.StructLayout({"valid": 1, "value": 32}), partitions)


def _element_layout():
    return data.StructLayout({"value": 16, "item": 1, "active": 1, "buffer": 1, "dtype": 2})


def _variant(name: str, dtypes: int | str, cuts: int | str) -> str:
    if cuts != 0:
        return f"{name}_d{dtypes}_c{cuts}"
    return name if dtypes == DTYPES.default else f"{name}_d{dtypes}"


def pe_module(dtypes: int | str = DTYPES.default, cuts: int | str = 0) -> str:
    """The Verilog module name of a PE built for the dtype mask ``dtypes`` with ``cuts`` registers in its
    adder (:func:`float_cuts`): :data:`PE_MODULE` for all formats and none, ``trntile_pe_d<mask>`` for a
    subset, ``trntile_pe_d<mask>_c<cuts>`` with registers (``"{d}"``, ``"{c}"`` give the family's pattern)."""
    return _variant(PE_MODULE, dtypes, cuts)


def pe_row_module(partitions: int | str, dtypes: int | str = DTYPES.default, cuts: int | str = 0) -> str:
    """The Verilog module name of a row of ``partitions`` PEs :func:`pe_module` ``(dtypes, cuts)``
    (``"{p}"``, ``"{d}"`` and ``"{c}"`` give the pattern of the family)."""
    return _variant(f"trntile_pe_row_p{partitions}", dtypes, cuts)


class _ProcessingElement(wiring.Component):
    """PE(k, m): two weight registers, a multiplier and an accumulate adder; registered outputs.

    Built for the formats of ``dtypes``: without a float format it has no float multiplier and adder,
    without int8 no integer multiply-add, and with one float format the multiplier's format is a constant
    (so synthesis drops the others' decoding). An element of a format not built is never offered: the
    tensor engine refuses such commands. With ``cuts`` (:func:`float_cuts`), the float multiplier and the
    binary32 adder each have that many registers inside, and the integer path waits as many cycles beside them.
    """

    def __init__(self, dtypes: int = DTYPES.default, cuts: int = 0):
        self._dtypes = DTYPES.validate(dtypes)
        self._cuts = float_cuts(self._dtypes, FP_CUTS.validate(cuts))
        super().__init__({
            "x_in": In(_element_layout()), "x_out": Out(_element_layout()),
            "s_in": In(32), "s_out": Out(32),
            "load": In(1), "load_buffer": In(1), "load_value": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        weights = [Signal(16, name=f"weight{b}") for b in range(2)]
        with m.If(self.load):
            with m.If(self.load_buffer):
                m.d.sync += weights[1].eq(self.load_value)
            with m.Else():
                m.d.sync += weights[0].eq(self.load_value)
        x = self.x_in
        weight = Mux(x.buffer, weights[1], weights[0])

        # Stage 1, the cycle the element arrives: its product, registered (it does not depend on the partial
        # sum, which arrives a cycle later). Stage 2: the product added to the partial sum from above. With
        # cuts, the float multiplier has multiplier_cuts registers inside and the adder cuts: the product and
        # the flags come multiplier_cuts cycles later (the partial sum from above too, so the row pitch counts
        # the adder's only), and the sum cuts cycles after that; the integer path waits beside them.
        floats = [d.code for d in DTYPES_BY_NAME.values() if d.is_float and self._dtypes >> d.code & 1]
        use, integer = Signal(), Signal()
        m.d.sync += [use.eq(x.item & x.active), integer.eq(x.dtype == INT8)]
        s_in, cuts = self.s_in, self._cuts
        product_cuts = multiplier_cuts(cuts)
        use, integer = delayed(m, use, product_cuts, "use_product"), delayed(m, integer, product_cuts, "integer_product")
        sums = []
        if floats:
            m.submodules.multiplier = multiplier = FPMultiplier(pipelined=FPMultiplier.CUTS[:product_cuts])
            m.submodules.adder = adder = FP32Adder(pipelined=FP_CUT_STEPS[:cuts])
            product_f = Signal(32)
            m.d.comb += [multiplier.a.eq(weight), multiplier.b.eq(x.value),
                         multiplier.format.eq(x.dtype if len(floats) > 1 else floats[0])]
            m.d.sync += product_f.eq(multiplier.product)
            m.d.comb += [adder.a.eq(s_in), adder.b.eq(product_f)]
            if cuts:
                m.d.comb += [multiplier.advance.eq(1), adder.advance.eq(1)]
            sums.append(adder.sum)
        if self._dtypes >> INT8 & 1:
            product_i = Signal(signed(16))
            m.d.sync += product_i.eq(weight[:8].as_signed() * x.value[:8].as_signed())
            int_sum = Signal(32)
            m.d.comb += int_sum.eq(s_in + delayed(m, product_i, product_cuts, "product_i"))  # wraps
            sums.append(delayed(m, int_sum, cuts, "int_sum"))

        m.d.sync += self.x_out.eq(x)
        use, integer, s_in = delayed(m, use, cuts, "use"), delayed(m, integer, cuts, "integer"), delayed(m, s_in, cuts, "s_in")
        with m.If(use):
            m.d.sync += self.s_out.eq(Mux(integer, sums[-1], sums[0]) if len(sums) == 2 else sums[0])
        with m.Else():
            m.d.sync += self.s_out.eq(s_in)
        return m


@functools.cache
def pe_verilog(dtypes: int = DTYPES.default, cuts: int = 0) -> str:
    """The Verilog of module :func:`pe_module` ``(dtypes, cuts)`` (and its adder and multiplier)."""
    from amaranth.back import verilog

    return verilog.convert(_ProcessingElement(dtypes, cuts), name=pe_module(dtypes, cuts))


class _PERow(wiring.Component):
    """Row k of the array: P PEs, the element entering at the left moving right, partial sums from the row
    above (``s_in[m]`` into column m) leaving below (``s_out[m]``); ``item_out[m]``: column m's PE passes an
    element on this cycle (its ``x_out.item``). ``load_valid`` with ``load_column`` loads ``load_value`` into
    weight buffer ``load_buffer`` of one PE."""

    def __init__(self, partitions: int, dtypes: int, cuts: int):
        self._partitions, self._dtypes, self._cuts = partitions, dtypes, cuts
        super().__init__({
            "x_in": In(_element_layout()),
            "s_in": In(data.ArrayLayout(32, partitions)), "s_out": Out(data.ArrayLayout(32, partitions)),
            "item_out": Out(partitions),
            "load_valid": In(1), "load_column": In(range(partitions)), "load_buffer": In(1), "load_value": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        element = self.x_in
        for col in range(self._partitions):
            x_out = Signal(_element_layout(), name=f"pe_{col}_x_out")
            s_out = Signal(32, name=f"pe_{col}_s_out")
            load = Signal(name=f"pe_{col}_load")
            m.d.comb += [load.eq(self.load_valid & (self.load_column == col)),
                         self.s_out[col].eq(s_out), self.item_out[col].eq(x_out.item)]
            m.submodules[f"pe_{col}"] = Instance(
                pe_module(self._dtypes, self._cuts), i_clk=ClockSignal(), i_rst=ResetSignal(),
                i_x_in=element.as_value(), i_s_in=self.s_in[col], i_load=load, i_load_buffer=self.load_buffer,
                i_load_value=self.load_value, o_x_out=x_out.as_value(), o_s_out=s_out)
            element = x_out
        return m


@functools.cache
def pe_row_verilog(partitions: int, dtypes: int = DTYPES.default, cuts: int = 0) -> str:
    """The Verilog of module :func:`pe_row_module` ``(partitions, dtypes, cuts)`` (it instantiates the PE by
    name)."""
    from amaranth.back import verilog

    return verilog.convert(_PERow(partitions, dtypes, cuts), name=pe_row_module(partitions, dtypes, cuts))


class SystolicArray(wiring.Component):
    """P x P weight-stationary array (see the module docstring for the dataflow and timing).

    Parameters
    ----------
    partitions : int
        P, a power of two in 4..128.
    dtypes : int
        The operand formats the PEs are built for, a mask (:data:`trntile.hdl.params.DTYPES`; default all).
    fp_cuts : int
        Registers inside each PE's float multiplier and binary32 adder (:data:`trntile.hdl.params.FP_CUTS`;
        default 0). Each adds a cycle per row (a row's partial sums reach the next :func:`row_pitch` cycles
        later, and its moving elements enter as much later) and two to the last row. Without a float format
        there are no such units, and no cycle more.

    Members
    -------
    load : ``In(stream.Signature({column, buffer, values[P]}))``
        Writes ``values[k]`` into weight buffer ``buffer`` of PE(k, column) for every k. Always ready.
    moving : ``In(stream.Signature({values[P], active[P], buffer, dtype}))``
        One column of the moving operand per cycle: ``values[k]`` for row k (FP8 and int8 in the low 8 bits),
        ``active[k]`` for rows that take part (k < K), the weight buffer and dtype (0 bf16, 1 E4M3, 2 E5M2,
        3 int8). Always ready: a cycle without ``valid`` is a bubble.
    result : ``Out(ArrayLayout({valid, value}, P))``
        ``result[m]``: ``dst[m, n]`` (binary32, or int32 for int8) with ``valid``, ``P + 1 + m`` cycles
        (:func:`result_latency` + m) after column n was offered, in the order the columns were offered.
        With ``fp_cuts``, :func:`result_latency` ``(P, cuts)`` + m.
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, dtypes: int = DTYPES.default,
                 fp_cuts: int = FP_CUTS.default):
        self._partitions = PARTITIONS.validate(partitions)
        self._dtypes = DTYPES.validate(dtypes)
        self._cuts = float_cuts(self._dtypes, FP_CUTS.validate(fp_cuts))
        p = self._partitions
        super().__init__({
            "load": In(stream.Signature(load_layout(p))),
            "moving": In(stream.Signature(moving_layout(p))),
            "result": Out(result_layout(p)),
        })

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def cuts(self) -> int:
        """The registers inside each PE's float units: :func:`float_cuts` of the build."""
        return self._cuts

    def elaborate(self, platform):
        m = Module()
        p = self._partitions
        m.d.comb += [self.load.ready.eq(1), self.moving.ready.eq(1)]

        # Each row's partial sums leaving downwards, and which of its columns pass an element on.
        s_out = [Signal(data.ArrayLayout(32, p), name=f"row{k}_s_out") for k in range(p)]
        items = [Signal(p, name=f"row{k}_items") for k in range(p)]
        for k in range(p):
            # Row k sees the column offered k row pitches ago.
            element = Signal(_element_layout(), name=f"row{k}_in")
            m.d.comb += [
                element.value.eq(self.moving.payload.values[k]),
                element.item.eq(self.moving.valid),
                element.active.eq(self.moving.valid & self.moving.payload.active[k]),
                element.buffer.eq(self.moving.payload.buffer),
                element.dtype.eq(self.moving.payload.dtype),
            ]
            for stage in range(k * row_pitch(self._cuts)):
                delayed = Signal(_element_layout(), name=f"row{k}_skew{stage}")
                m.d.sync += delayed.eq(element)
                element = delayed
            m.submodules[f"row{k}"] = Instance(
                pe_row_module(p, self._dtypes, self._cuts),
                i_clk=ClockSignal(), i_rst=ResetSignal(),
                i_x_in=element.as_value(),
                i_s_in=s_out[k - 1].as_value() if k > 0 else 0,  # +0.0 / int 0 at the top
                i_load_valid=self.load.valid, i_load_column=self.load.payload.column,
                i_load_buffer=self.load.payload.buffer, i_load_value=self.load.payload.values[k],
                o_s_out=s_out[k].as_value(), o_item_out=items[k],
            )

        # The last row passes an element on as the PE takes its product, so its flags are PE_STAGES - 1
        # (+ cuts in the multiplier and cuts in the adder) cycles ahead of its sums.
        valid = items[p - 1]
        for stage in range(PE_STAGES - 1 + multiplier_cuts(self._cuts) + self._cuts):
            delayed = Signal(p, name=f"result_valid{stage}")
            m.d.sync += delayed.eq(valid)
            valid = delayed
        for col in range(p):
            m.d.comb += [self.result[col].valid.eq(valid[col]), self.result[col].value.eq(s_out[p - 1][col])]
        return m
