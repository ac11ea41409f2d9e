"""Golden models: pure numpy functions, bit-exact by construction, that the RTL is compared with."""
