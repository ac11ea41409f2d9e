"""PSUM: P partitions x 8 banks x 4P words of 32 bits, written by the systolic array's columns.

Each MultiplyMoving first sends a write *command* (bank, offset, count N, columns used M, overwrite or
accumulate, dtype); then column m of the array delivers its N results in order, and partition m writes the
n-th one to word ``offset + n`` of ``bank`` (only for m < M). The command is queued in every partition, so
the columns can run at their own skew (column m is m cycles behind column 0).

Accumulate is a read-add-write: the old word is read in the cycle the result arrives and the sum
(binary32 round to nearest even, or int32 wrap for int8, as :mod:`trntile.golden.numerics` defines) is
written the next cycle. The read is transparent to that write, so results for the same word one cycle
apart (one command straight after another) see each other.

Built with ``fp_cuts`` = c of 1 or 2 (:data:`trntile.hdl.params.FP_CUTS`, floats only), the old word goes
into a register as it leaves the block RAM and the binary32 adder has c registers inside: every word is
written :func:`psum_write_delay` = 2 + c cycles after its result arrives, and two results for the same word
must arrive at least that many cycles apart. The tensor engine sees to it
(:class:`~trntile.hdl.tensor_engine.TensorEngine` holds back an accumulating column whose word is that of
one of the 1 + c columns before it).

``read`` / ``read_data`` give the same word of every partition, one cycle later, for the ACT engine and
the testbenches.
"""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fp import FP32Adder
from .params import FP_CUTS, PARTITIONS
from .systolic import FP_CUT_STEPS, INT8, delayed, result_layout

__all__ = ["PSUM", "PSUM_BANKS", "psum_command_layout", "psum_read_layout", "psum_write_delay",
           "psum_partition_module", "psum_partition_verilog"]

PSUM_BANKS = 8
_COMMANDS_QUEUED = 4


def psum_write_delay(cuts: int = 0) -> int:
    """Cycles from a result arriving to its word being written, which a result arriving in that cycle already
    reads: 1, or with ``cuts`` (floats only) 2 + cuts: a register after the block RAM and the adder's."""
    return 2 + cuts if cuts else 1


def psum_command_layout(partitions: int) -> data.StructLayout:
    """Where one MultiplyMoving's results go: ``count`` = N (1..4P) words from ``offset`` of ``bank``, in
    partitions below ``columns`` = M (1..P); ``accumulate`` adds to what is there."""
    return data.StructLayout({"bank": range(PSUM_BANKS), "offset": range(4 * partitions),
                              "count": range(4 * partitions + 1), "columns": range(partitions + 1),
                              "accumulate": 1, "dtype": 2})


def psum_read_layout(partitions: int) -> data.StructLayout:
    """Payload of a PSUM read: the word ``offset`` (0..4P-1) of ``bank`` (0..7), the same in every partition."""
    return data.StructLayout({"bank": range(PSUM_BANKS), "offset": range(4 * partitions)})


def psum_partition_module(partitions: int | str, *, floats: bool = True, cuts: int | str = 0) -> str:
    """The Verilog module of one PSUM partition for P = ``partitions``. PSUM instantiates it by name, P times,
    so that Amaranth translates it once and Verilator compiles it once (as the systolic array does its PE).
    Without ``floats`` (a tensor engine built for int8 only) it has no binary32 adder: ``_int`` in the name;
    with ``cuts`` registers in its adder, ``_c<cuts>``."""
    kind = "_int" if not floats else f"_c{cuts}" if cuts != 0 else ""
    return f"trntile_psum_partition{kind}_p{partitions}"


def psum_partition_verilog(partitions: int, *, floats: bool = True, cuts: int = 0) -> str:
    """The Verilog of module :func:`psum_partition_module` ``(partitions, floats=floats, cuts=cuts)``."""
    from amaranth.back import verilog

    return verilog.convert(_Partition(partitions, floats=floats, cuts=cuts),
                           name=psum_partition_module(partitions, floats=floats, cuts=cuts))


