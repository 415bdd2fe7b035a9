"""A corpus of corrupted model folders, built here: each is an ArtifactError, never a traceback.

Every case goes through ``load``, ``embrec evaluate`` and ``embrec serve`` (which loads
before it binds a port). Edits behind the integrity record re-seal the manifest, so
the value checks behind it are reached too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from embrec.artifacts import FORMAT_VERSION
from embrec.cli import main
from embrec.errors import ArtifactError
from embrec.modeldir import _digest, write_manifest
from embrec.recommender import load, save
from tests.test_recommender import model_rec

Corruption = Callable[[Path], None]


def _config(path: Path, edit: Callable[[dict[str, Any]], Any], seal: bool = True) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))
    if seal:
        write_manifest(path, FORMAT_VERSION)


def _raw(name: str, data: bytes, seal: bool = True) -> Corruption:
    def corrupt(path: Path) -> None:
        (path / name).write_bytes(data)
        if seal:
            write_manifest(path, FORMAT_VERSION)
    return corrupt


def _model(key: str, value: Any) -> Corruption:
    return lambda p: _config(p, lambda c: c["model"]["config"].__setitem__(key, value))


def _top(key: str, value: Any, seal: bool = True) -> Corruption:
    return lambda p: _config(p, lambda c: c.__setitem__(key, value), seal)


def _manifest(edit: Callable[[dict[str, Any]], Any], redigest: bool = False) -> Corruption:
    def corrupt(path: Path) -> None:
        manifest = json.loads((path / "embrec-manifest.json").read_text())
        edit(manifest)
        if redigest:  # as if written on purpose: the name checks must still hold
            manifest["digest"] = _digest({k: v for k, v in manifest.items() if k != "digest"})
        (path / "embrec-manifest.json").write_text(json.dumps(manifest))
    return corrupt


def _nan_weights(path: Path) -> None:
    tensors = load_file(str(path / "weights.safetensors"))
    key = next(k for k in tensors if k.startswith("model.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, str(path / "weights.safetensors"))
    write_manifest(path, FORMAT_VERSION)


def _symlink_out(path: Path) -> None:
    outside = path.parent / "outside.parquet"
    shutil.copy(path / "users.parquet", outside)
    (path / "users.parquet").unlink()
    (path / "users.parquet").symlink_to(outside)


DEEP = b"[" * 100_000 + b"]" * 100_000

CASES: dict[str, Corruption] = {
    "embedding_dim 10**9": _model("embedding_dim", 10**9),
    "embedding_dim as text": _model("embedding_dim", "32"),
    "embedding_dim negative": _model("embedding_dim", -3),
    "unknown model key": _model("embeding_dim", 8),
    "scale of one value": _top("scale", [1]),
    "scale reversed": _top("scale", [5, 1]),
    "scale as text": _top("scale", ["1", "5"]),
    "scale infinite": _top("scale", [1, float("inf")]),
    "mean NaN": _top("mean", float("nan")),
    "mean as text": _top("mean", "3"),
    "n_users as text": _top("n_users", "15"),
    "n_users huge": _top("n_users", 10**12),
    "n_users bool": _top("n_users", True),
    "n_items wrong": _top("n_items", 26),
    "model not an object": _top("model", "biased-mf"),
    "unknown model": _top("model", {"name": "x" * 10_000, "config": {}}),
    "train_config a list": _top("train_config", []),
    "learning_rate as text": lambda p: _config(
        p, lambda c: c["train_config"].__setitem__("learning_rate", "0.1")),
    "tensors null": _top("tensors", None),
    "metadata a list": _top("metadata", [1]),
    "scale edited, not resealed": _top("scale", [5, 1], seal=False),
    "config deep nesting": _raw("config.json", DEEP),
    "config not utf-8": _raw("config.json", b"\xff\xfe{\x00}\x00"),
    "config a list": _raw("config.json", b"[1, 2]"),
    "format version 1": _top("format_version", 1),
    "manifest missing": lambda p: (p / "embrec-manifest.json").unlink(),
    "manifest not json": _raw("embrec-manifest.json", b"{nope", seal=False),
    "manifest deep nesting": _raw("embrec-manifest.json", DEEP, seal=False),
    "manifest digest edited": _manifest(lambda m: m.__setitem__("digest", "0" * 64)),
    "manifest lists /etc/hostname": _manifest(
        lambda m: m["files"].__setitem__("/etc/hostname", {"bytes": 1, "sha256": "0"})),
    "manifest lists ../x": _manifest(
        lambda m: m["files"].__setitem__("../x", {"bytes": 1, "sha256": "0"})),
    "manifest lists /etc/hostname, redigested": _manifest(
        lambda m: m["files"].__setitem__("/etc/hostname", {"bytes": 1, "sha256": "0"}), True),
    "manifest lists ../x, redigested": _manifest(
        lambda m: m["files"].__setitem__("../x", {"bytes": 1, "sha256": "0"}), True),
    "manifest drops weights, redigested": _manifest(
        lambda m: m["files"].pop("weights.safetensors"), True),
    "manifest bytes negative, redigested": _manifest(
        lambda m: m["files"]["config.json"].__setitem__("bytes", -1), True),
    "weights truncated, resealed": lambda p: _raw(
        "weights.safetensors", (p / "weights.safetensors").read_bytes()[:300])(p),
    "users.parquet a symlink out": _symlink_out,
    "weights truncated": lambda p: (p / "weights.safetensors").write_bytes(
        (p / "weights.safetensors").read_bytes()[:100]),
    "weights NaN": _nan_weights,
    "weights garbage": _raw("weights.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}"),
    "metrics not json": _raw("metrics.json", b"{oops"),
    "metrics a list": _raw("metrics.json", b"[1]"),
    "history garbage": _raw("history.csv", b"\x00\x01\x02\xff\xfe"),
    "history text values": _raw("history.csv", b"epoch,train_rmse\none,two\n"),
    "users.parquet garbage": _raw("users.parquet", b"PAR1 not really"),
    "items.parquet no id column": lambda p: (
        __import__("pandas").DataFrame({"x": np.arange(25)}).to_parquet(p / "items.parquet"),
        write_manifest(p, FORMAT_VERSION)),
    "item_info garbage": _raw("item_info.parquet", b"garbage"),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rec = model_rec("biased-mf")
    rec.history = [{"epoch": 1.0, "train_rmse": 1.0}]
    import pandas as pd

    rec.item_info = pd.DataFrame({"title": [f"t{i}" for i in range(1, 26)]},
                                 index=pd.Index(np.arange(1, 26), name="item"))
    return save(rec, tmp_path_factory.mktemp("good") / "model")


@pytest.mark.parametrize("case", sorted(CASES))
def test_corrupted_folder_is_an_artifact_error_everywhere(
        case: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    CASES[case](folder)
    with pytest.raises(ArtifactError, match=r"(?s)model.*hint: "):
        load(folder)
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--json"]) == 2
    assert main(["serve", str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert len(err) < 2_000  # no 10,000-character model name echoed back


def test_the_good_folder_loads(model_dir: Path) -> None:
    rec = load(model_dir)
    assert rec.history and rec.item_info is not None


def test_an_unlisted_file_with_an_embrec_name_is_ignored(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    write_manifest(folder, FORMAT_VERSION)
    (folder / "learning-curves.png").unlink()  # now unlisted after the reseal below
    write_manifest(folder, FORMAT_VERSION)
    (folder / "learning-curves.png").write_text("user's own picture")
    assert load(folder).n_items == 25


def test_device_cuda_without_a_gpu_is_a_config_error(model_dir: Path) -> None:
    from embrec.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        load(model_dir, device="cuda")
