"""Model-family recipes without any framework: a toy family of two libraries, registered through
the ``unifyparams.recipes`` entry-point group exactly as a third party's package would be.

``fusedlib`` keeps query, key and value in one projection (as GPT-2 does) and its output weight
transposed in its files; ``splitlib`` keeps three projections. Both compute the same function,
so a port either way keeps outputs, a ``transformers``-style folder round-trips, and every
mismatch (configuration, a missing tensor, a tensor no recipe describes) is a problem.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import unifyparams as up
from unifyparams.recipes import all_recipes, by_family, families, recipe_for

from .numpy_framework import Dense, Module

RECIPES_MODULE = '''
from unifyparams.recipes import Fixed, HFFiles, Recipe, Split

def width_of(model):
    return {"width": model.width, "eps": model.eps}

FUSED = Recipe(
    family="toyattn", library="fusedlib", models=("FusedNet",), prefixes=("core.",),
    tensors={n: n for n in ("qkv.weight", "qkv.bias", "out.weight", "out.bias")},
    config={"width": "width", "eps": "eps"}, read_config=width_of,
    hf=HFFiles(model_type="toyattn", architecture="FusedNet", stored_transposed=("out.weight",)),
)
SPLIT = Recipe(
    family="toyattn", library="splitlib", models=("SplitNet",),
    tensors={
        "qkv.weight": Split(0, ["q.weight", "k.weight", "v.weight"]),
        "qkv.bias": Split(0, ["q.bias", "k.bias", "v.bias"]),
        "out.weight": "head.weight", "out.bias": "head.bias",
    },
    config={"width": "width", "eps": Fixed(1e-5)}, read_config=width_of,
)
RECIPES = [FUSED, SPLIT]
'''


class FusedNet(Module):
    def __init__(self, width: int = 4, seed: int = 0, eps: float = 1e-5):
        self.width, self.eps = width, eps
        self.qkv = Dense(width, 3 * width, seed=seed)
        self.qkv.bias.value[:] = np.random.default_rng(seed + 50).normal(size=3 * width)
        self.out = Dense(width, 2, seed=seed + 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        q, k, v = np.split(self.qkv(x), 3, axis=-1)
        return self.out(q * np.tanh(k) + v)


class SplitNet(Module):
    def __init__(self, width: int = 4, seed: int = 10, eps: float = 1e-5):
        self.width, self.eps = width, eps
        self.q, self.k, self.v = (Dense(width, width, seed=seed + i) for i in range(3))
        self.head = Dense(width, 2, seed=seed + 3)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.head(self.q(x) * np.tanh(self.k(x)) + self.v(x))


@pytest.fixture(scope="module", autouse=True)
def toy_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An installed distribution declaring the toy recipes in the entry-point group."""
    root = tmp_path_factory.mktemp("site")
    (root / "toy_recipes.py").write_text(textwrap.dedent(RECIPES_MODULE))
    info = root / "toy_recipes-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-recipes\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[unifyparams.recipes]\ntoy = toy_recipes:RECIPES\n")
    sys.path.insert(0, str(root))
    all_recipes(refresh=True)
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("toy_recipes", None)
    all_recipes(refresh=True)


def _same_outputs(a: Module, b: Module) -> None:
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(a(x), b(x), rtol=1e-5, atol=1e-6)  # type: ignore[operator]


def test_the_entry_point_declares_the_recipes() -> None:
    assert sorted(families()["toyattn"]) == ["fusedlib", "splitlib"]
    assert recipe_for(FusedNet()).key == "toyattn/fusedlib"  # type: ignore[union-attr]
    assert by_family("toyattn", "splitlib") is not None


@pytest.mark.parametrize("direction", ["fused-to-split", "split-to-fused"])
def test_a_port_needs_no_hints_and_keeps_outputs(direction: str) -> None:
    src, dst = (FusedNet(), SplitNet()) if direction == "fused-to-split" else (SplitNet(), FusedNet())
    report = up.port(src, dst)
    assert report.applied and report.match.startswith("recipe:toyattn")
    _same_outputs(src, dst)


def test_dry_run_shows_each_part_and_writes_nothing() -> None:
    src, dst = FusedNet(), SplitNet()
    before = up.params(dst).numpy(copy=True)
    report = up.port(src, dst, dry_run=True)
    rows = {r.destination: r for r in report.rows}
    assert rows["k.weight"].source == "qkv.weight"
    assert rows["k.weight"].conversion == "part 2 of 3 along axis 0"
    assert rows["head.weight"].conversion == "copy"
    assert [r.destination for r in report.rows] == list(up.params(dst))  # the destination's order
    for name, value in up.params(dst).numpy().items():
        np.testing.assert_array_equal(value, before[name])


