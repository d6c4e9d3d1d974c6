"""The listing kept between ``up.params`` calls (unifyparams/listing.py): returned again only while
the model's structure is unchanged, and every structural change is seen.

Each case changes a model the way users and libraries do (a layer appended, a parameter replaced by
attribute or straight in the registry as accelerate does, a storage swapped, a class swapped by
parametrizations, a layer built) and checks that the next ``up.params`` lists what a fresh walk lists.
"""

from __future__ import annotations

import copy
import pickle

import keras
import numpy as np
import pytest
import torch
from torch import nn

import unifyparams as up
from unifyparams.listing import ATTRIBUTE, forget


def fresh(model: object) -> up.ParamSet:
    """What a walk lists now, past the kept listing."""
    forget(model)
    return up.params(model)


def same_listing(a: up.ParamSet, b: up.ParamSet) -> bool:
    return [(n, p.native is q.native, p.role, p.layout, p.shared_with) for (n, p), q in zip(a.items(), b.values())] == [
        (n, True, p.role, p.layout, p.shared_with) for n, p in b.items()
    ] and list(a) == list(b)


def torch_net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Sequential(nn.Linear(4, 2), nn.ReLU()))


def test_unchanged_torch_model_gives_the_same_paramset_with_live_values() -> None:
    net = torch_net()
    ps = up.params(net)
    assert up.params(net) is ps
    with torch.no_grad():
        net[0].weight.fill_(2.0)
    assert float(up.params(net)["0.weight"].numpy()[0, 0]) == 2.0  # values are read live
    net.half()  # new storage for every tensor (p.data = ...): walked again, same names
    again = up.params(net)
    assert again is not ps and list(again) == list(ps) and again["0.weight"].dtype == np.float16


@pytest.mark.parametrize(
    "change",
    ["append", "delete", "setattr", "registry", "register_buffer", "assign_load", "class_swap", "module_swap"],
)
def test_every_structural_change_of_a_torch_model_is_seen(change: str) -> None:
    net = torch_net()
    before = up.params(net)
    if change == "append":
        net.append(nn.Linear(2, 2))
    elif change == "delete":
        del net[2][0]
    elif change == "setattr":
        net[0].weight = nn.Parameter(torch.zeros(4, 3))
    elif change == "registry":  # what accelerate's set_module_tensor_to_device does: no hook runs
        net[0]._parameters["weight"] = nn.Parameter(torch.zeros(4, 3))
    elif change == "register_buffer":
        net[2][0].register_buffer("running_mean", torch.zeros(2))
    elif change == "assign_load":  # load_state_dict(assign=True) puts the file's tensors in place
        net.load_state_dict({k: v.clone() for k, v in net.state_dict().items()}, assign=True)
    elif change == "class_swap":  # torch.nn.utils.parametrize swaps the module's class
        torch.nn.utils.parametrize.register_parametrization(net[0], "weight", nn.Identity())
    elif change == "module_swap":
        net[2] = nn.Sequential(nn.Linear(4, 2), nn.ReLU())
    after = up.params(net)
    assert after is not before
    assert same_listing(after, fresh(net))


def test_a_data_swap_that_makes_a_tie_is_seen() -> None:
    a, b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
    net = nn.Sequential(a, b)
    assert up.params(net)["0.weight"].shared_with == ()
    b.weight.data = a.weight.data  # one memory, two Parameter objects: PyTorch writes them as one
    assert up.params(net)["0.weight"].shared_with == ("1.weight",)


def test_hugging_face_conv1d_layout_follows_its_weight() -> None:
    class Conv1D(nn.Module):  # the shape of transformers.pytorch_utils.Conv1D
        def __init__(self, nf: int, nx: int) -> None:
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(torch.zeros(nx, nf))

    net = nn.Sequential(Conv1D(3, 5))
    assert up.params(net)["0.weight"].shape == (3, 5)
    net[0].weight.data = torch.zeros(3, 5)  # no longer (in, nf): not a transposed linear any more
    assert up.params(net)["0.weight"].shape == (3, 5) and up.params(net)["0.weight"].layout.is_identity


def test_lazy_and_copied_torch_models_are_walked() -> None:
    lazy = nn.Sequential(nn.LazyLinear(2))
    assert up.params(lazy)["0.weight"].shape == (2, None)
    up.materialize(lazy, np.zeros((1, 3), dtype=np.float32))
    assert up.params(lazy)["0.weight"].shape == (2, 3)

    net = torch_net()
    up.params(net)
    clone = copy.deepcopy(net)
    assert clone.__dict__[ATTRIBUTE] == {}  # a copy carries no listing
    assert up.params(clone)["0.weight"].native is clone[0].weight
    shallow = copy.copy(net)
    assert up.params(shallow).model is shallow
    data = pickle.dumps(net)
    assert b"unifyparams.listing" not in data  # unpickling the model needs no unifyparams
    assert up.params(pickle.loads(data))["0.weight"].shape == (4, 3)


def test_ties_made_by_unifyparams_are_seen() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    assert up.params(net)["0.weight"].shared_with == ()
    up.tie(net, "1.weight", "0.weight")
    assert up.params(net)["1.weight"].shared_with == ("0.weight",)
    up.untie(net, "1.weight")
    assert up.params(net)["1.weight"].shared_with == ()


@pytest.mark.keras
def test_every_structural_change_of_a_keras_model_is_seen() -> None:
    L = keras.layers

    class Block(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.first = L.Dense(3)
            self.parts = [L.Dense(3), L.Dense(3)]

        def call(self, x):  # noqa: ANN001, ANN201
            x = self.first(x)
            for part in self.parts:
                x = part(x)
            return x

    model = keras.Sequential([keras.Input((3,)), Block(), L.Dense(2)])
    ps = up.params(model)
    assert up.params(model) is ps
    block = model.layers[0]
    block.parts.pop(0)  # positions in a tracked list move
    assert same_listing(up.params(model), fresh(model))
    block.first, block.parts[0] = block.parts[0], block.first  # the same layers under other names
    assert same_listing(up.params(model), fresh(model))
    model.add(L.Dense(4))  # unbuilt: stand-ins, walked each time
    assert list(up.params(model))[-2:] == ["2.weight", "2.bias"]
    model.build((None, 3))
    assert same_listing(up.params(model), fresh(model))
    assert up.params(model)["2.weight"].native is model.layers[2].kernel
