"""Hugging Face ``save_pretrained`` folders, read and written through the family's recipes.

``up.load(keras_hub_backbone, "folder/")`` reads ``config.json`` (its ``model_type`` names the
family), opens ``model.safetensors`` or its sharded index, and ports the file's tensors into
the model through the ``transformers`` recipe and the model's own: names, fused tensors and
GPT-2's ``(in, out)`` ``Conv1D`` weights converted, the configuration compared, all or nothing.
``up.save(model, "folder/", format="transformers")`` writes the reverse: the family's
``transformers`` names and file layouts, ``config.json`` from the model's configuration, so
that ``transformers.AutoModel.from_pretrained("folder/")`` loads it. Nothing here imports a
framework or ``transformers``: the facts are the recipes'.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..access import params
from ..errors import CheckpointError
from ..paramset import ParamSet
from ..porting.report import PortError
from ..progress import ProgressArg, resolve
from ..recipes import Recipe, families, for_model_type, recipe_for, with_files
from ..recipes.plan import keyed
from ..recipes.resolve import Bound, bind, fill, matches
from ..recipes.spec import Rows, Zeros
from .atomic import AtomicFile, fsync_dir
from .source import StoredTensor, checkpoint_params

CONFIG_NAME = "config.json"
#: A ``config.json`` larger than this is not a model configuration (the reader never lets a file
#: decide how much it reads).
MAX_CONFIG_BYTES = 4 << 20


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a ``save_pretrained`` folder, bounded and checked to be a JSON object."""
    path = folder / CONFIG_NAME
    with open(path, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes; expected a model configuration")
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds a JSON {type(config).__name__}; expected an object")
    return config


def is_transformers_folder(path: str | os.PathLike[str]) -> bool:
    """A folder with a ``config.json`` naming a ``model_type`` and no unifyparams checkpoint metadata."""
    folder = Path(path)
    if not (folder.is_dir() and (folder / CONFIG_NAME).is_file()):
        return False
    try:
        return isinstance(read_config(folder).get("model_type"), str)
    except (OSError, CheckpointError):
        return False


def _hf_recipe(config: Mapping[str, Any], folder: Path) -> Recipe:
    model_type = config.get("model_type")
    recipe = for_model_type(str(model_type))
    if recipe is None:
        raise CheckpointError(
            f"{folder / CONFIG_NAME} has model_type {model_type!r}, for which no recipe is declared; known "
            f"families: {sorted(families())}. Declare one in the 'unifyparams.recipes' entry-point group."
        )
    return recipe


def _file_config(recipe: Recipe, config: Mapping[str, Any]) -> Mapping[str, Any]:
    assert recipe.hf is not None
    read = recipe.hf.read_file_config
    return read(config) if read is not None else config


def load_transformers_folder(model: Any, folder: str | os.PathLike[str], *, strict: bool, mmap: bool,
                             atomic: bool, progress: ProgressArg = None) -> tuple[Any, list[str]]:
    """Port a ``save_pretrained`` folder into ``model``; returns the port's report and the files read.

    ``progress`` as for :func:`unifyparams.load` (bytes written into the model).
    """
    from ..porting.port import port_by_recipes
    from .shards import open_checkpoint

    folder = Path(folder)
    config = read_config(folder)
    hf = _hf_recipe(config, folder)
    own = recipe_for(model, family=hf.family)
    if own is None:
        raise CheckpointError(
            f"{folder} holds a {hf.family!r} model (config.json model_type {config.get('model_type')!r}), but no "
            f"{hf.family} recipe describes {type(model).__name__}; libraries with one: "
            f"{sorted(families().get(hf.family, []))}"
        )
    with open_checkpoint(folder, mmap=mmap) as ckpt:
        def reader(name: str) -> Any:
            return lambda: ckpt.tensor(name)

        source = checkpoint_params(
            StoredTensor(n, tuple(ckpt.info(n).shape), ckpt.info(n).dtype, reader(n)) for n in ckpt.names
        )
        try:
            report = port_by_recipes(
                source, params(model), hf, own, strict=strict, atomic=atomic, src_config=_file_config(hf, config),
                dst_config=own.read_config(model) if own.read_config is not None else None, src_is_file=True,
                progress=progress,
            )
        except PortError as exc:
            raise CheckpointError(f"{folder} could not be loaded into this model; nothing was changed. {exc}") from exc
        return report, [str(p) for p in ckpt.paths]


def _hf_tensors(model: Any, ps: ParamSet, own: Recipe, hf: Recipe) -> dict[str, StoredTensor]:
    """``{file key: StoredTensor}`` of ``model`` in the family's ``transformers`` names and file layouts."""
    assert hf.hf is not None
    items = keyed(ps, own)
    binding = bind(own, items)
    if binding.incomplete:
        reference, missing = binding.incomplete[0]
        raise CheckpointError(f"the model has part of {reference} ({own.key}) but not {', '.join(missing)}")
    described = {p.storage_key for b in binding.tensors.values() for p in b.items}
    undescribed = [k for k in binding.unused if items[k].storage_key not in described]
    if undescribed:
        raise CheckpointError(
            f"{len(undescribed)} parameter(s) of the model are not described by recipe {own.key} "
            f"({', '.join(undescribed[:4])}); a transformers folder without them would not be this model"
        )
    transposed = hf.hf.stored_transposed
    out: dict[str, StoredTensor] = {}
    for reference, bound in binding.tensors.items():
        key = reference if _is_top_level(hf, reference) else hf.hf.prefix + reference
        flip = any(matches(t, reference) for t in transposed)
        shape, dtype = _reference_shape(bound, binding)

        def value(bound: Any = bound, flip: bool = flip, shape: tuple[int, ...] = shape, dtype: Any = dtype) -> np.ndarray:
            spec = bound.spec
            if isinstance(spec, Zeros):
                return np.zeros(shape, dtype)
            parts = [p.numpy() for p in bound.items]
            if isinstance(spec, Rows):
                return spec.to_reference(parts[0], shape[0])
            joined = parts[0] if isinstance(spec, str) else spec.join(parts)
            return np.ascontiguousarray(joined.T) if flip else joined

        stored = tuple(reversed(shape)) if flip else shape
        out[key] = StoredTensor(key, stored, dtype, value)
    return out


def _reference_shape(bound: Bound, binding: Any) -> tuple[tuple[int, ...], Any]:
    """The reference tensor's shape and dtype, from the library's tensors."""
    spec = bound.spec
    if isinstance(spec, Zeros):
        like = binding.tensors.get(spec.like) if spec.like else None
        if like is None or not like.items:
            raise CheckpointError(f"{bound.reference}: a Zeros() tensor needs like= naming a reference tensor to be written")
        rows = tuple(int(d) for d in like.items[0].shape[1:])  # type: ignore[arg-type]
        return (spec.rows, *rows), like.items[0].dtype
    shapes = [tuple(int(d) for d in p.shape) for p in bound.items]  # type: ignore[arg-type]
    dtype = bound.items[0].dtype
    if isinstance(spec, str):
        return shapes[0], dtype
    if isinstance(spec, Rows):
        return (spec.start + shapes[0][0], *shapes[0][1:]), dtype
    return tuple(int(d) for d in spec.reference_shape(shapes)), dtype  # type: ignore[arg-type]


def _is_top_level(hf: Recipe, reference: str) -> bool:
    assert hf.hf is not None
    return any(matches(t, reference) for t in hf.hf.top_level)


def _config_json(model: Any, own: Recipe, hf: Recipe) -> dict[str, Any]:
    """The ``config.json`` of ``model``: every reference key its recipe knows, then the family's fixed fields."""
    assert hf.hf is not None
    library_config = own.read_config(model) if own.read_config is not None else None
    config: dict[str, Any] = {}
    for key in dict.fromkeys([*hf.config, *own.export_config]):
        known, value = own.config_value(key, library_config)
        computed = callable(own.config.get(key, own.export_config.get(key)))
        if known and not (computed and value is None):  # a computed None: not applicable, the default holds
            config[key] = value
    for key, value in hf.hf.defaults.items():
        config.setdefault(key, value)
    config["model_type"] = hf.hf.model_type
    config["architectures"] = [hf.hf.architecture]
    write = hf.hf.write_file_config
    return dict(write(config)) if write is not None else config


def save_transformers_folder(model: Any, folder: str | os.PathLike[str], *,
                             max_shard_size: int | str | None, metadata: Mapping[str, str] | None,
                             progress: ProgressArg = None) -> Path:
    """Write ``model`` as a ``save_pretrained`` folder (safetensors + ``config.json``); returns the folder.

    ``progress`` as for :func:`unifyparams.save` (bytes of the tensors written).
    """
    from .save import plan_save, switch_in, write_shards
    from .shards import DEFAULT_NAME, earlier_checkpoint, remove_stale_temporaries

    folder = Path(folder)
    if folder.suffix == ".safetensors" or (folder.exists() and not folder.is_dir()):
        raise CheckpointError(
            f"format='transformers' writes a folder (config.json + model.safetensors); received {str(folder)!r}, "
            f"a file path. Pass the folder to write."
        )
    ps = params(model)
    own = recipe_for(model)
    if own is None:
        raise CheckpointError(
            f"format='transformers' needs a recipe for {type(model).__name__}; none is declared (families: "
            f"{sorted(families())}). Declare one in the 'unifyparams.recipes' entry-point group."
        )
    hf = with_files(own.family)
    if hf is None or hf.hf is None:
        raise CheckpointError(
            f"family {own.family!r} has no recipe describing its transformers files (a Recipe with hf=HFFiles(...))"
        )
    tensors = _hf_tensors(model, ps, own, hf)
    _check_complete(tensors, hf, model, own)
    config = _config_json(model, own, hf)
    source = checkpoint_params(tensors.values())
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / DEFAULT_NAME
    plan = plan_save(source, base, max_shard_size, None, raw_metadata={"format": "pt", **dict(metadata or {})})
    remove_stale_temporaries(base)
    earlier = earlier_checkpoint(base)
    with resolve(progress, "saving") as bar:
        switch_in(plan, earlier, lambda: write_shards(plan, source, lambda name: source[name].numpy(), progress=bar))
    pending = AtomicFile(folder / CONFIG_NAME)
    try:
        pending.file.write(json.dumps(config, indent=2, sort_keys=True).encode())
        pending.finish()
        pending.commit()
    except BaseException:
        pending.discard()
        raise
    fsync_dir(folder)
    return folder


def _check_complete(tensors: Mapping[str, StoredTensor], hf: Recipe, model: Any, own: Recipe) -> None:
    """Every tensor the family's ``transformers`` model has must be written (an untied head only
    when the embeddings are not tied): a folder missing one would load with random values."""
    assert hf.hf is not None
    indices = sorted({int(part) for key in tensors for part in key.split(".") if part.isdigit()})
    library_config = own.read_config(model) if own.read_config is not None else None
    tied = own.config_value("tie_word_embeddings", library_config)
    missing = []
    for template in hf.tensors:
        concrete = [fill(template, {"i": str(i)}) for i in indices] if "{i}" in template else [template]
        for reference in concrete:
            key = reference if _is_top_level(hf, reference) else hf.hf.prefix + reference
            if key in tensors:
                continue
            if _is_top_level(hf, reference) and tied[0] and tied[1]:
                continue  # the head is the embedding
            missing.append(key)
    if missing:
        raise CheckpointError(
            f"the model has no value for {len(missing)} tensor(s) a {hf.hf.architecture} holds "
            f"({', '.join(missing[:4])}); transformers would fill them with random values. Nothing was written."
        )
