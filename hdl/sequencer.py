"""Per-engine sequencers, their shared instruction fetch, the semaphore file and the deadlock watchdog.

Each engine of the tile (tensor, ACT, DMA queue q) has a :class:`Sequencer` that runs its program
(:mod:`trntile.hdl.isa`): it prefetches instruction words from DRAM through the :class:`InstructionFetch`
unit, waits on semaphores, hands engine instructions to its engine and retires instructions in program
order, applying each one's SEM_SET and signal when it completes. ``docs/tile.md`` has the timing.

Retirement in order is what makes the tile's results independent of timing: an instruction's effects on the
semaphores happen only after every earlier instruction of its engine has completed, exactly as the golden
ISA simulator (:mod:`trntile.golden.tile`) executes them one by one.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arbiter import round_robin
from .axi import AXI4Signature, Burst
from .isa import (ENGINE_OPCODES, HEADER_BITS, INSTRUCTION_BITS, INSTRUCTION_BYTES, PAYLOAD_BITS, PAYLOAD_LAYOUTS,
                  EngineError, EngineKind, EngineState, Opcode, instruction_layout, sem_set_payload_layout)
from .params import AXI_DATA_WIDTH, SEMAPHORES

__all__ = ["update_layout", "fetched_layout", "InstructionFetch", "SemaphoreFile", "Sequencer", "Watchdog",
           "command_layout", "COUNTER_BITS"]

COUNTER_BITS = 32

#: One change to a semaphore: ``sem[index] = value`` if ``set``, else ``sem[index] += value``.
update_layout = data.StructLayout({"index": 8, "set": 1, "value": 32})

#: An instruction word as the fetch unit delivers it; ``error``: the memory answered an error for it.
fetched_layout = data.StructLayout({"word": INSTRUCTION_BITS, "error": 1})

#: What a sequencer hands its engine: the opcode and the payload.
command_layout = data.StructLayout({"opcode": 8, "payload": PAYLOAD_BITS})


class InstructionFetch(wiring.Component):
    """One AXI4 read master fetching instruction words for ``requesters`` sequencers.

    Each requester's request is held in a register of its own (one at a time), and the held requests are
    taken round-robin, one AR (an INCR burst of one 64-byte word) per cycle, up to ``outstanding`` in
    flight; ID 0 throughout, so answers return in order and a queue of requester numbers routes them. A
    word is delivered on ``words[i]`` when its last beat arrives; a requester must take it at once (each
    sequencer only asks for words it has room for), otherwise RREADY waits.

    Parameters
    ----------
    requesters : int
        Sequencers served.
    data_width : int
        AXI data width; a word takes ``512 / data_width`` beats.
    outstanding : int
        Reads in flight at most.

    Members
    -------
    requests : ``In(stream.Signature({address})).array(requesters)``
    words : ``Out(stream.Signature(fetched_layout)).array(requesters)``
    m_axi : ``Out(AXI4Signature(addr_width=32, data_width, id_width=1))``
        Reads only (AW and W never valid).
    idle : ``Out(1)``
        No request held and no read in flight.
    """

    def __init__(self, *, requesters: int, data_width: int = AXI_DATA_WIDTH.default, outstanding: int = 4):
        self._n = requesters
        self._width = AXI_DATA_WIDTH.validate(data_width)
        self._outstanding = outstanding
        self.axi_signature = AXI4Signature(addr_width=32, data_width=self._width, id_width=1)
        super().__init__({
            "requests": In(stream.Signature(data.StructLayout({"address": 32}))).array(requesters),
            "words": Out(stream.Signature(fetched_layout)).array(requesters),
            "m_axi": Out(self.axi_signature),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.m_axi
        beats = max(INSTRUCTION_BITS // self._width, 1)
        m.d.comb += [bus.awvalid.eq(0), bus.wvalid.eq(0), bus.bready.eq(1)]

        m.submodules.tags = tags = fifo.SyncFIFO(width=max((self._n - 1).bit_length(), 1), depth=self._outstanding)
        # Each request is taken into a register of its own first, so the round-robin below never reaches back
        # into a sequencer: one cycle more to the AR, and a requester can ask every other cycle (a word takes
        # several beats to come back anyway).
        held = [Signal(name=f"request{index}_held") for index in range(self._n)]
        held_address = [Signal(32, name=f"request{index}_address") for index in range(self._n)]
        for index, request in enumerate(self.requests):
            m.d.comb += request.ready.eq(~held[index])
            with m.If(request.valid & request.ready):
                m.d.sync += [held[index].eq(1), held_address[index].eq(request.payload.address)]
        # AR: a register loaded from the chosen requester whenever it is empty or being taken.
        ar_free = ~bus.arvalid | bus.arready
        grant = round_robin(m, [held[index] & ar_free & tags.w_rdy for index in range(self._n)], "fetch")
        for index in range(self._n):
            with m.If(grant[index]):
                m.d.sync += [bus.araddr.eq(held_address[index]), held[index].eq(0)]
                m.d.comb += tags.w_data.eq(index)
        m.d.comb += tags.w_en.eq(grant.any())
        with m.If(grant.any()):
            m.d.sync += bus.arvalid.eq(1)
        with m.Elif(bus.arready):
            m.d.sync += bus.arvalid.eq(0)
        m.d.comb += [bus.arlen.eq(beats - 1), bus.arsize.eq((self._width // 8 - 1).bit_length()),
                     bus.arburst.eq(Burst.INCR), bus.arid.eq(0)]

        # R: collect the beats of a word, hand it over with its last beat.
        word = Signal(max(INSTRUCTION_BITS, self._width))  # the beats so far, oldest lowest
        error = Signal()
        last = bus.rlast
        target = tags.r_data
        target_ready = Signal()
        m.d.comb += target_ready.eq(Cat(*(w.ready for w in self.words)).bit_select(target, 1))
        m.d.comb += bus.rready.eq(tags.r_rdy & (~last | target_ready))
        assembled = Signal(INSTRUCTION_BITS)
        if beats == 1:
            m.d.comb += assembled.eq(bus.rdata[:INSTRUCTION_BITS])
        else:
            m.d.comb += assembled.eq(Cat(word[:INSTRUCTION_BITS - self._width], bus.rdata))
        bad = error | (bus.rresp != 0)
        for index, out in enumerate(self.words):
            m.d.comb += [out.valid.eq(tags.r_rdy & bus.rvalid & last & (target == index)),
                         out.payload.word.eq(assembled), out.payload.error.eq(bad)]
        with m.If(bus.rvalid & bus.rready):
            with m.If(last):
                m.d.comb += tags.r_en.eq(1)
                m.d.sync += error.eq(0)
            with m.Else():
                m.d.sync += error.eq(bad)
                if beats > 1:
                    # beats fill the word from the bottom: shift down so the next lands above the last
                    m.d.sync += word.eq(Cat(word[self._width:INSTRUCTION_BITS - self._width], bus.rdata))
        m.d.comb += self.idle.eq(~tags.r_rdy & ~bus.arvalid & ~Cat(*held).any())
        return m


class SemaphoreFile(wiring.Component):
    """``count`` 32-bit semaphores, updated by ``sources`` streams, one update per cycle round-robin.

    Each of ``readers`` read ports looks a semaphore up combinationally from a copy of the file of its own in
    a memory: on an FPGA a copy is distributed RAM (16 ``DPR16X4`` cells for 32 semaphores), which only the
    update's index and value reach and which the placer can put near its reader, where a choice among
    ``32 x count`` flip-flops would bring all of them to every reader. One more copy gives an increment the
    value it adds to. Every copy is written in the same cycle, so all reads agree. A memory cannot be reset,
    so a flag per semaphore, cleared by reset, says whether it has been written since: a read of one that has
    not answers 0.

    Parameters
    ----------
    count : int
        Semaphores (1..256).
    sources : int
        Update streams (one per sequencer).
    readers : int
        Read ports.

    Members
    -------
    updates : ``In(stream.Signature(update_layout)).array(sources)``
        Updates to an index beyond the file are dropped (the sequencers refuse such instructions first); an
        update is written in the cycle it is taken, so a read sees it from the next cycle.
    changed : ``Out(1)``
        An update was applied this cycle.
    read_index : ``In(8).array(readers)``; read_value : ``Out(32).array(readers)``
        ``read_value[r]`` is semaphore ``read_index[r]`` (an index beyond the file reads an unspecified value).
    """

    def __init__(self, *, count: int = SEMAPHORES.default, sources: int = 1, readers: int = 0):
        self._count = SEMAPHORES.validate(count)
        for name, value, least in (("sources", sources, 1), ("readers", readers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, not {value!r}")
        self._sources = sources
        self._readers = readers
        super().__init__({
            "updates": In(stream.Signature(update_layout)).array(sources),
            "changed": Out(1),
            "read_index": In(8).array(readers),
            "read_value": Out(32).array(readers),
        })

    def elaborate(self, platform):
        m = Module()
        grant = round_robin(m, [update.valid for update in self.updates], "semaphores")
        chosen = Signal(update_layout)
        for index, update in enumerate(self.updates):
            m.d.comb += update.ready.eq(grant[index])
            with m.If(grant[index]):
                m.d.comb += chosen.eq(update.payload)
        m.d.comb += self.changed.eq(grant.any())
        # The copies: one per reader, and one more for the update's own read of the value it adds to.
        written = Signal(self._count)
        m.submodules.copies = copies = Memory(shape=32, depth=self._count, init=[])

        def look_up(index):
            read = copies.read_port(domain="comb")
            m.d.comb += read.addr.eq(index)
            return Mux(written.bit_select(index, 1), read.data, 0)

        updated = Signal(32)
        m.d.comb += updated.eq(Mux(chosen.set, chosen.value, look_up(chosen.index) + chosen.value))
        applied = grant.any() & (chosen.index < self._count)
        port = copies.write_port()
        m.d.comb += [port.addr.eq(chosen.index), port.data.eq(updated), port.en.eq(applied)]
        with m.If(applied):
            m.d.sync += written.bit_select(chosen.index, 1).eq(1)
        for index, value in zip(self.read_index, self.read_value):
            m.d.comb += value.eq(look_up(index))
        return m


#: An instruction issued and not yet retired: what it does to the semaphores when it retires.
_pending_layout = data.StructLayout({
    "kind": 2,            # 0 immediate, 1 waits for a completion of kind A, 2 of kind B
    "end": 1,
    "set": 1, "set_index": 8, "set_value": 32,
    "signal_index": 8, "increment": 8,
})
_IMMEDIATE, _KIND_A, _KIND_B = 0, 1, 2


class Sequencer(wiring.Component):
    """Runs one engine's program (see the module docstring).

    Parameters
    ----------
    kind : EngineKind
        Which opcodes it runs besides the common ones.
    semaphores : int
        Size of the semaphore file (a higher index in a used wait, signal or SEM_SET is an error).
    prefetch : int
        Instruction words fetched ahead (buffered or in flight), at least 2: the head and a queue of
        ``prefetch - 1`` behind it.
    pending : int
        Instructions issued and not yet retired, at least 1.

    Members
    -------
    start : ``In(1)``; program_address : ``In(32)``
        A cycle of ``start`` (ignored while running) starts the program at ``program_address`` (its low 6 bits
        are ignored): state RUNNING, error cleared, and ``engine_clear`` pulses so the engine forgets any
        earlier error.
    halt : ``In(1)``
        Issue and fetch nothing new, and withdraw a command the engine has not taken (a soft reset is
        draining the tile).
    deadlock : ``In(1)``
        The watchdog fired: if waiting on a semaphore, stop with ``DEADLOCK``.
    state, error, fault_address, pc : ``Out(2)``, ``Out(8)``, ``Out(32)``, ``Out(32)``
        :class:`~trntile.hdl.isa.EngineState`, :class:`~trntile.hdl.isa.EngineError`, the address of the
        instruction that stopped the engine, the address of the next instruction to issue.
    waiting, active : ``Out(1)``
        Blocked on a semaphore; running and not blocked (the watchdog's view).
    wait_cycles, executed : ``Out(32)``
        Cycles spent blocked on a semaphore; instructions issued (since the last start).
    fetch : ``Out(stream.Signature({address}))``; word : ``In(stream.Signature(fetched_layout))``
        To the fetch unit.
    semaphore_index : ``Out(8)``; semaphore_value : ``In(32)``
        The semaphore the head instruction waits on, and its value (looked up combinationally).
    update : ``Out(stream.Signature(update_layout))``
        To the semaphore file, from a queue of two updates (a retired instruction's SEM_SET and signal).
    updating : ``Out(1)``
        An instruction can retire, or an update is still queued for the semaphore file.
    command : ``Out(stream.Signature(command_layout))``
        Engine instructions, in order, from a register (loaded the cycle the engine has checked the previous
        one); withdrawn when the sequencer stops or halts.
    checking : ``In(1)``
        The engine is still checking the command it took (the sequencer issues nothing meanwhile).
    fault, fault_code : ``In(1)``, ``In(8)``
        The engine refused a command of this sequencer or failed one (the code already carries the engine's
        :class:`~trntile.hdl.isa.EngineError` base). Stops the sequencer with the address of the last command
        handed over.
    done_a, done_b : ``In(1)``
        Completion pulses: of MULTIPLY_MOVING (B) and of every other engine instruction (A), each in order.
    engine_clear : ``Out(1)``
        Pulses at start.
    """

    def __init__(self, kind: EngineKind, *, semaphores: int = SEMAPHORES.default, prefetch: int = 4,
                 pending: int = 8):
        self._kind = EngineKind(kind)
        self._semaphores = SEMAPHORES.validate(semaphores)
        for name, value, least in (("prefetch", prefetch, 2), ("pending", pending, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, not {value!r}")
        self._prefetch = prefetch
        self._pending = pending
        super().__init__({
            "start": In(1), "program_address": In(32), "halt": In(1), "deadlock": In(1),
            "state": Out(2), "error": Out(8), "fault_address": Out(32), "pc": Out(32),
            "waiting": Out(1), "active": Out(1), "wait_cycles": Out(COUNTER_BITS), "executed": Out(COUNTER_BITS),
            "fetch": Out(stream.Signature(data.StructLayout({"address": 32}))),
            "word": In(stream.Signature(fetched_layout)),
            "semaphore_index": Out(8), "semaphore_value": In(32),
            "update": Out(stream.Signature(update_layout)), "updating": Out(1),
            "command": Out(stream.Signature(command_layout)),
            "checking": In(1), "fault": In(1), "fault_code": In(8), "done_a": In(1), "done_b": In(1),
            "engine_clear": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        running = self.state == EngineState.RUNNING
        begin = Signal()
        m.d.comb += begin.eq(self.start & ~running)

        # ---- prefetch ---------------------------------------------------------------------------------
        # The buffer keeps only the bits this engine's opcodes read: the header, the longest of their payloads
        # and the fetch error (the tensor engine's 281 of 513 bits, ACT's and the DMA's 471). The rest of a
        # word is never read by the engine, so dropping it changes nothing but the wiring on an FPGA.
        kept = HEADER_BITS + max(PAYLOAD_LAYOUTS[code].size for code in ENGINE_OPCODES[self._kind]
                                 if code in PAYLOAD_LAYOUTS)
        # The oldest word waits in a register, the head, and the rest in a queue behind it: the decode and the
        # semaphore lookup start at a register, not at a distributed-RAM read (on the FPGA the buffer and the
        # semaphore copy sat apart on the die in the tile's slowest path). A word arriving at an empty buffer
        # goes straight to the head, so it is issued in the same cycle as from a plain FIFO.
        queue = fifo.SyncFIFO(width=kept + 1, depth=self._prefetch - 1)
        m.submodules.buffer = ResetInserter(begin)(queue)
        head_word, head_valid = Signal(kept + 1), Signal()
        level = queue.level + head_valid
        in_flight = Signal(range(self._prefetch + 1))
        discard = Signal(range(self._prefetch + 1))   # words in flight that belong to an earlier program
        fetch_address = Signal(32)
        ending, faulting, checking_command = Signal(), Signal(), Signal()
        fetching = running & ~ending & ~faulting & ~self.halt
        m.d.comb += [self.fetch.valid.eq(fetching & (in_flight + level < self._prefetch)),
                     self.fetch.payload.address.eq(fetch_address)]
        asked = self.fetch.valid & self.fetch.ready
        arrived = self.word.valid  # always taken
        m.d.comb += self.word.ready.eq(1)
        m.d.sync += in_flight.eq(in_flight + asked - arrived)
        with m.If(asked):
            m.d.sync += fetch_address.eq(fetch_address + INSTRUCTION_BYTES)
        keep = arrived & (discard == 0) & running & ~begin
        incoming = Cat(self.word.payload.word[:kept], self.word.payload.error)
        popped = Signal()
        # The head is empty only when the queue is: a word goes to the queue unless it moves into the head.
        refill = ~head_valid | popped
        m.d.comb += [queue.w_data.eq(incoming), queue.w_en.eq(keep & ~(refill & ~queue.r_rdy))]
        with m.If(begin):
            m.d.sync += head_valid.eq(0)
        with m.Elif(refill):
            with m.If(queue.r_rdy):
                m.d.comb += queue.r_en.eq(1)
                m.d.sync += [head_word.eq(queue.r_data), head_valid.eq(1)]
            with m.Else():
                m.d.sync += [head_word.eq(incoming), head_valid.eq(keep)]
        with m.If(begin):
            m.d.sync += [discard.eq(in_flight - arrived),
                         fetch_address.eq(Cat(Const(0, 6), self.program_address[6:])),
                         self.pc.eq(Cat(Const(0, 6), self.program_address[6:]))]
        with m.Elif(arrived & (discard != 0)):
            m.d.sync += discard.eq(discard - 1)

        # ---- the head instruction ---------------------------------------------------------------------
        head = data.View(fetched_layout, Cat(head_word[:kept], Const(0, INSTRUCTION_BITS - kept), head_word[kept]))
        instruction = data.View(instruction_layout, head.word)
        header = instruction.header
        opcode = header.opcode
        legal = Cat(*(opcode == code for code in ENGINE_OPCODES[self._kind])).any()
        sem_set = data.View(sem_set_payload_layout, instruction.payload[:sem_set_payload_layout.size])
        s = self._semaphores
        bad_semaphore = (((header.wait_value != 0) & (header.wait_semaphore >= s))
                         | ((header.signal_increment != 0) & (header.signal_semaphore >= s))
                         | ((opcode == Opcode.SEM_SET) & (sem_set.semaphore >= s)))
        problem = Signal(8)
        m.d.comb += problem.eq(Mux(head.error, EngineError.FETCH,
                                   Mux(~legal, EngineError.OPCODE, Mux(bad_semaphore, EngineError.SEMAPHORE, 0))))
        m.d.comb += self.semaphore_index.eq(header.wait_semaphore)
        wait_ok = (header.wait_value == 0) | (self.semaphore_value >= header.wait_value)
        immediate = Cat(*(opcode == code for code in (Opcode.NOP, Opcode.SEM_WAIT, Opcode.SEM_SET, Opcode.END))).any()

        pending = fifo.SyncFIFO(width=_pending_layout.size, depth=self._pending)
        m.submodules.pending = ResetInserter(begin)(pending)
        entry = data.View(_pending_layout, pending.w_data)
        # The command register: an engine instruction waits here for its engine, so that the engine's
        # ready (a round-robin among the DMA queues) never reaches back into the head, the wait compare and
        # the buffers. It is one cycle more from issue to engine and the same issue rate: the next engine
        # instruction is loaded in the very cycle the engine has checked the last one.
        command_valid = Signal()
        checked = checking_command & ~command_valid & ~self.checking & ~self.fault
        free = running & ~ending & ~faulting & ~self.halt & head_valid
        issuing = free & ~checking_command
        # Only an engine instruction follows at once (an immediate would write the pending queue in the same
        # cycle as the checked command), and only with room in the pending queue for both.
        issuing_next = free & checked & ~immediate & (pending.level + 1 < self._pending)
        # A SEM_SET of this engine takes effect when it retires; until then a wait would read the value from
        # before it, so an instruction that waits holds until no SEM_SET of this engine is pending.
        sets_pending = Signal(range(self._pending + 3))   # in the pending queue or the update queue
        wait_ready = (header.wait_value == 0) | (sets_pending == 0)
        m.d.comb += self.waiting.eq(issuing & (problem == 0) & wait_ready & ~wait_ok)
        with m.If(self.waiting):
            m.d.sync += self.wait_cycles.eq(self.wait_cycles + 1)
        go = (issuing & pending.w_rdy | issuing_next) & (problem == 0) & wait_ready & wait_ok

        last_engine_pc = Signal(32)
        fault_pc = Signal(32)
        fault_problem = Signal(8)
        command_kind = Signal(2)
        command_signal = Signal(16)
        # A sequencer stopped by an error, or halted for a soft reset, withdraws a command its engine has not
        # taken. The command's address goes with it: an engine fault names the last command handed over.
        command_pc = Signal(32)
        m.d.comb += self.command.valid.eq(command_valid & running & ~self.halt)
        with m.If(self.command.valid & self.command.ready):
            m.d.sync += [command_valid.eq(0), last_engine_pc.eq(command_pc)]
        with m.If(issuing & (problem != 0)):
            m.d.sync += [faulting.eq(1), fault_pc.eq(self.pc), fault_problem.eq(problem)]
        with m.If(go & immediate):
            m.d.comb += [popped.eq(1), pending.w_en.eq(1),
                         entry.kind.eq(_IMMEDIATE), entry.end.eq(opcode == Opcode.END),
                         entry.set.eq(opcode == Opcode.SEM_SET), entry.set_index.eq(sem_set.semaphore),
                         entry.set_value.eq(sem_set.value),
                         entry.signal_index.eq(header.signal_semaphore), entry.increment.eq(header.signal_increment)]
            with m.If(opcode == Opcode.END):
                m.d.sync += ending.eq(1)
        with m.If(go & ~immediate):
            m.d.comb += popped.eq(1)
            m.d.sync += [command_valid.eq(1), self.command.payload.opcode.eq(opcode),
                         self.command.payload.payload.eq(instruction.payload),
                         checking_command.eq(1), command_pc.eq(self.pc),
                         command_kind.eq(Mux(opcode == Opcode.MULTIPLY_MOVING, _KIND_B, _KIND_A)),
                         command_signal.eq(Cat(header.signal_semaphore, header.signal_increment))]
        with m.If(popped):
            m.d.sync += [self.pc.eq(self.pc + INSTRUCTION_BYTES), self.executed.eq(self.executed + 1)]
        # The engine has checked the command: it is in flight now and retires with its completion.
        with m.If(checked):
            m.d.comb += [pending.w_en.eq(1), entry.kind.eq(command_kind),
                         entry.signal_index.eq(command_signal[:8]), entry.increment.eq(command_signal[8:])]
            with m.If(~go):
                m.d.sync += checking_command.eq(0)

        # ---- retirement, in order ------------------------------------------------------------------------
        retiring = data.View(_pending_layout, pending.r_data)
        completions = [Signal(range(self._pending + 1), name=f"completed_{k}") for k in ("a", "b")]
        complete = Mux(retiring.kind == _IMMEDIATE, 1,
                       Mux(retiring.kind == _KIND_A, completions[0] != 0, completions[1] != 0))
        set_done = Signal()
        ready_to_retire = pending.r_rdy & complete
        want_set = retiring.set & ~set_done
        want_signal = retiring.increment != 0
        # The updates wait in a queue of two for the semaphore file, so that its round-robin's ready (among
        # all the sequencers) never reaches back into the pending queue: one cycle more to the semaphore,
        # one update per cycle still.
        updates = fifo.SyncFIFO(width=update_layout.size, depth=2)
        m.submodules.updates = ResetInserter(begin)(updates)
        update = data.View(update_layout, updates.w_data)
        m.d.comb += [
            updates.w_en.eq(ready_to_retire & (want_set | want_signal)),
            update.index.eq(Mux(want_set, retiring.set_index, retiring.signal_index)),
            update.set.eq(want_set),
            update.value.eq(Mux(want_set, retiring.set_value, retiring.increment)),
            self.update.valid.eq(updates.r_rdy), self.update.payload.eq(updates.r_data),
            updates.r_en.eq(self.update.ready),
            # Updating: from the cycle after an engine's completion pulse until the semaphore file has the
            # update, the tile is not quiet, so it never reports done or starts again with a signal behind.
            self.updating.eq(updates.r_rdy | ready_to_retire),
        ]
        retire = Signal()
        with m.If(ready_to_retire):
            with m.If(want_set):
                with m.If(updates.w_rdy):
                    m.d.sync += set_done.eq(1)
                    with m.If(~want_signal):
                        m.d.comb += retire.eq(1)
            with m.Elif(want_signal):
                m.d.comb += retire.eq(updates.w_rdy)
            with m.Else():
                m.d.comb += retire.eq(1)
        with m.If(retire):
            m.d.comb += pending.r_en.eq(1)
            m.d.sync += set_done.eq(0)
        for index, (counter, pulse) in enumerate(zip(completions, (self.done_a, self.done_b))):
            used = retire & (retiring.kind == (_KIND_A if index == 0 else _KIND_B))
            m.d.sync += counter.eq(counter + pulse - used)

        # ---- state ----------------------------------------------------------------------------------------
        # Active: running and not blocked on a semaphore, or still retiring what it issued (its completions are
        # bound to come: the watchdog must not count those cycles as quiet).
        m.d.comb += [self.active.eq(running & (~self.waiting | pending.r_rdy | checking_command)),
                     self.engine_clear.eq(begin)]
        set_queued = go & immediate & (opcode == Opcode.SEM_SET)
        set_applied = self.update.valid & self.update.ready & self.update.payload.set
        with m.If(begin):
            m.d.sync += sets_pending.eq(0)
        with m.Else():
            m.d.sync += sets_pending.eq(sets_pending + set_queued - set_applied)
        with m.If(begin):
            m.d.sync += [self.state.eq(EngineState.RUNNING), self.error.eq(0), self.fault_address.eq(0),
                         ending.eq(0), faulting.eq(0), checking_command.eq(0), command_valid.eq(0), set_done.eq(0),
                         self.wait_cycles.eq(0), self.executed.eq(0)]
            m.d.sync += [counter.eq(0) for counter in completions]
        with m.Elif(running):
            with m.If(self.fault):
                m.d.sync += [self.state.eq(EngineState.ERROR), self.error.eq(self.fault_code),
                             self.fault_address.eq(last_engine_pc)]
            with m.Elif(self.deadlock & self.waiting):
                m.d.sync += [self.state.eq(EngineState.ERROR), self.error.eq(EngineError.DEADLOCK),
                             self.fault_address.eq(self.pc)]
            with m.Elif(faulting & ~pending.r_rdy & ~checking_command):
                m.d.sync += [self.state.eq(EngineState.ERROR), self.error.eq(fault_problem),
                             self.fault_address.eq(fault_pc)]
            with m.Elif(retire & retiring.end):
                m.d.sync += self.state.eq(EngineState.DONE)
        return m


class Watchdog(wiring.Component):
    """Counts cycles in which some engine waits on a semaphore and nothing else happens; the cycle after the
    ``limit``-th it pulses ``fire`` (and starts again). ``limit`` 0 disables it.

    ``fire`` comes from a register: ``quiet`` gathers every engine's state from across the tile, and the
    sequencers' stop logic behind it in the same cycle made the FPGA's slowest path. Nothing changes in the
    cycle between (the tile was quiet), so the same sequencers stop.

    Members
    -------
    waiting, quiet : ``In(1)``
        Some sequencer is blocked on a semaphore; no sequencer is active, no engine busy, no fetch in flight,
        no completion on its way to a semaphore and no semaphore changed this cycle.
    limit : ``In(32)``
    fire : ``Out(1)``
    """

    waiting: In(1)
    quiet: In(1)
    limit: In(32)
    fire: Out(1)

    def elaborate(self, platform):
        m = Module()
        count = Signal(32)
        m.d.sync += self.fire.eq(0)
        with m.If(self.waiting & self.quiet & (self.limit != 0)):
            with m.If(count + 1 >= self.limit):
                m.d.sync += [self.fire.eq(1), count.eq(0)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        with m.Else():
            m.d.sync += count.eq(0)
        return m
