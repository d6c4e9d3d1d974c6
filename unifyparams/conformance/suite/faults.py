"""Fault injection: a framework that refuses a write part way changes nothing.

The adapter instance's ``write`` (and every other way it writes: ``write_permuted``, direct
writes into the views ``writable_view`` hands out, the memory ``write_target`` hands out, and the
commit of the memory ``stage_target`` hands out) is wrapped so that its k-th write fails, for every k of an
operation (``ParamSet.load``, ``up.port`` between two builds, ``up.initialize``, ``up.load``), in
two ways: refusing before writing, and writing then raising (what PyTorch does for a tensor
created under ``torch.inference_mode()``). Afterwards every parameter must hold exactly its
previous bits, and the error must be a :class:`~unifyparams.UnifyParamsError` that says the model
is unchanged. A refusal from :meth:`Adapter.check_writable` must stop the operation before its
first write. Injection goes through the adapter instance only, so every adapter (third-party ones
too) runs these scenarios unchanged.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import unifyparams as up

from ...capabilities import WriteSafety
from ..checks import check
from .access import _randomize


class InjectedFault(RuntimeError):
    """The failure the wrapped ``write`` raises (a stand-in for a framework's own refusal)."""


class _Faults:
    """The wrapped write hooks of one adapter, sharing one count of writes; the ``k``-th fails."""

    def __init__(self, originals: dict[str, Callable[..., Any]], k: int | None, after: bool) -> None:
        self.originals, self.k, self.after = originals, k, after
        self.calls = [0]
        self.asking = False  # inside the adapter's write_target or write_targets

    def _count(self) -> bool:
        """Count one write; True if it is the one to fail."""
        self.calls[0] += 1
        return self.calls[0] == self.k

    def call(self, name: str) -> Callable[..., Any]:
        """``write`` / ``write_permuted``: refuse before writing, or write and then raise."""
        original = self.originals[name]

        def call(*args: Any) -> Any:
            failing = self._count()
            if failing and not self.after:
                raise InjectedFault(f"injected refusal of write #{self.k}")
            result = original(*args)
            if failing and result is not False:  # False: write_permuted declined, nothing written
                raise InjectedFault(f"injected failure after write #{self.k}")
            return result

        return call

    def writable_view(self, *args: Any) -> Any:
        view = self.originals["writable_view"](*args)
        if view is None:  # not offered: the value will go through write
            return None
        if self._count() and not self.after:
            raise InjectedFault(f"injected refusal of direct write #{self.k}")
        return view

    def after_direct_write(self, *args: Any) -> Any:
        result = self.originals["after_direct_write"](*args)
        if self.calls[0] == self.k and self.after:
            raise InjectedFault(f"injected failure after direct write #{self.k}")
        return result

    def write_target(self, *args: Any) -> Any:
        if self.asking:  # called by the adapter's own write_targets (or the other way round): counted there
            return self.originals["write_target"](*args)
        return self._given([self._ask("write_target", *args)])[0]

    def write_targets(self, natives: Any) -> Any:
        if self.asking:
            return self.originals["write_targets"](natives)
        return self._given(self._ask("write_targets", natives))

    def _ask(self, name: str, *args: Any) -> Any:
        self.asking = True
        try:
            return self.originals[name](*args)
        finally:
            self.asking = False

    def _given(self, targets: list[Any]) -> list[Any]:
        """Count each memory given (None: not offered, the value will go through write)."""
        for target in targets:
            if target is not None and self._count():  # the core copies into it later, with NumPy:
                raise InjectedFault(  # the adapter can only fail here
                    f"injected failure {'after giving' if self.after else 'giving'} the memory of write #{self.k}")
        return targets

    def stage_target(self, *args: Any) -> Any:
        staged = self.originals["stage_target"](*args)
        if staged is None:  # not offered: the value will go through write
            return None
        commit = staged.commit

        def counted() -> None:  # the commit is the write: refuse before it, or make it and then raise
            failing = self._count()
            if failing and not self.after:
                raise InjectedFault(f"injected refusal of staged write #{self.k}")
            commit()
            if failing:
                raise InjectedFault(f"injected failure after staged write #{self.k}")

        return dataclasses.replace(staged, commit=counted)

    def wrappers(self) -> dict[str, Callable[..., Any]]:
        """Every hook the adapter has, wrapped."""
        have = self.originals
        wrapped: dict[str, Callable[..., Any]] = {n: self.call(n) for n in ("write", "write_permuted") if n in have}
        if "write_target" in have:
            wrapped["write_target"] = self.write_target
        if "write_targets" in have:
            wrapped["write_targets"] = self.write_targets
        if "stage_target" in have:
            wrapped["stage_target"] = self.stage_target
        if "writable_view" in have and "after_direct_write" in have:
            wrapped["writable_view"], wrapped["after_direct_write"] = self.writable_view, self.after_direct_write
        return wrapped


@contextmanager
def refusing_write(adapter: Any, k: int | None, *, after: bool = False) -> Iterator[list[int]]:
    """Make the adapter's ``k``-th write fail (``None``: never; just count). Every way an adapter
    writes counts: ``write``; where the adapter has one, ``write_permuted`` (a port's fused reorder
    of a dense weight); a direct write into a parameter's memory (``writable_view`` handing out
    a view, then ``after_direct_write``: initializers fill such views); and handing out the memory
    of a plain copy (``write_target``, or ``write_targets`` for several; the core copies into it once
    every other write landed); and
    the commit of staged memory (``stage_target``'s ``Staged.commit``, where the framework replaces
    tensors). With ``after`` the value is written first, then the call (for a direct write,
    ``after_direct_write``; for a plain copy, ``write_target`` after giving its memory; for staged
    memory, the commit once made) raises.
    Yields ``[calls so far]``."""
    names = ("write", "write_permuted", "writable_view", "after_direct_write", "write_target", "write_targets",
             "stage_target")
    originals = {name: getattr(adapter, name) for name in names if hasattr(adapter, name)}
    if getattr(type(adapter), "write_targets", None) is WriteSafety.write_targets:
        originals.pop("write_targets", None)  # the default asks write_target for each: counted there
    own = {name for name in originals if name in vars(adapter)}
    faults = _Faults(originals, k, after)
    wrapped = faults.wrappers()
    for name, fn in wrapped.items():
        setattr(adapter, name, fn)
    try:
        yield faults.calls
    finally:
        for name in wrapped:
            if name in own:
                setattr(adapter, name, originals[name])
            else:
                delattr(adapter, name)


def _bits(model: Any) -> dict[str, bytes]:
    return {n: np.ascontiguousarray(v).tobytes() for n, v in up.params(model).numpy(copy=True).items()}


def _adapter(model: Any) -> Any:
    return next(iter(up.params(model).values())).adapter


def _every_fault(
    kit: Any, label: str, build: Callable[[], Any], operation: Callable[[Any], Any], *, min_writes: int = 2
) -> None:
    """Run ``operation(model)`` on fresh builds with the k-th write failing, for every k and both modes."""
    probe = build()
    with refusing_write(_adapter(probe), None) as calls:
        operation(probe)
    total = calls[0]
    check(total >= min_writes, f"{label}: expected at least {min_writes} writes through the adapter, saw {total}")
    for after in (False, True):
        for k in range(1, total + 1):
            model = build()
            before = _bits(model)
            with refusing_write(_adapter(model), k, after=after):
                try:
                    operation(model)
                except up.UnifyParamsError as exc:
                    error: Exception = exc
                except Exception as exc:  # a raw framework error escaping is a failure too
                    check(False, f"{label}, write #{k} of {total} failing (after={after}): raw {exc!r} escaped")
                else:
                    check(False, f"{label}: write #{k} of {total} failed (after={after}) but no error was raised")
            message = str(error)
            check("unchanged" in message, f"{label}, write #{k} failing (after={after}): the error does not say the "
                  f"model is unchanged: {message}")
            after_bits = _bits(model)
            changed = [n for n in before if after_bits.get(n) != before[n]]
            check(not changed, f"{label}, write #{k} of {total} failing (after={after}): {changed} changed "
                  f"although the error says: {message}")


def _random_mlp(kit: Any, seed: int) -> Callable[[], Any]:
    def build() -> Any:
        net = kit.mlp(in_features=5, hidden=3, out_features=2)
        _randomize(up.params(net), seed=seed)
        return net

    return build


def _new_state(model: Any) -> dict[str, np.ndarray]:
    return {n: (v + 1).astype(v.dtype) for n, v in up.params(model).numpy(copy=True).items()}


class FaultTests:
    """The ``faults.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_faults__load(self, kit: Any) -> None:
        """ParamSet.load: a write the framework refuses part way (any k) changes nothing."""
        _every_fault(kit, "ParamSet.load", _random_mlp(kit, 71), lambda m: up.params(m).load(_new_state(m)))

    def test_faults__set(self, kit: Any) -> None:
        """Param.set / update / item assignment: a refused write changes nothing."""
        def every_set(m: Any) -> None:
            ps = up.params(m)
            ps["0.weight"].set(ps["0.weight"].numpy() + 1)
            ps["0.bias"].update(lambda b: b - 1)
            ps["2.weight"][0, 0] = 42

        build = _random_mlp(kit, 72)
        for k in (1, 2, 3):  # each call is its own write: the k-th one fails, those before it stand
            model = build()
            with refusing_write(_adapter(model), k):
                try:
                    every_set(model)
                except up.UnifyParamsError as exc:
                    check("unchanged" in str(exc), f"set: write #{k} refused, message: {exc}")
                else:
                    check(False, f"set: write #{k} refused but no error was raised")
            names = ["0.weight", "0.bias", "2.weight"]
            fresh, now = build(), up.params(model)
            failed = names[k - 1]
            check(
                np.array_equal(now[failed].numpy(), up.params(fresh)[failed].numpy()),
                f"set: {failed!r} changed although its write was refused",
            )

    def test_faults__port(self, kit: Any) -> None:
        """Up.port between two builds: a refused write part way changes nothing."""
        source = _random_mlp(kit, 73)()
        _every_fault(kit, "up.port", _random_mlp(kit, 74), lambda m: up.port(source, m))

    def test_faults__initialize(self, kit: Any) -> None:
        """Up.initialize: a refused write part way changes nothing."""
        _every_fault(kit, "up.initialize", _random_mlp(kit, 75), lambda m: up.initialize(m, up.init.XavierUniform(), seed=3))

    def test_faults__checkpoint_load(self, kit: Any) -> None:
        """Up.load: a refused write part way changes nothing."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.safetensors"
            up.save(_random_mlp(kit, 76)(), path)
            _every_fault(kit, "up.load", _random_mlp(kit, 77), lambda m: up.load(m, path))

    def test_faults__check_writable(self, kit: Any) -> None:
        """A parameter the adapter says cannot be written stops the write before it starts."""
        model = _random_mlp(kit, 78)()
        adapter = _adapter(model)
        refused = up.params(model)["2.weight"].native
        before = _bits(model)
        original = adapter.check_writable

        def check_writable(native: Any) -> str | None:
            return "injected: frozen" if native is refused else original(native)

        adapter.check_writable = check_writable
        try:
            with refusing_write(adapter, None) as calls:
                for label, operation in (
                    ("ParamSet.load", lambda: up.params(model).load(_new_state(model))),
                    ("up.initialize", lambda: up.initialize(model, up.init.Normal(), seed=1)),
                    ("Param.set", lambda: up.params(model)["2.weight"].set(up.params(model)["2.weight"].numpy() + 1)),
                ):
                    try:
                        operation()
                    except up.UnifyParamsError as exc:
                        check("'2.weight'" in str(exc) and "injected: frozen" in str(exc) and "nothing was written" in str(exc),
                              f"{label}: the refusal should name '2.weight', give the reason and say nothing was written: {exc}")
                    else:
                        check(False, f"{label}: a parameter the adapter refuses was accepted")
            check(calls[0] == 0, f"{calls[0]} write(s) reached the adapter although a parameter was refused beforehand")
        finally:
            del adapter.check_writable
        check(_bits(model) == before, "a refused write changed values")
