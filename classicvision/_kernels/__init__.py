"""Numba kernels, one module per primitive, each with plain-numpy references (tests compare
them). Nothing here checks its input: the public modules validate at the door."""
