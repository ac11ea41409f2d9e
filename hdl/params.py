"""Hardware parameters, each defined once with its allowed range.

Block constructors call :meth:`Param.validate` on their keyword arguments, and ``trntile verilog`` builds
its command-line options from the same objects, so a bad value gets the same message wherever it comes
from. Ranges follow ``ARCHITECTURE.md`` section 2.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Param", "PARTITIONS", "SBUF_BYTES", "SBUF_LATENCY", "STREAM_WIDTH", "FIFO_DEPTH", "AXI_DATA_WIDTH", "AXI_ID_WIDTH",
           "XBAR_MASTERS", "XBAR_SLAVES", "MAX_OUTSTANDING", "REGISTER_SLICES", "DMA_QUEUES", "DMA_OUTSTANDING",
           "DRAM_BYTES", "DTYPES", "FP_CUTS", "SEMAPHORES", "ACT_LANES", "is_power_of_two"]


def is_power_of_two(value: int) -> bool:
    """Whether ``value`` is 1, 2, 4, ... (``False`` for 0 and negative numbers)."""
    return value > 0 and value & (value - 1) == 0


@dataclasses.dataclass(frozen=True)
class Param:
    """An integer hardware parameter: its name, default, and the rule a value must meet.

    Parameters
    ----------
    name : str
        Keyword argument name; ``--name`` (with ``-`` for ``_``) on the command line.
    default : int
        Value used when none is given.
    minimum, maximum : int
        Inclusive range.
    power_of_two : bool
        Whether the value must also be a power of two.
    help : str
        One line for ``--help`` and the docs.
    """

    name: str
    default: int
    minimum: int
    maximum: int
    help: str
    power_of_two: bool = False

    @property
    def allowed(self) -> str:
        """The rule in words, as error messages quote it."""
        span = f"{self.minimum}..{self.maximum}"
        return f"a power of two in {span}" if self.power_of_two else f"an integer in {span}"

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def validate(self, value: object) -> int:
        """Return ``value`` if it meets the rule; otherwise raise with a message quoting it.

        Raises
        ------
        TypeError
            If ``value`` is not an ``int`` (``bool`` is refused too).
        ValueError
            If ``value`` is out of range or not a power of two when one is required.
        """
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.name} must be {self.allowed}, not {value!r} ({type(value).__name__})")
        ok = self.minimum <= value <= self.maximum
        if ok and self.power_of_two:
            ok = is_power_of_two(value)
        if not ok:
            raise ValueError(f"{self.name} must be {self.allowed}, not {value!r}")
        return value


PARTITIONS = Param(
    "partitions", default=16, minimum=4, maximum=128, power_of_two=True,
    help="P: SBUF/PSUM partitions = systolic array rows = columns = (logical) ACT lanes")

SBUF_BYTES = Param(
    "sbuf_bytes", default=16 * 1024, minimum=1024, maximum=256 * 1024, power_of_two=True,
    help="bytes in each SBUF partition")

SBUF_LATENCY = Param(
    "sbuf_latency", default=1, minimum=1, maximum=8,
    help="read latency of the block tests' SBUF model, in cycles")

STREAM_WIDTH = Param(
    "width", default=32, minimum=1, maximum=4096,
    help="payload width of a stream block, in bits")

FIFO_DEPTH = Param(
    "depth", default=16, minimum=2, maximum=65536,
    help="number of beats a stream FIFO holds")

AXI_DATA_WIDTH = Param(
    "data_width", default=128, minimum=32, maximum=512, power_of_two=True,
    help="AXI data width in bits")

AXI_ID_WIDTH = Param(
    "id_width", default=4, minimum=0, maximum=8,
    help="AXI ID width on the masters' side, in bits")

XBAR_MASTERS = Param(
    "masters", default=2, minimum=1, maximum=8,
    help="crossbar slave ports, one per master that connects to it")

XBAR_SLAVES = Param(
    "slaves", default=2, minimum=1, maximum=16,
    help="crossbar master ports, one per target")

MAX_OUTSTANDING = Param(
    "max_outstanding", default=8, minimum=1, maximum=64,
    help="transactions a crossbar port may have outstanding per direction")

REGISTER_SLICES = Param(
    "register_slices", default=0, minimum=0, maximum=1,
    help="1: a register slice on every channel of every crossbar port")

DMA_QUEUES = Param(
    "queues", default=4, minimum=1, maximum=16,
    help="DMA descriptor queues")

DMA_OUTSTANDING = Param(
    "outstanding", default=8, minimum=1, maximum=32,
    help="AXI bursts the DMA keeps in flight per direction")

DRAM_BYTES = Param(
    "dram_bytes", default=1 << 32, minimum=4096, maximum=1 << 32, power_of_two=True,
    help="bytes of DRAM from address 0 that DMA walks may reach")

DTYPES = Param(
    "dtypes", default=15, minimum=1, maximum=15,
    help="operand types the tensor engine is built for, a mask: 1 bf16, 2 fp8_e4m3, 4 fp8_e5m2, 8 int8 "
         "(15 all); names joined by commas on the command line")

FP_CUTS = Param(
    "fp_cuts", default=0, minimum=0, maximum=2,
    help="registers inside each float unit of the tensor engine (the PE's multiplier and binary32 adder, "
         "PSUM's adder) and after PSUM's block RAM: 1 or 2 (the adders' second after normalization), a cycle "
         "more per array row for each; for FPGAs (no effect without a float dtype)")

SEMAPHORES = Param(
    "semaphores", default=32, minimum=1, maximum=256,
    help="semaphores in the tile's semaphore file")

ACT_LANES = Param(
    "act_lanes", default=128, minimum=1, maximum=128, power_of_two=True,
    help="physical ACT lanes built, at most P (a larger value means P): with fewer, a column takes "
         "P / act_lanes cycles; for FPGAs")
