"""Porting: move a model between two frameworks and check that the outputs agree.

    python examples/porting.py --backend torch      # ports torch -> keras and torch -> gluon
"""

from __future__ import annotations

import numpy as np
from models import BACKENDS, backend_from_args, mlp

import unifyparams as up
from unifyparams.conformance import load_builders


def main() -> None:
    source_backend = backend_from_args(__doc__.splitlines()[0])
    source = mlp(source_backend)
    up.initialize(source, up.init.XavierUniform(), seed=0)
    x = np.random.default_rng(0).normal(size=(4, 20)).astype(np.float32)
    kits = {b: load_builders(up.available_adapters()[b]) for b in BACKENDS}
    expected = kits[source_backend].forward(source, x)
    for target_backend in BACKENDS:
        if target_backend == source_backend:
            continue
        target = mlp(target_backend)
        report = up.port(source, target)
        print(report)
        diff = np.abs(kits[target_backend].forward(target, x) - expected).max()
        print(f"{source_backend} -> {target_backend}: max abs output difference {diff:.2e}")
        assert diff <= 1e-5


if __name__ == "__main__":
    main()
