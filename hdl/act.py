"""The ACT engine: ``out = cast(f(in * scale + bias[p]))`` in P lanes, from PSUM or SBUF to SBUF; with
``accumulate``, ``out = f(in * scale + out)``.

The arithmetic is :mod:`trntile.golden.act`'s, bit for bit. One command (an ACTIVATE payload,
:data:`~trntile.hdl.isa.activate_payload_layout`) runs at a time:

1. **Check** (4 cycles): the command is refused, in :class:`~trntile.golden.act.ActError` order, or started.
   A refused command touches nothing; ``error`` / ``error_code`` keep the first refusal until ``error_clear``.
2. **Bias**: with a bias, one SBUF read of the 4-byte bias at ``bias_address`` of every partition.
3. **Stream**: a walker turns the source pattern into reads (PSUM words, or SBUF elements through the
   ``sbuf_read`` port), a second walker the destination pattern into SBUF byte addresses. Each column (one
   element per lane) goes through the lanes' :data:`ACT_LANE_LATENCY` registered steps (the source word
   registered; multiply in three steps and the product; add in four and the sum after relu; cast in two and
   the output) and is written through ``sbuf_write`` to the lanes of the command's partitions. Every step
   holds when the last cannot hand over its column, so the SBUF's arbitration may stall the stream at any
   point and nothing is lost. The steps are many and short so that no binary32 operation sets the clock on
   an FPGA; they cost a command latency, not throughput.
4. **Done**: a one-cycle ``done`` pulse when the last column has been written.

With a PSUM source and the SBUF write port to itself the engine writes one column per cycle; an SBUF source
shares the SBUF's port B with the writes, so it runs at half that at best.

Accumulate: a third walker walks the destination pattern again, as reads of the elements to add (through
``sbuf_read``, alternating with the source's reads when the source is SBUF too, so the answers alternate
the same way). A column enters the stages when both its source word and its old destination word are in.
The check stage refuses a destination walk that might visit an element twice, so a read never needs a
write still in the stages: no hazard logic is needed. With a PSUM source an accumulate still writes a
column per cycle (port B alternates a read and a write); with an SBUF source, a third of that.

Lanes: the engine builds ``act_lanes`` physical lanes (P by default). With fewer, say P / 4 for a small FPGA,
each column goes through them in four passes of P / 4 elements, one per cycle, and is written once its last
pass is out; the results are the same, the stream is four times slower.
"""

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.act import ActError, ActFunc, psum_bytes
from .access_pattern import ADDRESS_BITS, COUNT_BITS, PATTERN_DIMS, STRIDE_BITS, AccessPatternWalker, tree_sum
from .fp import FP32Adder, FP32Multiplier, FP32Narrow
from .isa import activate_payload_layout
from .params import ACT_LANES, PARTITIONS, SBUF_BYTES
from .psum import PSUM_BANKS, psum_read_layout
from .sbuf import SBUF, sbuf_element_read_signature, sbuf_element_write_signature
from .stream import StreamReadySlice

__all__ = ["ACTEngine", "ACTBlock", "PSUMModel", "ACT_COUNTER_BITS", "ACT_LANE_LATENCY", "ACT_LANE_MODULE",
           "act_lane_verilog"]

#: The Verilog module of one ACT lane; the engine instantiates it by name, P times, so that Amaranth
#: translates it once and Verilator compiles it once (as the systolic array does its PE).
ACT_LANE_MODULE = "trntile_act_lane"

ACT_COUNTER_BITS = 48

# Output type codes (golden.act.ACT_TYPES): 0 bf16, 1 E4M3, 2 E5M2, 3 int8, 4 fp32, 5 int32.
_INT8, _FP32, _INT32 = 3, 4, 5
_NEGATIVE_ZERO = 0x8000_0000  # x + (-0.0) == x for every x: "no bias" on the float path


