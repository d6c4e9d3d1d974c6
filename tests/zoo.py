"""Real model definitions nobody here wrote, for the porting proofs: torchvision, MXNet's Gluon model
zoo and ``keras.applications``, with random weights, in inference mode.

torchvision's compiled ops do not load against the CPU torch build here (``import torchvision``
fails with ``operator torchvision::nms does not exist``), and transformers imports torchvision
whenever it is importable, so ``.ci/setup`` installs the pinned wheel into a side folder
(``.venv/torchvision-models``) that is not on ``sys.path``. :func:`torchvision_models` loads the
pure-Python model definitions from it through a private package object whose ``__path__`` is
that folder: ``torchvision/__init__.py`` (which loads the compiled ops) and
``torchvision/models/__init__.py`` (which imports detection, video and every other family) never
run, and the two modules the chosen families import that need PIL (``torchvision.utils`` for
``_log_api_usage_once``, ``torchvision.transforms._presets`` for the weights' metadata) are
replaced by stubs. Anything else missing fails loudly: a broken install is an error, never a skip.

>>> tv = torchvision_models()           # doctest: +SKIP
>>> model = build("torch", "resnet18")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "_unifyparams_zoo_torchvision"  # never "torchvision": nothing else may find it
FAMILIES = ("alexnet", "densenet", "inception", "resnet", "squeezenet", "vgg")


def torchvision_folder() -> Path:
    """The folder holding ``torchvision/`` (``UNIFYPARAMS_TORCHVISION_MODELS`` overrides)."""
    override = os.environ.get("UNIFYPARAMS_TORCHVISION_MODELS")
    folder = Path(override) if override else Path(sys.prefix) / "torchvision-models"
    if not (folder / "torchvision" / "models" / "resnet.py").is_file():
        raise RuntimeError(
            f"torchvision's model definitions are not in {folder}: run `bash .ci/setup` (it installs "
            "torchvision==0.28.0 there with pip --no-deps --target), or set UNIFYPARAMS_TORCHVISION_MODELS"
        )
    return folder


def _package(name: str, path: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    module.__package__ = name
    module.__file__ = None
    sys.modules[name] = module
    return module


def _stub(name: str, **attributes: Any) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module


class _Preset:
    """Stands in for ``torchvision.transforms._presets.ImageClassification`` (weights' metadata only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("torchvision's preprocessing presets are not loaded in tests/zoo.py (they need PIL)")


def torchvision_models() -> types.ModuleType:
    """A package whose attributes are the model families (``.resnet``, ``.vgg``, ...) and builders."""
    models_name = f"{PACKAGE}.models"
    if models_name in sys.modules:
        return sys.modules[models_name]
    import torch  # noqa: F401  (the definitions import it; fail here if it is missing)

    root = torchvision_folder() / "torchvision"
    package = _package(PACKAGE, root)
    _stub(f"{PACKAGE}.utils", _log_api_usage_once=lambda obj: None)
    transforms = _package(f"{PACKAGE}.transforms", root / "transforms")
    _stub(f"{PACKAGE}.transforms._presets", ImageClassification=_Preset)
    transforms._presets = sys.modules[f"{PACKAGE}.transforms._presets"]  # type: ignore[attr-defined]
    models = _package(models_name, root / "models")
    package.models = models  # type: ignore[attr-defined]
    for family in FAMILIES:
        module = importlib.import_module(f"{models_name}.{family}")
        setattr(models, family, module)
        for public in getattr(module, "__all__", ()):
            setattr(models, public, getattr(module, public))
    return models


# ---------------------------------------------------------------------------------------------------
# builders: (framework, zoo name) -> model with random weights, inference mode

TORCH = {
    "resnet18": lambda tv: tv.resnet18(),
    "resnet34": lambda tv: tv.resnet34(),
    "vgg16": lambda tv: tv.vgg16(),
    "vgg19": lambda tv: tv.vgg19(),
    "densenet121": lambda tv: tv.densenet121(),
    "densenet169": lambda tv: tv.densenet169(),
    "alexnet": lambda tv: tv.alexnet(),
    "squeezenet1_0": lambda tv: tv.squeezenet1_0(),
    "squeezenet1_1": lambda tv: tv.squeezenet1_1(),
    "inception_v3": lambda tv: tv.inception_v3(aux_logits=False, init_weights=False),
}

# the architecture -> each framework's name for it (torchvision's names are the architecture names)
GLUON = {
    "resnet18": "resnet18_v1",
    "resnet34": "resnet34_v1",
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "densenet121": "densenet121",
    "densenet169": "densenet169",
    "alexnet": "alexnet",
    "squeezenet1_0": "squeezenet1.0",
    "squeezenet1_1": "squeezenet1.1",
    "inception_v3": "inceptionv3",
}
KERAS = {"vgg16": "VGG16", "vgg19": "VGG19", "densenet121": "DenseNet121", "densenet169": "DenseNet169"}

# input sizes: 224 where a fixed-size head needs it (VGG, AlexNet: a 7x7 / 6x6 map into the first dense layer;
# Gluon's DenseNet and SqueezeNet end in fixed AvgPool2D(7) / AvgPool2D(13) where torchvision pools adaptively),
# 299 for Inception v3 (Gluon: AvgPool2D(8)); ResNet pools globally in both zoos, so a small image will do
SIZE = {
    "resnet18": 64, "resnet34": 64, "vgg16": 224, "vgg19": 224, "densenet121": 224, "densenet169": 224,
    "alexnet": 224, "squeezenet1_0": 224, "squeezenet1_1": 224, "inception_v3": 299,
}


def frameworks(arch: str) -> list[str]:
    """The frameworks whose zoo has ``arch`` as the same function (tests/../reference/real-models.md)."""
    return ["torch", "gluon"] + (["keras"] if arch in KERAS else [])


def example_input(arch: str, seed: int = 0) -> np.ndarray:
    """One NCHW float32 image (batch 1); Keras models get it transposed to NHWC by :func:`forward`."""
    size = SIZE[arch]
    return np.random.default_rng(seed).uniform(-1, 1, size=(1, 3, size, size)).astype(np.float32)


def mxnet() -> Any:
    from unifyparams_gluon import import_mxnet

    return import_mxnet()


def build(framework: str, arch: str, state: str = "deferred") -> Any:
    """A fresh zoo model. Gluon ``state``: ``"deferred"`` (initialized, shapes not yet inferred, never
    run) or ``"run"`` (one inference forward on :func:`example_input` already done, so MKLDNN may hold
    its conv weights in its own layout)."""
    if framework == "torch":
        model = TORCH[arch](torchvision_models())
        return model.eval()
    if framework == "gluon":
        mx = mxnet()
        model = mx.gluon.model_zoo.vision.get_model(GLUON[arch], pretrained=False)
        model.initialize()
        if state == "run":
            forward("gluon", model, example_input(arch, seed=1))
        elif state != "deferred":
            raise ValueError(f"state must be 'deferred' or 'run', not {state!r}")
        return model
    if framework == "keras":
        import keras

        size = SIZE[arch]
        # logits, as torchvision and Gluon give (keras.applications ends in a softmax by default)
        return getattr(keras.applications, KERAS[arch])(
            weights=None, input_shape=(size, size, 3), classifier_activation=None
        )
    raise ValueError(f"unknown framework {framework!r}")


def forward(framework: str, model: Any, x: np.ndarray) -> np.ndarray:
    """Inference output for an NCHW float32 input (NHWC for Keras, transposed here)."""
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model.eval()(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    if framework == "gluon":
        mx = mxnet()
        with mx.autograd.pause(train_mode=False):
            out = model(mx.nd.array(x)).asnumpy()
        mx.nd.waitall()
        return out
    if framework == "keras":
        import keras

        nhwc = np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))
        return np.asarray(keras.ops.convert_to_numpy(model(nhwc, training=False)))
    raise ValueError(f"unknown framework {framework!r}")


