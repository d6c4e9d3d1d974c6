"""Fuzz the Gluon ``.params`` reader (``unifyparams_gluon.native_files.read_gluon``, parsed with NumPy)."""

import atheris
from harness import fuzz

with atheris.instrument_imports(include=["unifyparams", "unifyparams_gluon"]):
    import unifyparams_gluon.params_file  # noqa: F401 (imported lazily by the reader: instrument it too)
    from unifyparams_gluon.native_files import read_gluon

if __name__ == "__main__":
    fuzz(read_gluon, ".params")
