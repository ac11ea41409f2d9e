"""SBUF: P banks, one per partition, each a memory of bus-width words with byte enables.

Ports (each bank is one memory with two ports, as an FPGA block RAM has):

- **moving** (port A, dedicated): the tensor engine's MultiplyMoving reads, one element per partition per
  cycle (:func:`~trntile.hdl.tensor_engine.sbuf_read_signature`), answered the next cycle. A 2-byte element
  is read at an even address (the tensor engine refuses a pattern that is not element-aligned; an odd address
  reads the element below it).
- **port B, shared** by the requesters below, one per cycle, granted round-robin among those that are
  requesting and have room for their answer:

  - **stationary**: the tensor engine's LoadStationary reads (same interface as ``moving``);
  - **dma**: whole bus words of one partition, read or written with byte strobes (:func:`sbuf_word_signature`);
  - **act**: the ACT engine's reads, one 4-byte element per partition at the same byte address in each
    (:func:`sbuf_element_read_signature`; the address must be 4-byte aligned);
  - **write**: an engine's results, one element of 1, 2 or 4 bytes in each partition whose ``mask`` bit is set,
    at the same byte address in each (:func:`sbuf_element_write_signature`). Elements must be naturally aligned
    (the ACT engine refuses a destination that is not): a misaligned one writes its own byte lanes, within its
    word, with undefined bytes, and size 3 writes nothing.

  A read granted in cycle t is answered from cycle t + 2 (memory, then a three-entry queue per requester),
  so a requester that takes its answers at once can read every cycle when it is alone.

Counters ``granted`` and ``waited`` (per requester on port B) count the cycles each was served and the
cycles it requested without being served.

Each bank is an instance of :data:`SBUF_BANK_MODULE`, a plain Verilog true dual-port RAM (:func:`sbuf_bank_verilog`)
of the shape FPGA tools infer as block RAM, rather than an Amaranth ``Memory``: Amaranth 0.5 writes the initial
value of every word of a ``Memory`` into the design, one bit at a time, and for a 64 KiB-per-partition SBUF at
P = 16 that alone took half a minute to generate and as long again to compile. The module zeroes its words
with one loop instead.
"""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .access_pattern import ADDRESS_BITS
from .arbiter import round_robin
from .params import AXI_DATA_WIDTH, PARTITIONS, SBUF_BYTES
from .tensor_engine import sbuf_read_signature

__all__ = ["SBUF", "sbuf_word_signature", "sbuf_element_read_signature", "sbuf_element_write_signature",
           "PORT_B_REQUESTERS", "SBUF_BANK_MODULE", "sbuf_bank_verilog"]

#: The Verilog module of one SBUF bank.
SBUF_BANK_MODULE = "trntile_sbuf_bank"


def sbuf_bank_verilog() -> str:
    """Module :data:`SBUF_BANK_MODULE`: ``DEPTH`` words of ``WIDTH`` bits, all zero at time 0. Port A reads;
    port B reads or writes (byte enables ``b_we``), one address for both. A read returns the word as it was
    before any write in the same cycle, on the next clock edge; ``*_data`` holds until the next read."""
    return """
module trntile_sbuf_bank #(parameter WIDTH = 128, parameter DEPTH = 64, parameter ABITS = 6) (
  input clk,
  input a_en,
  input [ABITS-1:0] a_addr,
  output reg [WIDTH-1:0] a_data,
  input b_en,
  input [WIDTH/8-1:0] b_we,
  input [ABITS-1:0] b_addr,
  input [WIDTH-1:0] b_wdata,
  output reg [WIDTH-1:0] b_data
);
  reg [WIDTH-1:0] words [0:DEPTH-1];
  integer i;
  initial begin
    for (i = 0; i < DEPTH; i = i + 1) words[i] = {WIDTH{1'b0}};
    a_data = {WIDTH{1'b0}};
    b_data = {WIDTH{1'b0}};
  end
  always @(posedge clk) begin
    if (a_en) a_data <= words[a_addr];
  end
  always @(posedge clk) begin
    if (b_en) b_data <= words[b_addr];
    for (i = 0; i < WIDTH/8; i = i + 1)
      if (b_we[i]) words[b_addr][i*8 +: 8] <= b_wdata[i*8 +: 8];
  end
endmodule
"""