class _Partition(wiring.Component):
    """One partition's words, its queue of write commands and its read-add-write pipeline. ``index`` is the
    partition's number (the partition writes only for commands whose ``columns`` exceed it). ``cuts``: the
    registers inside the binary32 adder (floats only), each a cycle more before the write."""

    def __init__(self, partitions: int, *, floats: bool = True, cuts: int = 0):
        self._p = partitions
        self._floats = floats
        self._cuts = cuts if floats else 0
        super().__init__({
            "index": In(range(partitions)),
            "command": In(stream.Signature(psum_command_layout(partitions))),
            "result_valid": In(1), "result_value": In(32),
            "read_address": In(range(PSUM_BANKS * 4 * partitions)), "read_enable": In(1), "read_data": Out(32),
            "orphan": Out(1),  # a result arrived with no command queued (a control error)
        })

    def elaborate(self, platform):
        m = Module()
        p, words = self._p, 4 * self._p
        m.submodules.words = memory = Memory(shape=32, depth=PSUM_BANKS * words, init=[])
        write = memory.write_port()
        # The old word's read sees a write to it in the same cycle: through the port's transparency, or with
        # cuts through a register beside the block RAM (so that the RAM's output goes straight into a register).
        old = memory.read_port(transparent_for=() if self._cuts else (write,))
        external = memory.read_port()
        m.d.comb += [external.addr.eq(self.read_address), external.en.eq(self.read_enable),
                     self.read_data.eq(external.data)]

        layout = psum_command_layout(p)
        m.submodules.queue = queue = fifo.SyncFIFO(width=layout.size, depth=_COMMANDS_QUEUED)
        m.d.comb += [queue.w_data.eq(self.command.payload), queue.w_en.eq(self.command.valid),
                     self.command.ready.eq(queue.w_rdy)]
        current = data.View(layout, queue.r_data)
        written = Signal(range(words + 1))  # results of the current command so far

        # Stage 0: the result arrives; address it, read the old word, retire the command after its N-th.
        address = Signal(range(PSUM_BANKS * words))
        m.d.comb += address.eq(current.bank * words + current.offset + written)
        take = Signal()
        m.d.comb += take.eq(self.result_valid & queue.r_rdy)
        with m.If(self.result_valid & ~queue.r_rdy):
            m.d.sync += self.orphan.eq(1)
        with m.If(take):
            with m.If(written + 1 == current.count):
                m.d.comb += queue.r_en.eq(1)
                m.d.sync += written.eq(0)
            with m.Else():
                m.d.sync += written.eq(written + 1)
        m.d.comb += [old.addr.eq(address), old.en.eq(1)]

        # Stage 1: add (or not) and write; with cuts, the add goes on for as many more stages, and what the
        # write needs goes beside it.
        pending = Signal()
        pending_address = Signal.like(address)
        pending_value = Signal(32)
        pending_accumulate = Signal()
        pending_int = Signal()
        m.d.sync += [
            pending.eq(take & (self.index < current.columns)),
            pending_address.eq(address), pending_value.eq(self.result_value),
            pending_accumulate.eq(current.accumulate), pending_int.eq(current.dtype == INT8),
        ]

        def wait(signals: dict, cycles: int, name: str) -> dict:
            return {key: delayed(m, value, cycles, f"{key}{name}") for key, value in signals.items()}

        stage = {"pending": pending, "address": pending_address, "value": pending_value,
                 "accumulate": pending_accumulate, "int": pending_int}
        old_word = old.data
        if self._cuts:
            # The word as it leaves the block RAM goes into a register (a block RAM's output is slow on an
            # FPGA), and the rest with it; a word written in the cycle of the read comes from beside the RAM.
            written_now = Signal(data.StructLayout({"valid": 1, "data": 32}))
            m.d.sync += [written_now.valid.eq(write.en & (write.addr == address)), written_now.data.eq(write.data)]
            stage = wait(stage, 1, "_ram")
            old_word = Signal(32)
            m.d.comb += old_word.eq(Mux(delayed(m, written_now.valid, 1, "written_valid_ram"),
                                        delayed(m, written_now.data, 1, "written_data_ram"),
                                        delayed(m, old.data, 1, "old_ram")))
        int_sum = Signal(32)
        m.d.comb += int_sum.eq(old_word + stage["value"])
        beside = wait({**stage, "int_sum": int_sum}, self._cuts, "")
        total = beside["int_sum"]
        if self._floats:
            m.submodules.adder = adder = FP32Adder(pipelined=FP_CUT_STEPS[:self._cuts])
            m.d.comb += [adder.a.eq(old_word), adder.b.eq(stage["value"])]
            if self._cuts:
                m.d.comb += adder.advance.eq(1)
            total = Mux(beside["int"], beside["int_sum"], adder.sum)
        m.d.comb += [
            write.addr.eq(beside["address"]),
            write.data.eq(Mux(beside["accumulate"], total, beside["value"])),
            write.en.eq(beside["pending"]),
        ]
        return m


