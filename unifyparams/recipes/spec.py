"""What a recipe says: how one model library names one family's tensors and configuration.

A *family* (``"gpt2"``, ``"llama"``) has one set of **reference names**: Hugging Face
``transformers``' state-dict names without the task prefix (``h.{i}.attn.c_attn.weight``), the
hub every library is described against, and one set of reference configuration keys
(``transformers``' ``config.json`` keys). A :class:`Recipe` is one library's side of a family:
which model classes it covers, the template of each tensor it holds in terms of the reference
names, and where each reference configuration value lives in the library's own configuration.
Two recipes of one family port a model of either library into the other, both ways, composed
through the reference names; a library is added to a family by writing its recipe alone.

Values are canonical (unifyparams' layouts: an ``nn.Linear``'s ``(out, in)`` everywhere), so a
recipe only states what layouts cannot: fused tensors (:class:`Split`), transposes that are a
matter of convention (:class:`Transposed`), and names.

>>> recipe = Recipe(
...     family="toy", library="toylib", models=("ToyNet",),
...     tensors={"layers.{i}.qkv.weight": Split(0, ("blocks.{i}.q.w", "blocks.{i}.k.w", "blocks.{i}.v.w")),
...              "head.weight": "out.w"},
...     config={"hidden_size": "width", "norm_eps": Fixed(1e-5)})
>>> recipe.templates()
['blocks.{i}.q.w', 'blocks.{i}.k.w', 'blocks.{i}.v.w', 'out.w']
>>> Split(0, ("a", "b")).describe(1)
'part 2 of 2 along axis 0'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnifyParamsError


class RecipeError(UnifyParamsError, ValueError):
    """A recipe that cannot be applied as written (a bad template, a transform that does not fit)."""


@dataclass(frozen=True)
class Fixed:
    """A configuration value the library does not let you choose (keras-hub's GPT-2 always uses
    ``gelu`` with the tanh approximation, Hugging Face's ``"gelu_new"``).

    ``approximates``: other values this one is a close approximation of (keras-hub's BERT uses
    the tanh GELU where Hugging Face's uses the exact one): meeting one of them is a warning
    (outputs differ slightly), any other value a problem.
    """

    value: Any
    approximates: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Transposed:
    """The library keeps the reference tensor's transpose (a 2-d tensor), by convention rather
    than layout: ``reference = library.T``."""

    name: str

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def join(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(parts[0].T)

    def split(self, reference: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        return [np.ascontiguousarray(reference.T)]

    def reference_shape(self, shapes: Sequence[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return tuple(reversed(shapes[0]))

    def describe(self, k: int) -> str:
        return "transposed"


class Split:
    """One reference tensor that the library keeps as several, concatenated along ``axis`` in
    this order: GPT-2's ``c_attn`` (query, key and value in one) against separate projections.
    The parts' sizes come from the library's tensors, so unequal parts (grouped key/value heads)
    need nothing more."""

    def __init__(self, axis: int, names: Sequence[str]):
        self.axis = int(axis)
        self.names_ = tuple(names)
        if len(self.names_) < 2 or not all(isinstance(n, str) for n in self.names_):
            raise RecipeError(f"Split needs two or more template strings; received names={list(names)!r}")

    def __repr__(self) -> str:
        return f"Split({self.axis}, {list(self.names_)!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return self.names_

    def join(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(list(parts), axis=self.axis)

    def split(self, reference: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        sizes = [int(shape[self.axis]) for shape in shapes]
        if sum(sizes) != reference.shape[self.axis]:
            raise RecipeError(
                f"cannot split a tensor of shape {tuple(reference.shape)} along axis {self.axis} into parts of "
                f"sizes {sizes}: they add up to {sum(sizes)}"
            )
        bounds = np.cumsum([0, *sizes])
        index = [slice(None)] * reference.ndim
        parts = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            index[self.axis] = slice(int(start), int(stop))
            parts.append(np.ascontiguousarray(reference[tuple(index)]))
        return parts

    def reference_shape(self, shapes: Sequence[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        first = list(shapes[0])
        sizes = [s[self.axis] for s in shapes]
        known = [s for s in sizes if s is not None]
        first[self.axis] = sum(known) if len(known) == len(sizes) else None
        return tuple(first)

    def describe(self, k: int) -> str:
        return f"part {k + 1} of {len(self.names_)} along axis {self.axis}"


class Rows:
    """The library keeps rows ``start:`` of the reference tensor, with one row of another
    reference tensor added to every row: RoBERTa's position table in gluonnlp is Hugging Face's
    from row ``pad_token_id + 1`` on, with its single token-type row folded in
    (``Rows(name, start=2, fold=("embeddings.token_type_embeddings.weight", 0))``). Back, the
    reference tensor gets zeros in the rows the library does not use (and the folded tensor is
    zero: declare it :class:`Zeros` in the same recipe)."""

    def __init__(self, name: str, start: int, fold: tuple[str, int] | None = None):
        self.name, self.start, self.fold = name, int(start), fold
        if self.start < 0:
            raise RecipeError(f"Rows needs start >= 0; received start={start}")

    def __repr__(self) -> str:
        return f"Rows({self.name!r}, start={self.start}, fold={self.fold!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def from_reference(self, reference: np.ndarray, folded: np.ndarray | None, rows: int) -> np.ndarray:
        if reference.shape[0] < self.start + rows:
            raise RecipeError(
                f"the reference tensor has {reference.shape[0]} rows; the library's needs rows {self.start} to "
                f"{self.start + rows}"
            )
        value = reference[self.start:self.start + rows]
        return np.ascontiguousarray(value + folded if folded is not None else value)

    def to_reference(self, value: np.ndarray, rows: int) -> np.ndarray:
        out = np.zeros((rows, *value.shape[1:]), value.dtype)
        if rows < self.start + value.shape[0]:
            raise RecipeError(f"a reference tensor of {rows} rows cannot hold rows {self.start}+{value.shape[0]}")
        out[self.start:self.start + value.shape[0]] = value
        return out


class Zeros:
    """The library has no such tensor: in its models the reference tensor is zero (RoBERTa's
    token-type row, which gluonnlp folds into its positions). Written to a file, it has ``rows``
    rows shaped like the rows of reference tensor ``like``."""

    names: tuple[str, ...] = ()

    def __init__(self, rows: int = 1, like: str | None = None):
        self.rows, self.like = int(rows), like

    def __repr__(self) -> str:
        return f"Zeros(rows={self.rows}, like={self.like!r})"


#: A library tensor: its template, or a transform over one or more templates.
TensorSpec = str | Split | Transposed | Rows | Zeros
#: Where a reference configuration value lives in the library's configuration.
ConfigSpec = str | Fixed | Callable[[Mapping[str, Any]], Any]


def names_of(spec: TensorSpec) -> tuple[str, ...]:
    """The library templates one tensor spec names."""
    return (spec,) if isinstance(spec, str) else spec.names


@dataclass(frozen=True)
class HFFiles:
    """What writing and reading a ``save_pretrained`` folder of the family needs (the
    ``transformers`` recipe carries it): the ``model_type``, the class written as
    ``architectures`` and its key prefix, reference tensors that the files keep transposed
    (GPT-2's ``Conv1D`` weights are ``(in, out)``), and configuration written as is."""

    model_type: str
    architecture: str
    prefix: str = ""
    stored_transposed: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Reference tensors outside the prefix (a task head: ``lm_head.weight``).
    top_level: tuple[str, ...] = ()
    #: ``config.json`` as read -> the reference configuration (e.g. nested rotary parameters
    #: brought to the top level); None: as is.
    read_file_config: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    #: The reference configuration -> ``config.json`` as written; None: as is.
    write_file_config: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Recipe:
    """One library's side of one model family (see the module docstring).

    ``models``: class names (any class along the model's hierarchy) this recipe describes.
    ``tensors``: reference template -> this library's template, or a :class:`Split` /
    :class:`Transposed` of templates; ``{i}`` stands for a layer index in both.
    ``config``: reference key -> the library's key, a :class:`Fixed` value, or a function of the
    library's configuration. ``names``: ``"canonical"`` (match unifyparams' canonical names) or
    ``"native"`` (the framework's own names: Keras variable paths, stable in keras-hub).
    ``prefixes``: task-model prefixes stripped before matching (``"transformer."``).
    ``read_config``: the library's configuration of a model, as a mapping (None: not readable).
    ``export_config``: configuration written to ``transformers`` folders but not compared.
    """

    family: str
    library: str
    models: tuple[str, ...]
    tensors: Mapping[str, TensorSpec]
    config: Mapping[str, ConfigSpec] = field(default_factory=dict)
    names: str = "canonical"
    prefixes: tuple[str, ...] = ("",)
    read_config: Callable[[Any], Mapping[str, Any] | None] | None = None
    hf: HFFiles | None = None
    #: Configuration written to a ``transformers`` folder but never compared (it does not change
    #: what the model computes: dropout rates), in the same form as ``config``.
    export_config: Mapping[str, ConfigSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.names not in ("canonical", "native"):
            raise RecipeError(f"recipe {self.key}: names must be 'canonical' or 'native'; received {self.names!r}")
        for reference, spec in self.tensors.items():
            if not isinstance(spec, (str, Split, Transposed, Rows, Zeros)):
                raise RecipeError(
                    f"recipe {self.key}: tensor {reference!r} maps to {spec!r}; expected a template string, "
                    f"Split(axis, names), Transposed(name), Rows(name, start, fold) or Zeros()"
                )

    @property
    def key(self) -> str:
        """``"family/library"``, as reports name it."""
        return f"{self.family}/{self.library}"

    def templates(self) -> list[str]:
        """Every library template, in the recipe's order."""
        return [name for spec in self.tensors.values() for name in names_of(spec)]

    def approximates(self, reference_key: str) -> tuple[Any, ...]:
        """The values this library's fixed value for ``reference_key`` approximates."""
        spec = self.config.get(reference_key)
        return spec.approximates if isinstance(spec, Fixed) else ()

    def config_value(self, reference_key: str, library_config: Mapping[str, Any] | None) -> tuple[bool, Any]:
        """``(known, value)`` of a reference configuration key for a model of this library."""
        spec = self.config.get(reference_key, self.export_config.get(reference_key))
        if spec is None:
            return False, None
        if isinstance(spec, Fixed):
            return True, spec.value
        if library_config is None:
            return False, None
        if callable(spec):
            try:
                return True, spec(library_config)
            except (KeyError, TypeError):
                return False, None
        if spec in library_config:
            return True, library_config[spec]
        return False, None
