"""The assembler: instructions as Python objects, their binary encoding and a readable listing.

The binary format is :mod:`trntile.hdl.isa`'s; this module only builds and reads it, so the RTL decoders,
the golden simulator and the tests all agree by construction.

>>> from trntile.sw.asm import Instruction, Nop, End, Wait, Signal, encode_program, decode_program, listing
>>> program = [Instruction(Nop(), wait=Wait(3, 1)), Instruction(End(), signal=Signal(4, 1))]
>>> decode_program(encode_program(program)) == program
True
>>> print(listing(program))
0x0000  SEM_WAIT         wait s3>=1
0x0040  END              signal s4+=1
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..golden.act import Activate, act_type
from ..golden.dma import Descriptor, Endpoint, Space
from ..golden.tensor_engine import AccessPattern, LoadStationary, MultiplyMoving
from ..hdl import dma_descriptor
from ..hdl.access_pattern import ADDRESS_BITS
from ..hdl.isa import (INSTRUCTION_BYTES, PAYLOAD_BITS, Opcode, activate_payload_layout, copy_payload_layout,
                       instruction_layout, sem_set_payload_layout, tensor_payload_layout)
from ..hdl.tensor_engine import encode_command

__all__ = ["Wait", "Signal", "Nop", "End", "SemSet", "Copy", "Raw", "Instruction", "encode", "decode",
           "encode_program", "decode_program", "listing", "LoadStationary", "MultiplyMoving", "Activate"]


@dataclasses.dataclass(frozen=True)
class Wait:
    """Wait, before issue, until ``sem[semaphore] >= value``."""

    semaphore: int
    value: int


@dataclasses.dataclass(frozen=True)
class Signal:
    """On completion, ``sem[semaphore] += increment``."""

    semaphore: int
    increment: int


@dataclasses.dataclass(frozen=True)
class Nop:
    """Nothing (with a wait, listed as ``SEM_WAIT``)."""


@dataclasses.dataclass(frozen=True)
class End:
    """End of program."""


@dataclasses.dataclass(frozen=True)
class SemSet:
    """``sem[semaphore] = value``."""

    semaphore: int
    value: int


@dataclasses.dataclass(frozen=True)
class Copy:
    """A DMA transfer on the engine's queue; it signals (the instruction's signal) when its last write is done."""

    source: Endpoint
    destination: Endpoint
    element_bytes: int

    def descriptor(self, signal: "Signal | None" = None) -> Descriptor:
        """The :class:`~trntile.golden.dma.Descriptor`, with ``signal`` as its completion semaphore."""
        return Descriptor(self.source, self.destination, self.element_bytes,
                          signal.semaphore if signal else 0, signal.increment if signal else 0)


@dataclasses.dataclass(frozen=True)
class Raw:
    """An instruction word given by its opcode and raw payload bits: any opcode, any bits (to express bad
    instructions; :func:`decode` returns one for an opcode it does not know or a COPY that is no descriptor)."""

    opcode: int
    payload: int = 0


Operation = Nop | End | SemSet | Copy | Raw | LoadStationary | MultiplyMoving | Activate


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One instruction: an operation, an optional wait before issue and an optional signal on completion."""

    op: Operation
    wait: Wait | None = None
    signal: Signal | None = None

    @property
    def opcode(self) -> int:
        op = self.op
        if isinstance(op, Raw):
            return op.opcode
        if isinstance(op, Nop):
            return Opcode.SEM_WAIT if self.wait else Opcode.NOP
        return {End: Opcode.END, SemSet: Opcode.SEM_SET, LoadStationary: Opcode.LOAD_STATIONARY,
                MultiplyMoving: Opcode.MULTIPLY_MOVING, Activate: Opcode.ACTIVATE, Copy: Opcode.COPY}[type(op)]


