"""Keras 3 facts about access, naming and values, on the backend ``KERAS_BACKEND`` selects (CI runs it twice).

What every backend shares is in tests/test_access.py and tests/test_writes.py.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

import unifyparams as up

from .backends.keras import BACKEND, models, seq

pytestmark = pytest.mark.keras
L = keras.layers
ADAPTER = up.get_adapter("keras")


def test_keras_adapter_owns_layers_and_wins_over_torch() -> None:
    net = seq((3,), L.Dense(2))
    assert up.params(net).backend == "keras"
    assert ADAPTER.owns(net) and ADAPTER.owns(net.layers[0])
    assert not ADAPTER.owns(net.layers[0].kernel) and not ADAPTER.owns(np.zeros(3))
    assert type(ADAPTER).priority > 0
    if BACKEND == "torch":
        import torch

        assert isinstance(net, torch.nn.Module)  # why Keras must be asked before PyTorch
        assert not ADAPTER.owns(torch.nn.Linear(2, 2))

        class Mixed(keras.Model):  # a raw torch module inside a Keras model
            def __init__(self) -> None:
                super().__init__()
                self.lin = torch.nn.Linear(3, 2)
                self.out = L.Dense(1)

            def call(self, x):  # noqa: ANN001, ANN201
                return self.out(self.lin(x))

        mixed = Mixed()
        mixed(np.zeros((1, 3), dtype="float32"))
        ps = up.params(mixed)
        assert list(ps) == ["lin.weight", "lin.bias", "out.weight", "out.bias"]  # torch's own names, not `variable_3`
        assert ps["lin.weight"].shape == (2, 3) and ps["lin.weight"].layout.is_identity
        ps["lin.weight"].set(np.ones((2, 3), dtype=np.float32))
        assert float(mixed.lin.module.weight.detach().sum()) == 6.0
    else:
        import tensorflow as tf

        assert isinstance(net.layers[0].kernel.value, tf.Variable)
    assert set(type(models).matrix_rows()) == {"keras[tensorflow]", "keras[torch]", "keras[jax]"}


def test_sequential_names_are_positions_without_input_layer() -> None:
    net = seq((20,), L.Dense(256), L.Activation("relu"), L.Dense(10))
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["0.weight"].shape == (256, 20) and ps["0.weight"].native_shape == (20, 256)
    assert ps["0.weight"].native is net.layers[0].kernel
    assert ps["0.weight"].native_name == net.layers[0].kernel.path
    assert ps["2.bias"].slot.block_path == ("2",) and ps["2.bias"].slot.block_kinds == ("Dense",)
    assert ps["2.bias"].slot.block is net.layers[2]


def test_names_do_not_depend_on_keras_global_counters() -> None:
    first = seq((4,), L.Dense(3), L.Dense(2))
    for _ in range(3):
        L.Dense(1)  # advance Keras's name counters
    second = seq((4,), L.Dense(3), L.Dense(2))
    assert list(up.params(first)) == list(up.params(second)) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert up.params(first)["0.weight"].native_name != up.params(second)["0.weight"].native_name


def test_functional_model_skips_its_input_layer() -> None:
    inputs = keras.Input((6,))
    x = L.Dense(5)(inputs)
    x = L.ReLU()(x)
    net = keras.Model(inputs, L.Dense(2)(x))
    assert type(net.layers[0]).__name__ == "InputLayer"  # Keras 3.15 lists it first
    ps = up.params(net)
    assert list(ps) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ps["2.weight"].native is net.layers[3].kernel


def test_nested_containers_and_custom_variables() -> None:
    class Block(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.inner = keras.Sequential([L.Dense(4), L.Activation("relu")])
            self.scales = []

        def build(self, shape):  # noqa: ANN001
            self.alpha = self.add_weight(shape=(4,), initializer="ones", name="alpha")
            self.scales.append(self.add_weight(shape=(1,), initializer="zeros", trainable=False))
            self.inner.build(shape)

        def call(self, x):  # noqa: ANN001, ANN201
            return self.inner(x) * self.alpha + self.scales[0]

    net = seq((3,), Block(), L.Dense(2))
    ps = up.params(net)
    assert list(ps) == ["0.alpha", "0.scales.0", "0.inner.0.weight", "0.inner.0.bias", "1.weight", "1.bias"]
    assert ps["0.alpha"].role == up.Role.OTHER and ps["0.alpha"].layout.is_identity
    assert not ps["0.scales.0"].trainable
    assert ps["0.inner.0.weight"].shape == (4, 3)


def test_unknown_variable_names_keep_their_keras_name() -> None:
    layer = L.PReLU()
    net = seq((5,), layer)
    ps = up.params(net)
    assert list(ps) == ["0.alpha"]
    assert ps["0.alpha"].layout.is_identity


def test_recurrent_layers_collapse_their_cell() -> None:
    net = seq((4, 5), L.LSTM(6, return_sequences=True), L.GRU(3, return_sequences=True), L.SimpleRNN(2))
    ps = up.params(net)
    assert list(ps) == [f"{i}.{leaf}" for i in range(3) for leaf in ("weight_ih_l0", "weight_hh_l0", "bias_l0")]
    assert ps["0.weight_ih_l0"].shape == (24, 5) and ps["0.weight_hh_l0"].shape == (24, 6)
    assert ps["0.bias_l0"].shape == (24,)
    assert ps["1.bias_l0"].shape == (2, 9)
    assert ps["2.weight_hh_l0"].shape == (2, 2)
    assert ps["0.weight_ih_l0"].native is net.layers[0].cell.kernel
    assert ps["1.bias_l0"].slot.block_kinds == ("GRU",) and ps["1.bias_l0"].slot.block is net.layers[1]


def test_bare_layer_reports_its_kind() -> None:
    layer = L.RNN(L.LSTMCell(3))
    seq((4, 5), layer)
    ps = up.params(layer)
    assert list(ps) == ["weight_ih_l0", "weight_hh_l0", "bias_l0"]
    assert ps["bias_l0"].slot.block_path == () and ps["bias_l0"].slot.block_kind == "LSTM"


def test_set_update_and_item_writes_keep_the_variable_object() -> None:
    net = seq((4,), L.Dense(3), L.BatchNormalization())
    ps = up.params(net)
    kernel, running = net.layers[0].kernel, net.layers[1].moving_mean
    raw = kernel.value
    ps["0.weight"].set(np.arange(12, dtype=np.float32).reshape(3, 4))
    ps["0.weight"].update(lambda w: w + 1)
    ps["0.weight"][2, 3] = -5.0
    ps["1.running_mean"].set(np.full(3, 0.25, dtype=np.float32))
    expected = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    expected[2, 3] = -5.0
    assert net.layers[0].kernel is kernel and net.layers[1].moving_mean is running
    assert kernel.value is raw  # the backend variable/parameter itself is kept
    assert np.array_equal(keras.ops.convert_to_numpy(kernel), expected.T)
    assert kernel.trainable and not running.trainable
    assert np.array_equal(keras.ops.convert_to_numpy(running), np.full(3, 0.25))
    if BACKEND == "torch":
        assert kernel.value.requires_grad and not running.value.requires_grad


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_dtypes(dtype: str) -> None:
    net = seq((4,), L.Dense(3, dtype=dtype))
    p = up.params(net)["0.weight"]
    assert p.dtype.name == dtype
    value = np.arange(12).reshape(3, 4).astype(p.dtype)
    p.set(value)
    assert p.numpy().dtype == p.dtype and np.array_equal(p.numpy().astype(np.float64), value.astype(np.float64))


def test_layer_config_and_channels_last() -> None:
    bn = L.BatchNormalization(momentum=0.99, epsilon=1e-3)
    assert ADAPTER.layer_config(bn) == pytest.approx({"eps": 1e-3, "momentum": 0.01})
    assert ADAPTER.layer_config(L.LayerNormalization(epsilon=1e-5)) == pytest.approx({"eps": 1e-5})
    assert ADAPTER.layer_config(L.Dense(2)) == {}
    assert ADAPTER.channels_last(L.Conv2D(2, 3))
    assert not ADAPTER.channels_last(L.Conv2D(2, 3, data_format="channels_first"))


def test_backend_is_the_one_requested() -> None:
    assert BACKEND == os.environ.get("KERAS_BACKEND", "tensorflow")


@pytest.mark.parametrize("width", [3, 300])  # a small kernel (TensorFlow's transpose), a large one (the core's copy)
def test_a_written_variable_never_aliases_the_values_it_was_given(tmp_path, width: int) -> None:  # noqa: ANN001
    """On TensorFlow a transposed write reads its source in place (no defensive copy) and makes the
    variable's new buffer (a small kernel by TensorFlow's transpose, a large one copied by the core
    into a tensor TensorFlow allocated): changing the source later, or closing the mapped checkpoint
    it came from, leaves the variable as written."""
    net = seq((width,), L.Dense(4 * width))
    ps = up.params(net)
    base = np.arange(4 * width * width, dtype=np.float32).reshape(4 * width, width)  # canonical (out, in)
    expected = base.copy()
    ps["0.weight"].set(base)
    base[...] = -1
    assert np.array_equal(ps["0.weight"].numpy(), expected)
    path = tmp_path / "w.safetensors"
    up.save(net, path)
    up.initialize(net, up.init.Zeros(), select="*")
    up.load(net, path)
    path.unlink()  # the mapped file is closed and gone
    assert np.array_equal(np.asarray(net.layers[0].kernel.numpy()), expected.T)  # kernel = weight.T


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's own memory: the other backends write in place")
def test_a_large_write_on_tensorflow_is_one_copy_into_a_tensor_tensorflow_allocated(monkeypatch) -> None:  # noqa: ANN001
    """A load stages each value into a new tensor TensorFlow allocates (``transient.empty``), which the
    variable then owns: a new tensor per write; one value's write (a transposed view) does the same;
    where DLPack cannot hand a dtype's memory to NumPy, ``empty`` declines and TensorFlow's own
    conversion is used."""
    import ml_dtypes

    from unifyparams_keras import transient

    made: list[object] = []
    real_empty = transient.empty
    monkeypatch.setattr(transient, "empty", lambda shape, dtype: made.append(real_empty(shape, dtype)) or made[-1])
    net = seq((300,), L.Dense(500))
    ps = up.params(net)
    rng = np.random.default_rng(0)
    values = {"0.weight": rng.random((500, 300), dtype=np.float32), "0.bias": rng.random(500, dtype=np.float32)}
    ps.load(values)
    assert len(made) == 2 and all(m is not None for m in made)  # the kernel and the bias
    assert np.array_equal(ps["0.weight"].numpy(), values["0.weight"]) and np.array_equal(ps["0.bias"].numpy(),
                                                                                          values["0.bias"])
    kernel_tensor = made[0][0]  # type: ignore[index]
    held = np.from_dlpack(net.layers[0].kernel.value.read_value())
    assert held.ctypes.data == np.from_dlpack(kernel_tensor).ctypes.data  # taken over, not copied
    del held
    ps.load(values)
    assert len(made) == 4 and made[2][0] is not kernel_tensor  # type: ignore[index]  # a new tensor every write
    big = rng.random((500, 300), dtype=np.float32)
    ps["0.weight"].set(big)  # one value, a transposed view of it for the (300, 500) kernel
    assert len(made) == 5 and np.array_equal(ps["0.weight"].numpy(), big)
    assert real_empty((0, 3), np.dtype(np.float32)) is None
    half = real_empty((4, 3), np.dtype(ml_dtypes.bfloat16))
    assert half is None or half[1].dtype == np.dtype(ml_dtypes.bfloat16) and half[1].flags.writeable
