"""Fuzz the safetensors reader (``unifyparams.checkpoint.format`` through ``unifyparams.formats.safetensors``)."""

import atheris
from harness import fuzz

with atheris.instrument_imports(include=["unifyparams"]):
    import unifyparams.checkpoint.format  # noqa: F401
    from unifyparams.formats.safetensors import read_safetensors

if __name__ == "__main__":
    fuzz(read_safetensors, ".safetensors")
