"""Only the C extensions: everything else about the package is in pyproject.toml.

Both are optional: where they cannot be built (no compiler), the install still
succeeds. Without statestore._hll the processor sends every HyperLogLog member
(statestore.hll); without services.processor._columns it folds with map() and
Counter instead (services.processor.columns).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("statestore._hll", ["statestore/_hll.c"], optional=True),
        Extension(
            "services.processor._columns", ["services/processor/_columns.c"], optional=True
        ),
    ]
)
