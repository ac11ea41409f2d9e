"""The tensor engine: LoadStationary / MultiplyMoving commands driving the systolic array and PSUM.

``dst[m, n] = stationary.T @ moving`` with Trainium's two steps (``docs/tensor_engine.md`` has the whole
story, with the numbers measured):

- **LoadStationary** reads the K x M stationary operand from SBUF, one column (one element per
  partition) per cycle along its access pattern, into the weight buffer the current operand does not use.
- **MultiplyMoving** streams the K x N moving operand the same way through the array, one column per
  cycle, and PSUM writes (or adds) column m's results to partition m, bank ``psum_bank``, from word
  ``psum_offset``.

The two have separate SBUF read ports, so the next LoadStationary runs while a MultiplyMoving streams:
with N = 4P the array takes a moving column every cycle, pair after pair.

Commands are taken in order through a one-entry check stage. A command that breaks a rule of
:meth:`trntile.golden.tensor_engine.TensorEngineModel.problem` is dropped there, before it touches
anything, and its :class:`~trntile.golden.tensor_engine.TensorError` is reported; the next command
goes on as if the bad one had never come. Checks and their order are the golden model's.

Scheduling, from the check stage:

- A LoadStationary goes to the stationary unit when that unit is idle and its target buffer is free:
  no MultiplyMoving that uses the buffer is waiting or streaming, and the last column that used it is
  far enough down the array (see ``_drain_cycles``).
- A MultiplyMoving waits in a one-entry slot for its buffer to be loaded, then sends PSUM its write
  command and starts walking; the walk of the next one begins the cycle after the last address of this
  one, so back-to-back MultiplyMovings leave no bubble.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.numerics import DTYPES, FLOAT_DTYPES
from ..golden.tensor_engine import PSUM_BANKS, AccessPattern, LoadStationary, MultiplyMoving, TensorError
from .access_pattern import (ADDRESS_BITS, COUNT_BITS, PATTERN_DIMS, STRIDE_BITS, AccessPatternWalker,
                             pattern_layout, tree_sum)
from .params import DTYPES as DTYPES_PARAM
from .params import FP_CUTS, PARTITIONS, SBUF_BYTES
from .psum import PSUM, psum_read_layout, psum_write_delay
from .systolic import SystolicArray, float_cuts, result_latency, row_pitch

__all__ = ["LOAD_STATIONARY", "MULTIPLY_MOVING", "COUNTER_BITS", "tensor_command_layout", "sbuf_read_signature",
           "encode_command", "TensorEngine"]

LOAD_STATIONARY = 0
MULTIPLY_MOVING = 1
COUNTER_BITS = 48

#: One tensor engine command. Fields are wide enough to hold out-of-range values, so that a bad command
#: can be expressed, and refused.
tensor_command_layout = data.StructLayout({
    "op": 1,             # LOAD_STATIONARY or MULTIPLY_MOVING
    "dtype": 3,          # 0 bf16, 1 fp8 E4M3, 2 fp8 E5M2, 3 int8
    "partition": 8,      # first partition of both operands (row 0 of the array)
    "k": 8,              # rows (contraction), 1..P
    "m": 8,              # LoadStationary: columns of the stationary operand, 1..P
    "n": 10,             # MultiplyMoving: columns of the moving operand, 1..4P
    "psum_bank": 4,      # MultiplyMoving: 0..7
    "psum_offset": 10,   # MultiplyMoving: first word, offset + N <= 4P
    "accumulate": 1,     # MultiplyMoving: add to PSUM instead of overwriting
    "pattern": pattern_layout,
})


def sbuf_read_signature(partitions: int) -> wiring.Signature:
    """A read port on the SBUF, seen from the reader: ``request`` {byte address, wide} and, in request
    order, ``response``: one element per partition (2 bytes if ``wide``, else 1, zero-extended to 16 bits).

    A response comes at least one cycle after its request (the tensor engine's weight-buffer timing,
    ``_drain_cycles``, counts on it; any registered memory meets it)."""
    return wiring.Signature({
        "request": Out(stream.Signature(data.StructLayout({"address": ADDRESS_BITS, "wide": 1}))),
        "response": In(stream.Signature(data.ArrayLayout(16, partitions))),
    })


def _fits(name: str, value: int, bits: int, *, signed_: bool = False) -> int:
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed_ else (0, (1 << bits) - 1)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high} to fit the command format, not {value!r}")
    return value


def encode_command(command) -> dict:
    """The :data:`tensor_command_layout` fields of a golden ``LoadStationary`` / ``MultiplyMoving``.

    Only checks that each value fits its field (``ValueError`` naming it otherwise), so commands the engine
    must refuse can still be encoded; :meth:`TensorEngineModel.check` is the check of their meaning.
    """
    pattern: AccessPattern = command.pattern
    if not 1 <= len(pattern.dims) <= PATTERN_DIMS:
        raise ValueError(f"pattern must have 1..{PATTERN_DIMS} dimensions, not {len(pattern.dims)}")
    dims = [(0, 1)] * (PATTERN_DIMS - len(pattern.dims)) + list(pattern.dims)
    dtype = command.dtype if isinstance(command.dtype, int) else DTYPES[command.dtype].code \
        if command.dtype in DTYPES else None
    if dtype is None:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} or a code 0..7, not {command.dtype!r}")
    fields = {
        "dtype": _fits("dtype", dtype, 3),
        "partition": _fits("partition", command.partition, 8),
        "k": _fits("k", command.k, 8),
        "pattern": {
            "address": _fits("pattern.address", pattern.address, ADDRESS_BITS),
            "dims": [{"stride": _fits("pattern stride", stride, STRIDE_BITS, signed_=True),
                      "count": _fits("pattern count", count, COUNT_BITS)} for stride, count in dims],
        },
    }
    if isinstance(command, LoadStationary):
        fields.update(op=LOAD_STATIONARY, m=_fits("m", command.m, 8))
    elif isinstance(command, MultiplyMoving):
        fields.update(op=MULTIPLY_MOVING, n=_fits("n", command.n, 10),
                      psum_bank=_fits("psum_bank", command.psum_bank, 4),
                      psum_offset=_fits("psum_offset", command.psum_offset, 10),
                      accumulate=int(bool(command.accumulate)))
    else:
        raise TypeError(f"not a tensor engine command: {command!r}")
    return fields


def _drain_cycles(partitions: int, cuts: int = 0) -> int:
    """Cycles after the last column that uses a weight buffer has been offered to the array before a
    LoadStationary into that buffer may be dispatched (``cuts``: the array's, :func:`float_cuts`).

    That column reaches PE(k, c) ``k * pitch + c`` cycles after it was offered (``pitch`` is
    :func:`~trntile.hdl.systolic.row_pitch`, 1 without cuts), so column c of the buffer is free
    ``(P - 1) * pitch + c`` cycles after; the load writes column c no earlier than ``4 + c`` cycles after
    dispatch (walker start, SBUF request, SBUF response, the answer's register, the array's input register, at
    least one cycle each).
    """
    return max((partitions - 1) * row_pitch(cuts) - 4, 0)


def _rotate(m, values, amount, partitions: int, name: str):
    """``out[k] = values[(k + amount) mod P]``: partition ``partition + k`` becomes array row k."""
    flat = Signal(16 * partitions, name=f"{name}_flat")
    m.d.comb += flat.eq(values.as_value())
    out = Signal(data.ArrayLayout(16, partitions), name=name)
    m.d.comb += out.as_value().eq(Cat(flat, flat).bit_select(amount * 16, 16 * partitions))
    return out


class TensorEngine(wiring.Component):
    """P x P tensor engine: command intake and checks, two SBUF read ports, the systolic array and PSUM.

    Parameters
    ----------
    partitions : int
        P, a power of two in 4..128.
    sbuf_bytes : int
        Bytes in each SBUF partition (patterns must stay inside), a power of two in 1 KiB..256 KiB.
    dtypes : int
        The operand formats built in, a mask (:data:`trntile.hdl.params.DTYPES`; default all). A command
        of another format is refused with ``TensorError.DTYPE``.
    fp_cuts : int
        A register inside each float unit: the PEs' multipliers and binary32 adders and PSUM's adders, and
        after PSUM's block RAM (:data:`trntile.hdl.params.FP_CUTS`; default 0; no effect without a float
        format). A cycle more per array row, P + 3 more for a result; PSUM writes a word
        :func:`~trntile.hdl.psum.psum_write_delay` cycles after its result, so an accumulating column waits
        while a column taken in the cycles just before has the same PSUM word (GEMMs never wait).

    Members
    -------
    command : ``In(stream.Signature(tensor_command_layout))``
        Commands, in program order.
    stationary_read, moving_read : ``Out(sbuf_read_signature(P))``
        SBUF read ports for LoadStationary and MultiplyMoving operands. Responses are taken as they come
        (``response.ready`` is high whenever a response is due), but for a moving column that waits with
        ``fp_cuts`` (above); the engine keeps up to ``_TAGS`` moving reads outstanding.
    psum_read : ``In(stream.Signature({bank, offset}))``; psum_read_data : ``Out(stream.Signature(ArrayLayout(32, P)))``
        Read one word of every PSUM partition (for the ACT engine and testbenches); data one cycle later.
    idle : ``Out(1)``
        Nothing accepted is still in progress: every PSUM write of every command taken has been done.
    check_busy : ``Out(1)``
        A command is in the check stage (taken into a register, three steps, then dispatch). It leaves
        dispatched or refused; when refused, ``error`` is set in the cycle it leaves, so for a lone command in
        the cycle ``check_busy`` falls.
    load_done, multiply_done : ``Out(1)``
        One-cycle pulse per completed LoadStationary (weights latched) / MultiplyMoving (all its PSUM
        words written and readable), each in command order.
    error, error_code : ``Out(1)``, ``Out(4)``
        Sticky: a command was refused, and the :class:`TensorError` of the first refused since the last
        ``error_clear``.
    error_clear : ``In(1)``
        Clears ``error`` and ``error_code``.
    errors, busy_cycles, macs : ``Out(16)``, ``Out(48)``, ``Out(48)``
        Counters: refused commands; cycles with a command accepted or in progress; useful multiply-
        accumulates (K x M per moving column).
    fault : ``Out(1)``
        Sticky internal consistency check (a PSUM result arrived with no write command); never set
        unless the engine itself is broken.
    """

    _TAGS = 8  # moving reads outstanding, sized for full rate at an SBUF read latency of up to 6 cycles

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 dtypes: int = DTYPES_PARAM.default, fp_cuts: int = FP_CUTS.default):
        self._partitions = PARTITIONS.validate(partitions)
        self._sbuf_bytes = SBUF_BYTES.validate(sbuf_bytes)
        self._dtypes = DTYPES_PARAM.validate(dtypes)
        self._cuts = float_cuts(self._dtypes, FP_CUTS.validate(fp_cuts))
        p = self._partitions
        super().__init__({
            "command": In(stream.Signature(tensor_command_layout)),
            "stationary_read": Out(sbuf_read_signature(p)),
            "moving_read": Out(sbuf_read_signature(p)),
            "psum_read": In(stream.Signature(psum_read_layout(p))),
            "psum_read_data": Out(stream.Signature(data.ArrayLayout(32, p))),
            "idle": Out(1), "check_busy": Out(1), "load_done": Out(1), "multiply_done": Out(1),
            "error": Out(1), "error_code": Out(4), "error_clear": In(1),
            "errors": Out(16), "busy_cycles": Out(COUNTER_BITS), "macs": Out(COUNTER_BITS),
            "fault": Out(1),
        })

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def sbuf_bytes(self) -> int:
        return self._sbuf_bytes

    # -- checks ------------------------------------------------------------------------------------------

    def _static_checks(self, m, payload, lasts, take):
        """The checks that depend on the command alone, in three registered steps of one command each (the
        caller takes a new command only into an empty step 1, so at most every other cycle; ``payload`` and
        ``lasts``, each dimension's count - 1, come from registers, so the multipliers of step 1 start at
        registers):

        1. taken (``take``): the command with its pattern's products, so that no multiplier is in a later
           step: each dimension's span ``stride * (count - 1)`` and the products of counts 0 x 1 and 2 x 3. A
           pair product is kept saturated at 11 bits: the walk's length (their product) is compared with a
           size of at most 4P = 512, so a pair above that can only fail the comparison, saturated or not
           (every count is at least 1 when it matters), and the length's multiplication is 11 x 11 bits;
        2. the field checks (rules up to ``PSUM_OFFSET``), the walk's length (the pairs' product) and the
           sums of its negative and positive spans;
        3. the walk's length against M or N, its first and last byte against the partition.

        Returns ``(valid, commands, advance, code)``: each step's valid bit and command, the ``advance``
        signals the caller drives (step i hands its command on), and ``code``, registered with step 3's
        command: the first :class:`TensorError` of those the command alone decides (0: none)."""
        p, words = self._partitions, 4 * self._partitions
        valid = [Signal(name=f"check{i}_valid") for i in range(3)]
        cmds = [Signal(tensor_command_layout, name=f"check{i}_cmd") for i in range(3)]
        advance = [Signal(name=f"check{i}_advance") for i in range(3)]

        # step 1
        counts = [payload.pattern.dims[d].count for d in range(PATTERN_DIMS)]
        pairs = [Signal(11, name=f"count_pair{i}") for i in range(2)]
        spans = [Signal(signed(STRIDE_BITS + COUNT_BITS + 1), name=f"pattern_span{d}") for d in range(PATTERN_DIMS)]
        with m.If(take):
            m.d.sync += cmds[0].eq(payload)
            for pair, (a, b) in zip(pairs, [(counts[0], counts[1]), (counts[2], counts[3])]):
                product = Signal(2 * COUNT_BITS, name=f"{pair.name}_full")
                m.d.comb += product.eq(a * b)
                m.d.sync += pair.eq(Mux(product > 2047, 2047, product))
            for d, span in enumerate(spans):
                m.d.sync += span.eq(payload.pattern.dims[d].stride * lasts[d])

        # step 2
        cmd = cmds[0]
        is_load = cmd.op == LOAD_STATIONARY
        size = Mux(is_load, cmd.m, cmd.n)
        counts = [cmd.pattern.dims[d].count for d in range(PATTERN_DIMS)]
        small = Cat(*((c >= 1) & (c <= size) for c in counts)).all()  # each count is at most the product
        problems = [  # in TensorError order: the first that holds is reported
            (TensorError.DTYPE, ~Const(self._dtypes, 8).bit_select(cmd.dtype, 1)),  # unknown or not built
            (TensorError.K, (cmd.k == 0) | (cmd.k > p)),
            (TensorError.PARTITION, cmd.partition + cmd.k > p),
            (TensorError.SIZE, (size == 0) | (size > Mux(is_load, p, words))),
            (TensorError.PSUM_BANK, ~is_load & (cmd.psum_bank >= PSUM_BANKS)),
            (TensorError.PSUM_OFFSET, ~is_load & (cmd.psum_offset + cmd.n > words)),
        ]
        field_code = Signal(4)
        for error, condition in reversed(problems):  # the earliest in the list is assigned last and wins
            with m.If(condition):
                m.d.comb += field_code.eq(error)
        codes = [Signal(4, name=f"check{i}_code") for i in (1, 2)]
        low = Signal(signed(STRIDE_BITS + COUNT_BITS + 3), name="pattern_low")
        high = Signal(signed(STRIDE_BITS + COUNT_BITS + 3), name="pattern_high")
        counts_small, length = Signal(name="pattern_counts_small"), Signal(22, name="pattern_length")
        with m.If(advance[0]):
            m.d.sync += [cmds[1].eq(cmd), codes[0].eq(field_code), counts_small.eq(small),
                         length.eq(pairs[0] * pairs[1]),
                         low.eq(tree_sum([Mux(s < 0, s, 0) for s in spans])),
                         high.eq(tree_sum([Mux(s > 0, s, 0) for s in spans]))]

        # step 3
        cmd = cmds[1]
        wide = cmd.dtype == DTYPES["bf16"].code
        first_byte = Signal(signed(ADDRESS_BITS + STRIDE_BITS + COUNT_BITS + 6), name="pattern_first_byte")
        last_element = Signal.like(first_byte, name="pattern_last_element")   # the byte the last element starts at
        m.d.comb += [first_byte.eq(cmd.pattern.address + Mux(wide, low << 1, low)),
                     last_element.eq(cmd.pattern.address + Mux(wide, high << 1, high))]
        aligned = ~wide | ~cmd.pattern.address[0]
        bounds_ok = aligned & (first_byte >= 0) & (last_element <= Mux(wide, self._sbuf_bytes - 2, self._sbuf_bytes - 1))
        count_ok = counts_small & (length == Mux(cmd.op == LOAD_STATIONARY, cmd.m, cmd.n))
        with m.If(advance[1]):
            m.d.sync += [cmds[2].eq(cmd),
                         codes[1].eq(Mux(codes[0] != 0, codes[0],
                                         Mux(~count_ok, TensorError.PATTERN_COUNT,
                                             Mux(~bounds_ok, TensorError.PATTERN_BOUNDS, 0))))]

        # valid bits: a step takes the one before when it is empty or moving on itself
        with m.If(take):
            m.d.sync += valid[0].eq(1)
        with m.Elif(advance[0]):
            m.d.sync += valid[0].eq(0)
        for i in (1, 2):
            with m.If(advance[i - 1]):
                m.d.sync += valid[i].eq(1)
            with m.Elif(advance[i]):
                m.d.sync += valid[i].eq(0)
        return valid, cmds, advance, codes[1]

    # -- the engine ----------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        p = self._partitions
        words = 4 * p

        cuts = self._cuts
        m.submodules.array = array = SystolicArray(partitions=p, dtypes=self._dtypes, fp_cuts=cuts)
        m.submodules.psum = psum = PSUM(partitions=p, floats=bool(self._dtypes & FLOAT_DTYPES),  # int8 only: no fp32 adders
                                        fp_cuts=cuts)
        m.submodules.stationary_walker = s_walker = AccessPatternWalker()
        m.submodules.moving_walker = m_walker = AccessPatternWalker()
        wiring.connect(m, wiring.flipped(self.psum_read), psum.read)
        wiring.connect(m, psum.read_data, wiring.flipped(self.psum_read_data))
        m.d.comb += [psum.result.eq(array.result), self.fault.eq(psum.orphan)]

        # ---- check: the command registered, three steps for what it alone decides, the state's checks -------
        cmd_done = Signal()  # dispatched or dropped this cycle
        intake_valid = Signal()
        intake = Signal(tensor_command_layout)
        take = self.command.valid & self.command.ready
        check_take = Signal()
        # Each dimension's count - 1, worked out as the command is taken: step 1's multiplications start at
        # registers, with no subtraction before them.
        intake_lasts = [Signal(COUNT_BITS, name=f"intake_last{d}") for d in range(PATTERN_DIMS)]
        check_valid, check_cmds, check_advance, static_code = self._static_checks(m, intake, intake_lasts,
                                                                                  check_take)
        cmd, cmd_valid = check_cmds[2], check_valid[2]
        # Neither ready nor step 1's intake waits for the steps to move on (a long path back from the
        # dispatch): a command every other cycle, more than any stream of real commands needs.
        m.d.comb += [check_advance[2].eq(cmd_done),
                     check_advance[1].eq(check_valid[1] & (~cmd_valid | cmd_done)),
                     check_advance[0].eq(check_valid[0] & (~check_valid[1] | check_advance[1])),
                     check_take.eq(intake_valid & ~check_valid[0]),
                     self.command.ready.eq(~intake_valid),
                     self.check_busy.eq(intake_valid | Cat(*check_valid).any())]
        with m.If(take):
            m.d.sync += [intake.eq(self.command.payload), intake_valid.eq(1)]
            m.d.sync += [last.eq(self.command.payload.pattern.dims[d].count - 1)
                         for d, last in enumerate(intake_lasts)]
        with m.Elif(check_take):
            m.d.sync += intake_valid.eq(0)

        # The operand the next MultiplyMoving will use: the last LoadStationary dispatched.
        stationary_valid = Signal()
        stationary_k = Signal(8)
        stationary_m = Signal(8)
        stationary_dtype = Signal(3)
        front_buffer = Signal()

        is_load = cmd.op == LOAD_STATIONARY
        wide = cmd.dtype == DTYPES["bf16"].code
        state_problems = [  # in TensorError order, after every check of the command alone
            (TensorError.NO_STATIONARY, ~is_load & ~stationary_valid),
            (TensorError.MISMATCH, ~is_load & ((cmd.k != stationary_k) | (cmd.dtype != stationary_dtype))),
        ]
        code = Signal(4)
        m.d.comb += code.eq(static_code)
        with m.If(static_code == 0):
            for error, condition in reversed(state_problems):
                with m.If(condition):
                    m.d.comb += code.eq(error)

        with m.If(self.error_clear):
            m.d.sync += [self.error.eq(0), self.error_code.eq(0)]
        with m.If(cmd_valid & (code != 0)):
            m.d.comb += cmd_done.eq(1)
            m.d.sync += self.errors.eq(self.errors + (self.errors != (1 << 16) - 1))
            with m.If(~self.error | self.error_clear):
                m.d.sync += [self.error.eq(1), self.error_code.eq(code)]

        # ---- weight buffers ---------------------------------------------------------------------------
        drain = _drain_cycles(p, cuts)
        uses = [Signal(range(16), name=f"buffer{b}_uses") for b in range(2)]  # MultiplyMovings not yet streamed
        drains = [Signal(range(max(drain, 1) + 1), name=f"buffer{b}_drain") for b in range(2)]  # no 0-bit signals
        loaded = [Signal(name=f"buffer{b}_loaded") for b in range(2)]
        use_added = [Signal(name=f"buffer{b}_use_added") for b in range(2)]
        use_retired = [Signal(name=f"buffer{b}_use_retired") for b in range(2)]
        for b in range(2):
            m.d.sync += uses[b].eq(uses[b] + use_added[b] - use_retired[b])
            with m.If(use_retired[b]):
                m.d.sync += drains[b].eq(drain)
            with m.Elif(drains[b] != 0):
                m.d.sync += drains[b].eq(drains[b] - 1)
        target = ~front_buffer  # where a LoadStationary goes
        target_free = Mux(target, (uses[1] == 0) & (drains[1] == 0), (uses[0] == 0) & (drains[0] == 0))

        # ---- stationary unit: one LoadStationary at a time ---------------------------------------------
        s_busy = Signal()
        s_buffer = Signal()
        s_partition = Signal(8)
        s_last_column = Signal(8)
        s_column = Signal(8)
        dispatch_load = Signal()
        m.d.comb += [
            dispatch_load.eq(cmd_valid & (code == 0) & is_load & ~s_busy & target_free),
            s_walker.start.valid.eq(dispatch_load),
            s_walker.start.payload.pattern.eq(cmd.pattern),
            s_walker.start.payload.shift.eq(wide),
        ]
        with m.If(dispatch_load):
            m.d.comb += cmd_done.eq(1)
            m.d.sync += [
                s_busy.eq(1), s_buffer.eq(target), s_partition.eq(cmd.partition), s_last_column.eq(cmd.m - 1),
                s_column.eq(0),
                front_buffer.eq(target), stationary_valid.eq(1), stationary_k.eq(cmd.k),
                stationary_m.eq(cmd.m), stationary_dtype.eq(cmd.dtype),
            ]
            for b in range(2):
                with m.If(target == b):
                    m.d.sync += loaded[b].eq(0)
        s_wide = Signal()
        with m.If(dispatch_load):
            m.d.sync += s_wide.eq(wide)
        s_request = self.stationary_read.request
        m.d.comb += [
            s_request.valid.eq(s_walker.address.valid),
            s_request.payload.address.eq(s_walker.address.payload.address),
            s_request.payload.wide.eq(s_wide),
            s_walker.address.ready.eq(s_request.ready),
            self.stationary_read.response.ready.eq(1),
        ]
        # The SBUF's answer is registered as it comes, and rotated from that register into the array's
        # input register: a block RAM's output goes no further than a register (as for the moving reads).
        load_answer_valid = Signal()
        load_answer = Signal(data.ArrayLayout(16, p))
        m.d.sync += [load_answer_valid.eq(self.stationary_read.response.valid),
                     load_answer.eq(self.stationary_read.response.payload)]
        load_values = _rotate(m, load_answer, s_partition, p, "load_rotated")
        load_last = Signal()
        with m.If(load_answer_valid):
            m.d.sync += [
                array.load.payload.column.eq(s_column), array.load.payload.buffer.eq(s_buffer),
                array.load.payload.values.eq(load_values), s_column.eq(s_column + 1),
            ]
            with m.If(s_column == s_last_column):
                m.d.sync += s_busy.eq(0)
                for b in range(2):
                    with m.If(s_buffer == b):
                        m.d.sync += loaded[b].eq(1)
        m.d.sync += [
            array.load.valid.eq(load_answer_valid),
            load_last.eq(load_answer_valid & (s_column == s_last_column)),
            self.load_done.eq(array.load.valid & load_last),
        ]

        # ---- moving unit: a one-entry slot, then the walk -----------------------------------------------
        slot_valid = Signal()
        slot = Signal(data.StructLayout({
            "buffer": 1, "dtype": 2, "partition": 8, "k": 8, "m": 8, "n": 10, "bank": 3, "offset": 10,
            "accumulate": 1, "pattern": pattern_layout}))
        slot_macs = Signal(16)  # K x M: multiply-accumulates per moving column
        start_moving = Signal()
        dispatch_multiply = Signal()
        m.d.comb += dispatch_multiply.eq(cmd_valid & (code == 0) & ~is_load & (~slot_valid | start_moving))
        with m.If(start_moving):
            m.d.sync += slot_valid.eq(0)
        with m.If(dispatch_multiply):
            m.d.comb += cmd_done.eq(1)
            m.d.sync += [
                slot_valid.eq(1),
                slot.buffer.eq(front_buffer), slot.dtype.eq(cmd.dtype), slot.partition.eq(cmd.partition),
                slot.k.eq(cmd.k), slot.m.eq(stationary_m), slot.n.eq(cmd.n), slot.bank.eq(cmd.psum_bank),
                slot.offset.eq(cmd.psum_offset), slot.accumulate.eq(cmd.accumulate), slot.pattern.eq(cmd.pattern),
                slot_macs.eq(cmd.k * stationary_m),
            ]
            for b in range(2):
                with m.If(front_buffer == b):
                    m.d.comb += use_added[b].eq(1)

        slot_loaded = Mux(slot.buffer, loaded[1], loaded[0])
        slot_wide = slot.dtype == DTYPES["bf16"].code
        m.d.comb += [
            start_moving.eq(slot_valid & slot_loaded & psum.command.ready & m_walker.start.ready),
            psum.command.valid.eq(slot_valid & slot_loaded & m_walker.start.ready),
            psum.command.payload.bank.eq(slot.bank),
            psum.command.payload.offset.eq(slot.offset),
            psum.command.payload.count.eq(slot.n),
            psum.command.payload.columns.eq(slot.m),
            psum.command.payload.accumulate.eq(slot.accumulate),
            psum.command.payload.dtype.eq(slot.dtype),
            m_walker.start.valid.eq(slot_valid & slot_loaded & psum.command.ready),
            m_walker.start.payload.pattern.eq(slot.pattern),
            m_walker.start.payload.shift.eq(slot_wide),
        ]

        # What the walk in progress needs per column; copied from the slot when it starts.
        # With cuts, PSUM writes a word psum_write_delay cycles after its result arrives, so two results for
        # one word must arrive that many cycles apart: each column carries its PSUM word (bank, offset + n) and
        # whether it accumulates, and an accumulating column waits while its word is that of a column taken
        # in the cycles just before (below).
        spacing = psum_write_delay(cuts)
        place = {"accumulate": 1, "bank": 3, "word": 10} if spacing > 1 else {}
        tag_layout = data.StructLayout({"buffer": 1, "dtype": 2, "partition": 8, "k": 8, "macs": 16, "last": 1,
                                        **place})
        walk = Signal(tag_layout)
        walk_wide = Signal()
        with m.If(start_moving):
            m.d.sync += [walk.buffer.eq(slot.buffer), walk.dtype.eq(slot.dtype), walk.partition.eq(slot.partition),
                         walk.k.eq(slot.k), walk.macs.eq(slot_macs), walk_wide.eq(slot_wide)]
            if place:
                m.d.sync += [walk.accumulate.eq(slot.accumulate), walk.bank.eq(slot.bank),
                             walk.word.eq(slot.offset)]
        m.submodules.tags = tags = fifo.SyncFIFO(width=tag_layout.size, depth=self._TAGS)
        m_request = self.moving_read.request
        tag_in = Signal(tag_layout)
        m.d.comb += [
            tag_in.eq(walk), tag_in.last.eq(m_walker.address.payload.last),
            m_request.valid.eq(m_walker.address.valid & tags.w_rdy),
            m_request.payload.address.eq(m_walker.address.payload.address),
            m_request.payload.wide.eq(walk_wide),
            m_walker.address.ready.eq(m_request.ready & tags.w_rdy),
            tags.w_en.eq(m_request.valid & m_request.ready),
            tags.w_data.eq(tag_in),
        ]
        if place:
            with m.If(tags.w_en & ~start_moving):
                m.d.sync += walk.word.eq(walk.word + 1)

        response = self.moving_read.response
        arrived = Signal()
        taking = tags.r_rdy
        if place:
            hold = Signal()  # the next column's PSUM word is too close behind the same word (above)
            taking = tags.r_rdy & ~hold
        m.d.comb += [response.ready.eq(taking), arrived.eq(response.valid & taking), tags.r_en.eq(arrived)]
        # The answer and its tag are registered as they arrive, and rotated (partition ``partition + k`` to
        # array row k) from those registers into the array's input register: an SBUF block RAM's output
        # goes no further than a register (the rotation after it was the P = 8 engine's slowest path).
        answer_valid = Signal()
        answer = Signal(data.ArrayLayout(16, p))
        tag = Signal(tag_layout)
        m.d.sync += [answer_valid.eq(arrived), answer.eq(response.payload), tag.eq(tags.r_data)]
        if place:
            # The columns taken in the last spacing - 1 cycles: the answer register's, then copies of it.
            recent = [(answer_valid, tag)]
            while len(recent) < spacing - 1:
                valid, earlier = Signal(name=f"taken{len(recent)}_valid"), Signal(tag_layout, name=f"taken{len(recent)}")
                m.d.sync += [valid.eq(recent[-1][0]), earlier.eq(recent[-1][1])]
                recent.append((valid, earlier))
            upcoming = data.View(tag_layout, tags.r_data)
            m.d.comb += hold.eq(upcoming.accumulate & Cat(*(
                valid & (earlier.bank == upcoming.bank) & (earlier.word == upcoming.word)
                for valid, earlier in recent)).any())
        moving_values = _rotate(m, answer, tag.partition, p, "moving_rotated")
        offer_macs = Signal(16)
        offer_last = Signal()
        m.d.sync += [
            array.moving.valid.eq(answer_valid),
            array.moving.payload.values.eq(moving_values),
            array.moving.payload.active.eq(Cat(*(tag.k > row for row in range(p)))),
            array.moving.payload.buffer.eq(tag.buffer),
            array.moving.payload.dtype.eq(tag.dtype),
            offer_macs.eq(tag.macs),
            offer_last.eq(answer_valid & tag.last),
        ]
        for b in range(2):
            m.d.comb += use_retired[b].eq(answer_valid & tag.last & (tag.buffer == b))
        with m.If(array.moving.valid):
            m.d.sync += self.macs.eq(self.macs + offer_macs)

        # ---- completion: the last PSUM write of a column offered at t is in cycle t + result_latency + P ------
        # (psum_write_delay - 1 more with cuts)
        flight = result_latency(p, cuts) + p + psum_write_delay(cuts) - 1
        in_flight = Signal(flight)   # bit j: a column was offered j + 1 cycles ago
        last_in_flight = Signal(flight)
        m.d.sync += [
            in_flight.eq(Cat(array.moving.valid, in_flight[:-1])),
            last_in_flight.eq(Cat(array.moving.valid & offer_last, last_in_flight[:-1])),
            self.multiply_done.eq(last_in_flight[-1]),
        ]

        m.d.comb += self.idle.eq(~(intake_valid | Cat(*check_valid).any() | s_busy | slot_valid | m_walker.address.valid
                                   | tags.r_rdy | answer_valid | load_answer_valid | array.load.valid
                                   | array.moving.valid | in_flight.any()))
        with m.If(~self.idle | (self.command.valid & self.command.ready)):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        return m
