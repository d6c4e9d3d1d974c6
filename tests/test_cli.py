"""The command line: ``unifyparams inspect / convert / diff`` on real files of every framework.

Files are made with each framework's own save function; the CLI runs through ``main([...])``
(and once as ``python -m unifyparams.cli``). Native files must be read without running code.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import unifyparams as up
from unifyparams import cli
from unifyparams.checkpoint import load_file, read_metadata, save
from unifyparams.cli import main
from unifyparams.errors import CheckpointError
from unifyparams.formats import read
from unifyparams_gluon.native_files import gluon_name


# --- files made by each framework -------------------------------------------------------------
def _torch_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    net.train()
    net(torch.randn(5, 3))  # running stats and num_batches_tracked move
    return net


@pytest.fixture
def torch_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.pt"
    torch.save(_torch_net().state_dict(), path)
    return path


def _gluon_net():  # type: ignore[no-untyped-def]
    from unifyparams_gluon import import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    net.add(
        mx.gluon.nn.Dense(4, in_units=3),
        mx.gluon.nn.BatchNorm(in_channels=4),
        mx.gluon.rnn.LSTM(5, input_size=4, bidirectional=True),
    )
    net.initialize(mx.init.Normal(1.0))
    return net


@pytest.fixture
def gluon_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    net = _gluon_net()
    path = tmp_path / "net.params"
    net.save_parameters(str(path))
    return net, path


@pytest.fixture
def keras_file(tmp_path: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
    path = tmp_path / "model.weights.h5"
    model.save_weights(str(path))
    return path


@pytest.fixture
def ours_file(tmp_path: Path) -> Path:
    path = tmp_path / "ours.safetensors"
    save(_torch_net(), path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- inspect ----------------------------------------------------------------------------------
def test_inspect_torch_state_dict(capsys: pytest.CaptureFixture[str], torch_file: Path) -> None:
    code, out, err = run(capsys, "inspect", torch_file)
    assert code == 0, err
    for text in ("running_mean", "(4, 3)", "float32", "num_batches_tracked counter", "tensors", "scalars"):
        assert text in out
    assert "num_batches_tracked  (" not in out  # dropped, only reported
    assert "8 tensors" in out.splitlines()[0]  # num_batches_tracked not counted
    assert err == ""


def test_inspect_keras_says_names_and_layout_are_native(
    capsys: pytest.CaptureFixture[str], keras_file: Path
) -> None:
    code, out, _ = run(capsys, "inspect", keras_file)
    assert code == 0
    assert "vars" in out and "dense" in out and "batch_normalization" in out
    assert "needs the model" in out and "Keras's native layout" in out and "keras-native" in out


def test_inspect_ours_shows_ties_and_metadata(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    net[1].weight = net[0].weight
    path = tmp_path / "tied.safetensors"
    save(net, path)
    code, out, _ = run(capsys, "inspect", path, "--depth", "1")
    assert code == 0
    assert "tie groups" in out and "0.weight" in out and "1.weight" in out
    assert "unifyparams.backend" in out and "torch" in out
    assert "weight  (4, 4)" not in out  # --depth 1 collapses the groups


# --- convert ----------------------------------------------------------------------------------
def test_convert_torch_to_safetensors_then_inspect(
    capsys: pytest.CaptureFixture[str], torch_file: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "net.safetensors"
    code, out, err = run(capsys, "convert", torch_file, dst)
    assert code == 0, err
    assert "converted 8 tensors" in out
    state = torch.load(torch_file, weights_only=True)
    stored = load_file(dst)
    assert set(stored) == {k for k in state if not k.endswith("num_batches_tracked")}
    for name, value in stored.items():
        np.testing.assert_array_equal(value, state[name].numpy())
    meta = read_metadata(dst)
    assert meta["unifyparams.source_format"] == "torch"
    assert meta["unifyparams.layout"] == "canonical" and meta["unifyparams.backend"] == "torch"
    fresh = _torch_net()
    up.load(fresh, dst, strict=False)  # canonical: loads into the model (num_batches_tracked aside)
    np.testing.assert_array_equal(fresh[0].weight.detach().numpy(), state["0.weight"].numpy())

    code, out, _ = run(capsys, "inspect", dst)
    assert code == 0 and "unifyparams.source_format" in out and "running_var" in out

    code, _, err = run(capsys, "convert", torch_file, dst)  # exists: refused without --force
    assert code == 2 and "--force" in err
    assert run(capsys, "convert", torch_file, dst, "--force")[0] == 0


def test_convert_gluon_gives_canonical_names(
    capsys: pytest.CaptureFixture[str], gluon_file, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    net, path = gluon_file
    dst = tmp_path / "gluon.safetensors"
    code, out, err = run(capsys, "convert", path, dst)
    assert code == 0, err
    stored = load_file(dst)
    ps = up.params(net)
    assert set(stored) == set(ps)  # the adapter's canonical names, e.g. 2.weight_ih_l0_reverse
    assert {"1.weight", "1.bias", "2.weight_ih_l0", "2.bias_hh_l0_reverse"} <= set(stored)
    for name in ps:
        np.testing.assert_array_equal(stored[name], ps[name].numpy())
    assert read_metadata(dst)["unifyparams.source_format"] == "gluon"
    fresh = _gluon_net()
    up.load(fresh, dst)  # strict: every name fits
    np.testing.assert_array_equal(up.params(fresh)["2.weight_hh_l0"].numpy(), ps["2.weight_hh_l0"].numpy())


def test_gluon_key_names() -> None:
    assert gluon_name("1.gamma") == "1.weight" and gluon_name("1.beta") == "1.bias"
    assert gluon_name("0.l0_i2h_weight") == "0.weight_ih_l0"
    assert gluon_name("0.r1_h2h_bias") == "0.bias_hh_l1_reverse"
    assert gluon_name("0._unfused.1.i2h_weight") == "0.weight_ih_l1"
    assert gluon_name("enc.rnn._unfused.0.r_cell.h2h_weight") == "enc.rnn.weight_hh_l0_reverse"
    assert gluon_name("3.i2h_bias") == "3.bias_ih"
    assert gluon_name("arg:0.weight") == "0.weight"


def test_convert_gluon_to_pt_and_diff(capsys: pytest.CaptureFixture[str], gluon_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    net, path = gluon_file
    dst = tmp_path / "gluon.pt"
    assert run(capsys, "convert", path, dst)[0] == 0
    state = torch.load(dst, weights_only=True)
    assert set(state) == set(up.params(net))
    code, out, _ = run(capsys, "diff", path, dst)
    assert code == 0 and "IDENTICAL" in out


def test_convert_keras_is_honest_about_layout(
    capsys: pytest.CaptureFixture[str], keras_file: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "keras.safetensors"
    code, out, _ = run(capsys, "convert", keras_file, dst)
    assert code == 0 and "keras-native" in out
    meta = read_metadata(dst)
    assert meta["unifyparams.layout"] == "keras-native" and meta["unifyparams.source_format"] == "keras-h5"
    assert "format" not in meta  # not claimed to be PyTorch-layout
    assert "layers/dense/vars/0" in load_file(dst)
    with pytest.raises(CheckpointError, match="keras-native"):
        up.load(_torch_net(), dst)
    code, out, _ = run(capsys, "inspect", dst)  # our reader still shows it
    assert code == 0 and "keras-native" in out
    code, _, err = run(capsys, "convert", keras_file, tmp_path / "keras.pt")
    assert code == 2 and "canonical" in err and not (tmp_path / "keras.pt").exists()


def test_convert_shows_progress_for_many_tensors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, torch_file: Path, tmp_path: Path
) -> None:
    steps: list[str] = []
    real = cli.progress

    def spy(label: str, count: int, nbytes: int):  # type: ignore[no-untyped-def]
        steps.append(label)
        return real(label, count, nbytes)

    monkeypatch.setattr(cli, "progress", spy)
    assert run(capsys, "convert", torch_file, tmp_path / "p.safetensors")[0] == 0
    assert run(capsys, "diff", torch_file, tmp_path / "p.safetensors")[0] == 0
    assert steps == ["converting", "comparing"]


# --- diff -------------------------------------------------------------------------------------
def test_diff_exit_codes_and_max_abs_difference(
    capsys: pytest.CaptureFixture[str], torch_file: Path, ours_file: Path, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "diff", torch_file, ours_file)  # same seed, same values
    assert code == 0 and "IDENTICAL" in out

    state = torch.load(torch_file, weights_only=True)
    state["0.bias"] = state["0.bias"] + 0.5
    state["2.weight"] = torch.zeros(3, 4)
    del state["1.running_var"]
    state["extra"] = torch.ones(1)
    changed = tmp_path / "changed.pt"
    torch.save(state, changed)
    code, out, _ = run(capsys, "diff", torch_file, changed)
    assert code == 1 and "DIFFERENT" in out
    row = next(line for line in out.splitlines() if "0.bias" in line)
    assert "0.5" in row and "values differ" in row
    assert "shape differs" in next(line for line in out.splitlines() if "2.weight" in line)
    assert "only in A" in next(line for line in out.splitlines() if "1.running_var" in line)
    assert "only in B" in next(line for line in out.splitlines() if "extra" in line)

    small = dict(torch.load(torch_file, weights_only=True))
    small["0.bias"] = small["0.bias"] + 1e-4
    near = tmp_path / "near.pt"
    torch.save(small, near)
    assert run(capsys, "diff", torch_file, near)[0] == 1
    code, out, _ = run(capsys, "diff", torch_file, near, "--atol", "1e-3", "--only-different")
    assert code == 0 and "0.weight" not in out


# --- errors and safety ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".params", ".h5"])
def test_corrupt_file_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x07not a checkpoint at all" * 7)
    code, out, err = run(capsys, "inspect", path)
    assert code == 2 and out == ""
    assert err.startswith("unifyparams: error: ") and err.count("\n") == 1
    assert "Traceback" not in err and str(path) in err


def test_truncated_safetensors_and_missing_and_unknown(
    capsys: pytest.CaptureFixture[str], ours_file: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(ours_file.read_bytes()[:-10])
    code, _, err = run(capsys, "inspect", cut)
    assert code == 2 and ("truncated" in err or "holds" in err)
    code, _, err = run(capsys, "diff", tmp_path / "nope.pt", ours_file)
    assert code == 2 and "no such file" in err
    odd = tmp_path / "weights.xyz"
    odd.write_bytes(b"hello world, not a checkpoint")
    code, _, err = run(capsys, "inspect", odd)
    assert code == 2 and "unknown checkpoint format" in err
    code, _, err = run(capsys, "convert", ours_file, tmp_path / "out.npz")
    assert code == 2 and ".safetensors" in err


class _Payload:
    """Unpickling this runs ``exec``, which creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    payload = {"0.weight": _Payload(marker)}
    if writer == "pickle":
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, evil)
    for command in (["inspect", evil], ["convert", evil, tmp_path / "x.safetensors"], ["diff", evil, evil]):
        code, out, err = run(capsys, *command)
        assert code == 2 and "refused" in err and "weights_only" in err, err
        assert not marker.exists()
    assert not (tmp_path / "x.safetensors").exists()
    if writer == "pickle":  # the payload is live: a plain unpickler would have run it
        pickle.loads(evil.read_bytes())
        assert marker.exists()


# --- entry points -----------------------------------------------------------------------------
def test_module_entry_point_subprocess(ours_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "unifyparams.cli", "inspect", str(ours_file)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "running_mean" in result.stdout and "unifyparams.format_version" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "unifyparams.cli", "inspect", str(ours_file) + ".missing"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_cli_imports_no_framework() -> None:
    code = (
        "import sys, unifyparams.cli, unifyparams.formats; "
        "print([m for m in ('torch', 'mxnet', 'keras', 'tensorflow', 'h5py') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "[]", result.stderr


def test_help_usage_and_conformance_delegation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "inspect" in capsys.readouterr().out
    assert main(["--help"]) == 0
    capsys.readouterr()
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["conformance", "--list"]) == 0


def test_read_returns_numpy(torch_file: Path) -> None:
    ckpt = read(torch_file)
    assert ckpt.format == "torch" and all(isinstance(a, np.ndarray) for a in ckpt.tensors.values())
    assert any("num_batches_tracked" in note for note in ckpt.notes)