class _Lane(wiring.Component):
    """One lane's arithmetic in :attr:`LATENCY` registered steps, all advancing when ``advance`` is high.

    ``x`` is the source word, ``bias`` the lane's bias word; ``float_path``, ``relu``, ``dtype`` and ``scale``
    come from the command (they hold while a command's columns are in the lane). ``out`` is the output element
    in the low bits of 32, valid :attr:`LATENCY` advances after its ``x``. The float path: ``x`` and ``bias``
    registered as they arrive (nothing of the source's read, a block RAM's clock-to-output time and the
    choice of word, is left in front of the multiplier), the binary32 multiplier's steps and the registered
    product, the adder's steps and the sum after relu, registered, the narrowing's step and the registered
    output. The integer path (a 32 x 32 multiply, the add, relu, saturation) runs beside it, registered after
    each operation and delayed to come out with the float path.
    """

    #: Steps from ``x`` to ``out``: the input register, the multiplier's steps and its product, the adder's
    #: steps and the sum, the narrowing's steps and the output (13).
    LATENCY = 1 + (len(FP32Multiplier.CUTS) + 1) + (len(FP32Adder.CUTS) + 1) + (len(FP32Narrow.CUTS) + 1)

    x: In(32)
    bias: In(32)
    scale: In(32)
    float_path: In(1)
    relu: In(1)
    dtype: In(3)
    advance: In(1)
    out: Out(32)

    def elaborate(self, platform):
        m = Module()
        advance = self.advance

        def register(value, name, steps=1):
            """``value`` through ``steps`` registers that load when the lane advances."""
            for step in range(steps):
                delayed = Signal(Value.cast(value).shape(), name=name if steps == 1 else f"{name}_{step}")
                with m.If(advance):
                    m.d.sync += delayed.eq(value)
                value = delayed
            return value

        x, bias = register(self.x, "x"), register(self.bias, "bias_in")
        # multiply
        m.submodules.multiply = multiply = FP32Multiplier(pipelined=True)
        m.d.comb += [multiply.a.eq(x), multiply.b.eq(self.scale), multiply.advance.eq(advance)]
        product_f = register(multiply.product, "product_f")
        product_i = register(register(x.as_signed() * self.scale.as_signed(), "product_i"), "product_i_delayed",
                             steps=multiply.latency)
        bias = register(bias, "bias", steps=multiply.latency + 1)
        # add, then relu
        m.submodules.add = add = FP32Adder(pipelined=True)
        m.d.comb += [add.a.eq(product_f), add.b.eq(bias), add.advance.eq(advance)]
        sum_f = add.sum
        sum_i = register(register(product_i + bias.as_signed(), "sum_i"), "sum_i_delayed", steps=add.latency - 1)
        nan = (sum_f[23:31] == 0xFF) & (sum_f[:23] != 0)
        value_f = register(Mux(self.relu & sum_f[31] & ~nan, 0, sum_f), "value_f")
        value_i = register(Mux(self.relu & (sum_i < 0), 0, sum_i), "value_i")
        # cast
        m.submodules.narrow = narrow = FP32Narrow(pipelined=True)
        m.d.comb += [narrow.value.eq(value_f), narrow.format.eq(Mux(self.dtype == _FP32, 3, self.dtype[:2])),
                     narrow.advance.eq(advance)]
        low, high = Mux(self.dtype == _INT8, -128, -(1 << 31)), Mux(self.dtype == _INT8, 127, (1 << 31) - 1)
        saturated = Mux(value_i < low, low, Mux(value_i > high, high, value_i))
        out_i = register(Mux(self.dtype == _INT8, saturated[:8], saturated[:32]), "out_i", steps=narrow.latency)
        with m.If(advance):
            m.d.sync += self.out.eq(Mux(self.float_path, narrow.result, out_i))
        return m


#: Cycles from a column entering the lanes to its results (each lane's registered steps).
ACT_LANE_LATENCY = _Lane.LATENCY


def act_lane_verilog() -> str:
    """The Verilog of module :data:`ACT_LANE_MODULE` (and its multiplier, adder and narrowing unit)."""
    from amaranth.back import verilog

    return verilog.convert(_Lane(), name=ACT_LANE_MODULE)


