"""Model directories: the save → load round trip, atomic replacement, and every refusal."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import embrec.models
from embrec.artifacts import FORMAT_VERSION
from embrec.errors import ArtifactError, EmbrecWarning
from embrec.modeldir import write_manifest
from embrec.recommender import Recommender, load, save
from tests.test_recommender import DotConfig, random_rec

HISTORY = [{"epoch": 1, "train_rmse": 1.2, "validation_rmse": 1.3, "seconds": 0.1},
           {"epoch": 2, "train_rmse": 0.9, "validation_rmse": 1.1, "seconds": 0.1}]


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register the test model next to whatever real models exist."""
    models = dict(getattr(embrec.models, "MODELS", {}))
    models["dot-test"] = DotConfig
    monkeypatch.setattr(embrec.models, "MODELS", models, raising=False)
    yield


def _rec(**kwargs: Any) -> Recommender:
    info = pd.DataFrame({"title": [f"Movie {i}" for i in range(1, 31)],
                         "genres": ["Drama|War"] * 30}, index=pd.Index(range(1, 31), name="item"))
    rec = random_rec(item_info=info, config=DotConfig(bounded=True), **kwargs)
    rec.history = list(HISTORY)
    rec.metadata = {"data": "synthetic", "fingerprint": "abc", "n_train": 99,
                    "split": {"method": "random", "test_size": 0.2, "seed": 3},
                    "metrics": {"test": {"rmse": 0.91}}, "diagnostics": ["ok"]}
    return rec


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Recommender, Path]:
    rec = _rec()
    return rec, save(rec, tmp_path / "run")


def test_round_trip_gives_identical_answers(saved: tuple[Recommender, Path]) -> None:
    rec, path = saved
    loaded = load(path)
    users, items = rec.users.ids.repeat(30), np.tile(rec.items.ids, 12)
    np.testing.assert_array_equal(loaded.predict(users, items), rec.predict(users, items))
    pd.testing.assert_frame_equal(loaded.recommend(users=[1, 5, 9], n=6),
                                  rec.recommend(users=[1, 5, 9], n=6))
    pd.testing.assert_frame_equal(loaded.similar_items(4, n=3), rec.similar_items(4, n=3))
    pd.testing.assert_frame_equal(loaded.recommend_for_ratings({1: 5.0, 2: 2.0}),
                                  rec.recommend_for_ratings({1: 5.0, 2: 2.0}))
    assert (loaded.seen != rec.seen).nnz == 0
    assert loaded.metadata == rec.metadata and loaded.history == rec.history
    assert loaded.model_config == rec.model_config and loaded.train_config == rec.train_config
    assert (loaded.scale, loaded.mean, loaded.model_name) == (rec.scale, rec.mean, "dot-test")
    pd.testing.assert_frame_equal(loaded.item_info, rec.item_info)
    assert not loaded.model.training


