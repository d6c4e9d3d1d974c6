"""The one compiled part: ``unifyparams._transpose``, a transposing copy (see its C source).

It is optional: where no C compiler is found the build goes on without it, and unifyparams copies
with NumPy (``unifyparams.transpose_kernel.available()`` is then False). Everything else about the
package is in pyproject.toml.
"""

import sys

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "unifyparams._transpose",
            sources=["unifyparams/_native/transpose.c"],
            optional=True,
            py_limited_api=True,
            extra_compile_args=[] if sys.platform == "win32" else ["-O3"],
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
