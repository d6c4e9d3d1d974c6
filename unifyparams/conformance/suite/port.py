"""Porting and checkpoint scenarios that one backend can run alone.

Cross-framework ports need two frameworks in one process; those proofs live in the test suite
(tests/test_port_frameworks.py). Here each adapter shows that the porting machinery and portable
checkpoints work on its models: matching by name, by order and by mapping, dry runs, refused
ports that change nothing, and save/load round trips with ties.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import unifyparams as up

from ..checks import check
from .access import _randomize, _rng


def _same(a: Any, b: Any, label: str) -> None:
    sa, sb = up.params(a).numpy(), up.params(b).numpy()
    check(list(sa) == list(sb), f"{label}: names differ")
    for name, value in sa.items():
        check(np.array_equal(value, sb[name]), f"{label}: {name} differs")


class PortTests:
    """The ``port.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_port__by_name(self, kit: Any) -> None:
        """Port between two builds of one architecture, matched by canonical name."""
        src, dst = kit.nested_blocks(), kit.nested_blocks()
        _randomize(up.params(src), seed=31)
        report = up.port(src, dst)
        check(report.applied and report.match == "auto:name", f"report: {report.match}, applied={report.applied}")
        _same(src, dst, "after port")
        x = _rng(32).normal(size=(3, 4)).astype(np.float32)
        check(np.array_equal(kit.forward(src, x), kit.forward(dst, x)), "outputs differ after port")

    def test_port__by_order_and_mapping(self, kit: Any) -> None:
        """Port by layer order when names differ, or by an explicit mapping."""
        src, dst = kit.single_layer("dense", in_features=3, out_features=3), kit.mlp(in_features=5, hidden=3, out_features=3)
        _randomize(up.params(src), seed=33)
        mapping = {"2.weight": "0.weight", "2.bias": "0.bias"}
        report = up.port(src, dst, match=mapping, strict=False)
        check(report.applied, "mapping port not applied")
        check(np.array_equal(up.params(dst)["2.weight"].numpy(), up.params(src)["0.weight"].numpy()), "mapping")
        a, b = kit.mlp(), kit.mlp()
        _randomize(up.params(a), seed=34)
        up.port(a, b, match="order")
        _same(a, b, "order port")

    def test_port__refused_changes_nothing(self, kit: Any) -> None:
        """A port with problems, or a dry run, changes nothing."""
        src, dst = kit.mlp(), kit.mlp(in_features=20, hidden=256, out_features=7)
        before = up.params(dst).numpy(copy=True)
        try:
            up.port(src, dst)
        except up.PortError as exc:
            check("(10, 256)" in str(exc) or "(7, 256)" in str(exc), f"message should show the shapes: {exc}")
        else:
            check(False, "a port between different shapes was accepted")
        report = up.port(kit.mlp(), dst, dry_run=True, strict=False)
        check(not report.applied and report.rows, "dry run applied or planned nothing")
        after = up.params(dst).numpy()
        check(all(np.array_equal(after[k], v) for k, v in before.items()), "a refused port or dry run changed values")


class CheckpointTests:
    """The ``checkpoint.*`` scenarios; mix into a class with the suite's fixtures."""

    def test_checkpoint__round_trip(self, kit: Any) -> None:
        """Save and load a portable checkpoint; ties come back tied."""
        with tempfile.TemporaryDirectory() as folder:
            net = kit.nested_blocks()
            _randomize(up.params(net), seed=35)
            path = Path(folder) / "model.safetensors"
            up.save(net, path)
            fresh = kit.nested_blocks()
            report = up.load(fresh, path)
            check(sorted(report.loaded) == sorted(up.params(net)), f"loaded {report.loaded}")
            _same(net, fresh, "checkpoint round trip")
            shared = kit.shared_mlp()
            up.save(shared, path)
            twin = kit.shared_mlp(shared=False)
            up.load(twin, path)
            check(up.ties(twin) == up.ties(shared), f"ties after load: {up.ties(twin)}")
            _same(shared, twin, "tied round trip")

    def test_checkpoint__bad_file_changes_nothing(self, kit: Any) -> None:
        """A truncated or mismatched checkpoint is refused; nothing changes."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.safetensors"
            up.save(kit.mlp(), path)
            net = kit.mlp()
            before = up.params(net).numpy(copy=True)
            truncated = Path(folder) / "truncated.safetensors"
            truncated.write_bytes(path.read_bytes()[:-100])
            other = Path(folder) / "other.safetensors"
            up.save(kit.nested_blocks(), other)
            for bad in (truncated, other):
                try:
                    up.load(net, bad)
                except up.CheckpointError:
                    pass
                else:
                    check(False, f"{bad.name} was accepted")
                after = up.params(net).numpy()
                check(all(np.array_equal(after[k], v) for k, v in before.items()), f"{bad.name} changed values")
