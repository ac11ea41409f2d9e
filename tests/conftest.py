"""Shared pytest setup: where builds go, and what happens when a simulator is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trntile.sim import toolchain
from trntile.sim.runner import SIMULATORS

ROOT = Path(__file__).resolve().parent.parent

# One build root for the whole checkout, wherever pytest is started from.
os.environ.setdefault("TRNTILE_BUILD_DIR", str(ROOT / "build" / "sim"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(tool: toolchain.Tool) -> None:
    """Skip the test if ``tool`` is missing, or fail it under ``CI=true``, saying how to install it."""
    if tool.found:
        return
    message = f"{tool.name} is missing{f' ({tool.problem})' if tool.problem else ''}; install with: {tool.install}"
    if in_ci():
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require_simulator(sim: str) -> None:
    require(toolchain.verilator() if sim == "verilator" else toolchain.icarus())


def simulators(*only: str) -> list:
    """``sim`` parameter values, each marked with its simulator so ``-m icarus`` selects them."""
    return [pytest.param(sim, marks=getattr(pytest.mark, sim), id=sim) for sim in (only or SIMULATORS)]
