"""Tying: a layer used twice, ties made with up.tie, and gradients that accumulate.

    python examples/tying.py --backend gluon
"""

from __future__ import annotations

import numpy as np
from models import backend_from_args, shared_mlp

import unifyparams as up


def main() -> None:
    backend = backend_from_args(__doc__.splitlines()[0])
    net = shared_mlp(backend)
    print("shared groups:", up.ties(net))  # [('2.weight', '4.weight'), ('2.bias', '4.bias')]
    ps = up.params(net)
    ps["2.weight"][0, 0] = 100.0
    print("4.weight[0, 0] after writing 2.weight[0, 0]:", ps["4.weight"][0, 0])
    print(f"{ps.count():,} scalars (the shared layer counted once)")

    grads = up.gradients(net, np.random.default_rng(0).normal(size=(4, 20)).astype(np.float32))
    same = np.array_equal(grads["2.weight"], grads["4.weight"])
    print("one gradient under both names (the sum of both uses):", same)

    # Ties made with unifyparams, on a model built without sharing.
    twin = shared_mlp(backend, shared=False)
    print("before up.tie:", up.ties(twin))
    up.tie(twin, "2", "4")  # every parameter of block 4 becomes the one of block 2
    print("after up.tie:", up.ties(twin))
    up.untie(twin, "4.weight")  # its own storage again, with the current values
    print("after up.untie('4.weight'):", up.ties(twin))


if __name__ == "__main__":
    main()