def _fits(name: str, value, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in 0..{(1 << bits) - 1}, not {value!r}")
    return int(value)


def _pattern_fields(pattern: AccessPattern) -> dict:
    # encode_command checks and pads a pattern; reuse it through a throwaway LoadStationary.
    return encode_command(LoadStationary(0, pattern, 1, 1, 0))["pattern"]


def _payload(op) -> int:
    if isinstance(op, (Nop, End)):
        return 0
    if isinstance(op, Raw):
        return _fits("payload", op.payload, PAYLOAD_BITS)
    if isinstance(op, SemSet):
        fields = {"semaphore": _fits("semaphore", op.semaphore, 8), "value": _fits("value", op.value, 32)}
        return sem_set_payload_layout.const(fields).as_value().value
    if isinstance(op, (LoadStationary, MultiplyMoving)):
        fields = encode_command(op)
        del fields["op"]
        return tensor_payload_layout.const(fields).as_value().value
    if isinstance(op, Activate):
        fmt = act_type(op.dtype)
        fields = {
            "func": _fits("func", int(op.func), 4),
            "dtype": _fits("dtype", fmt.code if fmt else int(op.dtype), 3),
            "partition": _fits("partition", op.partition, 8), "partitions": _fits("partitions", op.partitions, 8),
            "source_space": _fits("source_space", int(op.source_space), 1),
            "source": _pattern_fields(op.source), "destination": _pattern_fields(op.destination),
            "scale": op.scale_bits(),
            "bias_enable": int(op.bias is not None),
            "bias_address": 0 if op.bias is None else _fits("bias", op.bias, ADDRESS_BITS),
            "accumulate": int(bool(op.accumulate)),
        }
        return activate_payload_layout.const(fields).as_value().value
    if isinstance(op, Copy):
        fields = dma_descriptor.fields(op.descriptor())
        del fields["semaphore"], fields["increment"]
        return copy_payload_layout.const(fields).as_value().value
    raise TypeError(f"not an instruction operation: {op!r}")


def encode(instruction: Instruction) -> bytes:
    """The :data:`~trntile.hdl.isa.INSTRUCTION_BYTES` bytes of ``instruction``; ``ValueError`` naming the
    field that does not fit."""
    wait, signal = instruction.wait, instruction.signal
    header = {
        "opcode": _fits("opcode", instruction.opcode, 8),
        "wait_semaphore": _fits("wait semaphore", wait.semaphore, 8) if wait else 0,
        "wait_value": _fits("wait value", wait.value, 32) if wait else 0,
        "signal_semaphore": _fits("signal semaphore", signal.semaphore, 8) if signal else 0,
        "signal_increment": _fits("signal increment", signal.increment, 8) if signal else 0,
    }
    if isinstance(instruction.op, Copy) and signal:
        instruction.op.descriptor(signal)  # checks the signal as a descriptor would
    word = instruction_layout.const({"header": header, "payload": _payload(instruction.op)}).as_value().value
    return word.to_bytes(INSTRUCTION_BYTES, "little")


def _strip(dims) -> tuple[tuple[int, int], ...]:
    dims = list(dims)
    while len(dims) > 1 and dims[0] == (0, 1):
        dims = dims[1:]
    return tuple(dims)


def _pattern(view) -> AccessPattern:
    return AccessPattern(int(view.address), _strip((int(d.stride), int(d.count)) for d in view.dims))


def _dtype_name(code: int):
    from ..golden.numerics import DTYPES

    return next((f.name for f in DTYPES.values() if f.code == code), code)


def _operation(opcode: int, payload: int, has_wait: bool, strict: bool) -> Operation:
    if opcode in (Opcode.NOP, Opcode.SEM_WAIT):
        ok = payload == 0 and (opcode == Opcode.SEM_WAIT) == has_wait
        return Nop() if ok or not strict else Raw(opcode, payload)
    if opcode == Opcode.END:
        return End() if payload == 0 or not strict else Raw(opcode, payload)
    if opcode == Opcode.SEM_SET:
        view = sem_set_payload_layout.from_bits(payload & ((1 << sem_set_payload_layout.size) - 1))
        op = SemSet(int(view.semaphore), int(view.value))
    elif opcode in (Opcode.LOAD_STATIONARY, Opcode.MULTIPLY_MOVING):
        view = tensor_payload_layout.from_bits(payload & ((1 << tensor_payload_layout.size) - 1))
        common = dict(partition=int(view.partition), pattern=_pattern(view.pattern), k=int(view.k),
                      dtype=_dtype_name(int(view.dtype)))
        if opcode == Opcode.LOAD_STATIONARY:
            op = LoadStationary(m=int(view.m), **common)
        else:
            op = MultiplyMoving(n=int(view.n), psum_bank=int(view.psum_bank), psum_offset=int(view.psum_offset),
                                accumulate=bool(view.accumulate), **common)
    elif opcode == Opcode.ACTIVATE:
        view = activate_payload_layout.from_bits(payload & ((1 << activate_payload_layout.size) - 1))
        fmt = act_type(int(view.dtype))
        bits = int(view.scale)
        if fmt is not None and fmt.is_float:
            scale = float(np.array([bits], dtype=np.uint32).view(np.float32)[0])
        elif fmt is not None:
            scale = bits - (1 << 32) if bits >> 31 else bits
        else:
            scale = bits
        op = Activate(source=_pattern(view.source), destination=_pattern(view.destination),
                      partition=int(view.partition), partitions=int(view.partitions),
                      source_space=int(view.source_space), func=int(view.func),
                      dtype=fmt.name if fmt else int(view.dtype), scale=scale,
                      bias=int(view.bias_address) if view.bias_enable else None,
                      accumulate=bool(view.accumulate))
    elif opcode == Opcode.COPY:
        raw = payload & ((1 << copy_payload_layout.size) - 1)  # the descriptor's leading fields, same bits
        if dma_descriptor.format_problem(raw):
            return Raw(opcode, payload)
        descriptor = dma_descriptor.decode(raw)
        op = Copy(descriptor.source, descriptor.destination, descriptor.element_bytes)
    else:
        return Raw(opcode, payload)
    return op if not strict or _payload(op) == payload else Raw(opcode, payload)


def decode(word: bytes, *, strict: bool = True) -> Instruction:
    """The instruction in a :data:`~trntile.hdl.isa.INSTRUCTION_BYTES` byte word. A word that is no known
    instruction (an unknown opcode, stray payload bits, a COPY that is no descriptor) decodes to
    :class:`Raw`, so ``encode(decode(word)) == word`` always.

    With ``strict=False`` the word is read as the hardware reads it: payload bits that the opcode does not use
    are ignored, so only unknown opcodes and COPYs that are no descriptor give :class:`Raw`."""
    if len(word) != INSTRUCTION_BYTES:
        raise ValueError(f"an instruction is {INSTRUCTION_BYTES} bytes, not {len(word)}")
    view = instruction_layout.from_bits(int.from_bytes(word, "little"))
    header = view.header
    wait = Wait(int(header.wait_semaphore), int(header.wait_value)) if header.wait_value or header.wait_semaphore else None
    signal = (Signal(int(header.signal_semaphore), int(header.signal_increment))
              if header.signal_increment or header.signal_semaphore else None)
    op = _operation(int(header.opcode), int(view.payload), wait is not None, strict)
    return Instruction(op, wait, signal)


def encode_program(program) -> bytes:
    """The bytes of a sequence of instructions, one word after another."""
    return b"".join(encode(instruction) for instruction in program)


def decode_program(raw: bytes) -> list[Instruction]:
    """Every instruction of ``raw``, a whole number of instruction words (:func:`decode` for each)."""
    if len(raw) % INSTRUCTION_BYTES:
        raise ValueError(f"a program is a whole number of {INSTRUCTION_BYTES}-byte words, not {len(raw)} bytes")
    return [decode(raw[i:i + INSTRUCTION_BYTES]) for i in range(0, len(raw), INSTRUCTION_BYTES)]


def _dims(pattern: AccessPattern) -> str:
    return f"@{pattern.address:#x}[" + ",".join(f"[{s},{c}]" for s, c in pattern.dims) + "]"


def _endpoint(endpoint: Endpoint) -> str:
    dims = "[" + ",".join(f"[{s},{c}]" for s, c in endpoint.dims) + "]"
    if endpoint.space == Space.SBUF:
        return f"sbuf[p{endpoint.partition}+{endpoint.partitions}]@{endpoint.address:#x}{dims}"
    return f"dram@{endpoint.address:#x}{dims}"


def _operands(op) -> str:
    if isinstance(op, Raw):
        return f"opcode={op.opcode} payload={op.payload:#x}"
    if isinstance(op, SemSet):
        return f"s{op.semaphore}={op.value}"
    if isinstance(op, LoadStationary):
        return f"{op.dtype} p{op.partition} k={op.k} m={op.m} {_dims(op.pattern)}"
    if isinstance(op, MultiplyMoving):
        return (f"{op.dtype} p{op.partition} k={op.k} n={op.n} psum[{op.psum_bank}]+{op.psum_offset}"
                f"{' acc' if op.accumulate else ''} {_dims(op.pattern)}")
    if isinstance(op, Activate):
        space = "psum" if op.source_space == 0 else "sbuf" if op.source_space == 1 else f"space{op.source_space}"
        func = {0: "identity", 1: "relu"}.get(int(op.func), f"func{op.func}")
        bias = f" bias@{op.bias:#x}" if op.bias is not None else ""
        return (f"{func} {op.dtype} p{op.partition}+{op.partitions} {space}{_dims(op.source)} -> "
                f"sbuf{_dims(op.destination)}{' +=' if op.accumulate else ''} scale={op.scale}{bias}")
    if isinstance(op, Copy):
        return f"{op.element_bytes}B {_endpoint(op.source)} -> {_endpoint(op.destination)}"
    return ""


def listing(program, *, base: int = 0) -> str:
    """One line per instruction: byte address, mnemonic, operands, wait and signal."""
    lines = []
    for index, instruction in enumerate(program):
        try:
            name = Opcode(instruction.opcode).name
        except ValueError:
            name = f"OP{instruction.opcode}"
        parts = [f"{base + index * INSTRUCTION_BYTES:#06x}  {name:<15}", _operands(instruction.op)]
        if instruction.wait:
            parts.append(f"wait s{instruction.wait.semaphore}>={instruction.wait.value}")
        if instruction.signal:
            parts.append(f"signal s{instruction.signal.semaphore}+={instruction.signal.increment}")
        lines.append("  ".join(part for part in parts if part).rstrip())
    return "\n".join(lines)
