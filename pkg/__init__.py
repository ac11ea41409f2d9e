"""trntile: an open, simulatable compute tile in the style of an AWS Trainium NeuronCore.

Subpackages: :mod:`trntile.hdl` (Amaranth blocks), :mod:`trntile.golden` (numpy models),
:mod:`trntile.tb` (cocotb testbenches), :mod:`trntile.sim` (toolchain discovery, runner, waves),
:mod:`trntile.sw` (command line and, later, the assembler and kernel API).
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("trntile")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
