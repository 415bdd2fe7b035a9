"""The checkpoint folder is embrec's own: marked when written, and a foreign folder is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from embrec.errors import ArtifactError
from embrec.training.checkpoint import MARKER, Checkpoints

IDENTITY = {"fingerprint": "f", "model": {}, "train": {}, "world_size": 1}


def _save(folder: Path, steps: int) -> Path:
    return Checkpoints(folder, IDENTITY).save({"w": torch.ones(2)}, {"p": torch.zeros(1)},
                                              {"steps": steps, "seed": 0})


def test_a_new_folder_is_marked_and_old_checkpoints_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "run.checkpoints"
    _save(folder, 1)
    assert (folder / MARKER).is_file()
    _save(folder, 2)
    assert sorted(p.name for p in folder.iterdir()) == ["LATEST", MARKER, "step-000000002"]


def test_a_foreign_folder_is_refused_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    (folder / "step-000000001").mkdir(parents=True)
    (folder / "step-000000001" / "notes.txt").write_text("keep")
    (folder / "thesis.tex").write_text("keep")
    with pytest.raises(ArtifactError, match="not embrec's checkpoints .thesis.tex."):
        _save(folder, 2)
    assert (folder / "step-000000001" / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in folder.iterdir()) == ["step-000000001", "thesis.tex"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="is a file"):
        _save(tmp_path / "file", 1)


def test_a_folder_written_before_the_marker_is_still_resumed(tmp_path: Path) -> None:
    folder = tmp_path / "old.checkpoints"
    _save(folder, 3)
    (folder / MARKER).unlink()  # as written before the marker existed
    assert Checkpoints(folder, IDENTITY).load() is not None
    _save(folder, 4)
    assert (folder / MARKER).is_file()


def test_a_link_to_nothing_is_refused_before_training(tmp_path: Path) -> None:
    folder = tmp_path / "run.checkpoints"
    folder.symlink_to(tmp_path / "gone")
    with pytest.raises(ArtifactError, match="is a link to nothing"):
        Checkpoints(folder, IDENTITY)


def test_another_world_size_is_named_before_the_fingerprint_it_changes(tmp_path: Path) -> None:
    # a run reading its file per rank digests each rank's rows: its fingerprint differs
    # with the world size, so the world size is what the message must name
    Checkpoints(tmp_path, {**IDENTITY, "world_size": 2}).save(
        {"w": torch.ones(2)}, {"p": torch.zeros(1)}, {"steps": 1, "seed": 0})
    with pytest.raises(ArtifactError, match="different world size.*\n  hint: run with 2"):
        Checkpoints(tmp_path, {**IDENTITY, "fingerprint": "g"}).load()


def test_only_embrecs_own_step_folders_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "run.checkpoints"
    _save(folder, 1)
    (folder / "step-notes").mkdir()
    (folder / "step-notes" / "todo.txt").write_text("keep")
    (folder / "step-1").mkdir()
    _save(folder, 2)
    assert (folder / "step-notes" / "todo.txt").read_text() == "keep"
    assert sorted(p.name for p in folder.iterdir()) == [
        "LATEST", MARKER, "step-000000002", "step-1", "step-notes"]


def test_a_step_written_again_replaces_the_earlier_copy_whole(tmp_path: Path) -> None:
    folder = tmp_path / "run.checkpoints"
    first = _save(folder, 3)
    (first / "state.json").write_text("{}")  # the copy a resumed run writes over
    again = Checkpoints(folder, IDENTITY).save({"w": torch.full((2,), 2.0)}, {"p": torch.zeros(1)},
                                               {"steps": 3, "seed": 0})
    assert again == first and sorted(p.name for p in folder.iterdir()) == [
        "LATEST", MARKER, "step-000000003"]  # no staging or old copy left
    snapshot = Checkpoints(folder, IDENTITY).load()
    assert snapshot is not None and snapshot.tensors["w"].tolist() == [2.0, 2.0]
    assert not (first / ".embrec-staging").exists()


def test_a_marker_write_killed_midway_leaves_a_folder_still_ours(tmp_path: Path) -> None:
    folder = tmp_path / "run.checkpoints"
    folder.mkdir()
    (folder / ".embrec-checkpoints.json.embrec-tmp.12345").write_text("{")
    _save(folder, 1)
    assert (folder / MARKER).is_file()
