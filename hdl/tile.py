"""The tile: tensor engine, ACT engine, SBUF, PSUM, DMA, sequencers, semaphores, host registers, counters.

::

    host --AXI4-Lite--> registers ---- start / soft reset / program addresses / status / counters
                                  |
          sequencers: tensor, act, dma0..dma{Q-1} --(instruction fetch)--+
              |          |            |                                   +--> crossbar --> m_axi (DRAM)
          tensor      ACT engine    DMA engine ----------(AXI4)-----------+
          engine  <-PSUM-'   |        |
              '------ SBUF --+--------' <---- s_axi (the outside's window onto the SBUF)

Each engine runs its own program from DRAM (:mod:`trntile.hdl.sequencer`, ISA in :mod:`trntile.hdl.isa`).
The host writes each engine's program address, the ``enable`` mask and then ``control.start``; the
``status`` registers show each engine's state, error code and faulting address; ``irq`` goes high when the
started engines have all finished (``irq.done``) or some stopped with an error (``irq.error``).

Soft reset (``control.soft_reset``) first drains: the sequencers issue and fetch nothing more, and when the
engines are idle and no fetch is in flight, one cycle of reset returns every engine, sequencer, semaphore and
counter to its reset state. Registers the host wrote (program addresses, enable, watchdog) and the memories
keep their contents. The window (``s_axi``) is never reset, so an outside transaction in progress is
not cut.

The window ``s_axi`` serves the SBUF, flat, from 0 (:mod:`trntile.hdl.sbuf_axi`), and the semaphore window
from ``W`` = P x ``sbuf_bytes`` (:mod:`trntile.hdl.semaphore_window`): a 4-byte write of ``v`` at ``W + 4 i``
adds ``v`` to semaphore i, which is how another tile signals this one. During a soft reset (from the
``soft_reset`` pulse until the reset cycle) the semaphore window answers writes SLVERR, since the add would
be lost; the SBUF window keeps working (soft reset keeps the memories). Other addresses get DECERR.

The register map is :func:`tile_register_map`; ``docs/tile.md`` shows it as a table generated from it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from .act import ACTEngine
from .axi import AXI4LiteSignature, AXI4Signature, connect_axi4
from .axi_crossbar import AXI4Crossbar
from .axi_split import AXI4Split
from .csr import Field, RegisterBlock, RegisterMap
from .dma import DMAEngine
from .dma_descriptor import descriptor_layout
from .isa import (EngineError, EngineState, Opcode, activate_payload_layout, copy_payload_layout,
                  engine_kind, engine_names, tensor_payload_layout)
from .params import (ACT_LANES, AXI_DATA_WIDTH, DMA_OUTSTANDING, DMA_QUEUES, DRAM_BYTES, DTYPES, FP_CUTS,
                     PARTITIONS, REGISTER_SLICES, SBUF_BYTES, SEMAPHORES)
from .sbuf import SBUF, sbuf_word_signature
from .sbuf_axi import SBUFAXISlave
from .semaphore_window import SEMAPHORE_WINDOW_BYTES, SemaphoreWindow
from .sequencer import InstructionFetch, SemaphoreFile, Sequencer, Watchdog
from .stream import StreamRegisterSlice
from .tensor_engine import TensorEngine, tensor_command_layout

__all__ = ["Tile", "tile_register_map", "TILE_MAGIC", "ENGINE_BASE", "ENGINE_STRIDE", "COUNTER_BASE",
           "SEMAPHORE_BASE", "S_AXI_ID_WIDTH", "REGISTER_ADDRESS_BITS"]

TILE_MAGIC = 0x7117
TILE_VERSION = 1
ENGINE_BASE, ENGINE_STRIDE = 0x040, 0x020
COUNTER_BASE = 0x300
SEMAPHORE_BASE = 0x400
REGISTER_ADDRESS_BITS = 12
#: ID bits of the SBUF window: enough for a cluster of 8 tiles, whose crossbar adds 3 bits to the 2 of each
#: tile's memory master (:mod:`trntile.hdl.cluster`).
S_AXI_ID_WIDTH = 5
WATCHDOG_DEFAULT = 4096
#: Instruction words each sequencer fetches ahead, and fetches in flight for all of them: enough to keep a
#: stream of 16-cycle tensor instructions (P = 4) fed behind 64 cycles of DRAM latency.
PREFETCH = 16
FETCH_OUTSTANDING = 16

#: 64-bit counters, each as two registers ``<name>_lo`` and ``<name>_hi``, then 32-bit ones.
COUNTERS_64 = ("cycles", "tensor_busy", "macs", "act_busy")
COUNTERS_32 = ("dma_read_bytes", "dma_written_bytes", "remote_adds", "remote_refused")


def tile_register_map(*, partitions: int, sbuf_bytes: int, data_width: int, queues: int, semaphores: int,
                      dram_bytes: int, dtypes: int = DTYPES.default,
                      act_lanes: int = ACT_LANES.default) -> RegisterMap:
    """The tile's host register map (32-bit registers; see the module docstring)."""
    engines = len(engine_names(queues))
    regs = RegisterMap()
    regs.add("ident", Field("magic", 16, "ro", const=TILE_MAGIC), Field("version", 8, "ro", const=TILE_VERSION),
             doc="identity")
    regs.add("config0", Field("partitions", 8, "ro", const=partitions, doc="P"),
             Field("queues", 5, "ro", const=queues), Field("semaphores", 9, "ro", const=semaphores),
             Field("data_bytes", 7, "ro", const=data_width // 8, doc="AXI data bytes"),
             doc="parameters")
    regs.add("config1", Field("sbuf_kib", 9, "ro", const=sbuf_bytes // 1024),
             Field("dram_log2", 6, "ro", const=dram_bytes.bit_length() - 1),
             Field("dtypes", 4, "ro", const=dtypes, doc="tensor engine formats: 1 bf16, 2 E4M3, 4 E5M2, 8 int8"),
             Field("act_lanes_log2", 3, "ro", const=min(act_lanes, partitions).bit_length() - 1,
                   doc="physical ACT lanes: a column takes P >> this cycles"),
             doc="parameters")
    regs.add("control", Field("start", 1, "pulse", doc="start the enabled engines; ignored unless the tile is quiet "
                                                        "(status.running 0) and not resetting"),
             Field("soft_reset", 1, "pulse", doc="drain, then reset engines, sequencers, semaphores, counters"),
             offset=0x010, doc="commands")
    regs.add("enable", Field("engines", engines, "rw", init=(1 << engines) - 1,
                             doc="engines that start: bit 0 tensor, 1 act, 2 + q DMA queue q"), doc="")
    regs.add("status", Field("running", 1, "ro", doc="an engine runs, or work or a fetch is still in flight"), Field("done", 1, "ro", doc="all started engines done"),
             Field("error", 1, "ro", doc="some engine stopped with an error"),
             Field("resetting", 1, "ro", doc="a soft reset is draining"),
             Field("deadlock", engines, "ro", doc="engines the watchdog stopped"), doc="tile state")
    regs.add("irq", Field("done", 1, "w1c"), Field("error", 1, "w1c"), doc="events, write 1 to clear")
    regs.add("irq_enable", Field("done", 1, "rw", init=1), Field("error", 1, "rw", init=1),
             doc="which events raise the irq line")
    regs.add("watchdog", Field("limit", 32, "rw", init=WATCHDOG_DEFAULT,
                               doc="quiet cycles with an engine waiting before DEADLOCK; 0 disables"), doc="")
    for index, name in enumerate(engine_names(queues)):
        base = ENGINE_BASE + index * ENGINE_STRIDE
        regs.add(f"{name}_program", Field("address", 32, "rw", doc="64-byte aligned"), offset=base,
                 doc=f"{name}: program start")
        regs.add(f"{name}_status", Field("state", 2, "ro", doc="0 idle, 1 running, 2 done, 3 error"),
                 Field("error", 8, "ro", doc="EngineError"), doc=f"{name}: state")
        regs.add(f"{name}_fault", Field("address", 32, "ro"), doc=f"{name}: address of the faulting instruction")
        regs.add(f"{name}_pc", Field("address", 32, "ro"), doc=f"{name}: next instruction to issue")
        regs.add(f"{name}_wait_cycles", Field("count", 32, "ro"), doc=f"{name}: cycles waiting on a semaphore")
        regs.add(f"{name}_executed", Field("count", 32, "ro"), doc=f"{name}: instructions issued")
    offset = COUNTER_BASE
    for name in COUNTERS_64:
        for half in ("lo", "hi"):
            regs.add(f"{name}_{half}", Field("count", 32, "ro"), offset=offset, doc=f"counter {name}, {half} word")
            offset += 4
    for name in COUNTERS_32:
        regs.add(name, Field("count", 32, "ro"), offset=offset, doc=f"counter {name}")
        offset += 4
    regs.add_table("semaphore", Field("value", 32, "ro"), count=semaphores, offset=SEMAPHORE_BASE,
                   doc="semaphore values (read one cycle later, from the semaphore file's own read port)")
    return regs


class _WordPortShare(wiring.Component):
    """Two requesters on one SBUF word port, alternating when both want it; reads remember whose they were,
    so answers go back to the one that asked."""

    def __init__(self, data_width: int, depth: int = 4):
        self._depth = depth
        signature = sbuf_word_signature(data_width)
        super().__init__({"a": In(signature), "b": In(signature), "out": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.owners = owners = fifo.SyncFIFO(width=1, depth=self._depth)
        requests = [self.a.request, self.b.request]
        eligible = [r.valid & (r.payload.write | owners.w_rdy) for r in requests]
        prefer_b = Signal()  # b goes first next time both want the port
        choose_b = Signal()
        m.d.comb += choose_b.eq(eligible[1] & (~eligible[0] | prefer_b))
        chosen = Signal.like(requests[0].payload)
        m.d.comb += chosen.eq(Mux(choose_b, requests[1].payload, requests[0].payload))
        m.d.comb += [self.out.request.valid.eq(Mux(choose_b, eligible[1], eligible[0])),
                     self.out.request.payload.eq(chosen),
                     requests[0].ready.eq(~choose_b & eligible[0] & self.out.request.ready),
                     requests[1].ready.eq(choose_b & self.out.request.ready)]
        fire = self.out.request.valid & self.out.request.ready
        with m.If(fire):
            m.d.sync += prefer_b.eq(~choose_b)
        m.d.comb += [owners.w_en.eq(fire & ~chosen.write), owners.w_data.eq(choose_b)]
        answer = self.out.response
        for index, requester in enumerate((self.a, self.b)):
            mine = owners.r_rdy & (owners.r_data == index)
            m.d.comb += [requester.response.valid.eq(answer.valid & mine),
                         requester.response.payload.eq(answer.payload)]
        m.d.comb += [answer.ready.eq(owners.r_rdy & Mux(owners.r_data, self.b.response.ready,
                                                        self.a.response.ready)),
                     owners.r_en.eq(answer.valid & answer.ready)]
        return m


class Tile(wiring.Component):
    """One NeuronCore-style tile (see the module docstring).

    Parameters
    ----------
    partitions, sbuf_bytes, data_width, queues, outstanding, dram_bytes, semaphores, dtypes, act_lanes : int
        P; bytes per SBUF partition; AXI data width; DMA queues; DMA bursts in flight per direction; DRAM
        bytes from address 0 (the window ``m_axi`` serves; instruction fetches outside get DECERR); semaphores;
        the tensor engine's operand formats, a mask (:data:`trntile.hdl.params.DTYPES`); the ACT engine's
        physical lanes (:data:`trntile.hdl.params.ACT_LANES`).
    register_slices : int
        1: register slices, for FPGAs. One on every channel of the tile's crossbar (fetch and DMA to
        ``m_axi``) cuts the handshake paths from the DMA and the instruction fetch through the crossbar's
        arbiters, for a cycle more each way on every DRAM access; one on the SBUF requests of the DMA and of
        the window cuts the paths through the SBUF's arbitration, for a cycle more on each
        (:data:`trntile.hdl.params.REGISTER_SLICES`).
    fp_cuts : int
        Registers inside the tensor engine's float units, for FPGAs (:data:`trntile.hdl.params.FP_CUTS`;
        default 0): results take longer to reach PSUM, and the engine's completions say so, so programs
        need no change.

    Members
    -------
    s_axil : ``In(AXI4LiteSignature(addr_width=12, data_width=32))``
        Host registers (:func:`tile_register_map`).
    m_axi : ``Out(AXI4Signature(addr_width=32, data_width, id_width=2))``
        DRAM: instruction fetch and DMA through the tile's crossbar.
    s_axi : ``In(AXI4Signature(addr_width=32, data_width, id_width=5))``
        The outside's window (``window_bytes`` of it): the SBUF, flat (partition x sbuf_bytes + offset,
        :mod:`trntile.hdl.sbuf_axi`), then from P x sbuf_bytes the semaphore window
        (:mod:`trntile.hdl.semaphore_window`).
    irq : ``Out(1)``
        ``irq.done & irq_enable.done | irq.error & irq_enable.error``.
    """

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 data_width: int = AXI_DATA_WIDTH.default, queues: int = DMA_QUEUES.default,
                 outstanding: int = DMA_OUTSTANDING.default, dram_bytes: int = DRAM_BYTES.default,
                 semaphores: int = SEMAPHORES.default, dtypes: int = DTYPES.default,
                 act_lanes: int = ACT_LANES.default, register_slices: int = REGISTER_SLICES.default,
                 fp_cuts: int = FP_CUTS.default):
        self.params = {
            "partitions": PARTITIONS.validate(partitions), "sbuf_bytes": SBUF_BYTES.validate(sbuf_bytes),
            "data_width": AXI_DATA_WIDTH.validate(data_width), "queues": DMA_QUEUES.validate(queues),
            "outstanding": DMA_OUTSTANDING.validate(outstanding), "dram_bytes": DRAM_BYTES.validate(dram_bytes),
            "semaphores": SEMAPHORES.validate(semaphores), "dtypes": DTYPES.validate(dtypes),
            "act_lanes": ACT_LANES.validate(act_lanes), "register_slices": REGISTER_SLICES.validate(register_slices),
            "fp_cuts": FP_CUTS.validate(fp_cuts)}
        self.register_map = tile_register_map(**{k: v for k, v in self.params.items()
                                                 if k not in ("outstanding", "register_slices", "fp_cuts")})
        self.engine_names = engine_names(queues)
        self.window_bytes = 2 * partitions * sbuf_bytes  # the SBUF, then the semaphore window
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_width=REGISTER_ADDRESS_BITS, data_width=32)),
            "m_axi": Out(AXI4Signature(addr_width=32, data_width=data_width, id_width=2)),
            "s_axi": In(AXI4Signature(addr_width=32, data_width=data_width, id_width=S_AXI_ID_WIDTH)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        prm = self.params
        p, q, s = prm["partitions"], prm["queues"], prm["semaphores"]
        engines = len(self.engine_names)
        core_reset = Signal()

        def core(name, component):  # reset by a soft reset
            m.submodules[name] = ResetInserter(core_reset)(component)
            return component

        m.submodules.registers = regs = RegisterBlock(self.register_map, addr_width=REGISTER_ADDRESS_BITS)
        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)

        sbuf = SBUF(partitions=p, sbuf_bytes=prm["sbuf_bytes"], data_width=prm["data_width"])
        m.submodules.sbuf = sbuf
        tensor = core("tensor", TensorEngine(partitions=p, sbuf_bytes=prm["sbuf_bytes"], dtypes=prm["dtypes"],
                                             fp_cuts=prm["fp_cuts"]))
        act = core("act", ACTEngine(partitions=p, sbuf_bytes=prm["sbuf_bytes"], act_lanes=prm["act_lanes"]))
        dma = core("dma", DMAEngine(partitions=p, sbuf_bytes=prm["sbuf_bytes"], data_width=prm["data_width"],
                                    queues=q, outstanding=prm["outstanding"], dram_bytes=prm["dram_bytes"],
                                    semaphores=s))
        fetch = core("fetch", InstructionFetch(requesters=engines, data_width=prm["data_width"],
                                               outstanding=FETCH_OUTSTANDING))
        # A read port per sequencer, and one for the host's reads (the register block's table).
        semaphores = core("semaphores", SemaphoreFile(count=s, sources=engines + 1, readers=engines + 1))
        watchdog = core("watchdog", Watchdog())
        sequencers = [core(f"sequencer_{name}", Sequencer(engine_kind(index), semaphores=s, prefetch=PREFETCH))
                      for index, name in enumerate(self.engine_names)]

        # ---- memories and engines -------------------------------------------------------------------------
        wiring.connect(m, tensor.moving_read, sbuf.moving)
        wiring.connect(m, tensor.stationary_read, sbuf.stationary)
        wiring.connect(m, act.psum_read, tensor.psum_read)
        wiring.connect(m, tensor.psum_read_data, act.psum_read_data)
        wiring.connect(m, act.sbuf_read, sbuf.act)
        wiring.connect(m, act.sbuf_write, sbuf.write)
        sbuf_window = p * prm["sbuf_bytes"]
        m.submodules.window_split = split = AXI4Split(
            AXI4Signature(addr_width=32, data_width=prm["data_width"], id_width=S_AXI_ID_WIDTH),
            [(0, sbuf_window), (sbuf_window, SEMAPHORE_WINDOW_BYTES)])
        wiring.connect(m, wiring.flipped(self.s_axi), split.s_axi)
        m.submodules.window = window = SBUFAXISlave(partitions=p, sbuf_bytes=prm["sbuf_bytes"],
                                                    data_width=prm["data_width"], id_width=S_AXI_ID_WIDTH)
        wiring.connect(m, split.m0_axi, window.s_axi)
        m.submodules.semaphore_window = remote = SemaphoreWindow(semaphores=s, data_width=prm["data_width"],
                                                                 id_width=S_AXI_ID_WIDTH)
        connect_axi4(m, split.m1_axi, remote.s_axi, window_bits=12)
        wiring.connect(m, remote.update, semaphores.updates[engines])
        m.submodules.word_port = share = _WordPortShare(prm["data_width"])
        for name, requester, shared in (("dma_slice", dma.sbuf, share.a), ("window_slice", window.sbuf, share.b)):
            if prm["register_slices"]:
                # Requests from a register, and a ready from one: the window's W routing, the choice between
                # read and write and the port share ran into the SBUF's grant to ACT in one path across the
                # tile, and the SBUF's grant came back into the DMA's unpacker and stream.
                m.submodules[name] = cut = StreamRegisterSlice(requester.request.payload.shape())
                wiring.connect(m, requester.request, cut.i)
                wiring.connect(m, cut.o, shared.request)
                wiring.connect(m, shared.response, requester.response)
            else:
                wiring.connect(m, requester, shared)
        wiring.connect(m, share.out, sbuf.dma)
        m.d.comb += dma.signal.ready.eq(1)  # descriptors carry no increment: the sequencers signal

        m.submodules.crossbar = crossbar = AXI4Crossbar(
            masters=2, address_map=[(0, prm["dram_bytes"])], addr_width=32, data_width=prm["data_width"],
            id_width=1, max_outstanding=max(FETCH_OUTSTANDING, prm["outstanding"]),
            register_slices=bool(prm["register_slices"]))
        wiring.connect(m, fetch.m_axi, crossbar.s0_axi)
        wiring.connect(m, dma.m_axi, crossbar.s1_axi)
        wiring.connect(m, crossbar.m0_axi, wiring.flipped(self.m_axi))

        # ---- sequencers to engines ------------------------------------------------------------------------
        dma_busy = Cat(*(dma.status[queue].busy for queue in range(q))).any()
        completions = [tensor.load_done, tensor.multiply_done, act.done]   # the engines' completion pulses
        for index, sequencer in enumerate(sequencers):
            wiring.connect(m, sequencer.fetch, fetch.requests[index])
            wiring.connect(m, fetch.words[index], sequencer.word)
            wiring.connect(m, sequencer.update, semaphores.updates[index])
            m.d.comb += [semaphores.read_index[index].eq(sequencer.semaphore_index),
                         sequencer.semaphore_value.eq(semaphores.read_value[index])]
            command = sequencer.command
            payload = command.payload.payload
            if index == 0:
                fields = data.View(tensor_payload_layout, payload[:tensor_payload_layout.size])
                engine_command = Signal(tensor_command_layout)
                m.d.comb += [engine_command.eq(Cat(command.payload.opcode == Opcode.MULTIPLY_MOVING,
                                                   fields.as_value())),
                             tensor.command.payload.eq(engine_command), tensor.command.valid.eq(command.valid),
                             command.ready.eq(tensor.command.ready),
                             sequencer.checking.eq(tensor.check_busy), sequencer.fault.eq(tensor.error),
                             sequencer.fault_code.eq(EngineError.TENSOR | tensor.error_code),
                             sequencer.done_a.eq(tensor.load_done), sequencer.done_b.eq(tensor.multiply_done),
                             tensor.error_clear.eq(sequencer.engine_clear)]
            elif index == 1:
                m.d.comb += [act.command.payload.eq(payload[:activate_payload_layout.size]),
                             act.command.valid.eq(command.valid), command.ready.eq(act.command.ready),
                             sequencer.checking.eq(act.check_busy), sequencer.fault.eq(act.error),
                             sequencer.fault_code.eq(EngineError.ACT | act.error_code),
                             sequencer.done_a.eq(act.done), act.error_clear.eq(sequencer.engine_clear)]
            else:
                queue = index - 2
                copy = data.View(copy_payload_layout, payload[:copy_payload_layout.size])
                descriptor = Signal(descriptor_layout)
                m.d.comb += [descriptor.source.eq(copy.source), descriptor.destination.eq(copy.destination),
                             descriptor.element_size.eq(copy.element_size)]
                status = dma.status[queue]
                completed = Signal(16, name=f"dma{queue}_completed_seen")
                m.d.sync += completed.eq(Mux(sequencer.engine_clear | core_reset, 0, status.completed))
                dma_done = status.completed != completed   # the queue completed a descriptor last cycle
                completions.append(dma_done)
                m.d.comb += [dma.queues[queue].payload.eq(descriptor), dma.queues[queue].valid.eq(command.valid),
                             command.ready.eq(dma.queues[queue].ready),
                             sequencer.fault.eq(status.error != 0),
                             sequencer.fault_code.eq(EngineError.DMA | status.error),
                             sequencer.done_a.eq(~sequencer.engine_clear & dma_done),
                             dma.clear[queue].eq(sequencer.engine_clear)]

        # ---- host control ---------------------------------------------------------------------------------
        resetting = Signal()
        states = [sequencer.state for sequencer in sequencers]
        running = Cat(*(state == EngineState.RUNNING for state in states)).any()
        errors = Cat(*(state == EngineState.ERROR for state in states)).any()
        started = Cat(*(state != EngineState.IDLE for state in states)).any()
        # Quiet also means no completion is on its way to a semaphore: none this cycle, none to retire, none
        # queued for the semaphore file. ACT's completion needs no term of its own: it pulses in the cycle its
        # last column reaches the SBUF, while ACT is still running (not idle); left out, the SBUF's grant to
        # ACT no longer runs through the quiet test into the watchdog, the start and the status registers.
        quiet_engines = (tensor.idle & act.idle & ~dma_busy & fetch.idle
                         & ~Cat(tensor.load_done, tensor.multiply_done).any()
                         & ~Cat(*(sequencer.updating for sequencer in sequencers)).any())
        # The tile runs while an engine runs or anything is still in flight (an engine stopped by an error may
        # still finish earlier work, and fetches past END land after it), so "finished" means quiet.
        active = Signal()
        m.d.comb += active.eq(running | ~quiet_engines)
        all_finished = started & ~active
        with m.If(regs.control.soft_reset):
            m.d.sync += resetting.eq(1)
        m.d.sync += core_reset.eq(0)
        with m.If(resetting & quiet_engines & ~core_reset):
            m.d.sync += [core_reset.eq(1), resetting.eq(0)]
        m.d.comb += [remote.refuse.eq(resetting | core_reset), remote.clear.eq(core_reset)]
        deadlocked = Signal(engines)
        # A start is taken only when the tile is quiet: an engine stopped by an error may still be finishing
        # earlier work, whose completions must not be counted for a new program. The sequencers see it a
        # cycle later, from a register: the quiet test gathers every engine's state from across the tile,
        # and the sequencers' start logic sat behind it in the same cycle (the FPGA's slowest path). Nothing
        # can make the tile active in between (only a started sequencer issues), and the cycle counter counts
        # from the first active cycle, so no figure changes.
        start = Signal()
        m.d.sync += start.eq(regs.control.start & ~resetting & ~active)
        for index, sequencer in enumerate(sequencers):
            m.d.comb += [sequencer.start.eq(start & regs.enable.engines[index]),
                         sequencer.program_address.eq(getattr(regs, f"{self.engine_names[index]}_program").address),
                         sequencer.halt.eq(resetting), sequencer.deadlock.eq(watchdog.fire)]
            group = f"{self.engine_names[index]}"
            m.d.comb += [getattr(regs, f"{group}_status").state.eq(sequencer.state),
                         getattr(regs, f"{group}_status").error.eq(sequencer.error),
                         getattr(regs, f"{group}_fault").address.eq(sequencer.fault_address),
                         getattr(regs, f"{group}_pc").address.eq(sequencer.pc),
                         getattr(regs, f"{group}_wait_cycles").count.eq(sequencer.wait_cycles),
                         getattr(regs, f"{group}_executed").count.eq(sequencer.executed)]
        # Traffic into the window (another tile filling this one's SBUF) is progress too. The watchdog sees
        # it a cycle late, from a register: the window's responses come from the SBUF's answers, and the
        # watchdog's count sat behind them in the same cycle. (A count at its limit in the very cycle the
        # traffic starts still fires; the limit is thousands of cycles.)
        window_traffic = Signal()
        m.d.sync += window_traffic.eq(Cat(self.s_axi.awvalid, self.s_axi.wvalid, self.s_axi.bvalid,
                                          self.s_axi.arvalid, self.s_axi.rvalid).any())
        m.d.comb += [watchdog.limit.eq(regs.watchdog.limit),
                     watchdog.waiting.eq(Cat(*(seq.waiting for seq in sequencers)).any()),
                     watchdog.quiet.eq(~Cat(*(seq.active for seq in sequencers)).any() & quiet_engines
                                       & ~semaphores.changed & ~window_traffic)]
        with m.If(watchdog.fire):
            m.d.sync += deadlocked.eq(deadlocked | Cat(*(seq.waiting for seq in sequencers)))
        with m.If(start | core_reset):
            m.d.sync += deadlocked.eq(0)
        m.d.comb += [regs.status.running.eq(active), regs.status.done.eq(all_finished & ~errors),
                     regs.status.error.eq(errors), regs.status.resetting.eq(resetting),
                     regs.status.deadlock.eq(deadlocked)]
        was_running = Signal()
        m.d.sync += was_running.eq(active & ~core_reset)
        finished = was_running & ~active
        m.d.comb += [regs.irq.done_set.eq(finished & ~errors), regs.irq.error_set.eq(finished & errors),
                     self.irq.eq((regs.irq.done & regs.irq_enable.done) | (regs.irq.error & regs.irq_enable.error))]

        # ---- counters -------------------------------------------------------------------------------------
        cycles = Signal(64)
        with m.If(core_reset):
            m.d.sync += cycles.eq(0)
        with m.Elif(active):
            m.d.sync += cycles.eq(cycles + 1)
        sources = {"cycles": cycles, "tensor_busy": tensor.busy_cycles, "macs": tensor.macs,
                   "act_busy": act.busy_cycles}
        for name, value in sources.items():
            m.d.comb += [getattr(regs, f"{name}_lo").count.eq(value[:32]), getattr(regs, f"{name}_hi").count.eq(value[32:])]
        m.d.comb += [regs.dma_read_bytes.count.eq(dma.read_bytes), regs.dma_written_bytes.count.eq(dma.written_bytes),
                     regs.remote_adds.count.eq(remote.adds), regs.remote_refused.count.eq(remote.refused)]
        m.d.comb += [semaphores.read_index[engines].eq(regs.semaphore.index),
                     regs.semaphore.value.eq(semaphores.read_value[engines])]
        return m


class TileBench(wiring.Component):
    """What the tile's tests simulate (top ``tile_bench``): a :class:`Tile` whose ``m_axi`` goes through an
    :class:`~trntile.hdl.axi_latency.AXI4Latency` (run-time ``latency`` on AR and B) to the test's DRAM.

    Members: those of :class:`Tile`, and ``latency``.
    """

    def __init__(self, **params):
        from .axi_latency import LATENCY_BITS

        self._tile = Tile(**params)
        members = dict(self._tile.signature.members)
        members["latency"] = In(LATENCY_BITS)
        self.params = self._tile.params
        self.register_map = self._tile.register_map
        super().__init__(members)

    def elaborate(self, platform):
        from .axi_latency import AXI4Latency

        m = Module()
        m.submodules.tile = tile = self._tile
        m.submodules.latency = latency = AXI4Latency(tile.m_axi.signature, depth=16)
        wiring.connect(m, wiring.flipped(self.s_axil), tile.s_axil)
        wiring.connect(m, wiring.flipped(self.s_axi), tile.s_axi)
        wiring.connect(m, tile.m_axi, latency.s_axi)
        wiring.connect(m, latency.m_axi, wiring.flipped(self.m_axi))
        m.d.comb += [latency.latency.eq(self.latency), self.irq.eq(tile.irq)]
        return m
