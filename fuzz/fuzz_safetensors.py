"""Fuzz the safetensors reader (``unifyparams.checkpoint.format`` through ``unifyparams.native.ours``)."""

import atheris
from harness import fuzz

with atheris.instrument_imports(include=["unifyparams"]):
    import unifyparams.checkpoint.format  # noqa: F401
    from unifyparams.native.ours import read_safetensors

if __name__ == "__main__":
    fuzz(read_safetensors, ".safetensors")
