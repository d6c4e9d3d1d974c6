"""Fuzz the PyTorch state-dict reader (``unifyparams_torch.native_files.read_torch``, ``weights_only``)."""

import atheris
from harness import fuzz

with atheris.instrument_imports(include=["unifyparams", "unifyparams_torch"]):
    from unifyparams_torch.native_files import read_torch

if __name__ == "__main__":
    fuzz(read_torch, ".pt")
