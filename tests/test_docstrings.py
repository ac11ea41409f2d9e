"""Every public module, class and function states its contract in a docstring, and every public Amaranth
component documents its ports (a numpydoc ``Members`` section) and, if it takes any, its parameters."""

import importlib
import inspect
import pkgutil

import pytest
from amaranth.lib import wiring

PACKAGES = ("hdl", "golden", "sw", "sim", "tb")


def modules():
    for package in PACKAGES:
        parent = importlib.import_module(f"trntile.{package}")
        for info in pkgutil.iter_modules(parent.__path__):
            yield f"trntile.{package}.{info.name}"


def public_objects(module):
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield name, obj


def undocumented(module) -> list[str]:
    missing = [] if (module.__doc__ or "").strip() else ["the module"]
    for name, obj in public_objects(module):
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            # elaborate() is Amaranth's protocol; what it builds is the class's contract.
            missing += [f"{name}.{method}" for method, function in vars(obj).items()
                        if inspect.isfunction(function) and not method.startswith("_") and method != "elaborate"
                        and not (function.__doc__ or "").strip()]
    return missing


@pytest.mark.parametrize("name", list(modules()))
def test_public_names_have_docstrings(name):
    missing = undocumented(importlib.import_module(name))
    assert not missing, f"{name}: no docstring on {', '.join(missing)}"


def components():
    for name in modules():
        module = importlib.import_module(name)
        for attribute, obj in public_objects(module):
            if inspect.isclass(obj) and issubclass(obj, wiring.Component):
                yield f"{name}.{attribute}", obj


@pytest.mark.parametrize("name,component", list(components()))
def test_components_document_members_and_parameters(name, component):
    doc = inspect.getdoc(component) or ""
    assert "Members\n-------" in doc, f"{name}: no numpydoc 'Members' section listing its ports"
    own = component.__init__ is not wiring.Component.__init__   # else it takes only a signature
    takes = [p for p in inspect.signature(component.__init__).parameters if p not in ("self", "args", "kwargs")] \
        if own else []
    if takes:
        assert "Parameters\n----------" in doc, f"{name}: takes {', '.join(takes)} but has no 'Parameters' section"


def test_the_checker_finds_an_undocumented_function():
    module = type(inspect)("example", "module docstring")
    module.__all__ = ["f"]
    module.f = lambda: None
    assert undocumented(module) == ["f"]
