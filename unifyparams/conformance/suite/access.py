"""Access scenarios: names, shapes, dtypes, values, gradients, selection, strict loading.

They follow the parameter-management chapter every framework's users know (an MLP's parameters
by layer and by name, all at once, nested blocks), and add what a cross-framework library must
prove: canonical names are identical and canonical layouts are the ones each framework computes
with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unifyparams as up

from .. import reference as ref
from ..builders import LAYER_KINDS
from ..checks import check
from .ids import needs

MLP_NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]
MLP_SHAPES = {"0.weight": (256, 20), "0.bias": (256,), "2.weight": (10, 256), "2.bias": (10,)}


def nested_names() -> list[str]:
    names = []
    for i in range(4):
        names += [f"0.{i}.0.weight", f"0.{i}.0.bias", f"0.{i}.2.weight", f"0.{i}.2.bias"]
    return names + ["1.weight", "1.bias"]


def dims(p: up.Param) -> tuple[int, ...]:
    """The shape of a materialized parameter, as plain ints."""
    return tuple(int(d) for d in p.shape if d is not None)


def _check_staged(name: str, adapter: Any, native: Any, staged: Any, before: np.ndarray,
                  borrowed: np.ndarray | None) -> None:
    """Staged memory: the native shape and dtype, not the parameter's own memory (writing it changes
    nothing), and after ``commit()`` the parameter reads back what was written into it."""
    memory = staged.memory
    check(memory.shape == before.shape and memory.dtype == before.dtype,
          f"{name}: stage_target() memory is {memory.shape} {memory.dtype}, the parameter {before.shape} {before.dtype}")
    new = (before + 1).astype(before.dtype)
    np.copyto(memory, new)
    check(np.array_equal(adapter.read(native), before), f"{name}: writing stage_target() memory changed the parameter "
          f"before its commit")
    staged.commit()
    check(np.array_equal(adapter.read(native), new), f"{name}: after commit() the parameter does not read back the "
          f"staged values")
    if borrowed is not None:
        check(np.array_equal(borrowed, before), f"{name}: a borrowed view changed when staged memory was committed")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _randomize(ps: up.ParamSet, seed: int = 0, positive: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load random float32 values (positive ones for names ending in ``positive``); return them."""
    rng = _rng(seed)
    state = {}
    for name, p in ps.items():
        if name.endswith(positive):
            value = rng.uniform(0.5, 1.5, size=dims(p))
        else:
            value = rng.uniform(-0.5, 0.5, size=dims(p))
        state[name] = value.astype(p.dtype)
    ps.load(state)
    return state


def _close(a: np.ndarray, b: np.ndarray, what: str, atol: float = 1e-4) -> None:
    check(a.shape == b.shape, f"{what}: shape {a.shape} != expected {b.shape}")
    diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
    check(diff <= atol, f"{what}: max abs difference {diff:.3g} > {atol}")


_HIDDEN = 6

#: ``{kind: (single_layer spec, {leaf: canonical shape})}``, one entry per layer kind.
LAYER_SHAPES: dict[str, tuple[dict[str, int], dict[str, tuple[int, ...]]]] = {
    "dense": ({"in_features": 5, "out_features": 3}, {"weight": (3, 5), "bias": (3,)}),
    "conv1d": ({"in_channels": 4, "out_channels": 6, "kernel_size": 3}, {"weight": (6, 4, 3), "bias": (6,)}),
    "conv2d": ({"in_channels": 3, "out_channels": 8, "kernel_size": 3}, {"weight": (8, 3, 3, 3), "bias": (8,)}),
    "batchnorm": ({"num_features": 5}, {n: (5,) for n in ("weight", "bias", "running_mean", "running_var")}),
    "layernorm": ({"num_features": 7}, {"weight": (7,), "bias": (7,)}),
    "embedding": ({"num_embeddings": 50, "embedding_dim": 8}, {"weight": (50, 8)}),
    "lstm": ({"input_size": 5, "hidden_size": _HIDDEN}, {"weight_ih_l0": (24, 5), "weight_hh_l0": (24, 6)}),
    "gru": ({"input_size": 5, "hidden_size": _HIDDEN}, {"weight_ih_l0": (18, 5), "weight_hh_l0": (18, 6)}),
}
assert set(LAYER_SHAPES) == set(LAYER_KINDS), "the layer-kind table covers every layer kind"

