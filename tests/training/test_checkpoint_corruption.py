"""A checkpoint verifies itself before a resume: tensor hashes, every field's type and range,
the generator states and predictions. Anything wrong is an ArtifactError naming the file and
field, raised before training starts (never a traceback, never a silently different model)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from embrec.cli import main
from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ArtifactError
from embrec.models import BiasedMFConfig, MLPConfig
from embrec.training.fit import fit

MODEL = MLPConfig(embedding_dim=4, hidden=(6,), dropout=(0.1, 0.2))
CONFIG = TrainConfig(epochs=2, batch_size=128, seed=3, step_path="autograd", checkpoint_every=2)


@pytest.fixture(scope="module")
def saved(tiny_synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ck") / "run.checkpoints"
    fit(MODEL, tiny_synthetic.ratings, CONFIG, checkpoint_dir=folder)
    return folder


def _copy(saved: Path, tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "run.checkpoints"
    shutil.copytree(saved, folder)
    return folder, folder / (folder / "LATEST").read_text().strip()


def _edit_json(where: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    facts = json.loads((where / "state.json").read_text())
    (where / "state.json").write_text(json.dumps(change(facts)))


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda facts: {**facts, key: value}


FIELDS = [("epoch", "two"), ("epoch", 1_000_000_000), ("epoch", True), ("step", -5),
          ("steps", "many"), ("steps", 10**6), ("seed", "x"), ("stopped", "no"),
          ("lr", "fast"), ("history", [{"epoch": "one"}]), ("best_epoch", 7),
          ("masks", [[1, 2]]), ("best_rmse", None)]


@pytest.mark.parametrize(("key", "value"), FIELDS)
def test_an_edited_field_is_named_before_training(tiny: Ratings, saved: Path, tmp_path: Path,
                                                  key: str, value: Any) -> None:
    folder, where = _copy(saved, tmp_path)
    _edit_json(where, _set(key, value))
    with pytest.raises(ArtifactError, match=f"state.json: field '{key}' is"):
        fit(MODEL, tiny, CONFIG, checkpoint_dir=folder, resume=True)


def _deep(where: Path) -> None:
    (where / "state.json").write_text("[" * 100_000 + "]" * 100_000)


def _binary_latest(where: Path) -> None:
    (where.parent / "LATEST").write_bytes(bytes(range(256)))


def _folder_latest(where: Path) -> None:
    (where.parent / "LATEST").unlink()
    (where.parent / "LATEST").mkdir()


def _tensor(name: str, value: Callable[[torch.Tensor], torch.Tensor], file: str
            ) -> Callable[[Path], None]:
    def edit(where: Path) -> None:
        tensors = load_file(where / file)
        tensors[name] = value(tensors[name])
        save_file(tensors, str(where / file))
        _edit_json(where, lambda facts: {**facts, "files": {
            **facts["files"], file: __import__("embrec.writers").writers.sha256(where / file)}})
    return edit


CASES = {
    "deep JSON": (_deep, "nested too deeply"),
    "binary LATEST": (_binary_latest, "does not name a checkpoint folder"),
    "LATEST a folder": (_folder_latest, "LATEST is not a regular file"),
    "float generator": (_tensor("epoch_generator", lambda t: t.float(), "state.safetensors"),
                        "field 'epoch_generator'"),
    "short predictions": (_tensor("predictions", lambda t: t[:-3], "rank-0.safetensors"),
                          "field 'predictions'"),
    "unhashed edit": (lambda where: _tensor("model.user_embedding.weight", lambda t: t * 2,
                                            "state.safetensors")(where) or _edit_json(
        where, _set("files", {})), "does not match the hash"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_checkpoint_is_one_clear_error(tiny: Ratings, saved: Path, tmp_path: Path,
                                                 case: str) -> None:
    folder, where = _copy(saved, tmp_path)
    damage, message = CASES[case]
    damage(where)
    with pytest.raises(ArtifactError, match=message):
        fit(MODEL, tiny, CONFIG, checkpoint_dir=folder, resume=True)


@pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")  # one epoch: near constant
def test_tensors_copied_from_another_run_are_refused(tiny: Ratings, tmp_path: Path) -> None:
    model, config = BiasedMFConfig(embedding_dim=3, init_std=0.05), TrainConfig(epochs=1, seed=0)
    runs = [tmp_path / "a", tmp_path / "b"]
    fit(model, tiny, TrainConfig(epochs=1, seed=0), checkpoint_dir=runs[0])
    fit(model, tiny, TrainConfig(epochs=1, seed=0, learning_rate=0.05), checkpoint_dir=runs[1])
    wheres = [run / (run / "LATEST").read_text().strip() for run in runs]
    shutil.copy(wheres[1] / "state.safetensors", wheres[0] / "state.safetensors")
    with pytest.raises(ArtifactError, match="does not match the hash"):
        fit(model, tiny, config, checkpoint_dir=runs[0], resume=True)


def test_the_cli_prints_one_error_line_for_a_bad_field(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    train = ["train", "--data", "synthetic", "--model", "biased-mf", "--epochs", "2", "--quiet",
             "--out", str(out), "--allow-degenerate"]
    assert main(train) == 0
    folder = tmp_path / "m.checkpoints"
    if not (folder / "LATEST").is_file():
        pytest.skip("the CLI removes checkpoints after a save")
    where = folder / (folder / "LATEST").read_text().strip()
    _edit_json(where, _set("epoch", "two"))
    capsys.readouterr()
    assert main([*train, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint ") and "field 'epoch'" in err