def port_input(framework: str, x: np.ndarray) -> Any:
    """``x`` as the framework's own model takes it: the ``example_input`` a port gets for that side."""
    if framework == "keras":
        return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))
    return x


def randomize(model: Any, seed: int) -> None:
    """Fan-in-scaled uniform values (outputs of order one through deep nets), running variances in
    [0.5, 1.5]: every parameter moves, through ``up.params(model).load`` (the library's own write path).
    Drawn in float32 (a VGG's 138M values in float64 would be 1.1 GB of temporaries)."""
    import unifyparams as up

    rng = np.random.default_rng(seed)
    ps = up.params(model)
    state = {}
    for name, p in ps.items():
        if any(d is None for d in p.shape):
            raise AssertionError(f"{name} has shape {p.shape}: run the model once before randomizing it")
        shape = tuple(int(d) for d in p.shape)
        if name.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        else:
            bound = 1 / np.sqrt(int(np.prod(shape[1:])) if len(shape) > 1 else 4)
            value = rng.random(shape, dtype=np.float32)
            value *= np.float32(2 * bound)
            value -= np.float32(bound)
        state[name] = value.astype(p.dtype, copy=False)
    ps.load(state)


def relative_error(expected: np.ndarray, got: np.ndarray) -> float:
    """max |expected - got| / max |expected|: the judge of a port."""
    scale = float(np.max(np.abs(expected)))
    if not np.isfinite(scale) or scale == 0:
        raise AssertionError(f"the reference output is degenerate (max abs {scale}): randomize the source")
    return float(np.max(np.abs(expected - got))) / scale