_SEQ = {"input_size": 5, "hidden_size": 6}
#: ``{kind: (single_layer spec, input shape, NumPy reference, leaves drawn positive)}``.
LAYOUT_CASES: dict[str, tuple[dict[str, int], tuple[int, ...], Any, tuple[str, ...]]] = {
    "dense": ({"in_features": 5, "out_features": 3}, (2, 5), ref.dense, ()),
    "conv1d": ({"in_channels": 4, "out_channels": 6, "kernel_size": 3}, (2, 4, 9), ref.conv, ()),
    "conv2d": ({"in_channels": 3, "out_channels": 5, "kernel_size": 3}, (2, 3, 7, 6), ref.conv, ()),
    "embedding": ({"num_embeddings": 50, "embedding_dim": 8}, (2, 7), ref.embedding, ()),
    "layernorm": ({"num_features": 7}, (3, 7), ref.layer_norm, ()),
    "batchnorm": ({"num_features": 5}, (3, 5), ref.batch_norm, ("running_var", "weight")),
    "lstm": (_SEQ, (2, 4, 5), ref.lstm, ()),
    "gru": (_SEQ, (2, 4, 5), ref.gru, ()),
}


def _check_recurrent_bias(kind: str, leaves: dict[str, up.Param]) -> None:
    """Split biases (``bias_ih_l0``/``bias_hh_l0``) or Keras' single ``bias_l0``, of the right size."""
    gates = 4 if kind == "lstm" else 3
    split = {"bias_ih_l0", "bias_hh_l0"} <= set(leaves)
    check(split or "bias_l0" in leaves, f"{kind}: expected bias_ih_l0/bias_hh_l0 or bias_l0, got {sorted(leaves)}")
    if split:
        shape = leaves["bias_ih_l0"].shape
        check(shape == (gates * _HIDDEN,), f"{kind}: bias_ih_l0 shape {shape}, expected {(gates * _HIDDEN,)}")
    else:
        allowed = {(gates * _HIDDEN,), (2, gates * _HIDDEN)}
        check(leaves["bias_l0"].shape in allowed, f"{kind}: bias_l0 shape {leaves['bias_l0'].shape}, expected one of {allowed}")


