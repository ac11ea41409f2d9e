"""Toolchain discovery, the cocotb runner, and wave files."""
