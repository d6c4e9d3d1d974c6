"""Hugging Face ``save_pretrained`` folders through the family recipes, for every built-in
family: ``up.load(backbone, folder)`` reads what ``transformers`` wrote, and
``up.save(backbone, folder, format="transformers")`` writes what ``AutoModel.from_pretrained``
loads, outputs compared (transformers -> folder -> keras-hub -> folder -> transformers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unifyparams as up

from . import families as F

pytestmark = [pytest.mark.keras, pytest.mark.torch]

transformers = F.transformers
ATOL = 1e-4


@pytest.mark.parametrize("name", list(F.FAMILIES))
def test_folder_round_trip_through_keras_hub(name: str, tmp_path: Path) -> None:
    family = F.FAMILIES[name]
    hf = family.hf_task()
    hf.save_pretrained(tmp_path / "hf")
    kh = family.kh()
    report = up.load(kh, tmp_path / "hf")
    assert report.backend == "transformers" and report.port.match.startswith(f"recipe:{name}")
    ids, mask = F.inputs(name)
    expected = F.hf_hidden(hf, ids, mask)
    assert F.max_diff(expected, F.kh_hidden(kh, ids, mask), mask) < ATOL

    F.perturb(kh, seed=3)  # what comes back must be the backbone's values, not the first folder's
    folder = up.save(kh, tmp_path / "out", format="transformers")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == hf.config.model_type
    back = transformers.AutoModel.from_pretrained(folder).eval()
    assert F.max_diff(F.kh_hidden(kh, ids, mask), F.hf_hidden(back, ids, mask), mask) < ATOL
    task = type(hf).from_pretrained(folder).eval()  # the task class too: its head from the folder
    assert F.max_diff(F.kh_hidden(kh, ids, mask), F.hf_hidden(task, ids, mask), mask) < ATOL


def test_a_folder_of_another_configuration_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    hf = F.FAMILIES["llama"].hf_task(rms_norm_eps=1e-5)
    hf.save_pretrained(tmp_path / "hf")
    kh = F.FAMILIES["llama"].kh()
    before = {k: v.copy() for k, v in F.keras_by_native(kh).items()}
    with pytest.raises(up.CheckpointError, match="(?s)nothing was changed.*rms_norm_eps"):
        up.load(kh, tmp_path / "hf")
    after = F.keras_by_native(kh)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_sharded_folders_load_and_save(tmp_path: Path) -> None:
    family = F.FAMILIES["gpt2"]
    hf = family.hf_task()
    hf.save_pretrained(tmp_path / "hf", max_shard_size="100KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    kh = family.kh()
    up.load(kh, tmp_path / "hf")
    folder = up.save(kh, tmp_path / "out", format="transformers", max_shard_size="100KB")
    assert (folder / "model.safetensors.index.json").is_file()
    back: Any = transformers.AutoModel.from_pretrained(folder).eval()
    ids, mask = F.inputs("gpt2")
    assert F.max_diff(F.hf_hidden(hf, ids, mask), F.hf_hidden(back, ids, mask), mask) < ATOL
