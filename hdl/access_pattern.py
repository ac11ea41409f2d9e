"""Access patterns: the free-dimension walk every engine makes through a partition of the SBUF.

A pattern is a byte ``address`` and four ``[stride, count]`` dimensions, outermost first, with strides
in elements (signed) and counts of at least 1; patterns with fewer dimensions pad the outer ones with
``[0, 1]``. Element ``(i0, i1, i2, i3)`` sits at ``address + element_bytes * sum(i_d * stride_d)``, and
the walk visits elements with the innermost index fastest. :class:`~trntile.golden.tensor_engine.AccessPattern`
is the same walk in numpy.

:class:`AccessPatternWalker` produces one byte address per cycle with no multiplier: it keeps, for each
dimension, the address where the current iteration of that dimension began, and a step at dimension d
adds that dimension's stride to its start and copies the result to every inner dimension.
"""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PATTERN_DIMS", "ADDRESS_BITS", "STRIDE_BITS", "COUNT_BITS", "dimension_layout", "pattern_layout",
           "make_pattern_layout", "tree_sum", "AccessPatternWalker"]

PATTERN_DIMS = 4
#: Width of byte addresses within one SBUF partition (up to 1 MiB, above the largest SBUF allowed, so an
#: address past the end is representable and can be refused).
ADDRESS_BITS = 20
STRIDE_BITS = 20
COUNT_BITS = 16

dimension_layout = data.StructLayout({"stride": signed(STRIDE_BITS), "count": COUNT_BITS})



def make_pattern_layout(address_bits: int = ADDRESS_BITS, stride_bits: int = STRIDE_BITS) -> data.StructLayout:
    """``{address, dims[4] {stride (signed), count}}``, dims outermost first, at the given widths."""
    dimension = data.StructLayout({"stride": signed(stride_bits), "count": COUNT_BITS})
    return data.StructLayout({"address": address_bits, "dims": data.ArrayLayout(dimension, PATTERN_DIMS)})


#: The SBUF-side pattern of the engines: ``{address, dims[4]}``, dims outermost first.
pattern_layout = make_pattern_layout()


def tree_sum(values):
    """``sum(values)`` as a balanced tree of adders (log2 n deep, not n - 1): the engines' checks sum a
    pattern's spans this way."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values[0]


class AccessPatternWalker(wiring.Component):
    """Turns a pattern into its stream of byte addresses, one per cycle.

    Parameters
    ----------
    address_bits, stride_bits : int
        Widths of the address and of each (signed) stride; addresses wrap modulo ``2**address_bits``.
        The defaults are the SBUF-side widths of :data:`pattern_layout`.

    Members
    -------
    start : ``In(stream.Signature({pattern, shift}))``
        A pattern to walk, with ``shift`` = log2(element bytes) (0..3). Taken when idle, or in the cycle
        the previous walk's last address is taken, so walks follow each other with no gap. The pattern is
        assumed valid (counts >= 1; the caller checks bounds).
    address : ``Out(stream.Signature({address, last}))``
        The byte address of each element in walk order; ``last`` marks the final one.
    """

    def __init__(self, *, address_bits: int = ADDRESS_BITS, stride_bits: int = STRIDE_BITS):
        self._address_bits = address_bits
        layout = make_pattern_layout(address_bits, stride_bits)
        super().__init__({
            "start": In(stream.Signature(data.StructLayout({"pattern": layout, "shift": 2}))),
            "address": Out(stream.Signature(data.StructLayout({"address": address_bits, "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        # Innermost dimension first from here on: level 0 is dims[3].
        steps = [Signal(self._address_bits, name=f"step{level}") for level in range(PATTERN_DIMS)]
        finals = [Signal(COUNT_BITS, name=f"final{level}") for level in range(PATTERN_DIMS)]
        indices = [Signal(COUNT_BITS, name=f"index{level}") for level in range(PATTERN_DIMS)]
        starts = [Signal(self._address_bits, name=f"start{level}") for level in range(PATTERN_DIMS)]
        # Whether each level is at its final index: kept in a register (updated with the index) rather than
        # compared each cycle, so the step decision and ``last`` start at flip-flops. (A level steps only while
        # below its final index, so ``indices + 1 == finals`` is exact.)
        at_end = [Signal(name=f"at_end{level}") for level in range(PATTERN_DIMS)]

        m.d.comb += [
            self.start.ready.eq(~busy | (self.address.ready & self.address.payload.last)),
            self.address.valid.eq(busy),
            self.address.payload.address.eq(starts[0]),
            self.address.payload.last.eq(Cat(*at_end).all()),
        ]
        with m.If(self.address.valid & self.address.ready):
            with m.If(self.address.payload.last):
                m.d.sync += busy.eq(0)
            for level in range(PATTERN_DIMS):
                # Step at ``level`` when every inner level is at its end and this one is not.
                inner_done = Cat(*at_end[:level]).all() if level else 1
                with m.If(inner_done & ~at_end[level]):
                    following = starts[level] + steps[level]
                    m.d.sync += [indices[level].eq(indices[level] + 1),
                                 at_end[level].eq(indices[level] + 1 == finals[level])]
                    for inner in range(level + 1):
                        m.d.sync += starts[inner].eq(following)
                    for inner in range(level):
                        m.d.sync += [indices[inner].eq(0), at_end[inner].eq(finals[inner] == 0)]
        # A new walk may start in the cycle of the last address (no bubble); it overrides the step.
        with m.If(self.start.valid & self.start.ready):
            pattern = self.start.payload.pattern
            m.d.sync += busy.eq(1)
            for level in range(PATTERN_DIMS):
                dim = pattern.dims[PATTERN_DIMS - 1 - level]
                m.d.sync += [
                    steps[level].eq(dim.stride << self.start.payload.shift),  # wraps modulo 2**ADDRESS_BITS
                    finals[level].eq(dim.count - 1),
                    indices[level].eq(0),
                    at_end[level].eq(dim.count == 1),
                    starts[level].eq(pattern.address),
                ]
        return m
