"""A passive AXI4 / AXI4-Lite protocol checker for cocotb testbenches.

Attach one to every AXI port of the design under test; it only reads signals. Each cycle it samples the
bus once everything has settled (the read-only phase after the rising edge, i.e. the values the next edge
will see) and records a violation for:

- X or Z on a VALID, or on a payload bit while its VALID is high;
- a VALID dropped, or a payload changed, before READY;
- WLAST on the wrong beat of a write burst; RLAST not on the last beat of a read burst;
- an INCR burst crossing a 4 KiB boundary, a WRAP burst of a length other than 2, 4, 8 or 16 beats or
  not aligned to its beat size, a FIXED burst of more than 16 beats, a beat wider than the bus, or the
  reserved burst type (these are the master's mistakes; the crossbar tests provoke them on purpose and
  ask the checker to let them pass with ``allow_illegal_bursts``);
- a B or R response that matches no outstanding request (by ID, in order), or a B before its write data
  (including in the same cycle as the last W beat).

Call :meth:`AxiProtocolChecker.check` at the end of a test: it raises ``AssertionError`` listing the first
violations and, with ``idle=True``, also any request still waiting for its response.
"""

from __future__ import annotations

from collections import defaultdict, deque

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, gather, select

__all__ = ["AxiProtocolChecker", "until_done"]

_AXI4_FIELDS = {
    "aw": ["id", "addr", "len", "size", "burst", "lock", "cache", "prot", "qos", "region", "user"],
    "w": ["data", "strb", "last", "user"],
    "b": ["id", "resp", "user"],
    "ar": ["id", "addr", "len", "size", "burst", "lock", "cache", "prot", "qos", "region", "user"],
    "r": ["id", "data", "resp", "last", "user"],
}
_AXI4LITE_FIELDS = {"aw": ["addr", "prot"], "w": ["data", "strb"], "b": ["resp"], "ar": ["addr", "prot"],
                    "r": ["data", "resp"]}

_FIXED, _INCR, _WRAP = 0, 1, 2
# Responses are looked at before requests within one cycle: a B may not share the cycle of its last W
# beat, nor an R the cycle of its AR.
_ORDER = ("b", "r", "aw", "w", "ar")


def _value(handle) -> int | None:
    """The signal's value as an integer, or ``None`` if any bit is X or Z."""
    try:
        return int(handle.value)
    except ValueError:
        return None


def burst_problem(addr: int, length: int, size: int, burst: int, *, max_size: int = 7) -> str | None:
    """Why an AXI4 burst (AxLEN = ``length``) is illegal, or ``None`` if it is legal.

    ``max_size`` is log2 of the bus width in bytes: a wider beat is illegal.
    """
    beats = length + 1
    if burst == 3:
        return "reserved burst type 0b11"
    if size > max_size:
        return f"AxSIZE {size} ({1 << size} bytes) is wider than the {1 << max_size}-byte bus"
    if burst == _FIXED and beats > 16:
        return f"FIXED burst of {beats} beats (at most 16)"
    if burst == _WRAP and beats not in (2, 4, 8, 16):
        return f"WRAP burst of {beats} beats (must be 2, 4, 8 or 16)"
    if burst == _WRAP and addr % (1 << size):
        return f"WRAP burst at {addr:#x} not aligned to its {1 << size}-byte beats"
    if burst == _INCR:
        start = (addr & 0xFFF) & ~((1 << size) - 1)
        if start + (beats << size) > 4096:
            return f"INCR burst of {beats} x {1 << size} bytes at {addr:#x} crosses a 4 KiB boundary"
    return None


class _Channel:
    def __init__(self, dut, prefix: str, separator: str, channel: str, fields: list[str]):
        self.name = channel
        self.valid = getattr(dut, f"{prefix}{separator}{channel}valid")
        self.ready = getattr(dut, f"{prefix}{separator}{channel}ready")
        self.fields = {f: getattr(dut, f"{prefix}{separator}{channel}{f}") for f in fields
                       if hasattr(dut, f"{prefix}{separator}{channel}{f}")}
        self.pending: dict | None = None  # payload offered last cycle and not taken


