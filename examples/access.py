"""Access: parameters by layer, by name, all at once, and in nested blocks.

    python examples/access.py --backend keras
"""

from __future__ import annotations

import numpy as np
from models import backend_from_args, mlp

import unifyparams as up


def main() -> None:
    backend = backend_from_args(__doc__.splitlines()[0])
    net = mlp(backend)
    ps = up.params(net)
    print(ps)  # the tree: blocks, shapes, dtypes

    # One parameter by name: canonical layout (out, in) whatever the framework stores.
    w = ps["2.weight"]
    print(f"{w.name}: shape {w.shape}, dtype {w.dtype}, native name {w.native_name!r}, layout {w.layout.tag}")

    # All at once: the framework-neutral state dict.
    state = ps.numpy()
    print({name: value.shape for name, value in state.items()})

    # Selection by pattern.
    print("weights:", list(ps.select("*.weight")))

    # Gradients after a native backward pass (default loss: sum of outputs).
    grads = up.gradients(net, np.ones((2, 20), np.float32))
    print("grad of 2.bias:", grads["2.bias"])  # each output's sum over the batch of 2 -> all 2.0
    assert np.allclose(grads["2.bias"], 2.0)
    print(f"{ps.count():,} scalars")


if __name__ == "__main__":
    main()
