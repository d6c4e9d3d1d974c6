"""numpynn: a tiny NumPy neural-network framework, written to show a third-party unifyparams adapter.

>>> import numpy as np, numpynn as nn
>>> net = nn.Sequential(nn.Dense(8, in_features=4), nn.ReLU(), nn.Dense(2))   # the last waits for data
>>> net(np.zeros((3, 4), np.float32)).shape
(3, 2)
"""

from .containers import ModuleDict, ModuleList, Sequential
from .core import LayerError, Module, Variable, backward, observe, unique_variables
from .layers import (
    GRU,
    LSTM,
    BatchNorm,
    Concatenate,
    Conv,
    Conv1d,
    Conv2d,
    Dense,
    Embedding,
    Flatten,
    GlobalAvgPool2d,
    LayerNorm,
    MaxPool2d,
    ReLU,
)

__all__ = [
    "GRU",
    "LSTM",
    "BatchNorm",
    "Concatenate",
    "Conv",
    "Conv1d",
    "Conv2d",
    "Dense",
    "Embedding",
    "Flatten",
    "GlobalAvgPool2d",
    "LayerError",
    "LayerNorm",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "ReLU",
    "Sequential",
    "Variable",
    "backward",
    "observe",
    "unique_variables",
]
