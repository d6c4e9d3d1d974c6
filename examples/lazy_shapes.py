"""Lazy shapes: names before data, initializers that wait for the shapes, then materialize.

    python examples/lazy_shapes.py --backend keras
"""

from __future__ import annotations

import numpy as np
from models import backend_from_args, lazy_mlp

import unifyparams as up


def main() -> None:
    backend = backend_from_args(__doc__.splitlines()[0])
    net = lazy_mlp(backend)
    print(up.tree(net))  # unknown input dimensions print as '?'
    print("materialized:", up.is_materialized(net))

    up.initialize(net, up.init.XavierUniform(), seed=7)  # recorded: shapes are not known yet
    for pending in up.pending(net).values():
        print("waiting:", pending)

    up.materialize(net, np.zeros((2, 20), np.float32))  # one inference pass; no training step
    ps = up.params(net)
    print({name: p.shape for name, p in ps.items()})
    bound = np.sqrt(6 / (20 + 256))
    print(f"0.weight within the Xavier bound {bound:.4f}: {bool(np.abs(ps['0.weight'].numpy()).max() <= bound)}")


if __name__ == "__main__":
    main()
