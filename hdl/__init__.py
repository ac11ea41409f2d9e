"""Amaranth blocks of the trntile compute tile, one ``wiring.Component`` per module."""