class PSUM(wiring.Component):
    """The partial-sum memory of the tensor engine (see the module docstring).

    Parameters
    ----------
    partitions : int
        P, a power of two in 4..128.
    floats : bool
        Whether float results come (accumulate needs a binary32 adder per partition); without, int32 only.
    fp_cuts : int
        Registers inside each binary32 adder (:data:`trntile.hdl.params.FP_CUTS`, floats only), and then one
        after the block RAM: a word is written :func:`psum_write_delay` cycles after its result, and results
        for the same word must arrive at least that many cycles apart.

    Members
    -------
    command : ``In(stream.Signature(psum_command_layout(P)))``
        One per MultiplyMoving, before its results; accepted when every partition has room to queue it.
    result : ``In(result_layout(P))``
        The systolic array's output: ``result[m]`` goes to partition m.
    read : ``In(stream.Signature(psum_read_layout(P)))``; read_data : ``Out(stream.Signature(ArrayLayout(32, P)))``
        Read word ``offset`` of ``bank`` in every partition; the data follow one cycle later.
    orphan : ``Out(1)``
        Sticky: a result arrived in some partition with no command queued (it was dropped).
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, floats: bool = True,
                 fp_cuts: int = FP_CUTS.default):
        self._partitions = PARTITIONS.validate(partitions)
        self._floats = bool(floats)
        self._cuts = FP_CUTS.validate(fp_cuts) if self._floats else 0
        p = self._partitions
        super().__init__({
            "command": In(stream.Signature(psum_command_layout(p))),
            "result": In(result_layout(p)),
            "read": In(stream.Signature(psum_read_layout(p))),
            "read_data": Out(stream.Signature(data.ArrayLayout(32, p))),
            "orphan": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._partitions
        # Each partition's ports, as signals (the partitions are instances of one module, see above).
        command_layout = psum_command_layout(p)
        parts = [{"command_valid": Signal(name=f"partition{index}_command_valid"),
                  "command_ready": Signal(name=f"partition{index}_command_ready"),
                  "read_data": Signal(32, name=f"partition{index}_read_data"),
                  "orphan": Signal(name=f"partition{index}_orphan")} for index in range(p)]
        room = Signal()  # every partition can queue the command
        accept = Signal()
        m.d.comb += [room.eq(Cat(*(part["command_ready"] for part in parts)).all()),
                     accept.eq(self.command.valid & room), self.command.ready.eq(room)]
        read_fire = Signal()
        m.d.comb += [self.read.ready.eq(~self.read_data.valid | self.read_data.ready),
                     read_fire.eq(self.read.valid & self.read.ready)]
        with m.If(read_fire):
            m.d.sync += self.read_data.valid.eq(1)
        with m.Elif(self.read_data.ready):
            m.d.sync += self.read_data.valid.eq(0)
        read_address = Signal(range(PSUM_BANKS * 4 * p))
        m.d.comb += read_address.eq(self.read.payload.bank * (4 * p) + self.read.payload.offset)
        command = Signal(command_layout.size)
        m.d.comb += command.eq(self.command.payload)
        orphans = []
        for index, part in enumerate(parts):
            m.submodules[f"partition{index}"] = Instance(
                psum_partition_module(p, floats=self._floats, cuts=self._cuts), i_clk=ClockSignal(), i_rst=ResetSignal(),
                i_index=index, i_command__payload=command, i_command__valid=accept,
                o_command__ready=part["command_ready"],
                i_result_valid=self.result[index].valid, i_result_value=self.result[index].value,
                i_read_address=read_address, i_read_enable=read_fire, o_read_data=part["read_data"],
                o_orphan=part["orphan"])
            m.d.comb += self.read_data.payload[index].eq(part["read_data"])
            orphans.append(part["orphan"])
        m.d.comb += self.orphan.eq(Cat(*orphans).any())
        return m
