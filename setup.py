"""The compiled parts: ``unifyparams._transpose``, a transposing copy, and ``unifyparams._draws``,
uniform values from NumPy's PCG64 stream (see their C sources in ``unifyparams/_native``).

Both are optional: where no C compiler is found the build goes on without them, and unifyparams
copies and draws with NumPy (``unifyparams.transpose_kernel.available()`` and
``unifyparams.draw_kernel.available()`` are then False). Everything else about the package is in
pyproject.toml.
"""

import sys

from setuptools import Extension, setup

#: The draws must round as NumPy does: one multiply, then one add, never fused into one.
STRICT_FLOATS = ["/fp:precise"] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "unifyparams._transpose",
            sources=["unifyparams/_native/transpose.c"],
            optional=True,
            py_limited_api=True,
            extra_compile_args=[] if sys.platform == "win32" else ["-O3"],
        ),
        Extension(
            "unifyparams._draws",
            sources=["unifyparams/_native/draws.c"],
            optional=True,
            py_limited_api=True,
            extra_compile_args=STRICT_FLOATS,
        ),
    ],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