class AccessTests:
    """The ``access.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_access__mlp_names_shapes(self, kit: Any) -> None:
        """An MLP's parameters have canonical names, shapes and dtypes."""
        ps = up.params(kit.mlp())
        check(list(ps) == MLP_NAMES, f"names: expected {MLP_NAMES}, got {list(ps)}")
        for name, shape in MLP_SHAPES.items():
            p = ps[name]
            check(p.shape == shape, f"{name}: canonical shape {p.shape}, expected {shape}")
            check(p.dtype == np.float32, f"{name}: dtype {p.dtype}, expected float32")
            check(p.trainable, f"{name}: should be trainable")
            check(p.materialized, f"{name}: should be materialized")
            check(p.backend == kit.backend, f"{name}: backend {p.backend!r}, expected {kit.backend!r}")
            check(isinstance(p.native_name, str) and p.native_name, f"{name}: empty native_name")
            check(p.native is not None, f"{name}: no native object")
        check(ps.count() == 20 * 256 + 256 + 256 * 10 + 10, f"count() = {ps.count()}")

    def test_access__mlp_by_layer(self, kit: Any) -> None:
        """One layer's parameters, reached as the user reaches the layer."""
        net = kit.mlp()
        whole = up.params(net)
        layer = up.params(kit.child(net, "2"))
        check(list(layer) == ["weight", "bias"], f"net[2] names: {list(layer)}")
        check(layer["weight"].shape == (10, 256), f"net[2].weight shape {layer['weight'].shape}")
        check(layer["bias"].native is whole["2.bias"].native, "net[2].bias is not the model's 2.bias object")
        check(np.array_equal(layer["bias"].numpy(), whole["2.bias"].numpy()), "net[2].bias values differ")

    def test_access__all_at_once(self, kit: Any) -> None:
        """All parameters at once: the state dict, and the tree."""
        ps = up.params(kit.mlp())
        state = ps.numpy()
        check(list(state) == MLP_NAMES, f"numpy() keys {list(state)}")
        for name, value in state.items():
            check(isinstance(value, np.ndarray), f"{name}: numpy() gave {type(value)}")
            check(value.shape == MLP_SHAPES[name], f"{name}: value shape {value.shape}")
            check(np.array_equal(value, ps[name].numpy()), f"{name}: numpy() differs from Param.numpy()")
        snapshot = ps.numpy(copy=True)
        ps["2.bias"].set(np.full(10, 3.0, dtype=np.float32))
        check(not np.any(snapshot["2.bias"] == 3.0), "numpy(copy=True) followed a later write")
        text = str(ps)
        for token in ("weight", "(256, 20)", "float32", kit.backend):
            check(token in text, f"tree lacks {token!r}:\n{text}")

    def test_access__nested_blocks(self, kit: Any) -> None:
        """The block-of-blocks network: names follow the nesting."""
        net = kit.nested_blocks()
        ps = up.params(net)
        check(list(ps) == nested_names(), f"names: {list(ps)}")
        check(ps["0.2.0.weight"].shape == (8, 4), f"0.2.0.weight: {ps['0.2.0.weight'].shape}")
        check(ps["1.weight"].shape == (1, 4), f"1.weight: {ps['1.weight'].shape}")
        inner = up.params(kit.child(net, "0.1"))
        check(list(inner) == ["0.weight", "0.bias", "2.weight", "2.bias"], f"net[0][1] names: {list(inner)}")
        check(inner["2.bias"].native is ps["0.1.2.bias"].native, "sub-block param is not the model's")
        tree = up.tree(net)
        check("0.1.2.bias" not in tree and "bias" in tree, f"tree should nest blocks:\n{tree}")
        out = kit.forward(net, _rng().normal(size=(2, 4)).astype(np.float32))
        check(out.shape == (2, 1), f"forward output shape {out.shape}")

    def test_access__select(self, kit: Any) -> None:
        """Selection by glob, regex, trainable and role."""
        ps = up.params(kit.nested_blocks())
        weights = ps.select("*.weight")
        expected = [n for n in nested_names() if n.endswith("weight")]
        check(list(weights) == expected, f"select('*.weight'): {list(weights)}")
        first = ps.select(regex=r"0\.0\..*")
        check(list(first) == ["0.0.0.weight", "0.0.0.bias", "0.0.2.weight", "0.0.2.bias"], f"regex: {list(first)}")
        check(len(ps.select(trainable=True)) == len(ps), "every nested-block parameter is trainable")
        check(list(ps.select(role=up.Role.BIAS)) == [n for n in nested_names() if n.endswith("bias")], "role=bias")
        try:
            ps.select("*.wieght")
        except up.ParameterNotFoundError as exc:
            check("weight" in str(exc), f"no-match error should list close names: {exc}")
        else:
            check(False, "select matching nothing should raise ParameterNotFoundError")

    def test_access__unknown_name(self, kit: Any) -> None:
        """An unknown name raises KeyError listing the closest names."""
        ps = up.params(kit.mlp())
        try:
            ps["2.wieght"]
        except KeyError as exc:
            check(isinstance(exc, up.UnifyParamsError), "error should derive from UnifyParamsError")
            check("2.weight" in str(exc), f"message should suggest '2.weight': {exc}")
        else:
            check(False, "unknown name did not raise")

    @needs("backward")
    def test_access__gradient(self, kit: Any) -> None:
        """Reading gradients after a backward pass."""
        net = kit.mlp(in_features=5, hidden=7, out_features=3)
        ps = up.params(net)
        weights = _randomize(ps, seed=1)
        x = _rng(2).normal(size=(4, 5)).astype(np.float32)
        grads = up.gradients(net, x)
        expected = ref.mlp_sum_gradients(x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()})
        check(sorted(grads) == sorted(expected), f"gradient names: {sorted(grads)}")
        for name, g in expected.items():
            _close(grads[name], g, f"gradient of {name}")
            got = ps[name].grad()
            if got is None:
                check(False, f"{name}.grad() is None after a backward pass")
            else:
                _close(got, g, f"{name}.grad()")

    @pytest.mark.parametrize("kind", list(LAYER_SHAPES))
    def test_access__layer_kinds(self, kit: Any, kind: str) -> None:
        """Names, shapes, roles and flags of every layer kind."""
        spec, shapes = LAYER_SHAPES[kind]
        ps = up.params(kit.single_layer(kind, **spec))
        leaves = {name.split(".", 1)[1]: p for name, p in ps.items()}
        check(all(n.startswith("0.") for n in ps), f"{kind}: names not under '0.': {list(ps)}")
        for leaf, shape in shapes.items():
            check(leaf in leaves, f"{kind}: no parameter {leaf!r}; got {sorted(leaves)}")
            check(leaves[leaf].shape == shape, f"{kind}.{leaf}: shape {leaves[leaf].shape}, expected {shape}")
        if kind in ("lstm", "gru"):
            _check_recurrent_bias(kind, leaves)
        if kind in ("batchnorm", "layernorm"):
            check(leaves["weight"].role == up.Role.SCALE, f"{kind}.weight role {leaves['weight'].role}")
            check(leaves["bias"].role == up.Role.SHIFT, f"{kind}.bias role {leaves['bias'].role}")
        for leaf, role in {"running_mean": up.Role.RUNNING_MEAN, "running_var": up.Role.RUNNING_VAR}.items():
            if leaf in leaves:
                check(leaves[leaf].role == role, f"{kind}.{leaf} role {leaves[leaf].role}")
                check(not leaves[leaf].trainable, f"{kind}.{leaf} should not be trainable")

    @pytest.mark.parametrize("kind", list(LAYOUT_CASES))
    def test_access__canonical_layouts(self, kit: Any, kind: str) -> None:
        """Frameworks compute with the canonical layout unifyparams reports."""
        spec, input_shape, fn, positive = LAYOUT_CASES[kind]
        rng = _rng(4)
        x = rng.integers(0, 50, size=input_shape) if kind == "embedding" else rng.normal(size=input_shape).astype(np.float32)
        model = kit.single_layer(kind, **spec)
        state = _randomize(up.params(model), seed=3, positive=positive)
        leaves = {name.split(".", 1)[1]: v.astype(np.float64) for name, v in state.items()}
        expected = fn(x.astype(np.float64) if x.dtype.kind == "f" else x, leaves)
        _close(kit.forward(model, x), expected, f"{kind} output with canonical weights")

    def test_access__custom_model(self, kit: Any) -> None:
        """A user-defined model class with attribute, list and dict children."""
        net = kit.custom_model()
        ps = up.params(net)
        expected = {
            "embed.weight": (50, 8),
            "encoder.0.weight": (8, 8), "encoder.0.bias": (8,),
            "encoder.1.weight": (8, 8), "encoder.1.bias": (8,),
            "norm.weight": (8,), "norm.bias": (8,),
            "heads.cls.weight": (3, 8), "heads.cls.bias": (3,),
            "heads.reg.weight": (1, 8), "heads.reg.bias": (1,),
        }
        check(sorted(ps) == sorted(expected), f"names: {list(ps)}")
        for name, shape in expected.items():
            check(ps[name].shape == shape, f"{name}: shape {ps[name].shape}, expected {shape}")
        check(list(up.params(kit.child(net, "heads.cls"))) == ["weight", "bias"], "heads.cls sub-block names")
        out = kit.forward(net, _rng().integers(0, 50, size=(2, 5)))
        check(out.shape == (2, 4), f"forward output shape {out.shape}")

    def test_access__functional_model(self, kit: Any) -> None:
        """A functional-API model: names by layer position."""
        ps = up.params(kit.functional_model())
        check(list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"], f"names: {list(ps)}")
        check(ps["0.weight"].shape == (5, 6) and ps["2.weight"].shape == (2, 5), "shapes")

    def test_access__variants(self, kit: Any) -> None:
        """Other forms of a model (hybridized, NumPy mode) expose the same parameters."""
        base = kit.mlp()
        forms = kit.variants(base)
        if not forms:
            pytest.skip(f"{kit.backend} offers no other form of a model")
        expected = up.params(base).numpy(copy=True)
        x = _rng(5).normal(size=(2, 20)).astype(np.float32)
        reference_out = kit.forward(base, x)
        for label, model in forms:
            ps = up.params(model)
            check(list(ps) == list(expected), f"{label}: names {list(ps)}")
            for name, value in expected.items():
                check(np.array_equal(ps[name].numpy(), value), f"{label}: {name} values differ")
            _close(kit.forward(model, x), reference_out, f"{label}: output", atol=1e-5)

    def test_access__load_roundtrip(self, kit: Any) -> None:
        """Load writes many values; numpy() reads them back."""
        ps = up.params(kit.nested_blocks())
        doubled = {k: v * 2 for k, v in ps.numpy(copy=True).items()}
        report = ps.load(doubled)
        check(report.loaded == list(ps), f"loaded: {report.loaded}")
        for name, value in doubled.items():
            check(np.array_equal(ps[name].numpy(), value), f"{name}: value not written")
        ps.load({k: v.astype(np.float64) for k, v in doubled.items()})  # float64 -> float32 is a safe cast

    def test_access__load_all_or_nothing(self, kit: Any) -> None:
        """A failed load changes no parameter at all."""
        ps = up.params(kit.nested_blocks())
        before = ps.numpy(copy=True)
        good = {k: np.ones_like(v) for k, v in before.items()}
        bad_cases: dict[str, dict[str, Any]] = {
            "wrong shape": {**good, "1.weight": np.ones((4, 1), dtype=np.float32)},
            "missing name": {k: v for k, v in good.items() if k != "0.3.2.bias"},
            "unexpected name": {**good, "0.9.0.weight": np.ones((8, 4), dtype=np.float32)},
            "complex into float": {**good, "1.bias": np.ones(1, dtype=np.complex64)},
            "wrong rank": {**good, "0.0.0.bias": np.ones((8, 1), dtype=np.float32)},
        }
        expected_words = {
            "wrong shape": "(4, 1)",
            "missing name": "0.3.2.bias",
            "unexpected name": "0.9.0.weight",
            "complex into float": "complex64",
            "wrong rank": "(8, 1)",
        }
        for label, state in bad_cases.items():
            try:
                ps.load(state)
            except up.LoadError as exc:
                check(expected_words[label] in str(exc), f"{label}: message does not name the problem: {exc}")
            else:
                check(False, f"{label}: load did not raise LoadError")
            for name, value in before.items():
                check(np.array_equal(ps[name].numpy(), value), f"{label}: {name} changed although the load failed")
        report = ps.load({k: v for k, v in good.items() if k != "1.bias"}, strict=False)
        check(report.missing == ["1.bias"], f"strict=False missing: {report.missing}")
        check(np.array_equal(ps["1.bias"].numpy(), before["1.bias"]), "strict=False wrote a missing name")
        check(np.array_equal(ps["1.weight"].numpy(), good["1.weight"]), "strict=False did not write the rest")

    def test_access__direct_writes_keep_native(self, kit: Any) -> None:
        """Writes keep the native object and its flags."""
        net = kit.mlp()
        ps = up.params(net)
        p = ps["0.weight"]
        native, trainable = p.native, p.trainable
        p.set(np.zeros(dims(p), dtype=np.float32))
        p[1, 2] = 7.0
        value = up.params(net)["0.weight"].numpy()
        check(value[1, 2] == 7.0 and value.sum() == 7.0, "p[1, 2] = 7 not visible")
        check(p.native is native, "write replaced the native object")
        check(p.trainable == trainable, "write changed the trainable flag")
        try:
            p.set(np.zeros((3, 3), dtype=np.float32))
        except up.ShapeMismatchError as exc:
            check("0.weight" in str(exc) and "(3, 3)" in str(exc), f"message: {exc}")
        else:
            check(False, "wrong-shape set did not raise")

    def test_access__memory_contract(self, kit: Any) -> None:
        """What ``write_target`` and ``borrow`` hand out (where an adapter offers them) is the
        parameter's values in native shape and dtype: handing it out changes no value, a copy into a
        target is the whole write (read back exactly, outputs follow), and a borrowed view keeps the
        values it showed. Memory from ``stage_target`` is the native shape and dtype, changes
        nothing until its commit, and is the parameter's value after it."""
        net = kit.mlp()
        ps = up.params(net)
        _randomize(ps, seed=5)
        offered = []
        for name, p in ps.items():
            adapter, native = p.adapter, p.native
            before = np.array(adapter.read(native), copy=True)
            borrowed = adapter.borrow(native)
            if borrowed is not None:
                check(borrowed.shape == before.shape and borrowed.dtype == before.dtype and
                      np.array_equal(borrowed, before), f"{name}: borrow() differs from read()")
                check(not borrowed.flags.writeable, f"{name}: borrow() handed out a writable array")
            staged = adapter.stage_target(native)
            if staged is not None:
                _check_staged(name, adapter, native, staged, before, borrowed)
                offered.append(name)
                continue
            memory = adapter.write_target(native)
            batch = adapter.write_targets([native, native])
            check(len(batch) == 2 and all((m is None) == (memory is None) for m in batch),
                  f"{name}: write_targets() of it twice gave {[None if m is None else m.shape for m in batch]}, "
                  f"write_target() {None if memory is None else memory.shape}")
            if memory is None:
                continue
            check(all(m.shape == memory.shape and m.dtype == memory.dtype for m in batch if m is not None),
                  f"{name}: write_targets() gives other memory than write_target()")
            offered.append(name)
            check(memory.shape == before.shape and memory.dtype == before.dtype,
                  f"{name}: write_target() is {memory.shape} {memory.dtype}, the parameter {before.shape} {before.dtype}")
            check(np.array_equal(adapter.read(native), before), f"{name}: write_target() changed its values")
            new = (before + 1).astype(before.dtype)
            np.copyto(memory, new)
            check(np.array_equal(adapter.read(native), new), f"{name}: a copy into write_target() is not read back")
            if borrowed is not None:
                check(np.array_equal(borrowed, before) or np.array_equal(borrowed, new),
                      f"{name}: a borrowed view shows neither the old nor the new values")
        if offered:  # what the copies wrote is what the model computes with
            x = _rng(6).random((2, 20)).astype(np.float32)
            values = ps.numpy(copy=True)
            out = kit.forward(net, x)
            expected = np.maximum(x @ values["0.weight"].T + values["0.bias"], 0) @ values["2.weight"].T + values["2.bias"]
            scale = max(1.0, float(np.abs(expected).max()))  # float32 sums over 256 hidden units
            _close(out, expected, "outputs after copies into write_target()", atol=1e-5 * 256 * scale)
