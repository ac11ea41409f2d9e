"""cocotb testbenches. Each ``test_*.py`` here is a cocotb test module run by :mod:`trntile.sim.runner`."""
