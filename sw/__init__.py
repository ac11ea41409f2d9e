"""Software around the RTL: the ``trntile`` command line (and later the assembler and kernel API)."""