class ACTEngine(wiring.Component):
    """P-lane activation engine (see the module docstring).

    Parameters
    ----------
    partitions : int
        P, a power of two in 4..128.
    sbuf_bytes : int
        Bytes per SBUF partition (a power of two in 1 KiB..256 KiB); patterns must stay inside.
    act_lanes : int
        Physical lanes built (:data:`~trntile.hdl.params.ACT_LANES`; at most P, more means P): with fewer
        than P, each column takes P / lanes cycles in the lanes, and the results are the same.

    Members
    -------
    command : ``In(stream.Signature(activate_payload_layout))``
        Commands, taken one at a time.
    check_busy : ``Out(1)``
        A command is in the check stage (it leaves it started or refused; ``error`` is set the cycle it leaves
        when refused).
    error, error_code : ``Out(1)``, ``Out(4)``
        Sticky: a command was refused, and the first refusal's :class:`~trntile.golden.act.ActError`.
    error_clear : ``In(1)``
        Clears ``error`` and ``error_code``.
    done : ``Out(1)``
        One-cycle pulse per completed command (its last column written), in command order.
    idle : ``Out(1)``
        No command taken is still in progress.
    psum_read : ``Out(stream.Signature(psum_read_layout(P)))``; psum_read_data : ``In(stream.Signature(ArrayLayout(32, P)))``
        The tensor engine's PSUM read port.
    sbuf_read : ``Out(sbuf_element_read_signature(P))``; sbuf_write : ``Out(sbuf_element_write_signature(P))``
        SBUF ports.
    busy_cycles, columns : ``Out(48)``
        Counters: cycles with a command in progress; columns written.
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 act_lanes: int = ACT_LANES.default):
        self._p = PARTITIONS.validate(partitions)
        self._sbuf_bytes = SBUF_BYTES.validate(sbuf_bytes)
        self._lanes = min(ACT_LANES.validate(act_lanes), self._p)
        p = self._p
        super().__init__({
            "command": In(stream.Signature(activate_payload_layout)),
            "check_busy": Out(1), "error": Out(1), "error_code": Out(4), "error_clear": In(1),
            "done": Out(1), "idle": Out(1),
            "psum_read": Out(stream.Signature(psum_read_layout(p))),
            "psum_read_data": In(stream.Signature(data.ArrayLayout(32, p))),
            "sbuf_read": Out(sbuf_element_read_signature(p)),
            "sbuf_write": Out(sbuf_element_write_signature(p)),
            "busy_cycles": Out(ACT_COUNTER_BITS), "columns": Out(ACT_COUNTER_BITS),
        })

    # ---- checks --------------------------------------------------------------------------------------
    @staticmethod
    def _walk_facts(m, pattern, name):
        """(any count zero; elements walked, lowest element offset, highest element offset; each dimension's
        span, stride x (count - 1)) of ``pattern``, the spans registered once (valid the cycle after
        ``pattern`` is set), the rest twice: a multiplication, then the product of products or the sums, never
        both in one cycle."""
        counts = [pattern.dims[d].count for d in range(PATTERN_DIMS)]
        pair0, pair1 = Signal(2 * COUNT_BITS, name=f"{name}_pair0"), Signal(2 * COUNT_BITS, name=f"{name}_pair1")
        m.d.sync += [pair0.eq(counts[0] * counts[1]), pair1.eq(counts[2] * counts[3])]
        elements = Signal(4 * COUNT_BITS, name=f"{name}_elements")
        m.d.sync += elements.eq(pair0 * pair1)
        width = STRIDE_BITS + COUNT_BITS + 3
        low, high = Signal(signed(width), name=f"{name}_low"), Signal(signed(width), name=f"{name}_high")
        spans = []
        for d in range(PATTERN_DIMS):
            span = Signal(signed(STRIDE_BITS + COUNT_BITS + 1), name=f"{name}_span{d}")
            m.d.sync += span.eq(pattern.dims[d].stride * (counts[d] - 1))
            spans.append(span)
        m.d.sync += [low.eq(tree_sum([Mux(s < 0, s, 0) for s in spans])),
                     high.eq(tree_sum([Mux(s > 0, s, 0) for s in spans]))]
        zero = Cat(*(c == 0 for c in counts)).any()
        return zero, elements, low, high, spans

    @staticmethod
    def _visits_once(m, pattern, signed_spans):
        """Whether ``pattern`` meets :func:`~trntile.golden.act.visits_once` (registered, valid two cycles after
        it is set): first |stride| of each dimension and which dimensions lie inside each other's stride
        (count > 1 and |stride| no larger), registered; then each stride against the sum of the spans inside
        it. The spans are :meth:`_walk_facts`'s, registered in the same cycle: |stride x (count - 1)| is
        |stride| x (count - 1) for a count of at least 1 (a dimension of count 0 or 1 counts neither as inside
        another nor against its own stride), so the check needs no multipliers of its own."""
        absolutes, strides, spans = [], [], []
        for d in range(PATTERN_DIMS):
            dim = pattern.dims[d]
            absolute = Signal(STRIDE_BITS, name=f"acc_absolute{d}")
            m.d.comb += absolute.eq(Mux(dim.stride < 0, -dim.stride, dim.stride))
            stride = Signal(STRIDE_BITS, name=f"acc_stride{d}")
            span = Signal(STRIDE_BITS + COUNT_BITS, name=f"acc_span{d}")
            m.d.sync += stride.eq(absolute)
            m.d.comb += span.eq(Mux(signed_spans[d] < 0, -signed_spans[d], signed_spans[d]))
            absolutes.append(absolute)
            strides.append(stride)
            spans.append(span)
        multi = [pattern.dims[d].count > 1 for d in range(PATTERN_DIMS)]
        # inside[d][e]: dimension e's span counts against dimension d's stride
        inside = [[Signal(name=f"acc_inside{d}_{e}") for e in range(PATTERN_DIMS)] for d in range(PATTERN_DIMS)]
        many = [Signal(name=f"acc_multi{d}") for d in range(PATTERN_DIMS)]
        for d in range(PATTERN_DIMS):
            m.d.sync += many[d].eq(multi[d])
            for e in range(PATTERN_DIMS):
                if e != d:
                    m.d.sync += inside[d][e].eq(multi[e] & (absolutes[e] <= absolutes[d]))
        good = []
        for d in range(PATTERN_DIMS):
            reach = sum(Mux(inside[d][e], spans[e], 0) for e in range(PATTERN_DIMS) if e != d)
            good.append(~many[d] | (strides[d] > reach))
        once = Signal(name="acc_visits_once")
        m.d.sync += once.eq(Cat(*good).all())
        return once

    @staticmethod
    def _in_bounds(address, low, high, shift, size):
        """``address`` aligned to ``1 << shift`` bytes (shift 0..2) and the walk's bytes inside ``0 .. size - 1``."""
        aligned = Mux(shift == 0, 1, Mux(shift == 1, ~address[0], address[:2] == 0))
        first = address + Mux(shift == 0, low, Mux(shift == 1, low << 1, low << 2))
        end = address + Mux(shift == 0, high + 1, Mux(shift == 1, (high + 1) << 1, (high + 1) << 2))
        return aligned & (first >= 0) & (end <= size)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        word_shift = (4 * p * 4 - 1).bit_length()  # PSUM byte address -> bank
        m.submodules.source_walker = source_walker = AccessPatternWalker()
        m.submodules.destination_walker = destination_walker = AccessPatternWalker()
        m.submodules.addend_walker = addend_walker = AccessPatternWalker()   # accumulate: the old elements

        # ---- check stage: accept, three cycles of arithmetic (products; their products and sums; the rules
        # into a register), decide ----------------------------------------------------------------------------
        cmd = Signal(activate_payload_layout)
        stage = Signal(range(4))
        checking = Signal()
        leave = Signal()
        running = Signal()
        m.d.comb += [self.command.ready.eq(~checking), self.check_busy.eq(checking)]
        with m.If(self.command.valid & self.command.ready):
            m.d.sync += [cmd.eq(self.command.payload), checking.eq(1), stage.eq(0)]
        with m.Elif(checking & (stage != 3)):
            m.d.sync += stage.eq(stage + 1)
        with m.If(leave):
            m.d.sync += checking.eq(0)

        source_zero, source_elements, source_low, source_high, _ = self._walk_facts(m, cmd.source, "source")
        destination_zero, destination_elements, destination_low, destination_high, destination_spans = (
            self._walk_facts(m, cmd.destination, "destination"))
        out_shift = Signal(2)
        m.d.comb += out_shift.eq(Mux(cmd.dtype == 0, 1, Mux((cmd.dtype == _FP32) | (cmd.dtype == _INT32), 2, 0)))
        source_size = Mux(cmd.source_space, self._sbuf_bytes, psum_bytes(p))
        visits_once = self._visits_once(m, cmd.destination, destination_spans)
        problems = [
            (ActError.FUNC, cmd.func > max(ActFunc)),
            (ActError.DTYPE, cmd.dtype > _INT32),
            (ActError.PARTITION, (cmd.partitions == 0) | (cmd.partition + cmd.partitions > p)),
            (ActError.COUNT, source_zero | destination_zero | (source_elements != destination_elements)),
            (ActError.SOURCE_BOUNDS, ~self._in_bounds(cmd.source.address, source_low, source_high, 2, source_size)),
            (ActError.DESTINATION_BOUNDS, ~self._in_bounds(cmd.destination.address, destination_low,
                                                           destination_high, out_shift, self._sbuf_bytes)),
            (ActError.BIAS_BOUNDS, cmd.bias_enable & ((cmd.bias_address[:2] != 0)
                                                      | (cmd.bias_address + 4 > self._sbuf_bytes))),
            (ActError.ACCUMULATE, cmd.accumulate & (((cmd.dtype != _FP32) & (cmd.dtype != _INT32))
                                                    | cmd.bias_enable | ~visits_once)),
        ]
        first_problem = Signal(4)
        for error, condition in reversed(problems):
            with m.If(condition):
                m.d.comb += first_problem.eq(error)
        code = Signal(4)   # valid from stage 3: the facts above are from stage 2
        m.d.sync += code.eq(first_problem)
        decide = checking & (stage == 3)
        refuse = decide & (code != 0)
        start = Signal()
        m.d.comb += [start.eq(decide & (code == 0) & ~running), leave.eq(refuse | start)]
        with m.If(self.error_clear):
            m.d.sync += [self.error.eq(0), self.error_code.eq(0)]
        with m.If(refuse & (~self.error | self.error_clear)):
            m.d.sync += [self.error.eq(1), self.error_code.eq(code)]

        # ---- the running command ------------------------------------------------------------------------
        run = Signal(activate_payload_layout)
        float_path = ~((run.dtype == _INT8) | (run.dtype == _INT32))
        bias = Signal(data.ArrayLayout(32, p))
        bias_pending = Signal()   # the bias read is wanted or outstanding
        bias_asked = Signal()
        mask = Signal(p)
        with m.If(start):
            m.d.sync += [run.eq(cmd), running.eq(1), bias_pending.eq(cmd.bias_enable), bias_asked.eq(0),
                         mask.eq(Cat(*[(cmd.partition <= lane) & (lane < cmd.partition + cmd.partitions)
                                       for lane in range(p)]))]
            with m.If(~cmd.bias_enable):
                is_int = (cmd.dtype == _INT8) | (cmd.dtype == _INT32)
                m.d.sync += [bias[lane].eq(Mux(is_int, 0, _NEGATIVE_ZERO)) for lane in range(p)]

        # Walkers start together once the bias is in.
        walkers_started = Signal()
        m.d.comb += [
            source_walker.start.payload.pattern.eq(run.source), source_walker.start.payload.shift.eq(2),
            destination_walker.start.payload.pattern.eq(run.destination),
            destination_walker.start.payload.shift.eq(
                Mux(run.dtype == 0, 1, Mux((run.dtype == _FP32) | (run.dtype == _INT32), 2, 0))),
        ]
        m.d.comb += [addend_walker.start.payload.pattern.eq(run.destination), addend_walker.start.payload.shift.eq(2)]
        launch = running & ~bias_pending & ~walkers_started
        m.d.comb += [source_walker.start.valid.eq(launch), destination_walker.start.valid.eq(launch),
                     addend_walker.start.valid.eq(launch & run.accumulate)]
        with m.If(launch):  # both walkers are idle between commands, so both take it
            m.d.sync += walkers_started.eq(1)

        # Reads: the bias first, then the source walk (the walkers start only once the bias is in). The read
        # ports pace themselves: PSUM takes a read only when its data register is free, the SBUF keeps at most
        # SBUF.ANSWERS reads of a requester unanswered. When accumulating, the addend walker's reads go to the
        # SBUF too: alternating with the source's (addend first) when the source is SBUF, so the answers
        # alternate in the same order.
        from_sbuf = run.source_space
        accumulate = run.accumulate
        read_address = source_walker.address.payload.address
        # Both SBUF requests leave through a ready slice: the SBUF's port-B grant, which depends on every
        # other requester, stops at a flip-flop instead of reaching the walkers and every step of the lanes.
        # Requests pass straight through, so the SBUF sees them in the same cycles.
        m.submodules.read_slice = read_slice = StreamReadySlice(self.sbuf_read.request.payload.shape())
        port = self.sbuf_read.request
        m.d.comb += [port.valid.eq(read_slice.o.valid), port.payload.eq(read_slice.o.payload),
                     read_slice.o.ready.eq(port.ready)]
        request = read_slice.i
        ask_addend = Signal()   # the next SBUF read is the addend's (accumulate, SBUF source)
        answer_addend = Signal()   # the next SBUF answer is an addend
        addend_turn = accumulate & (~from_sbuf | ask_addend)
        m.d.comb += [
            self.psum_read.payload.bank.eq(read_address[word_shift:]),
            self.psum_read.payload.offset.eq(read_address[2:word_shift]),
            self.psum_read.valid.eq(source_walker.address.valid & ~from_sbuf),
            request.valid.eq(Mux(bias_pending, ~bias_asked,
                                 Mux(addend_turn, addend_walker.address.valid,
                                     source_walker.address.valid & from_sbuf))),
            request.payload.address.eq(Mux(bias_pending, run.bias_address,
                                           Mux(addend_turn, addend_walker.address.payload.address, read_address))),
            source_walker.address.ready.eq(Mux(from_sbuf, request.ready & ~addend_turn & ~bias_pending,
                                               self.psum_read.ready)),
            addend_walker.address.ready.eq(request.ready & addend_turn & ~bias_pending),
        ]
        with m.If(bias_pending & request.valid & request.ready):
            m.d.sync += bias_asked.eq(1)
        with m.If(~bias_pending & request.valid & request.ready & accumulate & from_sbuf):
            m.d.sync += ask_addend.eq(~ask_addend)

        # Answers: the bias, an addend, or a source column.
        answer = Signal(data.ArrayLayout(32, p))
        answer_valid = Signal()
        take_answer = Signal()
        response = self.sbuf_read.response
        addend = Signal(data.ArrayLayout(32, p))
        addend_valid = Signal()
        addend_next = accumulate & (~from_sbuf | answer_addend)
        m.d.comb += [
            answer.eq(Mux(from_sbuf, response.payload, self.psum_read_data.payload)),
            answer_valid.eq(~bias_pending & (addend_valid | ~accumulate)
                            & Mux(from_sbuf, response.valid & ~addend_next, self.psum_read_data.valid)),
            response.ready.eq(Mux(bias_pending, 1, Mux(addend_next, ~addend_valid | take_answer,
                                                       from_sbuf & take_answer))),
            self.psum_read_data.ready.eq(~from_sbuf & take_answer),
        ]
        with m.If(bias_pending & response.valid):
            m.d.sync += [bias.eq(response.payload), bias_pending.eq(0)]
        got_addend = ~bias_pending & addend_next & response.valid & response.ready
        with m.If(got_addend):
            m.d.sync += [addend.eq(response.payload), addend_valid.eq(1)]
        with m.Elif(take_answer & accumulate):
            m.d.sync += addend_valid.eq(0)
        with m.If(~bias_pending & response.valid & response.ready & accumulate & from_sbuf):
            m.d.sync += answer_addend.eq(~answer_addend)
        with m.If(start):
            m.d.sync += [ask_addend.eq(1), answer_addend.eq(1), addend_valid.eq(0)]

        # ---- the lanes' steps: every step advances together when the last can hand over its column -------
        # With fewer physical lanes than partitions, a column goes through the lanes in ``groups`` passes, one
        # group of lanes' elements per cycle: the column's answer and destination address are taken with its
        # last group, and the write goes out with the last group's results, the earlier groups' held in
        # ``held``. With a lane per partition (one group) this is a plain pipeline of ACT_LANE_LATENCY steps.
        lanes, groups = self._lanes, p // self._lanes
        passes = groups > 1
        depth = ACT_LANE_LATENCY
        feed = Signal(range(groups)) if passes else Const(0)   # the group of the column going into the lanes
        last_feed = feed == groups - 1 if passes else Const(1)
        stages = [Signal(name=f"stage{i}_valid") for i in range(depth)]
        lasts = [Signal(name=f"stage{i}_last") for i in range(depth)]
        addresses = [Signal(ADDRESS_BITS, name=f"stage{i}_address") for i in range(depth)]
        stage_groups = [Signal(range(groups), name=f"stage{i}_group") if passes else Const(0) for i in range(depth)]
        last_out = stage_groups[-1] == groups - 1 if passes else Const(1)
        write_layout = self.sbuf_write.request.payload.shape()
        m.submodules.write_slice = write_slice = StreamReadySlice(data.StructLayout({"request": write_layout,
                                                                                     "last": 1}))
        port = self.sbuf_write.request
        m.d.comb += [port.valid.eq(write_slice.o.valid), port.payload.eq(write_slice.o.payload.request),
                     write_slice.o.ready.eq(port.ready)]
        write = stream.Signature(write_layout).create(path=("act_write",))
        m.d.comb += [write_slice.i.valid.eq(write.valid), write_slice.i.payload.request.eq(write.payload),
                     write_slice.i.payload.last.eq(lasts[-1]), write.ready.eq(write_slice.i.ready)]
        advance = Signal()
        m.d.comb += advance.eq(~(stages[-1] & last_out) | write.ready)
        column_in = answer_valid & destination_walker.address.valid
        m.d.comb += [take_answer.eq(advance & column_in & last_feed),
                     destination_walker.address.ready.eq(advance & answer_valid & last_feed)]
        with m.If(advance):
            m.d.sync += [stages[0].eq(column_in), lasts[0].eq(destination_walker.address.payload.last),
                         addresses[0].eq(destination_walker.address.payload.address)]
            m.d.sync += [signal[i].eq(signal[i - 1]) for signal in (stages, lasts, addresses) for i in range(1, depth)]
            if passes:
                m.d.sync += stage_groups[0].eq(feed)
                m.d.sync += [stage_groups[i].eq(stage_groups[i - 1]) for i in range(1, depth)]
                with m.If(column_in):
                    m.d.sync += feed.eq(Mux(last_feed, 0, feed + 1))
        written = Signal()   # a column's write reaches the SBUF
        m.d.comb += written.eq(write_slice.o.valid & write_slice.o.ready)

        relu = Signal()
        m.d.comb += relu.eq(run.func == ActFunc.RELU)
        addend_or_bias = Mux(accumulate, addend.as_value(), bias.as_value())
        held = [Signal(data.ArrayLayout(32, lanes), name=f"held{g}") for g in range(groups - 1)]

        def pick(items):   # the item of the group going in
            return Array(items)[feed] if passes else items[0]

        for lane in range(lanes):
            x = pick([answer[g * lanes + lane] for g in range(groups)])
            b = pick([addend_or_bias[32 * (g * lanes + lane):][:32] for g in range(groups)])
            out = Signal(32, name=f"lane{lane}_out")
            m.submodules[f"lane{lane}"] = Instance(
                ACT_LANE_MODULE, i_clk=ClockSignal(), i_rst=ResetSignal(),
                i_x=x, i_bias=b, i_scale=run.scale, i_float_path=float_path, i_relu=relu,
                i_dtype=run.dtype, i_advance=advance, o_out=out)
            m.d.comb += write.payload.data[(groups - 1) * lanes + lane].eq(out)
            for g in range(groups - 1):
                m.d.comb += write.payload.data[g * lanes + lane].eq(held[g][lane])
                with m.If(advance & stages[-1] & (stage_groups[-1] == g)):
                    m.d.sync += held[g][lane].eq(out)
        m.d.comb += [
            write.valid.eq(stages[-1] & last_out),
            write.payload.address.eq(addresses[-1]),
            write.payload.size.eq(Mux(run.dtype == 0, 1, Mux((run.dtype == _FP32) | (run.dtype == _INT32), 2, 0))),
            write.payload.mask.eq(mask),
        ]
        finished = written & write_slice.o.payload.last
        m.d.comb += self.done.eq(finished)
        with m.If(finished):
            m.d.sync += [running.eq(0), walkers_started.eq(0)]
        with m.If(written):
            m.d.sync += self.columns.eq(self.columns + 1)
        m.d.comb += self.idle.eq(~checking & ~running)
        with m.If(~self.idle):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        return m