def test_directory_layout_and_config(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    names = {p.name for p in path.iterdir()}
    assert names == {"config.json", "weights.safetensors", "users.parquet", "items.parquet",
                     "item_info.parquet", "metrics.json", "history.csv", "learning-curves.png",
                     "embrec-manifest.json"}
    config = json.loads((path / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert config["model"] == {"name": "dot-test", "config": DotConfig(bounded=True).to_dict()}
    assert config["data"] == {"source": "synthetic", "fingerprint": "abc", "n_train": 99}
    assert config["split"]["seed"] == 3 and "torch_version" in config
    manifest = json.loads((path / "embrec-manifest.json").read_text())
    assert manifest["format"] == "embrec-model" and "files" not in config
    assert set(manifest["files"]) == names - {"embrec-manifest.json"}  # config.json included
    assert json.loads((path / "metrics.json").read_text()) == {"test": {"rmse": 0.91}}
    assert (path / "learning-curves.png").read_bytes().startswith(b"\x89PNG")


def test_no_pickle_anywhere(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    for file in path.iterdir():
        head = file.read_bytes()[:4]
        assert not head.startswith(b"\x80"), f"{file.name} looks like a pickle"
        assert not head.startswith(b"PK\x03\x04"), f"{file.name} looks like torch.save output"


@pytest.mark.parametrize("ids", [
    [f"u{i}" for i in range(12)],
    [1, "a", 2, "b", 3, "c", 4, "d", 5, "e", 6, "f"],
])
def test_string_and_mixed_ids_survive(tmp_path: Path, ids: list[Any]) -> None:
    rec = random_rec(user_ids=np.array(ids, dtype=object))
    loaded = load(save(rec, tmp_path / "run"))
    assert loaded.users.to_list() == rec.users.to_list()
    pd.testing.assert_frame_equal(loaded.recommend(user=ids[1]), rec.recommend(user=ids[1]))


def test_minimal_recommender_without_history_or_titles(tmp_path: Path) -> None:
    rec = random_rec()
    path = save(rec, tmp_path / "run")
    assert not (path / "history.csv").exists() and not (path / "item_info.parquet").exists()
    loaded = load(path)
    assert loaded.history == [] and loaded.item_info is None


def test_saving_again_replaces_the_directory_atomically(tmp_path: Path) -> None:
    path = tmp_path / "run"
    save(_rec(seed=1), path)
    second = _rec(seed=2)
    second.history = []
    save(second, path)
    assert not (path / "history.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folders left
    np.testing.assert_array_equal(load(path).predict(1, 2), second.predict(1, 2))


def test_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(ArtifactError, match="refusing to replace"):
        save(_rec(), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_tampered_weights(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    data = bytearray((path / "weights.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (path / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"weights\.safetensors: size or SHA-256"):
        load(path)


def test_truncated_file(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    data = (path / "items.parquet").read_bytes()
    (path / "items.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"(?s)items\.parquet: size or SHA.*truncated.*hint"):
        load(path)


def test_missing_file(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    (path / "users.parquet").unlink()
    with pytest.raises(ArtifactError, match=r"users\.parquet: missing"):
        load(path)


def _edit_config(path: Path, **changes: Any) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    _write_config(path, config)


def _write_config(path: Path, config: dict[str, Any]) -> None:
    """Rewrite config.json and re-seal the manifest, to reach the checks behind the hashes."""
    (path / "config.json").write_text(json.dumps(config))
    write_manifest(path, FORMAT_VERSION)


def test_wrong_format_version(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    _edit_config(path, format_version=99)
    with pytest.raises(ArtifactError, match="(?s)format version 99, but this embrec reads "
                       f"version {FORMAT_VERSION}.*hint"):
        load(path)


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no model directory at"):
        load(tmp_path / "nope")
    with pytest.raises(ArtifactError, match=r"embrec-manifest\.json: missing"):
        load(tmp_path)
    (tmp_path / "embrec-manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load(tmp_path)


def test_config_that_does_not_fit_the_files(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    _edit_config(path, n_users=13)
    with pytest.raises(ArtifactError, match=r"does not fit a dot-test model.*user_embedding"):
        load(path)


def test_weights_that_do_not_fit_the_model(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    config["model"]["config"]["dim"] = 5
    _write_config(path, config)
    with pytest.raises(ArtifactError, match="does not fit a dot-test model"):
        load(path)


def test_unknown_model_name(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    config["model"]["name"] = "dot-tset"
    _write_config(path, config)
    with pytest.raises(ArtifactError,
                       match="(?s)unknown model 'dot-tset'.*did you mean 'dot-test'"):
        load(path)


def test_rec_save_delegates(tmp_path: Path) -> None:
    rec = _rec()
    assert rec.save(tmp_path / "x") == tmp_path / "x"
    assert load(tmp_path / "x").n_items == rec.n_items


@pytest.mark.parametrize("name", sorted(set(getattr(embrec.models, "MODELS", {})) - {"dot-test"}))
def test_every_registered_model_round_trips(tmp_path: Path, name: str) -> None:
    from tests.test_recommender import model_rec

    rec = model_rec(name)
    loaded = load(save(rec, tmp_path / name))
    users, items = rec.users.ids.repeat(25), np.tile(rec.items.ids, 15)
    kind = "score" if rec.scores == "ranking" else "rating"
    np.testing.assert_array_equal(loaded.predict(users, items, kind=kind),
                                  rec.predict(users, items, kind=kind))
    pd.testing.assert_frame_equal(loaded.recommend(users=[1, 2, 3]), rec.recommend(users=[1, 2, 3]))
    assert loaded.model_config == rec.model_config


def test_unsaveable_item_info_is_a_clear_error(tmp_path: Path) -> None:
    rec = random_rec(item_info=pd.DataFrame({"title": ["a", "b"]}, index=[1, "x"]))
    with pytest.raises(ArtifactError, match="cannot save item_info as Parquet"):
        save(rec, tmp_path / "run")
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []


def test_odd_metadata_values_are_kept_readable(tmp_path: Path) -> None:
    rec = random_rec()
    rec.metadata = {"path": tmp_path, "count": np.int64(3), "weights": np.arange(2)}
    loaded = load(save(rec, tmp_path / "run"))
    assert loaded.metadata["path"] == str(tmp_path) and loaded.metadata["count"] == 3
    assert loaded.metadata["weights"] == [0, 1]


def test_config_missing_a_field_or_with_a_bad_train_config(saved: tuple[Recommender, Path]) -> None:
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    _edit_config(path, train_config={**config["train_config"], "epochs": 0})
    with pytest.raises(ArtifactError, match=r"config\.json: invalid train_config: epochs=0"):
        load(path)
    del config["mean"]
    _write_config(path, config)
    with pytest.raises(ArtifactError, match=r"config\.json: has no 'mean' field"):
        load(path)


def test_saves_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the [plot] extra not installed
    rec = _rec()
    with pytest.warns(EmbrecWarning, match=r"learning-curves\.png not drawn: matplotlib"):
        path = save(rec, tmp_path / "run")
    assert not (path / "learning-curves.png").exists()
    assert load(path).history == rec.history


def _module_imports(name: str) -> set[str]:
    """The embrec modules ``name`` imports when it is imported (top-level statements only)."""
    import ast
    import importlib.util

    def is_module(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a name inside a module, not a submodule
            return False

    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    found: set[str] = set()
    for node in ast.parse(Path(spec.origin).read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if is_module(f"{node.module}.{a.name}"))
    parents = {".".join(m.split(".")[:k]) for m in found for k in range(1, m.count(".") + 1)}
    return {m for m in found | parents if m.split(".")[0] == "embrec"}


def test_artifacts_never_imports_the_recommender() -> None:
    seen, todo = set(), ["embrec.artifacts"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_module_imports(module))
    assert "embrec.recommender" not in seen  # recommender imports artifacts, never the reverse
    assert "embrec.artifacts" in _module_imports("embrec.recommender")
