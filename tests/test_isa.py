"""The instruction set, the assembler and the golden ISA simulator (pure Python)."""

import random

import numpy as np
import pytest

from trntile.golden import numerics
from trntile.golden.act import ACT_TYPES, Activate
from trntile.golden.dma import Endpoint
from trntile.golden.tensor_engine import AccessPattern, LoadStationary, MultiplyMoving
from trntile.golden.tile import TileModel
from trntile.hdl.isa import (ENGINE_OPCODES, INSTRUCTION_BYTES, PAYLOAD_BITS, PAYLOAD_LAYOUTS, EngineError,
                             EngineKind, EngineState, Opcode)
from trntile.sw.asm import (Copy, End, Instruction, Nop, Raw, SemSet, Signal, Wait, decode, decode_program, encode,
                            encode_program, listing)
from trntile.tb.tile_programs import PROGRAM_SPACE, matmul_program

P, SBUF, DRAM, QUEUES = 4, 2048, 1 << 16, 2


def _pattern(rng):
    dims = tuple((rng.randint(-3, 3), rng.randint(2, 5)) for _ in range(rng.randint(1, 4)))  # no [0, 1] padding
    return AccessPattern(rng.randrange(0, 1 << 12, 4), dims)


def _random_instruction(rng):
    kind = rng.randrange(8)
    if kind == 0:
        op = Nop()
    elif kind == 1:
        op = End()
    elif kind == 2:
        op = SemSet(rng.randrange(256), rng.getrandbits(32))
    elif kind == 3:
        op = LoadStationary(rng.randrange(8), _pattern(rng), rng.randint(1, 16), rng.randint(1, 16),
                            rng.choice(["bf16", "fp8_e4m3", "fp8_e5m2", "int8"]))
    elif kind == 4:
        op = MultiplyMoving(rng.randrange(8), _pattern(rng), rng.randint(1, 16), rng.randint(1, 64), "bf16",
                            rng.randrange(8), rng.randrange(64), rng.random() < 0.5)
    elif kind == 5:
        fmt = rng.choice(list(ACT_TYPES.values()))
        op = Activate(_pattern(rng), _pattern(rng), rng.randrange(4), rng.randint(1, 4), rng.randrange(2),
                      rng.randrange(2), fmt.name, 0.25 if fmt.is_float else rng.randint(-9, 9),
                      rng.choice([None, 64]))
    elif kind == 6:
        op = Copy(Endpoint.dram(rng.randrange(1 << 20), [(1, rng.randint(1, 64))]),
                  Endpoint.sbuf(rng.randrange(4), 1, rng.randrange(256), [(1, 1)]), 1)
        op = Copy(op.source, Endpoint.sbuf(0, op.source.elements, 0, [(1, 1)]), 1)
    else:
        op = Raw(rng.randrange(8, 256), rng.getrandbits(PAYLOAD_BITS))
    wait = Wait(rng.randrange(32), rng.randint(1, 9)) if rng.random() < 0.5 or isinstance(op, Nop) else None
    signal = Signal(rng.randrange(32), rng.randint(1, 255)) if rng.random() < 0.5 else None
    return Instruction(op, wait, signal)


def test_layouts_fit_and_opcodes_are_assigned():
    assert all(layout.size <= PAYLOAD_BITS for layout in PAYLOAD_LAYOUTS.values())
    assert ENGINE_OPCODES[EngineKind.TENSOR] & ENGINE_OPCODES[EngineKind.DMA] == {
        Opcode.NOP, Opcode.END, Opcode.SEM_WAIT, Opcode.SEM_SET}


def test_every_instruction_survives_encode_and_decode():
    rng = random.Random(7)
    program = [_random_instruction(rng) for _ in range(400)]
    raw = encode_program(program)
    assert len(raw) == INSTRUCTION_BYTES * len(program)
    assert decode_program(raw) == program
    text = listing(program)
    assert len(text.splitlines()) == len(program)
    for name in ("LOAD_STATIONARY", "MULTIPLY_MOVING", "ACTIVATE", "COPY", "SEM_SET", "SEM_WAIT", "END"):
        assert name in text


def test_words_that_are_no_instruction_decode_to_raw_and_back():
    rng = random.Random(3)
    for _ in range(200):
        word = bytes(rng.getrandbits(8) for _ in range(INSTRUCTION_BYTES))
        assert encode(decode(word)) == word


@pytest.mark.parametrize("instruction,message", [
    (Instruction(Nop(), wait=Wait(256, 1)), r"wait semaphore must be an integer in 0\.\.255, not 256"),
    (Instruction(End(), signal=Signal(1, 256)), r"signal increment must be an integer in 0\.\.255, not 256"),
    (Instruction(SemSet(1, 1 << 32)), r"value must be an integer in 0\.\.4294967295"),
    (Instruction(Raw(256)), r"opcode must be an integer in 0\.\.255, not 256"),
    (Instruction(LoadStationary(0, AccessPattern(0, ((1, 4),)), 300, 4, "bf16")), r"k must be an integer in 0\.\.255"),
    (Instruction(Activate(AccessPattern(0, ((1, 4),)), AccessPattern(0, ((1, 4),)), dtype="int8", scale=1 << 31)),
     r"scale must be an int32"),
])
def test_fields_that_do_not_fit_are_refused(instruction, message):
    with pytest.raises(ValueError, match=message):
        encode(instruction)


def _model(**kwargs) -> TileModel:
    return TileModel(partitions=P, sbuf_bytes=SBUF, dram_bytes=DRAM, queues=QUEUES, **kwargs)


def _run(programs, **kwargs) -> TileModel:
    model = _model(**kwargs)
    model.dram[:] = programs.image()
    model.start(programs.starts)
    model.run()
    return model


