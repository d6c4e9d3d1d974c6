"""Walking an ``nn.Module`` tree: canonical names, roles, and the shapes of lazy parameters.

Canonical names are PyTorch's own dotted attribute paths (``features.0.weight``), so Sequential
positions, ModuleList indices and ModuleDict keys come out as users write them. A model wrapped
by ``torch.compile`` is walked through its original module, so names carry no ``_orig_mod.``.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
>>> [(s.name, s.role) for s in walk(net)]          # doctest: +NORMALIZE_WHITESPACE
[('0.weight', 'weight'), ('0.bias', 'bias'), ('1.weight', 'scale'), ('1.bias', 'shift'),
 ('1.running_mean', 'running_mean'), ('1.running_var', 'running_var')]
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator
from operator import attrgetter, is_
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter
from torch.utils.weak import WeakIdKeyDictionary

from unifyparams.adapter import Role, Slot
from unifyparams.layouts import IDENTITY, Layout, Shape, Transpose

from .tensors import storage_key as storage_key_of

#: Buffers reported as (non-trainable) parameters. ``num_batches_tracked`` is deliberately absent:
#: it is a step counter used only when ``momentum=None``, not a value anything is computed from.
STATE_BUFFERS = {"running_mean": Role.RUNNING_MEAN, "running_var": Role.RUNNING_VAR}

_NORM_TYPES: tuple[type, ...] = tuple(
    t for t in (_NormBase, nn.LayerNorm, nn.GroupNorm, getattr(nn, "RMSNorm", None)) if t is not None
)
#: Class names of user-defined normalization layers (``LlamaRMSNorm``, ``T5LayerNorm``, ``FrozenBatchNorm2d``).
_NORM_NAME = re.compile(r"Norm(\d+d)?$|Normalization$")

#: Lazy parameters seen by :func:`walk`, with their owning module and leaf, for :func:`lazy_shape`.
_lazy_owner: WeakIdKeyDictionary = WeakIdKeyDictionary()


def compiled_inner(module: Any) -> Any | None:
    """The module a ``torch.compile`` wrapper (``OptimizedModule``) wraps, else ``None``."""
    inner = getattr(module, "_orig_mod", None) if type(module).__name__ == "OptimizedModule" else None
    return inner if isinstance(inner, nn.Module) else None


def unwrap(module: Any) -> tuple[Any, tuple[str, ...]]:
    """Strip ``torch.compile`` wrappers; returns the module and the native path parts skipped."""
    skipped: tuple[str, ...] = ()
    inner = compiled_inner(module)
    while inner is not None:
        module, skipped = inner, skipped + ("_orig_mod",)
        inner = compiled_inner(module)
    return module, skipped


def is_normalization(module: nn.Module) -> bool:
    """True for normalization layers, whose ``weight``/``bias`` are a scale and a shift."""
    return isinstance(module, _NORM_TYPES) or bool(_NORM_NAME.search(type(module).__name__))


#: Class names of RMS normalizations (``nn.RMSNorm``, ``LlamaRMSNorm``, ``Qwen2RMSNorm``).
_RMS_NAME = re.compile(r"RMSNorm$")


def is_rms_norm(module: nn.Module) -> bool:
    """True for ``nn.RMSNorm`` and normalization layers whose class (or a base class) is named ``*RMSNorm``."""
    return is_normalization(module) and any(_RMS_NAME.search(c.__name__) for c in type(module).__mro__)


#: ``weight`` of a "transposed linear" (Hugging Face's ``Conv1D``: ``(in, out)``) -> canonical ``(out, in)``.
TRANSPOSED_LINEAR = Transpose((1, 0))

_CONV1D_CLASSES: dict[type, bool] = {}


def is_transposed_linear(module: nn.Module) -> bool:
    """True for a linear layer that stores its weight ``(in, out)``, like Hugging Face's ``Conv1D``
    (GPT-2's ``c_attn``, ``c_fc``...), recognized without importing transformers: a class along the
    MRO named ``Conv1D`` (not a ``torch.nn.Conv1d``), an int ``nf`` and a 2-D ``weight`` of ``nf`` columns."""
    cls = type(module)
    named = _CONV1D_CLASSES.get(cls)
    if named is None:
        named = _CONV1D_CLASSES[cls] = not issubclass(cls, nn.Conv1d) and any(
            c.__name__ == "Conv1D" for c in cls.__mro__
        )
    if not named:
        return False
    nf = getattr(module, "nf", None)
    weight = module._parameters.get("weight")
    if not isinstance(nf, int) or isinstance(nf, bool) or weight is None or is_uninitialized(weight):
        return False
    return weight.dim() == 2 and int(weight.shape[1]) == nf


def layout_for(module: nn.Module, leaf: str) -> Layout:
    """The layout of ``module``'s tensor ``leaf``: identity, except a transposed linear's weight."""
    if leaf == "weight" and is_transposed_linear(module):
        return TRANSPOSED_LINEAR
    return IDENTITY


_ROLES: dict[tuple[type, str], str] = {}


def role_for(module: nn.Module, leaf: str) -> str:
    """The :class:`~unifyparams.adapter.Role` of ``module``'s parameter or buffer ``leaf`` (cached per class)."""
    key = (type(module), leaf)
    role = _ROLES.get(key)
    if role is None:
        role = _ROLES[key] = _role_for(module, leaf)
    return role


def _role_for(module: nn.Module, leaf: str) -> str:
    if leaf in STATE_BUFFERS:
        return STATE_BUFFERS[leaf]
    if leaf in ("weight", "bias") and is_normalization(module):
        return Role.SCALE if leaf == "weight" else Role.SHIFT
    # weight, weight_ih_l0 (RNNs), in_proj_weight (attention); likewise for biases (bias_k).
    if leaf.startswith("weight") or leaf.endswith("weight"):
        return Role.WEIGHT
    if leaf.startswith("bias") or leaf.endswith("bias"):
        return Role.BIAS
    return Role.OTHER


_UNINITIALIZED: dict[type, bool] = {}


def is_uninitialized(tensor: Any) -> bool:
    """True for a lazy module's ``UninitializedParameter``/``UninitializedBuffer``.

    Checked by exact type, cached: ``isinstance`` on torch's Parameter metaclass is slow, and this
    runs for every parameter on every read. (A lazy tensor changes its class in place when it is
    materialized, so the type is always current.)
    """
    cls = type(tensor)
    known = _UNINITIALIZED.get(cls)
    if known is None:
        known = _UNINITIALIZED[cls] = issubclass(cls, (UninitializedParameter, UninitializedBuffer))
    return known


def waits_for_shapes(module: nn.Module) -> bool:
    """True if ``module`` itself (not its children) holds an uninitialized lazy tensor."""
    return any(is_uninitialized(t) for t in (*module._parameters.values(), *module._buffers.values()))


class Block:
    """One module reached while walking: where it sits, under which names, and of which kinds."""

    __slots__ = ("module", "path", "native_path", "kinds")

    def __init__(
        self, module: nn.Module, path: tuple[str, ...], native_path: tuple[str, ...], kinds: tuple[str, ...]
    ):
        self.module = module
        #: Canonical path parts (``("encoder", "0")``); empty for the root.
        self.path = path
        #: PyTorch's own path parts, with ``_orig_mod`` where a compiled wrapper was skipped.
        self.native_path = native_path
        #: ``type(...).__name__`` of each module along ``path``.
        self.kinds = kinds


def blocks(root: nn.Module) -> Iterator[Block]:
    """Every module under ``root`` (root first), depth-first in registration order.

    A module reachable under several paths is visited under each; a module registered inside
    itself is not followed again (that would never end). ``torch.compile`` wrappers are skipped.
    """
    root, native_root = unwrap(root)
    block = Block(root, (), native_root, ())
    yield block
    # Each entry: a block, the ids of the modules from the root down to it, and its children not
    # yet visited (listed when the block is left, as its children are then). A child's Block is
    # made when it is visited, so a container of thousands of layers never holds them all at once;
    # a module's set of ancestors is made only when it has children.
    stack: list[tuple[Block, frozenset[int], Iterator[tuple[str, Any]]]] = []
    if root._modules:
        stack.append((block, frozenset({id(root)}), _children(root)))
    while stack:
        parent, ancestors, pending = stack[-1]
        for child_name, child in pending:
            if child is None:
                continue
            child, skipped = unwrap(child)
            if id(child) in ancestors:
                continue
            block = Block(
                child, (*parent.path, child_name), (*parent.native_path, child_name, *skipped),
                (*parent.kinds, type(child).__name__),
            )
            yield block
            if child._modules:
                stack.append((block, ancestors | {id(child)}, _children(child)))
            break
        else:
            stack.pop()


def _children(module: nn.Module) -> Iterator[tuple[str, Any]]:
    """``module``'s ``(name, child)`` pairs as registered now (later changes to it are not seen)."""
    modules = module._modules
    return zip(list(modules), list(modules.values()))


def walk(root: nn.Module) -> Iterator[Slot]:
    """Every parameter and running statistic under ``root``, in ``state_dict`` order.

    Each module yields its parameters, then its ``running_mean``/``running_var`` buffers, then its
    children. A module (or Parameter) reachable twice is yielded under each name, like
    ``named_parameters(remove_duplicate=False)``.
    """
    root_kind = type(unwrap(root)[0]).__name__
    roles, uninitialized = _ROLES, _UNINITIALIZED
    for block in blocks(root):
        module = block.module
        path, kinds = block.path, block.kinds
        prefix = ".".join(path) + "." if path else ""
        same = block.native_path == path  # no compiled wrapper skipped: the native name is the name
        native_prefix = prefix if same else ".".join(block.native_path) + "." if block.native_path else ""
        cls = type(module)
        for leaf, tensor in _own_tensors(module):
            lazy = uninitialized.get(type(tensor))
            if lazy is None:
                lazy = is_uninitialized(tensor)
            if lazy:
                _lazy_owner[tensor] = (weakref.ref(module), leaf)  # weak: the module owns the tensor
            role = roles.get((cls, leaf))
            if role is None:
                role = role_for(module, leaf)
            name = prefix + leaf
            # positional arguments: this runs once per parameter of models with thousands
            yield Slot(name, name if same else native_prefix + leaf, tensor, role,
                       layout_for(module, leaf) if leaf == "weight" else IDENTITY, path, kinds, module, root_kind)


def _own_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """:func:`own_tensors` as a list (no generator per module: :func:`walk` runs it for every one)."""
    found = [(leaf, param) for leaf, param in module._parameters.items() if param is not None]
    buffers = module._buffers
    if buffers:
        found.extend((leaf, b) for leaf, b in buffers.items() if b is not None and leaf in STATE_BUFFERS)
    return found


def own_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``module``'s own parameters, then its running-statistics buffers (not its children's)."""
    for leaf, param in module._parameters.items():
        if param is not None:
            yield leaf, param
    for leaf, buffer in module._buffers.items():
        if buffer is not None and leaf in STATE_BUFFERS:
            yield leaf, buffer


def module_paths(root: nn.Module) -> dict[int, list[str]]:
    """``{id(module): [canonical paths]}`` for every module under ``root`` (shared ones have several)."""
    paths: dict[int, list[str]] = {}
    for block in blocks(root):
        paths.setdefault(id(block.module), []).append(".".join(block.path))
    return paths


def lazy_shape(tensor: Any) -> Shape:
    """The shape an uninitialized lazy tensor will have, ``None`` where it waits for the input.

    ``LazyLinear``: weight ``(out_features, None)``, bias ``(out_features,)``; ``LazyConv{1,2,3}d``:
    weight ``(out, None, *kernel)``; ``LazyConvTranspose*``: weight ``(None, out/groups, *kernel)``;
    lazy norms: ``(None,)``. A lazy module of another kind gives ``(None,)`` (its rank is unknown).
    Never touches the tensor's size, which raises for uninitialized tensors.
    """
    owner = _lazy_owner.get(tensor)
    module = owner[0]() if owner is not None else None
    if module is None:
        return (None,)
    leaf = owner[1]
    if isinstance(module, nn.Linear):
        out = getattr(module, "out_features", None)
        return (out, None) if leaf == "weight" else (out,)
    if isinstance(module, _ConvNd):
        kernel = tuple(module.kernel_size)
        if leaf != "weight":
            return (module.out_channels,)
        if module.transposed:
            return (None, module.out_channels // module.groups, *kernel)
        return (module.out_channels, None, *kernel)
    return (None,)


def structure_check(root: nn.Module, slots: list[Slot]) -> Callable[[], bool] | None:
    """A check that a walk of ``root`` would still yield ``slots`` (:meth:`Adapter.structure_check`):
    every module keeps its class and exactly the submodules, parameters and buffers it had, as the
    same objects under the same names, and every tensor keeps its memory (``p.data = ...`` and
    ``.to(...)`` swap it, which can make or break a tie). Reads a handful of attributes per module
    in C-level loops: a fraction of ``named_parameters()``' cost.

    Not offered (``None``) for DTensors (their memory is a shard, and FSDP2 swaps what a module
    holds between its forward and backward), lazy modules' uninitialized tensors (they change class
    and memory when materialized) or tensors without strided memory (sparse).

    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> check = structure_check(net, list(walk(net)))
    >>> check(), (net.append(nn.Linear(2, 2)) and check())
    (True, False)
    """
    tensors = [s.native for s in slots]
    if not all(map(_check_friendly, {type(t) for t in tensors})):
        return None
    try:
        addresses = [t.data_ptr() for t in tensors]
    except (RuntimeError, ValueError):  # sparse; uninitialized
        return None
    mods, edges = _module_graph(root)
    classes = list(map(type, mods))
    sizes = _sizes(mods)
    parents, names, children = [e[0] for e in edges], [e[1] for e in edges], [e[2] for e in edges]
    owners, leaves = [s.block for s in slots], [s.leaf for s in slots]
    kinds = [_PARAMETERS if leaf in owner._parameters else _BUFFERS for owner, leaf in zip(owners, leaves)]
    # a Hugging Face Conv1D's layout depends on its weight's shape: asked again each time
    transposed = [(m, is_transposed_linear(m)) for m in mods if _CONV1D_CLASSES.get(type(m))]
    shared = _shared_tensors(tensors, addresses)
    data_ptr = torch.Tensor.data_ptr

    def unchanged() -> bool:
        # the same classes and registry sizes, then every registered name holds the same object:
        # together, exactly the registries the walk saw
        if list(map(type, mods)) != classes or _sizes(mods) != sizes:
            return False
        if not all(map(is_, map(dict.get, map(_MODULES, parents), names), children)):
            return False
        if not all(map(is_, map(dict.get, map(_registry, owners, kinds), leaves), tensors)):
            return False
        if list(map(data_ptr, tensors)) != addresses:
            return False
        if any(is_transposed_linear(m) is not was for m, was in transposed):
            return False
        return all(storage_key_of(t) == key for t, key in shared)

    return unchanged


def _module_graph(root: nn.Module) -> tuple[list[nn.Module], list[tuple[nn.Module, str, Any]]]:
    """Every module of the walk once, and every ``(parent, name, child)`` as registered."""
    modules: dict[int, nn.Module] = {}
    edges: list[tuple[nn.Module, str, Any]] = []
    for block in blocks(root):
        module = block.module
        if id(module) not in modules:
            modules[id(module)] = module
            edges.extend((module, name, child) for name, child in module._modules.items())
    return list(modules.values()), edges


def _shared_tensors(tensors: list[Any], addresses: list[int]) -> list[tuple[Any, Any]]:
    """The tensors that share an address with another, each with its storage key (shape, strides,
    dtype): they are, or may become, a tie with no address changing, so they are compared in full."""
    count: dict[int, int] = {}
    for a in addresses:
        count[a] = count.get(a, 0) + 1
    return [(t, storage_key_of(t)) for t, a in zip(tensors, addresses) if a and count[a] > 1]


_MODULES, _PARAMETERS, _BUFFERS = attrgetter("_modules"), attrgetter("_parameters"), attrgetter("_buffers")


def _registry(module: nn.Module, kind: Callable[[nn.Module], dict[str, Any]]) -> dict[str, Any]:
    return kind(module)


def _sizes(mods: list[nn.Module]) -> list[int]:
    """The three registries' sizes of each module, flattened."""
    return [*map(len, map(_MODULES, mods)), *map(len, map(_PARAMETERS, mods)), *map(len, map(_BUFFERS, mods))]


_FRIENDLY: dict[type, bool] = {}


def _check_friendly(cls: type) -> bool:
    """True for tensor classes whose memory the check can follow: not DTensors, not uninitialized."""
    known = _FRIENDLY.get(cls)
    if known is None:
        known = _FRIENDLY[cls] = not any(c.__name__ == "DTensor" for c in cls.__mro__) and not issubclass(
            cls, (UninitializedParameter, UninitializedBuffer)
        )
    return known
