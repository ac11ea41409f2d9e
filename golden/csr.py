"""Reference model of an AXI4-Lite register block, built from ``RegisterMap.describe()``.

It applies the field semantics of :mod:`trntile.hdl.csr` to plain integers: what a read returns, what a
write changes (byte strobes included), which pulses a write produces, and which offsets answer SLVERR.
"""

from __future__ import annotations

OKAY, SLVERR = 0, 2

__all__ = ["RegisterFileModel", "OKAY", "SLVERR"]


class RegisterFileModel:
    """State of every field, and the bus operations on it.

    ``inputs`` holds the values the design drives into read-only fields; ``pulses`` collects
    ``(register, field, value)`` for every non-zero pulse a write produced, in order.
    """

    def __init__(self, description: list[dict], *, data_width: int = 32):
        self.word_bytes = data_width // 8
        self.registers = {r["offset"]: r for r in description}
        self.values: dict[tuple[str, str], int] = {}
        self.pulses: list[tuple[str, str, int]] = []
        for register in description:
            for field in register["fields"]:
                key = (register["name"], field["name"])
                if field["access"] in ("rw", "w1c"):
                    self.values[key] = field["init"]
                elif field["access"] == "ro":
                    self.values[key] = field["const"] if field["const"] is not None else 0

    def _register(self, address: int):
        return self.registers.get(address - address % self.word_bytes)

    def read(self, address: int) -> tuple[int, int]:
        """``(data, resp)`` of a read of the word holding ``address``."""
        register = self._register(address)
        if register is None:
            return 0, SLVERR
        word = 0
        for field in register["fields"]:
            if field["access"] != "pulse":
                word |= self.values[(register["name"], field["name"])] << field["lsb"]
        return word, OKAY

    def write(self, address: int, data: int, strobe: int) -> int:
        """Apply a write of ``data`` with byte ``strobe``; return the response code."""
        register = self._register(address)
        if register is None:
            return SLVERR
        enable = sum(0xFF << (8 * lane) for lane in range(self.word_bytes) if strobe >> lane & 1)
        for field in register["fields"]:
            mask = (1 << field["width"]) - 1
            new = (data >> field["lsb"]) & mask
            lanes = (enable >> field["lsb"]) & mask
            key = (register["name"], field["name"])
            if field["access"] == "rw":
                self.values[key] = (self.values[key] & ~lanes) | (new & lanes)
            elif field["access"] == "w1c":
                self.values[key] &= ~(new & lanes)
            elif field["access"] == "pulse" and new & lanes:
                self.pulses.append((register["name"], field["name"], new & lanes))
        return OKAY

    def set_events(self, register: str, field: str, bits: int) -> None:
        """The design raised ``bits`` of a write-1-to-clear field."""
        self.values[(register, field)] |= bits

    def drive(self, register: str, field: str, value: int) -> None:
        """The design drives ``value`` into a read-only field."""
        self.values[(register, field)] = value