class AxiProtocolChecker:
    """Watches one AXI4 (or, with ``lite=True``, AXI4-Lite) port.

    Parameters
    ----------
    dut
        The cocotb handle holding the port's signals.
    prefix
        The port's name prefix, e.g. ``"s0_axi"``; signals are ``<prefix><separator><channel><field>``.
    clock, reset
        Clock and (active-high) reset handles.
    lite
        Check AXI4-Lite rules instead of AXI4.
    allow_illegal_bursts
        Do not flag illegal bursts (a test that sends them on purpose to check the error path).
    """

    def __init__(self, dut, prefix: str, clock, reset, *, lite: bool = False, separator: str = "__",
                 allow_illegal_bursts: bool = False):
        self.name = prefix
        self.lite = lite
        self.allow_illegal_bursts = allow_illegal_bursts
        table = _AXI4LITE_FIELDS if lite else _AXI4_FIELDS
        self.channels = {ch: _Channel(dut, prefix, separator, ch, fields) for ch, fields in table.items()}
        self.clock, self.reset = clock, reset
        self.errors: list[str] = []
        self.cycle = 0
        self.counts = defaultdict(int)  # handshakes per channel, for tests that want to see traffic
        self._reset_state()
        cocotb.start_soon(self._monitor())

    def _reset_state(self) -> None:
        self.write_bursts: deque = deque()  # AWs waiting for their W data, in order
        self.w_beats = 0  # beats of the W burst in progress
        self.w_done: deque = deque()  # beat counts of W bursts completed before their AW was seen
        self.writes_awaiting_b: dict[int, deque] = defaultdict(deque)  # id -> AWs with all data, in order
        self.reads: dict[int, deque] = defaultdict(deque)  # id -> [AR, beats so far], in order
        for channel in self.channels.values():
            channel.pending = None

    def _error(self, message: str) -> None:
        self.errors.append(f"{self.name} cycle {self.cycle}: {message}")

    async def _monitor(self) -> None:
        while True:
            await RisingEdge(self.clock)
            await ReadOnly()
            self.cycle += 1
            if _value(self.reset) != 0:
                self._reset_state()
                continue
            for name in _ORDER:
                self._sample(self.channels[name])

    def _sample(self, channel: _Channel) -> None:
        valid = _value(channel.valid)
        if valid is None:
            self._error(f"{channel.name}valid is X/Z")
            return
        if not valid:
            if channel.pending is not None:
                self._error(f"{channel.name}valid dropped before {channel.name}ready")
            channel.pending = None
            return
        payload = {name: _value(handle) for name, handle in channel.fields.items()}
        unknown = [name for name, value in payload.items() if value is None]
        if channel.name == "w" and "data" in unknown and payload.get("strb") is not None:
            # X in a byte lane whose strobe is off is legal; only the written lanes must be known.
            text = str(channel.fields["data"].value).lower()
            lanes = [text[len(text) - 8 * (lane + 1):len(text) - 8 * lane] for lane in range(len(text) // 8)]
            if not any(("x" in lanes[lane] or "z" in lanes[lane]) for lane in range(len(lanes))
                       if payload["strb"] >> lane & 1):
                unknown.remove("data")
                payload["data"] = 0
        if unknown:
            self._error(f"X/Z on {', '.join(channel.name + n for n in unknown)} while {channel.name}valid is high")
        if channel.pending is not None and channel.pending != payload:
            changed = [n for n in payload if payload[n] != channel.pending.get(n)]
            self._error(f"{', '.join(channel.name + n for n in changed)} changed before {channel.name}ready")
        ready = _value(channel.ready)
        if ready is None:
            self._error(f"{channel.name}ready is X/Z while {channel.name}valid is high")
            ready = 0
        if ready:
            channel.pending = None
            self.counts[channel.name] += 1
            if not unknown:
                getattr(self, "_on_" + channel.name)(payload)
        else:
            channel.pending = payload

    # -- transaction tracking ------------------------------------------------------------------------

    def _check_burst(self, channel: str, payload: dict) -> None:
        if self.lite or self.allow_illegal_bursts:
            return
        bus_bytes = len(self.channels["w"].fields["data"].value) // 8
        problem = burst_problem(payload["addr"], payload["len"], payload["size"], payload["burst"],
                                max_size=bus_bytes.bit_length() - 1)
        if problem:
            self._error(f"{channel}: {problem}")

    def _on_aw(self, payload: dict) -> None:
        self._check_burst("aw", payload)
        burst = {"id": payload.get("id", 0), "beats": 1 if self.lite else payload["len"] + 1,
                 "addr": payload["addr"]}
        if self.w_done:
            self._finish_write(burst, self.w_done.popleft())
        else:
            self.write_bursts.append(burst)

    def _on_w(self, payload: dict) -> None:
        self.w_beats += 1
        last = 1 if self.lite else payload["last"]
        expected = self.write_bursts[0]["beats"] if self.write_bursts else None
        if expected is not None and self.w_beats > expected and not last:
            self._error(f"w: beat {self.w_beats} of a {expected}-beat burst without wlast")
        if last:
            beats, self.w_beats = self.w_beats, 0
            if self.write_bursts:
                self._finish_write(self.write_bursts.popleft(), beats)
            else:
                self.w_done.append(beats)

    def _finish_write(self, burst: dict, beats: int) -> None:
        if beats != burst["beats"]:
            self._error(f"w: wlast on beat {beats} of a {burst['beats']}-beat burst (aw addr {burst['addr']:#x})")
        self.writes_awaiting_b[burst["id"]].append(burst)

    def _on_b(self, payload: dict) -> None:
        ident = payload.get("id", 0)
        if not self.writes_awaiting_b[ident]:
            self._error(f"b: response for id {ident} matches no write whose data is complete")
            return
        self.writes_awaiting_b[ident].popleft()

    def _on_ar(self, payload: dict) -> None:
        self._check_burst("ar", payload)
        beats = 1 if self.lite else payload["len"] + 1
        self.reads[payload.get("id", 0)].append([beats, 0, payload["addr"]])

    def _on_r(self, payload: dict) -> None:
        ident = payload.get("id", 0)
        if not self.reads[ident]:
            self._error(f"r: data for id {ident} matches no outstanding read")
            return
        head = self.reads[ident][0]
        head[1] += 1
        beats, seen, addr = head
        last = 1 if self.lite else payload["last"]
        if last and seen != beats:
            self._error(f"r: rlast on beat {seen} of a {beats}-beat read (ar addr {addr:#x}, id {ident})")
        if seen == beats and not last:
            self._error(f"r: no rlast on beat {beats}, the last of the read (ar addr {addr:#x}, id {ident})")
        if last or seen >= beats:
            self.reads[ident].popleft()

    # -- verdict -------------------------------------------------------------------------------------

    def outstanding(self) -> list[str]:
        """What is still unanswered: writes without B or W data, reads short of beats, stray W bursts."""
        waiting = [f"write to {b['addr']:#x} (id {b['id']}) has no B" for q in self.writes_awaiting_b.values()
                   for b in q]
        waiting += [f"write to {b['addr']:#x} (id {b['id']}) is missing W data" for b in self.write_bursts]
        waiting += [f"read of {r[2]:#x} (id {i}) got {r[1]} of {r[0]} beats" for i, q in self.reads.items() for r in q]
        if self.w_done:
            waiting.append(f"{len(self.w_done)} W bursts arrived with no AW")
        if self.w_beats:
            waiting.append(f"a W burst stopped after {self.w_beats} beats")
        return waiting

    def check(self, *, idle: bool = False) -> None:
        """Raise ``AssertionError`` with the first violations (and, with ``idle``, anything unanswered)."""
        problems = list(self.errors)
        if idle:
            problems += [f"{self.name}: {w}" for w in self.outstanding()]
        if problems:
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise AssertionError("AXI protocol: " + "; ".join(problems[:10]) + more)


async def until_done(clock, checkers: list[AxiProtocolChecker], *work, quiet_cycles: int = 2000):
    """Await every coroutine in ``work`` (results as a list); fail fast if the buses stop moving.

    If no handshake happens on any watched bus for ``quiet_cycles`` cycles before the work is done, the
    design (or the test) is stuck: raise ``AssertionError`` naming what is still outstanding, instead of
    waiting for the test's time limit.
    """
    async def watchdog():
        step = max(quiet_cycles // 20, 1)
        last_total, quiet = -1, 0
        while True:
            await ClockCycles(clock, step)
            total = sum(sum(checker.counts.values()) for checker in checkers)
            quiet = quiet + step if total == last_total else 0
            last_total = total
            if quiet >= quiet_cycles:
                waiting = [f"{c.name}: {w}" for c in checkers for w in c.outstanding()]
                raise AssertionError(f"no handshake on any AXI port for {quiet} cycles (a hang); "
                                     f"outstanding: {'; '.join(waiting[:8]) or 'nothing'}")

    _, results = await select(gather(*work), watchdog())
    return list(results)