@pytest.mark.parametrize("queues", [1, 2])
def test_golden_matmul_end_to_end(queues):
    programs = matmul_program(np.random.default_rng(1), partitions=P, queues=queues, dram_bytes=DRAM)
    model = TileModel(partitions=P, sbuf_bytes=SBUF, dram_bytes=DRAM, queues=queues)
    model.dram[:] = programs.image()
    model.start(programs.starts)
    model.run()
    assert all(s.state == EngineState.DONE for s in model.status[:2 + queues]), model.status
    address, size = programs.result
    c = model.dram[address:address + size].view(np.float32).reshape(P, 2 * P)
    a = model.dram[programs.layout.data:programs.layout.data + 2 * P * P].view(numerics.DTYPES["bf16"].numpy)
    b_at = programs.layout.data + 0x1000
    b = model.dram[b_at:b_at + 2 * P * 2 * P].view(numerics.DTYPES["bf16"].numpy).reshape(P, 2 * P)
    np.testing.assert_array_equal(c, numerics.matmul(a.reshape(P, P), b, "bf16"))
    assert list(model.semaphores[:6]) == [1, 1, 1, 1, 1, 1]


def test_golden_int8_matmul_end_to_end():
    """The int8 form of the program (the tile tests' matmul for a tile built without bf16) on a model with
    int8 only: C is A @ B in int32, computed here with numpy's integers."""
    programs = matmul_program(np.random.default_rng(2), partitions=P, queues=2, dram_bytes=DRAM, dtype="int8")
    model = TileModel(partitions=P, sbuf_bytes=SBUF, dram_bytes=DRAM, queues=2, dtypes=8)
    model.dram[:] = programs.image()
    model.start(programs.starts)
    model.run()
    assert all(s.state == EngineState.DONE for s in model.status[:4]), model.status
    address, size = programs.result
    c = model.dram[address:address + size].view(np.int32).reshape(P, 2 * P)
    a_t = model.dram[programs.layout.data:programs.layout.data + P * P].view(np.int8).reshape(P, P)
    b_at = programs.layout.data + 0x1000
    b = model.dram[b_at:b_at + P * 2 * P].view(np.int8).reshape(P, 2 * P)
    np.testing.assert_array_equal(c, a_t.T.astype(np.int64) @ b.astype(np.int64))
    assert np.abs(c).max() > 128, "the products reach past int8"


def _single(engine: int, program) -> TileModel:
    programs = matmul_program(np.random.default_rng(0), partitions=P, queues=QUEUES, dram_bytes=DRAM)
    programs.programs = {engine: program}
    return _run(programs)


@pytest.mark.parametrize("engine,program,error,index", [
    (0, [Instruction(Nop()), Instruction(Copy(Endpoint.dram(0, [(1, 4)]), Endpoint.dram(64, [(1, 4)]), 1))],
     EngineError.OPCODE, 1),
    (2, [Instruction(Raw(200))], EngineError.OPCODE, 0),
    (1, [Instruction(Nop(), wait=Wait(40, 1))], EngineError.SEMAPHORE, 0),
    (1, [Instruction(End(), signal=Signal(32, 1))], EngineError.SEMAPHORE, 0),
    (2, [Instruction(SemSet(33, 0))], EngineError.SEMAPHORE, 0),
    (0, [Instruction(Nop(), wait=Wait(3, 1))], EngineError.DEADLOCK, 0),
    (0, [Instruction(MultiplyMoving(0, AccessPattern(0, ((1, 4),)), 4, 4, "bf16", 0, 0, False))],
     EngineError.TENSOR + 9, 0),
    (0, [Instruction(LoadStationary(0, AccessPattern(0, ((1, 4),)), 5, 4, "bf16"))], EngineError.TENSOR + 2, 0),
    (1, [Instruction(Nop()), Instruction(Activate(AccessPattern(0, ((1, 4),)), AccessPattern(0, ((1, 4),)), func=5))],
     EngineError.ACT + 1, 1),
    (3, [Instruction(Copy(Endpoint.dram(DRAM - 2, [(1, 4)]), Endpoint.sbuf(0, 1, 0, [(1, 4)]), 1))],
     EngineError.DMA + 8, 0),
    (3, [Instruction(Raw(Opcode.COPY, 0))], EngineError.DMA + 3, 0),
])
def test_golden_errors_stop_the_engine_at_the_faulting_instruction(engine, program, error, index):
    model = _single(engine, program)
    status = model.status[engine]
    assert status.as_tuple() == (EngineState.ERROR, error, engine * PROGRAM_SPACE + index * INSTRUCTION_BYTES), status


def test_golden_fetch_and_bus_errors():
    programs = matmul_program(np.random.default_rng(0), partitions=P, queues=QUEUES, dram_bytes=DRAM)
    base = programs.layout.program_address(2)
    model = _run(programs, read_faults=[(base + 64, base + 128)])
    assert model.status[2].as_tuple() == (EngineState.ERROR, EngineError.FETCH, base + 64)
    # Queue 0 stopped after its first copy: the tensor engine waits for the moving operand forever.
    assert model.status[0].as_tuple() == (EngineState.ERROR, EngineError.DEADLOCK, programs.layout.program_address(0) + 64)
    model = _run(programs, read_faults=[(programs.layout.data + 0x1000, programs.layout.data + 0x1004)])
    assert model.status[2].as_tuple() == (EngineState.ERROR, EngineError.DMA + 10, base + 64)
    address, size = programs.result
    model = _run(programs, write_faults=[(address, address + 1)])
    assert model.status[3].as_tuple() == (EngineState.ERROR, EngineError.DMA + 11, programs.layout.program_address(3))
    assert model.dram_undefined[address:address + size].all() and model.dram_undefined.sum() == size
