"""Only the C extension: everything else about the package is in pyproject.toml.

statestore._hll is optional: where it cannot be built (no compiler), the install
still succeeds and the processor sends every HyperLogLog member (statestore.hll).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("statestore._hll", ["statestore/_hll.c"], optional=True)])
