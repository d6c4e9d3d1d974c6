"""Write the seed corpus of the fuzzers into ``fuzz/corpus/<reader>/`` (small, valid files; kept in git).

Run once after a format change: ``.venv/bin/python fuzz/make_seeds.py``. Needs torch and h5py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parent / "corpus"


def safetensors_seeds(folder: Path) -> None:
    from unifyparams.checkpoint.format import save_file
    from unifyparams.checkpoint.metadata import CheckpointMeta

    meta = CheckpointMeta(backend="torch", ties=[("0.weight", "2.weight")]).encode()
    save_file({"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "0.bias": np.zeros(2, np.float16)},
              folder / "ours.safetensors", meta)
    save_file({"a": np.arange(3, dtype=np.int64), "b": np.ones((0, 2), np.float64), "c": np.array(True)},
              folder / "plain.safetensors")
    from unifyparams.checkpoint.pieces import encode_offsets  # a rank's file: blocks at recorded offsets

    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)},
              folder / "pieces.safetensors", {**meta, **encode_offsets({"w": [0, 0], "b": [0]})})
    import ml_dtypes  # the ml_dtypes kinds, packed sub-byte ones included (a core dependency)

    save_file({"bf": np.arange(4, dtype=np.float32).astype(ml_dtypes.bfloat16),
               "e8m0": np.array([1, 2, 4], np.float32).astype(ml_dtypes.float8_e8m0fnu),
               "f4": np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.float4_e2m1fn),
               "f6": np.linspace(-2, 2, 8, dtype=np.float32).astype(ml_dtypes.float6_e3m2fn),
               "fnuz": np.ones(2, np.float32).astype(ml_dtypes.float8_e5m2fnuz)},
              folder / "dtypes.safetensors")


def torch_seeds(folder: Path) -> None:
    import torch

    w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    state = {"0.weight": w, "0.bias": torch.zeros(2, dtype=torch.float16), "2.weight": w,
             "1.num_batches_tracked": torch.tensor(3), "n": {"x": torch.ones(2, dtype=torch.int64)}}
    torch.save(state, folder / "zip.pt")
    torch.save({"a": torch.ones(3), "b": torch.arange(4).view(2, 2).t()}, folder / "legacy.pt",
               _use_new_zipfile_serialization=False)


def gluon_seeds(folder: Path) -> None:
    from unifyparams_gluon.params_file import V3_MAGIC, write_params_file

    write_params_file({"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "1.gamma": np.ones(2, np.float16),
                       "2.l0_i2h_weight": np.zeros((4, 1), np.float64), "i": np.arange(2, dtype=np.int64),
                       "b": np.array([True, False])}, folder / "net.params")
    write_params_file({"x": np.ones((0, 3), np.uint8)}, folder / "empty_dim.params")
    raw = bytearray((folder / "net.params").read_bytes())
    raw[24:28] = V3_MAGIC.to_bytes(4, "little")  # NumPy-semantics magic on the first array
    (folder / "v3.params").write_bytes(bytes(raw))


def h5_seeds(folder: Path) -> None:
    import h5py

    with h5py.File(folder / "weights.h5", "w", libver="latest") as f:
        f["layers/dense/vars/0"] = np.arange(6, dtype=np.float32).reshape(2, 3)
        f.create_dataset("layers/dense/vars/1", data=np.zeros(3, np.float32), chunks=(2,))
        f.create_dataset("layers/norm/vars/0", data=np.ones(8, np.float64), chunks=(4,), compression="gzip")
        f.attrs["note"] = "seed"
    with h5py.File(folder / "compact.h5", "w", libver="latest") as f:
        space = h5py.h5s.create_simple((4,))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        h5py.h5d.create(f.id, b"w", h5py.h5t.NATIVE_INT32, space, plist).write(
            h5py.h5s.ALL, h5py.h5s.ALL, np.arange(4, dtype=np.int32))


if __name__ == "__main__":
    for name, make in (("safetensors", safetensors_seeds), ("torch", torch_seeds), ("gluon", gluon_seeds),
                       ("h5", h5_seeds)):
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        make(folder)
        print(name, sorted((p.name, p.stat().st_size) for p in folder.iterdir()))