def test_a_configuration_difference_is_refused_and_changes_nothing() -> None:
    src, dst = FusedNet(eps=1e-6), SplitNet()
    before = up.params(dst).numpy(copy=True)
    with pytest.raises(up.PortError, match=r"eps is 1e-06 in the source \(toyattn/fusedlib\) and 1e-05"):
        up.port(src, dst)
    for name, value in up.params(dst).numpy().items():
        np.testing.assert_array_equal(value, before[name])
    report = up.port(src, dst, strict=False, dry_run=True)
    assert any("configuration differs: eps" in p for p in report.problems)


def test_a_tensor_no_recipe_describes_is_a_problem() -> None:
    dst = SplitNet()
    dst.extra = Dense(4, 4)  # type: ignore[attr-defined]
    report = up.port(FusedNet(), dst, strict=False, dry_run=True)
    assert any("'extra.weight' is not described by recipe toyattn/splitlib" in p for p in report.problems)


def test_a_part_missing_is_a_problem() -> None:
    src = SplitNet()
    del src.v
    report = up.port(src, FusedNet(), strict=False, dry_run=True)
    assert any("has part of qkv.weight" in p and "v.weight" in p for p in report.problems)


def test_match_recipe_requires_one_and_other_modes_bypass_it() -> None:
    with pytest.raises(up.PortError, match="needs a recipe for both models"):
        up.port(Dense(4, 4), Dense(4, 4), match="recipe")
    report = up.port(FusedNet(), FusedNet(seed=5), match="name", dry_run=True)
    assert report.match == "name"


def test_rename_with_a_mapping_is_refused() -> None:
    with pytest.raises(up.PortError, match="rename rules and a match mapping were both given"):
        up.port(Dense(4, 4), Dense(4, 4), match={"weight": "weight"}, rename=[("a", "b")])


def test_order_matching_refuses_twins_only_creation_order_tells_apart() -> None:
    class Gated(Module):
        def __init__(self, seed: int) -> None:
            self.gate, self.up = Dense(4, 4, seed=seed), Dense(4, 4, seed=seed + 1)

    class Named(Module):
        def __init__(self, seed: int) -> None:
            self.a, self.b = Dense(4, 4, seed=seed), Dense(4, 4, seed=seed + 1)

    report = up.port(Gated(0), Named(5), match="order", strict=False, dry_run=True)
    assert any("cannot tell apart" in p for p in report.problems)


def test_a_transformers_folder_round_trips(tmp_path: Path) -> None:
    split = SplitNet(seed=20)
    folder = up.save(split, tmp_path / "hf", format="transformers")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "toyattn" and config["architectures"] == ["FusedNet"]
    assert config["width"] == 4 and config["eps"] == 1e-5
    from unifyparams.checkpoint.format import load_file

    stored = load_file(folder / "model.safetensors")
    assert sorted(stored) == ["out.bias", "out.weight", "qkv.bias", "qkv.weight"]
    np.testing.assert_array_equal(stored["out.weight"], split.head.kernel.value)  # kept (in, out) in files
    fused = FusedNet(seed=30)
    report = up.load(fused, folder)
    assert report.port.match == "recipe:toyattn (fusedlib -> fusedlib)"
    _same_outputs(split, fused)
    other = SplitNet(seed=40)
    up.load(other, folder)
    _same_outputs(split, other)


def test_a_transformers_folder_of_another_configuration_is_refused(tmp_path: Path) -> None:
    folder = up.save(SplitNet(), tmp_path / "hf", format="transformers")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "eps": 1e-6}))
    dst = SplitNet(seed=50)
    before = up.params(dst).numpy(copy=True)
    with pytest.raises(up.CheckpointError, match="(?s)nothing was changed.*eps is 1e-06"):
        up.load(dst, folder)
    for name, value in up.params(dst).numpy().items():
        np.testing.assert_array_equal(value, before[name])


def test_an_unknown_model_type_names_the_known_families(tmp_path: Path) -> None:
    folder = up.save(SplitNet(), tmp_path / "hf", format="transformers")
    (folder / "config.json").write_text(json.dumps({"model_type": "nosuch"}))
    with pytest.raises(up.CheckpointError, match="model_type 'nosuch'.*toyattn"):
        up.load(SplitNet(), folder)


def test_saving_a_model_without_a_recipe_in_transformers_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(up.CheckpointError, match="needs a recipe for Dense"):
        up.save(Dense(2, 2), tmp_path / "hf", format="transformers")
    with pytest.raises(up.CheckpointError, match="format='unifyparams'.*format='transformers'"):
        up.save(Dense(2, 2), tmp_path / "x.safetensors", format="onnx")
