"""unifyparams: one interface for the parameters of PyTorch, Keras and MXNet Gluon models.

>>> import unifyparams as up
>>> ps = up.params(model)                 # doctest: +SKIP
>>> ps.select("*.weight").numpy()         # doctest: +SKIP

Importing this package imports no framework; adapters are found through the
``unifyparams.adapters`` entry-point group.
"""

from __future__ import annotations

import sys

from . import init
from . import initialization as _initialization
from .access import gradients, params, tree
from .adapter import Adapter, Role, Slot
from .checkpoint import CheckpointReport, load, save
from .errors import (
    AdapterUnavailableError,
    CheckpointError,
    CollectiveFailure,
    DtypeMismatchError,
    InitializerError,
    LoadError,
    NotMaterializedError,
    ParameterNotFoundError,
    ShapeMismatchError,
    TieError,
    UnifyParamsError,
    UnsupportedModelError,
    WriteError,
)
from .initialization import Initialized, initialize, seed
from .lazy import is_materialized, materialize, pending
from .param import Param
from .paramset import LoadReport, ParamSet
from .porting import DataflowError, DenseInput, PortError, PortReport, port
from .registry import adapter_for, available_adapters, get_adapter, register_adapter
from .tying import pending_ties, tie, ties, untie, waiting_ties

# The module was named ``unifyparams.initialize`` like the function; ``from unifyparams.initialize
# import ...`` keeps working without a file of that name (which would shadow ``up.initialize``).
sys.modules.setdefault(f"{__name__}.initialize", _initialization)

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "AdapterUnavailableError",
    "CheckpointError",
    "CollectiveFailure",
    "CheckpointReport",
    "DtypeMismatchError",
    "Initialized",
    "InitializerError",
    "LoadError",
    "LoadReport",
    "NotMaterializedError",
    "Param",
    "ParamSet",
    "ParameterNotFoundError",
    "PortError",
    "DataflowError",
    "DenseInput",
    "PortReport",
    "Role",
    "ShapeMismatchError",
    "Slot",
    "TieError",
    "UnifyParamsError",
    "UnsupportedModelError",
    "WriteError",
    "adapter_for",
    "available_adapters",
    "get_adapter",
    "gradients",
    "init",
    "initialize",
    "is_materialized",
    "load",
    "materialize",
    "params",
    "pending",
    "pending_ties",
    "port",
    "register_adapter",
    "save",
    "seed",
    "tie",
    "ties",
    "tree",
    "untie",
    "waiting_ties",
]
