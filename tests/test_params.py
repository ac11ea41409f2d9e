"""Parameter rules: the range and type checks every block constructor and the command line share."""

import pytest

from trntile.hdl.params import PARTITIONS


@pytest.mark.parametrize("value", [0, 3, 12, 256, 2])
def test_partitions_must_be_a_power_of_two_in_range(value):
    with pytest.raises(ValueError, match=rf"partitions must be a power of two in 4\.\.128, not {value}"):
        PARTITIONS.validate(value)


@pytest.mark.parametrize("value", [4, 8, 16, 128])
def test_partitions_accepts_the_documented_range(value):
    assert PARTITIONS.validate(value) == value


@pytest.mark.parametrize("value", ["16", 16.0, True, None])
def test_parameters_refuse_non_integers(value):
    with pytest.raises(TypeError, match=r"partitions must be .*not"):
        PARTITIONS.validate(value)
