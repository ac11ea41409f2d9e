"""Shifts by a run-time amount, built as one stage of fixed shifts per bit of the amount.

``value << amount`` with ``amount`` a signal is a barrel shifter in any synthesis tool, and this is the same
hardware. Written as ``>>``, though, Amaranth records every bit of the result as depending on every bit of
``value``, and its check for combinational loops walks all of those edges: for the DMA's and the SBUF's
byte-lane shifts on a 256-bit bus, millions of them, seconds of Verilog generation for the P = 16 tile. Stage by
stage, each result bit depends on two bits per stage.
"""

from amaranth.hdl import Mux, Value

__all__ = ["shift_left", "shift_right"]


def shift_left(value: Value, amount: Value, step: int = 1) -> Value:
    """``value << (amount * step)``, as wide as ``value`` (bits shifted past the top are dropped)."""
    value = Value.cast(value)
    for index, bit in enumerate(Value.cast(amount)):
        distance = step << index
        value = Mux(bit, value.shift_left(distance)[:len(value)], value) if distance < len(value) else \
            Mux(bit, 0, value)
    return value


def shift_right(value: Value, amount: Value, step: int = 1) -> Value:
    """``value >> (amount * step)`` for an unsigned ``value``, as wide as ``value`` (zeros come in at the top)."""
    value = Value.cast(value)
    for index, bit in enumerate(Value.cast(amount)):
        distance = step << index
        value = Mux(bit, value.shift_right(distance), value) if distance < len(value) else Mux(bit, 0, value)
    return value
