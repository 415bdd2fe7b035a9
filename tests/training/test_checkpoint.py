"""Checkpoints: a run stopped anywhere and resumed ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from embrec.cli import main
from embrec.config import TrainConfig
from embrec.data.ratings import Ratings
from embrec.errors import ArtifactError, ConfigError
from embrec.models import BiasedMFConfig, MLPConfig
from embrec.training.fit import fit
from embrec.training.losses import RankingLoss
from embrec.training.step import RatingLoss

MF3 = BiasedMFConfig(embedding_dim=3, init_std=0.05)
MF4 = BiasedMFConfig(embedding_dim=4, init_std=0.05)
MLP = MLPConfig(embedding_dim=6, hidden=(8,), dropout=(0.2, 0.3), activation="tanh")
CONFIG = TrainConfig(epochs=4, batch_size=64, learning_rate=0.01, seed=1, validation=0.1,
                     early_stopping=3, step_path="autograd", schedule="onecycle")


class Crash(RuntimeError):
    pass


class CrashesAt:
    """Mixed into an objective: its ``at``-th loss raises, a training killed mid-run."""

    calls, at = 0, 0

    def loss(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise Crash
        return super().loss(*args)  # type: ignore[misc]


class CrashingLoss(CrashesAt, RatingLoss):
    """The rating loss, raising on its ``at``-th call."""

    def __init__(self, at: int) -> None:
        self.at = at


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("at", [40, 17 * 2 + 1])  # mid-epoch, and just after an epoch's end
def test_resume_after_a_crash_equals_the_uninterrupted_run(tiny: Ratings, tmp_path: Path,
                                                           at: int) -> None:
    config = TrainConfig(**{**CONFIG.to_dict(), "checkpoint_every": 5})
    whole = fit(MLP, tiny, config)
    with pytest.raises(Crash):
        fit(MLP, tiny, config, checkpoint_dir=tmp_path, objective=CrashingLoss(at))
    resumed = fit(MLP, tiny, config, checkpoint_dir=tmp_path, resume=True)
    for key, value in _weights(whole.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert _timeless(resumed.history) == _timeless(whole.history)


class CrashingRanking(CrashesAt, RankingLoss):
    """BPR, raising on its ``at``-th loss: a ranking run killed mid-epoch."""

    def __init__(self, at: int) -> None:
        super().__init__("bpr", negatives=2)
        self.at = at


def test_a_resumed_ranking_run_draws_the_same_negatives(tiny: Ratings, tmp_path: Path) -> None:
    """The negative sampler's generator is checkpointed: resuming is bit-identical."""
    config = TrainConfig(epochs=3, batch_size=64, learning_rate=0.02, seed=2, loss="bpr",
                         negatives=2, checkpoint_every=4)
    whole = fit(MF4, tiny, config)
    with pytest.raises(Crash):
        fit(MF4, tiny, config, checkpoint_dir=tmp_path,
            objective=CrashingRanking(at=30))
    resumed = fit(MF4, tiny, config, checkpoint_dir=tmp_path,
                  resume=True)
    for key, value in _weights(whole.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def _timeless(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_resume_refuses_another_model_data_or_config(tiny: Ratings, tmp_path: Path) -> None:
    config = TrainConfig(epochs=1, batch_size=200, seed=0)
    fit(MF3, tiny, config, checkpoint_dir=tmp_path)
    with pytest.raises(ArtifactError, match="different model"):
        fit(MF4, tiny, config, checkpoint_dir=tmp_path, resume=True)
    fewer = Ratings(tiny.user[:-5], tiny.item[:-5], tiny.rating[:-5], tiny.users, tiny.items,
                    scale=tiny.scale)
    with pytest.raises(ArtifactError, match="different fingerprint"):
        fit(MF3, fewer, config, checkpoint_dir=tmp_path, resume=True)
    state = tmp_path / (tmp_path / "LATEST").read_text().strip() / "state.json"
    facts = json.loads(state.read_text())
    state.write_text(json.dumps({**facts, "world_size": 2}))
    with pytest.raises(ArtifactError, match="different world size.*\n  hint: run with 2"):
        fit(MF3, tiny, config, checkpoint_dir=tmp_path, resume=True)


def test_resume_of_a_finished_run_returns_its_weights(tiny: Ratings, tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, batch_size=200, seed=0)
    first = fit(MF3, tiny, config, checkpoint_dir=tmp_path)
    again = fit(MF3, tiny, config, checkpoint_dir=tmp_path,
                resume=True)
    assert torch.equal(first.model.user_embedding.weight, again.model.user_embedding.weight)
    assert _timeless(again.history) == _timeless(first.history)


def test_checkpoints_go_beside_the_folder_out_names(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out .`` (and ``a/..``) once crashed with "PosixPath('.') has an empty name"."""
    from embrec.writers import checkpoint_dir

    monkeypatch.chdir(tmp_path)
    assert checkpoint_dir("model") == Path("model.checkpoints")
    assert checkpoint_dir(".") == tmp_path.with_name(tmp_path.name + ".checkpoints")
    assert checkpoint_dir("a/..") == checkpoint_dir(".")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # beside the model, which save expands
    assert checkpoint_dir("~/m") == tmp_path / "home" / "m.checkpoints"
    assert checkpoint_dir("") is None  # as embrec train takes --out "": no --out
    with pytest.raises(ConfigError, match="names no folder"):
        checkpoint_dir("/")


def test_a_checkpoint_folder_under_a_file_is_refused_before_training(tiny: Ratings,
                                                                     tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(ArtifactError, match="afile is a file"):  # not NotADirectoryError later
        fit(MF3, tiny, TrainConfig(epochs=1, seed=0),
            checkpoint_dir=tmp_path / "afile" / "run")
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("name", ["state.safetensors", "rank-0.safetensors"])
def test_a_corrupted_checkpoint_is_an_artifact_error(tiny: Ratings, tmp_path: Path,
                                                     name: str) -> None:
    """A damaged file once raised safetensors' own error (a traceback from embrec train)."""
    config = TrainConfig(epochs=1, seed=0)
    fit(MF3, tiny, config, checkpoint_dir=tmp_path)
    file = tmp_path / (tmp_path / "LATEST").read_text().strip() / name
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="does not match the hash"):
        fit(MF3, tiny, config, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize(("edit", "missing"), [
    (lambda facts: {k: v for k, v in facts.items() if k != "masks"}, "lacks 'masks'"),
    (lambda facts: {k: v for k, v in facts.items() if k != "history"}, "lacks 'history'"),
    (lambda facts: list(facts), "is not a JSON object"),
])
def test_a_state_file_missing_what_a_resume_reads_is_an_artifact_error(
        tiny: Ratings, tmp_path: Path, edit: Any, missing: str) -> None:
    config = TrainConfig(epochs=1, seed=0)
    fit(MF3, tiny, config, checkpoint_dir=tmp_path)
    state = tmp_path / (tmp_path / "LATEST").read_text().strip() / "state.json"
    state.write_text(json.dumps(edit(json.loads(state.read_text()))))
    with pytest.raises(ArtifactError, match=missing):
        fit(MF3, tiny, config, checkpoint_dir=tmp_path, resume=True)


def test_resume_needs_an_output_directory() -> None:
    assert main(["train", "--data", "synthetic", "--resume", "--quiet"]) == 2
    with pytest.raises(ConfigError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=0)