#: Requesters on port B, in round-robin order.
PORT_B_REQUESTERS = ("stationary", "dma", "act", "write")


def sbuf_word_signature(data_width: int) -> wiring.Signature:
    """Whole-word access to one partition, seen from the requester: ``request`` {write, partition, byte
    address (the word containing it), data, strobe}; for reads, ``response`` {data} in request order."""
    width = data_width // 8
    return wiring.Signature({
        "request": Out(stream.Signature(data.StructLayout({
            "write": 1, "partition": 8, "address": ADDRESS_BITS, "data": data_width, "strobe": width}))),
        "response": In(stream.Signature(data.StructLayout({"data": data_width}))),
    })


def sbuf_element_read_signature(partitions: int) -> wiring.Signature:
    """An engine reading one 4-byte element per partition, seen from the engine: ``request`` {byte address,
    4-byte aligned, the same in every partition} and, in request order, ``response``: the element of every
    partition."""
    return wiring.Signature({
        "request": Out(stream.Signature(data.StructLayout({"address": ADDRESS_BITS}))),
        "response": In(stream.Signature(data.ArrayLayout(32, partitions))),
    })


def sbuf_element_write_signature(partitions: int) -> wiring.Signature:
    """An engine writing one element per partition per cycle, seen from the engine: ``request`` {byte address
    (the same in every partition), size (log2 bytes: 0, 1, 2), mask (the partitions written), data (one
    element per partition, in the low bytes of 32 bits)}."""
    return wiring.Signature({
        "request": Out(stream.Signature(data.StructLayout({
            "address": ADDRESS_BITS, "size": 2, "mask": partitions, "data": data.ArrayLayout(32, partitions)}))),
    })