class PSUMModel(wiring.Component):
    """PSUM for the ACT engine's block tests: P partitions x 8 banks x 4P words that a testbench writes
    directly, with the tensor engine's read port.

    Parameters
    ----------
    partitions : int
        P.

    Members
    -------
    write : ``In(stream.Signature({bank, offset, mask, data[P]}))``
        Word ``offset`` of ``bank`` in every partition whose ``mask`` bit is set; always ready.
    read : ``In(stream.Signature(psum_read_layout(P)))``, read_data : ``Out(stream.Signature(ArrayLayout(32, P)))``
        As the tensor engine's PSUM read port: the word of every partition, one cycle after the read.
    """

    def __init__(self, partitions: int):
        self._p = partitions
        super().__init__({
            "write": In(stream.Signature(data.StructLayout({
                "bank": range(PSUM_BANKS), "offset": range(4 * partitions), "mask": partitions,
                "data": data.ArrayLayout(32, partitions)}))),
            "read": In(stream.Signature(psum_read_layout(partitions))),
            "read_data": Out(stream.Signature(data.ArrayLayout(32, partitions))),
        })

    def elaborate(self, platform):
        m = Module()
        p, words = self._p, 4 * self._p
        fire = Signal()
        m.d.comb += [self.write.ready.eq(1), self.read.ready.eq(~self.read_data.valid | self.read_data.ready),
                     fire.eq(self.read.valid & self.read.ready)]
        with m.If(fire):
            m.d.sync += self.read_data.valid.eq(1)
        with m.Elif(self.read_data.ready):
            m.d.sync += self.read_data.valid.eq(0)
        for partition in range(p):
            memory = Memory(shape=32, depth=PSUM_BANKS * words, init=[])
            m.submodules[f"partition{partition}"] = memory
            write, read = memory.write_port(), memory.read_port()
            m.d.comb += [
                write.addr.eq(self.write.payload.bank * words + self.write.payload.offset),
                write.data.eq(self.write.payload.data[partition]),
                write.en.eq(self.write.valid & self.write.payload.mask[partition]),
                read.addr.eq(self.read.payload.bank * words + self.read.payload.offset), read.en.eq(fire),
                self.read_data.payload[partition].eq(read.data),
            ]
        return m


