"""The P x P weight-stationary systolic array of the tensor engine.

Dataflow (``dst[m, n] = sum_k stationary[k, m] * moving[k, n]``):

- PE(k, m) holds ``stationary[k, m]`` in one of two weight registers (double buffering: a load fills one
  buffer while data that uses the other is still in flight).
- ``moving[k, n]`` enters row k at the left, k cycles after the column it belongs to was offered (the
  skew), and moves one PE to the right per cycle.
- Partial sums move one PE down per cycle: PE(k, m) passes ``s + p`` with ``p = stationary[k, m] * moving[k, n]``
  (or ``s`` unchanged if row k takes no part, ``k >= K``), starting from +0.0 above row 0, so a column's sum
  is taken in k order exactly as :mod:`trntile.golden.numerics` defines.
- ``result[m]`` carries ``dst[m, n]`` out of the bottom of column m, ``P + m`` cycles after column n was
  offered. Each column is its own PSUM partition, so no deskew is needed.

Cycle diagram for P = 3 (``xk`` = moving[k, n] for one n offered at cycle 0; ``s`` = its partial sums)::

    cycle      0      1      2      3      4      5
    row 0    x0@m0  x0@m1  x0@m2
    row 1           x1@m0  x1@m1  x1@m2
    row 2                  x2@m0  x2@m1  x2@m2
    result                        dst[0] dst[1] dst[2]   (column m at cycle P + m)

Each element carries its own weight-buffer select, dtype and "row active" flag, so one MultiplyMoving
can follow another, or a LoadStationary, with no gap; the caller must not load a buffer while data that
uses it is still in the array (it is free ``2P - 1`` cycles after its last column was offered).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .fp import FP32Adder, FPMultiplier
from .params import PARTITIONS

__all__ = ["SystolicArray", "INT8", "load_layout", "moving_layout", "result_layout"]

#: dtype code of int8 (codes 0..2 are the float formats of :data:`trntile.hdl.fp.FP_FORMATS`).
INT8 = 3


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


class _ProcessingElement(wiring.Component):
    """PE(k, m): two weight registers, a multiplier and an accumulate adder; registered outputs."""

    def __init__(self):
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

        m.submodules.multiplier = multiplier = FPMultiplier()
        m.submodules.adder = adder = FP32Adder()
        m.d.comb += [multiplier.a.eq(weight), multiplier.b.eq(x.value), multiplier.format.eq(x.dtype),
                     adder.a.eq(self.s_in), adder.b.eq(multiplier.product)]
        int_sum = Signal(32)
        m.d.comb += int_sum.eq(self.s_in + (weight[:8].as_signed() * x.value[:8].as_signed()))  # wraps

        m.d.sync += self.x_out.eq(x)
        with m.If(x.item & x.active):
            m.d.sync += self.s_out.eq(Mux(x.dtype == INT8, int_sum, adder.sum))
        with m.Else():
            m.d.sync += self.s_out.eq(self.s_in)
        return m


class SystolicArray(wiring.Component):
    """P x P weight-stationary array (see the module docstring for the dataflow and timing).

    Parameters
    ----------
    partitions : int
        P, a power of two in 4..128.

    Members
    -------
    load : ``In(stream.Signature({column, buffer, values[P]}))``
        Writes ``values[k]`` into weight buffer ``buffer`` of PE(k, column) for every k. Always ready.
    moving : ``In(stream.Signature({values[P], active[P], buffer, dtype}))``
        One column of the moving operand per cycle: ``values[k]`` for row k (FP8 and int8 in the low 8 bits),
        ``active[k]`` for rows that take part (k < K), the weight buffer and dtype (0 bf16, 1 E4M3, 2 E5M2,
        3 int8). Always ready: a cycle without ``valid`` is a bubble.
    result : ``Out(ArrayLayout({valid, value}, P))``
        ``result[m]``: ``dst[m, n]`` (binary32, or int32 for int8) with ``valid``, ``P + m`` cycles after
        column n was offered, in the order the columns were offered.
    """

    def __init__(self, *, partitions: int = PARTITIONS.default):
        self._partitions = PARTITIONS.validate(partitions)
        p = self._partitions
        super().__init__({
            "load": In(stream.Signature(load_layout(p))),
            "moving": In(stream.Signature(moving_layout(p))),
            "result": Out(result_layout(p)),
        })

    @property
    def partitions(self) -> int:
        return self._partitions

    def elaborate(self, platform):
        m = Module()
        p = self._partitions
        m.d.comb += [self.load.ready.eq(1), self.moving.ready.eq(1)]

        pes = [[_ProcessingElement() for _ in range(p)] for _ in range(p)]
        for k in range(p):
            for col in range(p):
                m.submodules[f"pe_{k}_{col}"] = pe = pes[k][col]
                m.d.comb += [
                    pe.load.eq(self.load.valid & (self.load.payload.column == col)),
                    pe.load_buffer.eq(self.load.payload.buffer),
                    pe.load_value.eq(self.load.payload.values[k]),
                ]
                if col > 0:
                    m.d.comb += pe.x_in.eq(pes[k][col - 1].x_out)
                m.d.comb += pe.s_in.eq(pes[k - 1][col].s_out if k > 0 else 0)  # +0.0 / int 0 at the top

            # Row k sees the column offered k cycles ago.
            element = Signal(_element_layout(), name=f"row{k}_in")
            m.d.comb += [
                element.value.eq(self.moving.payload.values[k]),
                element.item.eq(self.moving.valid),
                element.active.eq(self.moving.valid & self.moving.payload.active[k]),
                element.buffer.eq(self.moving.payload.buffer),
                element.dtype.eq(self.moving.payload.dtype),
            ]
            for stage in range(k):
                delayed = Signal(_element_layout(), name=f"row{k}_skew{stage}")
                m.d.sync += delayed.eq(element)
                element = delayed
            m.d.comb += pes[k][0].x_in.eq(element)

        for col in range(p):
            bottom = pes[p - 1][col]
            m.d.comb += [self.result[col].valid.eq(bottom.x_out.item), self.result[col].value.eq(bottom.s_out)]
        return m