class SBUF(wiring.Component):
    """The state buffer (see the module docstring).

    Parameters
    ----------
    partitions : int
        P, a power of two in 4..128.
    sbuf_bytes : int
        Bytes per partition, a power of two in 1 KiB..256 KiB.
    data_width : int
        Word width in bits (the DMA's AXI data width), a power of two in 32..512.

    Members
    -------
    moving, stationary : ``In(sbuf_read_signature(P))``
        The tensor engine's element reads (port A; port B).
    dma : ``In(sbuf_word_signature(data_width))``
        Whole words of one partition, read or written with byte strobes (port B).
    act : ``In(sbuf_element_read_signature(P))``
        The ACT engine's 4-byte element reads (port B).
    write : ``In(sbuf_element_write_signature(P))``
        An engine's element writes (port B).
    granted, waited : ``Out(32).array(4)``
        Per port-B requester (:data:`PORT_B_REQUESTERS` order): cycles served, and cycles it asked and was
        not served.
    """

    #: Answers buffered per port-B reader (a read occupies a slot for 3 cycles: grant, memory, queue). A
    #: reader must not ask for more reads than this before taking answers, or its read is never granted.
    ANSWERS = 3

    def __init__(self, *, partitions: int = PARTITIONS.default, sbuf_bytes: int = SBUF_BYTES.default,
                 data_width: int = AXI_DATA_WIDTH.default):
        self._p = PARTITIONS.validate(partitions)
        self._bytes = SBUF_BYTES.validate(sbuf_bytes)
        self._width = AXI_DATA_WIDTH.validate(data_width)
        super().__init__({
            "moving": In(sbuf_read_signature(self._p)),
            "stationary": In(sbuf_read_signature(self._p)),
            "dma": In(sbuf_word_signature(self._width)),
            "act": In(sbuf_element_read_signature(self._p)),
            "write": In(sbuf_element_write_signature(self._p)),
            "granted": Out(32).array(len(PORT_B_REQUESTERS)),
            "waited": Out(32).array(len(PORT_B_REQUESTERS)),
        })

    def _element(self, m, word, byte, wide, name):
        """The element at byte ``byte`` of ``word``: 2 bytes (at an even byte) if ``wide``, else 1,
        zero-extended to 16 bits. Aligned selects, not shifts: each result bit then depends on one bit per
        element position of the word, not on all of them."""
        picked = Signal(16, name=name)
        m.d.comb += picked.eq(Mux(wide, word.word_select(byte[1:], 16), word.word_select(byte, 8)))
        return picked

    def elaborate(self, platform):
        m = Module()
        p, word_bytes = self._p, self._width // 8
        offset_bits = (word_bytes - 1).bit_length()
        depth = self._bytes // word_bytes
        abits = max(1, (depth - 1).bit_length())
        # Each bank's ports, as signals; the banks are instantiated at the end.
        banks = [{name: Signal(width, name=f"bank{partition}_{name}") for name, width in (
            ("a_en", 1), ("a_addr", abits), ("a_data", self._width), ("b_en", 1), ("b_we", word_bytes),
            ("b_addr", abits), ("b_wdata", self._width), ("b_data", self._width))} for partition in range(p)]

        # ---- port A: moving reads, answered the next cycle, held until taken -----------------------------
        port = self.moving
        holding = Signal()
        a_wide, a_byte = Signal(), Signal(range(word_bytes))
        a_accept = port.request.valid & port.request.ready
        m.d.comb += [port.request.ready.eq(~holding | port.response.ready), port.response.valid.eq(holding)]
        with m.If(a_accept):
            m.d.sync += [holding.eq(1), a_wide.eq(port.request.payload.wide),
                         a_byte.eq(port.request.payload.address[:offset_bits])]
        with m.Elif(port.response.ready):
            m.d.sync += holding.eq(0)
        for partition, bank in enumerate(banks):
            m.d.comb += [bank["a_addr"].eq(port.request.payload.address[offset_bits:]), bank["a_en"].eq(a_accept),
                         port.response.payload[partition].eq(
                             self._element(m, bank["a_data"], a_byte, a_wide, f"moving_word{partition}"))]

        # ---- port B: round-robin between the stationary reads, the DMA, ACT reads and engine writes ---------
        requests = [self.stationary.request, self.dma.request, self.act.request, self.write.request]
        readers = 3  # requesters 0..2 read and have answer queues
        queues, credits = [], []
        answer_layouts = [data.ArrayLayout(16, p), data.StructLayout({"data": self._width}), data.ArrayLayout(32, p)]
        for index, layout in enumerate(answer_layouts):
            queue = fifo.SyncFIFO(width=layout.size, depth=self.ANSWERS)
            m.submodules[f"answers_{PORT_B_REQUESTERS[index]}"] = queue
            queues.append(queue)
            credits.append(Signal(range(self.ANSWERS + 1), name=f"outstanding_{PORT_B_REQUESTERS[index]}"))
        responses = [self.stationary.response, self.dma.response, self.act.response]
        for queue, response in zip(queues, responses):
            m.d.comb += [response.valid.eq(queue.r_rdy), response.payload.eq(queue.r_data),
                         queue.r_en.eq(response.ready)]

        # A reader may be granted while its reads in flight or queued leave room for one more answer;
        # a write needs no answer.
        eligible = Signal(len(requests))
        dma_write = self.dma.request.payload.write
        m.d.comb += [
            eligible[0].eq(requests[0].valid & (credits[0] < self.ANSWERS)),
            eligible[1].eq(requests[1].valid & (dma_write | (credits[1] < self.ANSWERS))),
            eligible[2].eq(requests[2].valid & (credits[2] < self.ANSWERS)),
            eligible[3].eq(requests[3].valid),
        ]
        grant = round_robin(m, [eligible[index] for index in range(len(requests))], "port_b")
        for index, request in enumerate(requests):
            m.d.comb += request.ready.eq(grant[index])
            with m.If(grant[index]):
                m.d.sync += self.granted[index].eq(self.granted[index] + 1)
            with m.If(request.valid & ~grant[index]):
                m.d.sync += self.waited[index].eq(self.waited[index] + 1)

        stationary, dma, act, element = (self.stationary.request.payload, self.dma.request.payload,
                                         self.act.request.payload, self.write.request.payload)
        read_b = grant[0] | (grant[1] & ~dma_write) | grant[2]
        address = Mux(grant[0], stationary.address,
                      Mux(grant[3], element.address, Mux(grant[2], act.address, dma.address)))
        # An engine write: each element shifted to its byte lanes, strobes for exactly those lanes.
        lane = element.address[:offset_bits]
        element_lanes = Signal(word_bytes)
        with m.Switch(element.size):
            for size in range(3):
                with m.Case(size):
                    m.d.comb += element_lanes.eq(((1 << (1 << size)) - 1) << lane)
        # What was read last cycle, and for whom.
        for_stationary, for_dma, for_act = Signal(), Signal(), Signal()
        b_wide, b_byte, b_partition = Signal(), Signal(range(word_bytes)), Signal(8)
        act_byte = Signal(range(word_bytes))
        m.d.sync += [for_stationary.eq(grant[0]), for_dma.eq(grant[1] & ~dma_write), for_act.eq(grant[2]),
                     b_wide.eq(stationary.wide), b_byte.eq(stationary.address[:offset_bits]),
                     b_partition.eq(dma.partition), act_byte.eq(act.address[:offset_bits])]
        # Each element repeated across the word: naturally aligned, it then sits in its own byte lanes, which
        # are the only ones written (no shifter by the lane).
        element_words = [Signal(self._width, name=f"element_word{partition}") for partition in range(p)]
        with m.Switch(element.size):
            for size in range(3):
                with m.Case(size):
                    m.d.comb += [word.eq(Cat(*[element.data[partition][:8 << size]] * (word_bytes >> size)))
                                 for partition, word in enumerate(element_words)]
        dma_words = []
        for partition, bank in enumerate(banks):
            m.d.comb += [
                # The write shares port B's address with its reads (only one is granted a cycle), so each bank
                # is one read port and one read/write port: a true dual-port block RAM.
                bank["b_addr"].eq(address[offset_bits:]), bank["b_en"].eq(read_b),
                bank["b_wdata"].eq(Mux(grant[3], element_words[partition], dma.data)),
                bank["b_we"].eq(Mux(grant[3], Mux(element.mask[partition], element_lanes, 0),
                                    Mux(grant[1] & dma_write & (dma.partition == partition), dma.strobe, 0))),
            ]
            elements = queues[0].w_data.word_select(partition, 16)
            m.d.comb += elements.eq(self._element(m, bank["b_data"], b_byte, b_wide, f"stationary_word{partition}"))
            act_word = Signal(32, name=f"act_word{partition}")
            m.d.comb += [act_word.eq(bank["b_data"].word_select(act_byte[2:], 32)),  # 4-byte aligned
                         queues[2].w_data.word_select(partition, 32).eq(act_word)]
            dma_words.append(bank["b_data"])
        m.d.comb += [
            queues[0].w_en.eq(for_stationary),
            queues[1].w_en.eq(for_dma),

            queues[2].w_en.eq(for_act),
        ]
        with m.Switch(b_partition):   # one case per bank (a word_select of all banks would be one wide shift)
            for partition, word in enumerate(dma_words):
                with m.Case(partition):
                    m.d.comb += queues[1].w_data.eq(word)
        for index in range(readers):
            issued = grant[1] & ~dma_write if index == 1 else grant[index]
            m.d.sync += credits[index].eq(credits[index] + issued - (responses[index].valid & responses[index].ready))

        for partition, bank in enumerate(banks):
            m.submodules[f"bank{partition}"] = Instance(
                SBUF_BANK_MODULE, p_WIDTH=self._width, p_DEPTH=depth, p_ABITS=abits, i_clk=ClockSignal(),
                **{f"{'o' if name.endswith('_data') else 'i'}_{name}": signal for name, signal in bank.items()})
        return m