class ACTBlock(wiring.Component):
    """What the ACT engine's block tests simulate (top ``act``): an :class:`ACTEngine` with a real
    :class:`~trntile.hdl.sbuf.SBUF` and a :class:`PSUMModel`.

    Parameters
    ----------
    partitions, sbuf_bytes : int
        As for :class:`ACTEngine`.
    act_lanes : int
        As for :class:`ACTEngine`.
    data_width : int
        The SBUF's word width.

    Members
    -------
    command, check_busy, error, error_code, error_clear, done, idle, busy_cycles, columns
        The engine's (:class:`ACTEngine`).
    psum_write
        The PSUM model's write port.
    sbuf : ``In(sbuf_word_signature(data_width))``
        The SBUF's word port, through which a testbench loads and reads the SBUF, and competes with the engine.
    """

    _PASSED = ("command", "check_busy", "error", "error_code", "error_clear", "done", "idle", "busy_cycles",
               "columns")

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 data_width: int = 128, act_lanes: int = ACT_LANES.default):
        self._engine = ACTEngine(partitions=partitions, sbuf_bytes=sbuf_bytes, act_lanes=act_lanes)
        self._sbuf = SBUF(partitions=partitions, sbuf_bytes=sbuf_bytes, data_width=data_width)
        self._psum = PSUMModel(partitions)
        members = {name: self._engine.signature.members[name] for name in self._PASSED}
        members.update({"psum_write": self._psum.signature.members["write"],
                        "sbuf": self._sbuf.signature.members["dma"]})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.sbuf = sbuf = self._sbuf
        m.submodules.psum = psum = self._psum
        wiring.connect(m, engine.psum_read, psum.read)
        wiring.connect(m, psum.read_data, engine.psum_read_data)
        wiring.connect(m, engine.sbuf_read, sbuf.act)
        wiring.connect(m, engine.sbuf_write, sbuf.write)
        wiring.connect(m, wiring.flipped(self.psum_write), psum.write)
        wiring.connect(m, wiring.flipped(self.sbuf), sbuf.dma)
        wiring.connect(m, wiring.flipped(self.command), engine.command)
        m.d.comb += engine.error_clear.eq(self.error_clear)
        for name in self._PASSED:
            if name not in ("command", "error_clear"):
                m.d.comb += getattr(self, name).eq(getattr(engine, name))
        return m
