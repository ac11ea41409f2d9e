"""AXI4 and AXI4-Lite bus signatures, shared by every block of trntile.

Signal names follow the AMBA specification, flat and lower case (``awaddr``, ``wvalid``, ``rready``, ...),
so a component member called ``s0_axi`` appears in Verilog as ``s0_axi__awaddr``, ``s0_axi__wvalid`` and
so on. cocotbext-axi binds such a port with
``AxiBus.from_prefix(dut, "s0_axi", bus_separator="__")`` (``AxiLiteBus`` likewise).

Naming convention for ports: ``s<i>_axi`` is a *slave* port (a master connects to it: the component
receives requests), ``m<j>_axi`` a *master* port (the component issues requests). A single port is
``s_axi`` / ``m_axi``.

Each signature describes the master's side (``Out`` = driven by the master); a slave port is
``In(signature)``, which flips it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4Signature", "AXI4LiteSignature", "Burst", "Resp", "CHANNELS", "channel_payload", "connect_axi4",
           "pick"]


class Burst:
    """AxBURST encodings."""
    FIXED = 0b00
    INCR = 0b01
    WRAP = 0b10


class Resp:
    """xRESP encodings."""
    OKAY = 0b00
    EXOKAY = 0b01
    SLVERR = 0b10
    DECERR = 0b11


#: Channel name -> (direction of the payload: True if the master drives it).
CHANNELS = {"aw": True, "w": True, "b": False, "ar": True, "r": False}


def _check_width(name: str, value: object, minimum: int, maximum: int, *, power_of_two: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    ok = minimum <= value <= maximum and (not power_of_two or value & (value - 1) == 0)
    if not ok:
        rule = f"a power of two in {minimum}..{maximum}" if power_of_two else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {rule}, not {value!r}")
    return value


def _axi4_fields(addr_width: int, data_width: int, id_width: int, user_width: int) -> dict[str, dict[str, int]]:
    address = {"id": id_width, "addr": addr_width, "len": 8, "size": 3, "burst": 2, "lock": 1, "cache": 4,
               "prot": 3, "qos": 4, "region": 4, "user": user_width}
    fields = {
        "aw": dict(address),
        "w": {"data": data_width, "strb": data_width // 8, "last": 1, "user": user_width},
        "b": {"id": id_width, "resp": 2, "user": user_width},
        "ar": dict(address),
        "r": {"id": id_width, "data": data_width, "resp": 2, "last": 1, "user": user_width},
    }
    # Zero-width fields (no ID, no user) are left out of the port list, as cocotbext-axi expects.
    return {ch: {name: width for name, width in f.items() if width > 0} for ch, f in fields.items()}


def _axi4lite_fields(addr_width: int, data_width: int) -> dict[str, dict[str, int]]:
    return {
        "aw": {"addr": addr_width, "prot": 3},
        "w": {"data": data_width, "strb": data_width // 8},
        "b": {"resp": 2},
        "ar": {"addr": addr_width, "prot": 3},
        "r": {"data": data_width, "resp": 2},
    }


class _AXISignatureBase(wiring.Signature):
    def __init__(self, fields: dict[str, dict[str, int]]):
        self._fields = fields
        members = {}
        for channel, master_drives in CHANNELS.items():
            payload_flow, ready_flow = (Out, In) if master_drives else (In, Out)
            for name, width in fields[channel].items():
                members[channel + name] = payload_flow(width)
            members[channel + "valid"] = payload_flow(1)
            members[channel + "ready"] = ready_flow(1)
        super().__init__(members)

    def fields(self, channel: str) -> dict[str, int]:
        """Payload fields of ``channel`` (``"aw"``, ``"w"``, ``"b"``, ``"ar"``, ``"r"``) and their widths."""
        return dict(self._fields[channel])


class AXI4Signature(_AXISignatureBase):
    """An AXI4 interface, from the master's side.

    Parameters
    ----------
    addr_width : int
        AxADDR width, 12..64 (at least one 4 KiB page).
    data_width : int
        xDATA width, a power of two in 8..1024.
    id_width : int
        AxID/xID width, 0..16 (0: no ID signals).
    user_width : int
        AxUSER/xUSER width, 0..64 (0: no user signals).
    """

    def __init__(self, *, addr_width: int, data_width: int, id_width: int = 0, user_width: int = 0):
        self.addr_width = _check_width("addr_width", addr_width, 12, 64)
        self.data_width = _check_width("data_width", data_width, 8, 1024, power_of_two=True)
        self.id_width = _check_width("id_width", id_width, 0, 16)
        self.user_width = _check_width("user_width", user_width, 0, 64)
        super().__init__(_axi4_fields(addr_width, data_width, id_width, user_width))

    def __eq__(self, other):
        return isinstance(other, AXI4Signature) and (self.addr_width, self.data_width, self.id_width,
                                                     self.user_width) == (other.addr_width, other.data_width,
                                                                          other.id_width, other.user_width)

    def __hash__(self):
        return hash((AXI4Signature, self.addr_width, self.data_width, self.id_width, self.user_width))

    def __repr__(self):
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width}, user_width={self.user_width})")


class AXI4LiteSignature(_AXISignatureBase):
    """An AXI4-Lite interface, from the master's side.

    Parameters
    ----------
    addr_width : int
        AxADDR width, 2..64.
    data_width : int
        32 or 64.
    """

    def __init__(self, *, addr_width: int, data_width: int = 32):
        self.addr_width = _check_width("addr_width", addr_width, 2, 64)
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64 for AXI4-Lite, not {data_width!r}")
        self.data_width = data_width
        super().__init__(_axi4lite_fields(addr_width, data_width))

    def __eq__(self, other):
        return isinstance(other, AXI4LiteSignature) and (self.addr_width, self.data_width) == (
            other.addr_width, other.data_width)

    def __hash__(self):
        return hash((AXI4LiteSignature, self.addr_width, self.data_width))

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


def channel_payload(bus, channel: str):
    """The payload signals of ``channel`` of ``bus`` concatenated (LSB first, in field order)."""
    return Cat(*(getattr(bus, channel + name) for name in bus.signature.fields(channel)))


def connect_axi4(m: Module, master, slave, *, window_bits: int) -> None:
    """Connect AXI4 ``master`` to ``slave`` whose ID is at least as wide: IDs are zero-extended towards the
    slave and cut back towards the master (the upper bits are then zero, since the slave echoes them).
    Addresses keep their low ``window_bits``: the crossbar passes the full address on, and the slave serves
    its window from 0."""
    for name, member in master.signature.members.items():
        towards_slave = (member.flow == Out)
        source, sink = (master, slave) if towards_slave else (slave, master)
        value = getattr(source, name)
        target = getattr(sink, name)
        if name in ("awaddr", "araddr"):
            value = value[:window_bits]
        m.d.comb += target.eq(value if len(value) <= len(target) else value[:len(target)])


def pick(index, values):
    """``values[index]`` as a chain of muxes (``values[0]`` for an index beyond the list): how a bus
    multiplexer chooses among its ports' signals."""
    result = values[0]
    for i, value in enumerate(values[1:], start=1):
        result = Mux(index == i, value, result)
    return result
