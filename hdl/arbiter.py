"""Round-robin arbitration, as the SBUF's port B, the instruction fetch unit and the semaphore file use it."""

from amaranth.hdl import Cat, Signal

__all__ = ["round_robin"]


def round_robin(m, requests, name: str) -> Signal:
    """One-hot grant of the first request after the one granted last, cyclically; combinational in
    ``requests``, with a ``<name>_last`` register that moves to each grant (initially the last index, so
    index 0 goes first)."""
    count = len(requests)
    last = Signal(range(max(count, 2)), name=f"{name}_last", init=count - 1)
    grant = Signal(count, name=f"{name}_grant")
    with m.Switch(last):
        for previous in range(count):
            with m.Case(previous):
                order = [(previous + step) % count for step in range(1, count + 1)]
                for position, index in enumerate(order):
                    earlier = [requests[other] for other in order[:position]]
                    m.d.comb += grant[index].eq(requests[index] & ~Cat(*earlier).any() if earlier
                                                else requests[index])
    for index in range(count):
        with m.If(grant[index]):
            m.d.sync += last.eq(index)
    return grant
