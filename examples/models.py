"""The same small models written natively in each framework, for the examples.

Every example takes ``--backend torch|keras|gluon``; the code that follows the model is the same
for all three, which is the point of unifyparams.
"""

from __future__ import annotations

import argparse
from typing import Any

BACKENDS = ("torch", "keras", "gluon")


def backend_from_args(description: str) -> str:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    return parser.parse_args().backend


def mlp(backend: str) -> Any:
    """Dense(20->256), ReLU, Dense(256->10): names 0.*, 2.* in every framework."""
    if backend == "torch":
        import torch

        return torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    if backend == "keras":
        import keras

        return keras.Sequential(
            [keras.Input((20,)), keras.layers.Dense(256), keras.layers.ReLU(), keras.layers.Dense(10)]
        )
    from unifyparams_gluon import import_mxnet

    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    net.add(nn.Dense(256, in_units=20), nn.Activation("relu"), nn.Dense(10, in_units=256))
    net.initialize()
    return net


def lazy_mlp(backend: str) -> Any:
    """Dense(256), ReLU, Dense(10) whose input size is not known until data flows."""
    if backend == "torch":
        import torch

        return torch.nn.Sequential(torch.nn.LazyLinear(256), torch.nn.ReLU(), torch.nn.LazyLinear(10))
    if backend == "keras":
        import keras

        return keras.Sequential([keras.layers.Dense(256), keras.layers.ReLU(), keras.layers.Dense(10)])
    from unifyparams_gluon import import_mxnet

    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    net.add(nn.Dense(256), nn.Activation("relu"), nn.Dense(10))
    net.initialize()
    return net


def shared_mlp(backend: str, shared: bool = True) -> Any:
    """Dense(20->8), ReLU, S, ReLU, S, ReLU, Dense(8->1), with S one layer used twice
    (the framework's own way of sharing); ``shared=False`` puts two separate layers there."""
    if backend == "torch":
        import torch

        first = torch.nn.Linear(8, 8)
        second = first if shared else torch.nn.Linear(8, 8)
        relu = torch.nn.ReLU
        return torch.nn.Sequential(torch.nn.Linear(20, 8), relu(), first, relu(), second, relu(), torch.nn.Linear(8, 1))
    if backend == "keras":
        import keras

        layers = keras.layers
        first = layers.Dense(8)
        second = first if shared else layers.Dense(8)
        return keras.Sequential(
            [keras.Input((20,)), layers.Dense(8), layers.ReLU(), first, layers.ReLU(), second, layers.ReLU(), layers.Dense(1)]
        )
    from unifyparams_gluon import import_mxnet

    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    first = nn.Dense(8, in_units=8)
    second = nn.Dense(8, in_units=8, params=first.params if shared else None)
    net.add(nn.Dense(8, in_units=20), nn.Activation("relu"), first, nn.Activation("relu"),
            second, nn.Activation("relu"), nn.Dense(1, in_units=8))
    net.initialize()
    return net
