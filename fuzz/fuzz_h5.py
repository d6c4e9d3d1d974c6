"""Fuzz the Keras ``.weights.h5`` reader (``unifyparams_keras.native_files.read_keras_h5``, h5py)."""

import atheris
from harness import fuzz

with atheris.instrument_imports(include=["unifyparams"]):
    from unifyparams_keras.native_files import read_keras_h5

if __name__ == "__main__":
    fuzz(read_keras_h5, ".h5")
