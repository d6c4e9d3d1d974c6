"""Checkpoints: save from one framework, load into every framework, ties kept.

    python examples/checkpoints.py --backend keras
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from models import BACKENDS, backend_from_args, shared_mlp

import unifyparams as up


def main() -> None:
    backend = backend_from_args(__doc__.splitlines()[0])
    net = shared_mlp(backend)
    up.initialize(net, up.init.KaimingUniform(nonlinearity="relu"), seed=3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        up.save(net, path)  # canonical names and layouts; the shared layer stored once
        print(f"saved {path.name}: {path.stat().st_size:,} bytes from {backend}")
        for target_backend in BACKENDS:
            target = shared_mlp(target_backend, shared=False)
            report = up.load(target, path)  # ties come back: 2.* and 4.* become one storage
            same = all(np.array_equal(up.params(target)[n].numpy(), v) for n, v in up.params(net).numpy().items())
            print(f"  -> {target_backend}: loaded {len(report.loaded)} tensors, ties {up.ties(target)}, identical {same}")
            assert same and up.ties(target) == up.ties(net)


if __name__ == "__main__":
    main()
