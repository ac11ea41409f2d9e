"""AXI4-Lite register blocks built from a register map.

A :class:`RegisterMap` lists registers, each a set of fields; :class:`RegisterBlock` turns it into a
component with one AXI4-Lite slave port ``s_axil`` and, per register, a group of field ports. The same map
describes itself as plain Python data (:meth:`RegisterMap.describe`) and as a markdown table
(:meth:`RegisterMap.markdown`) for the docs, so hardware, software and documentation share one definition.

Field kinds
-----------
``ro``
    Read-only. Its value comes from an input port ``<register>__<field>``, or is the constant ``const``
    (then there is no port). A write to it answers OKAY and changes nothing.
``rw``
    Read-write register, reset to ``init``; its value is the output port ``<register>__<field>``. Writes
    respect WSTRB byte lanes.
``w1c``
    Write 1 to clear. The output port holds the bits; an input ``<register>__<field>_set`` sets bits
    (an event); writing 1 to a bit clears it. A set in the same cycle as a clear wins, so no event is lost.
``pulse``
    Write-triggered: writing the register drives the output ``<register>__<field>`` with the written
    bits for exactly one cycle (0 otherwise). Reads return 0.

Tables
------
:meth:`RegisterMap.add_table` adds ``count`` read-only registers ``<table>0``, ``<table>1``, ... that share
one field read through a lookup port, for state that lives in a memory (the tile's semaphores): the block
drives ``<table>__index`` (a register, loaded with the register's position when a read of the table is
taken) and reads ``<table>__<field>`` in the next cycle, so a table read answers one cycle later than any
other and the value may come from an asynchronous memory read of ``index``. The read multiplexer then has
one input for the whole table, not one per register. A write to a table answers OKAY and changes nothing.

Bus behaviour: one write and one read are handled at a time. Offsets are byte addresses of
``data_width``-bit words; the low address bits inside a word are ignored. An access to an offset with no
register gets SLVERR (a read returns 0) and changes nothing.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, Resp

__all__ = ["Field", "Register", "RegisterMap", "RegisterBlock"]

_KINDS = ("ro", "rw", "w1c", "pulse")


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a register: ``width`` bits of kind ``access`` (see the module docstring)."""

    name: str
    width: int
    access: str
    init: int = 0
    const: int | None = None
    doc: str = ""

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"field name must be an identifier, not {self.name!r}")
        if self.access not in _KINDS:
            raise ValueError(f"field {self.name!r}: access must be one of {', '.join(_KINDS)}, not {self.access!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"field {self.name!r}: width must be a positive integer, not {self.width!r}")
        if self.const is not None and self.access != "ro":
            raise ValueError(f"field {self.name!r}: only a read-only field can be a constant")
        for what, value in (("init", self.init), ("const", self.const)):
            if value is not None and not 0 <= value < 1 << self.width:
                raise ValueError(f"field {self.name!r}: {what} {value!r} does not fit in {self.width} bits")


@dataclasses.dataclass(frozen=True)
class Register:
    """A register at byte ``offset``: its fields packed from bit 0 up, in order."""

    name: str
    offset: int
    fields: tuple[Field, ...]
    doc: str = ""
    table: str | None = None   #: the table it belongs to (see :meth:`RegisterMap.add_table`)
    index: int = 0             #: its position in the table

    def bit_offsets(self) -> list[tuple[Field, int]]:
        """Each field with the bit it starts at: fields are packed from bit 0 in the order given."""
        position, placed = 0, []
        for field in self.fields:
            placed.append((field, position))
            position += field.width
        return placed

    @property
    def width(self) -> int:
        return sum(field.width for field in self.fields)


class RegisterMap:
    """An ordered set of registers on a ``data_width``-bit bus (32 or 64).

    >>> regs = RegisterMap()
    >>> regs.add("ctrl", Field("enable", 1, "rw"), Field("mode", 3, "rw", init=2), doc="control")
    >>> regs.add("status", Field("busy", 1, "ro"), Field("version", 8, "ro", const=3))
    >>> [(r["name"], r["offset"]) for r in regs.describe()]
    [('ctrl', 0), ('status', 4)]
    """

    def __init__(self, *, data_width: int = 32):
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, not {data_width!r}")
        self.data_width = data_width
        self._registers: list[Register] = []

    @property
    def registers(self) -> tuple[Register, ...]:
        return tuple(self._registers)

    @property
    def word_bytes(self) -> int:
        return self.data_width // 8

    def add(self, name: str, *fields: Field, offset: int | None = None, doc: str = "") -> None:
        """Add register ``name`` at ``offset`` (default: the word after the last register)."""
        if name in self.tables():
            raise ValueError(f"register {name!r}: a table has that name")
        self._add(name, fields, offset, doc)

    def add_table(self, name: str, field: Field, *, count: int, offset: int | None = None, doc: str = "") -> None:
        """Add ``count`` read-only registers ``<name>0`` .. ``<name><count-1>``, one word apart from ``offset``
        (default: the word after the last register), each holding ``field``, read through one lookup port
        (see the module docstring)."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 4096:
            raise ValueError(f"table {name!r}: count must be an integer in 1..4096, not {count!r}")
        if not isinstance(field, Field) or field.access != "ro" or field.const is not None:
            raise ValueError(f"table {name!r}: its field must be a read-only field that is not a constant")
        if field.name == "index":
            raise ValueError(f"table {name!r}: its field cannot be called 'index' (the lookup port has that name)")
        if any(r.table == name for r in self._registers) or any(r.name == name for r in self._registers):
            raise ValueError(f"table {name!r}: the name is already in the map")
        if offset is None:
            offset = max((r.offset for r in self._registers), default=-self.word_bytes) + self.word_bytes
        entries = [(f"{name}{index}", offset + index * self.word_bytes) for index in range(count)]
        for register, at in entries:  # check them all before adding any
            other = [r.name for r in self._registers if r.offset == at or r.name == register]
            if other:
                raise ValueError(f"table {name!r}: {register} at {at:#x} collides with {other[0]!r}")
        for index, (register, at) in enumerate(entries):
            self._add(register, (field,), at, doc if index == 0 else "", table=name, index=index)

    def _add(self, name, fields, offset, doc, *, table=None, index=0):
        if not name.isidentifier():
            raise ValueError(f"register name must be an identifier, not {name!r}")
        if any(r.name == name for r in self._registers):
            raise ValueError(f"register {name!r} is already in the map")
        if not fields:
            raise ValueError(f"register {name!r} has no fields")
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise ValueError(f"register {name!r} has two fields with one name")
        if offset is None:
            offset = max((r.offset for r in self._registers), default=-self.word_bytes) + self.word_bytes
        if offset < 0 or offset % self.word_bytes:
            raise ValueError(f"register {name!r}: offset {offset:#x} is not a multiple of {self.word_bytes}")
        if any(r.offset == offset for r in self._registers):
            other = next(r.name for r in self._registers if r.offset == offset)
            raise ValueError(f"register {name!r}: offset {offset:#x} is taken by {other!r}")
        register = Register(name, offset, tuple(fields), doc, table, index)
        if register.width > self.data_width:
            raise ValueError(f"register {name!r}: fields take {register.width} bits, the bus has {self.data_width}")
        self._registers.append(register)

    def tables(self) -> dict[str, tuple[Register, ...]]:
        """Each table's registers, in index order."""
        tables: dict[str, list[Register]] = {}
        for register in self._registers:
            if register.table is not None:
                tables.setdefault(register.table, []).append(register)
        return {name: tuple(registers) for name, registers in tables.items()}

    def describe(self) -> list[dict]:
        """The map as plain data: one dict per register with its fields and their bit positions."""
        return [{"name": r.name, "offset": r.offset, "doc": r.doc, "table": r.table, "index": r.index,
                 "fields": [{"name": f.name, "lsb": lsb, "width": f.width, "access": f.access, "init": f.init,
                             "const": f.const, "doc": f.doc} for f, lsb in r.bit_offsets()]}
                for r in sorted(self._registers, key=lambda r: r.offset)]

    def markdown(self) -> str:
        """A markdown table of the map, one row per field."""
        rows = ["| offset | register | bits | field | access | reset | description |",
                "|---|---|---|---|---|---|---|"]
        for register in self.describe():
            for field in register["fields"]:
                high = field["lsb"] + field["width"] - 1
                bits = f"{high}:{field['lsb']}" if field["width"] > 1 else f"{field['lsb']}"
                reset = field["const"] if field["const"] is not None else (field["init"] if field["access"] in ("rw", "w1c") else None)
                reset = "-" if reset is None else f"{reset:#x}"
                access = ("ro (constant)" if field["const"] is not None else
                          f"ro (table {register['table']})" if register["table"] is not None else field["access"])
                text = " ".join(filter(None, [register["doc"] if field is register["fields"][0] else "", field["doc"]]))
                rows.append(f"| {register['offset']:#06x} | {register['name']} | {bits} | {field['name']} | {access} "
                            f"| {reset} | {text} |")
        return "\n".join(rows) + "\n"

    def address_width(self) -> int:
        """Address bits needed to reach every register (at least 2)."""
        top = max((r.offset for r in self._registers), default=0) + self.word_bytes
        return max((top - 1).bit_length(), 2)


def _field_members(register_map: RegisterMap) -> dict:
    members = {}
    for name, registers in register_map.tables().items():
        field = registers[0].fields[0]
        members[name] = Out(wiring.Signature({"index": Out(range(len(registers))), field.name: In(field.width)}))
    for register in register_map.registers:
        if register.table is not None:
            continue
        ports = {}
        for field in register.fields:
            if field.access == "ro" and field.const is None:
                ports[field.name] = In(field.width)
            elif field.access in ("rw", "pulse"):
                ports[field.name] = Out(field.width, init=field.init if field.access == "rw" else 0)
            elif field.access == "w1c":
                ports[field.name] = Out(field.width, init=field.init)
                ports[field.name + "_set"] = In(field.width)
        if ports:
            members[register.name] = Out(wiring.Signature(ports))
    return members


class RegisterBlock(wiring.Component):
    """An AXI4-Lite slave implementing a :class:`RegisterMap`.

    Parameters
    ----------
    register_map : RegisterMap
        The registers and fields.
    addr_width : int
        Width of ``s_axil``'s addresses; default just enough for the map.

    Members
    -------
    s_axil : ``In(AXI4LiteSignature(addr_width, data_width))``
        The bus.
    <register> : ``Out(Signature({<field>: ...}))``
        One group per register with ports, named ``<register>__<field>`` in Verilog (see the module
        docstring for each kind's ports).
    <table> : ``Out(Signature({"index": Out(range(count)), <field>: In(width)}))``
        One group per table: the lookup port (see the module docstring).
    """

    def __init__(self, register_map: RegisterMap, *, addr_width: int | None = None):
        if not isinstance(register_map, RegisterMap):
            raise TypeError(f"register_map must be a RegisterMap, not {register_map!r}")
        if not register_map.registers:
            raise ValueError("register_map has no registers")
        self.register_map = register_map
        needed = register_map.address_width()
        addr_width = needed if addr_width is None else addr_width
        if isinstance(addr_width, bool) or not isinstance(addr_width, int):
            raise TypeError(f"addr_width must be an integer, not {addr_width!r}")
        if addr_width < needed:
            raise ValueError(f"addr_width {addr_width} cannot reach offset "
                             f"{max(r.offset for r in register_map.registers):#x} (needs {needed})")
        super().__init__({"s_axil": In(AXI4LiteSignature(addr_width=addr_width, data_width=register_map.data_width)),
                          **_field_members(register_map)})

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil
        regs = self.register_map
        word_bits = (regs.word_bytes - 1).bit_length()

        # --- write: take AW and W (in either order), apply, answer B ---
        aw_addr = Signal.like(bus.awaddr)
        aw_full, w_full = Signal(), Signal()
        w_data, w_strb = Signal.like(bus.wdata), Signal.like(bus.wstrb)
        b_pending, b_resp = Signal(), Signal(2)
        m.d.comb += [bus.awready.eq(~aw_full & ~b_pending), bus.wready.eq(~w_full & ~b_pending),
                     bus.bvalid.eq(b_pending), bus.bresp.eq(b_resp)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_addr.eq(bus.awaddr), aw_full.eq(1)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_data.eq(bus.wdata), w_strb.eq(bus.wstrb), w_full.eq(1)]
        write = Signal()
        m.d.comb += write.eq(aw_full & w_full)
        bit_enable = Signal(regs.data_width)
        m.d.comb += bit_enable.eq(Cat(*(strobe.replicate(8) for strobe in w_strb)))  # WSTRB per bit
        with m.If(write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), b_pending.eq(1), b_resp.eq(Resp.SLVERR)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += b_pending.eq(0)

        # --- read: take AR, answer R next cycle (a table read: look up next cycle, answer the one after) ---
        r_pending, r_data, r_resp = Signal(), Signal.like(bus.rdata), Signal(2)
        looking_up = Signal()  # a table read is looking its value up
        m.d.comb += [bus.arready.eq(~r_pending & ~looking_up), bus.rvalid.eq(r_pending), bus.rdata.eq(r_data),
                     bus.rresp.eq(r_resp)]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += r_pending.eq(0)
        read = Signal()
        m.d.comb += read.eq(bus.arvalid & bus.arready)
        with m.If(read):
            m.d.sync += r_pending.eq(1)
        with m.If(looking_up):
            m.d.sync += [looking_up.eq(0), r_pending.eq(1)]

        write_word = aw_addr[word_bits:]
        read_word = bus.araddr[word_bits:]
        readable = []   # (word, value) of every register
        hits = []       # a write to each register
        table_words = []  # (words, group, field, hit) of every table
        for name, registers in regs.tables().items():
            group, field = getattr(self, name), registers[0].fields[0]
            hit = Signal(name=f"{name}_read")
            table_words.append(([r.offset >> word_bits for r in registers], group, field, hit))
            with m.If(hit):
                m.d.sync += [r_data.eq(getattr(group, field.name)), r_resp.eq(Resp.OKAY), hit.eq(0)]
        for register in regs.registers:
            word = register.offset >> word_bits
            hit_write = write & (write_word == word)
            if register.table is not None:
                hits.append(hit_write)
                continue
            group = getattr(self, register.name, None)
            value = Signal(regs.data_width, name=f"{register.name}_value")
            for field, lsb in register.bit_offsets():
                bits = slice(lsb, lsb + field.width)
                new, enable = w_data[bits], bit_enable[bits]
                if field.access == "ro":
                    source = Const(field.const, field.width) if field.const is not None else getattr(group, field.name)
                    m.d.comb += value[bits].eq(source)
                elif field.access == "rw":
                    port = getattr(group, field.name)
                    m.d.comb += value[bits].eq(port)
                    with m.If(hit_write):
                        m.d.sync += port.eq((port & ~enable) | (new & enable))
                elif field.access == "w1c":
                    port, set_ = getattr(group, field.name), getattr(group, field.name + "_set")
                    m.d.comb += value[bits].eq(port)
                    cleared = Signal(field.width, name=f"{register.name}_{field.name}_clear")
                    with m.If(hit_write):
                        m.d.comb += cleared.eq(new & enable)
                    m.d.sync += port.eq((port & ~cleared) | set_)
                elif field.access == "pulse":
                    port = getattr(group, field.name)
                    m.d.sync += port.eq(0)
                    with m.If(hit_write):
                        m.d.sync += port.eq(new & enable)
            hits.append(hit_write)
            readable.append((word, value))
        # OKAY if the write hit a register: an OR of the hits (a tree), not a chain of ~100 priority choices.
        with m.If(Cat(*hits).any()):
            m.d.sync += b_resp.eq(Resp.OKAY)
        # One case per register, so the read multiplexer is a parallel one (an AND-OR tree), not a chain of
        # ~100 two-way multiplexers in the map's order.
        with m.If(read):
            with m.Switch(read_word):
                for word, value in readable:
                    with m.Case(word):
                        m.d.sync += [r_data.eq(value), r_resp.eq(Resp.OKAY)]
                for words, group, _, hit in table_words:
                    with m.Case(*words):
                        m.d.sync += [r_pending.eq(0), looking_up.eq(1), hit.eq(1),
                                     group.index.eq(read_word - words[0])]
                with m.Default():
                    m.d.sync += [r_data.eq(0), r_resp.eq(Resp.SLVERR)]
        return m

