"""One writer per output: a second training into the same --out is refused at once, a dead
holder's lock is taken over, and `write_own_text` never replaces a file embrec did not write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import embrec
from embrec.cli import main
from embrec.errors import ArtifactError
from embrec.writers import hold_outputs, write_own_text

SRC = str(Path(embrec.__file__).parent.parent)
HOLDER = """
import sys, time
from embrec.writers import hold_outputs
with hold_outputs(sys.argv[1], sys.argv[1] + ".checkpoints"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    from embrec.data.synthetic import generate

    path = tmp_path / "r.csv"
    generate(n_users=30, n_items=20, n_ratings=300, rank=2, seed=1).ratings.to_pandas() \
        .to_csv(path, index=False)
    return path


@pytest.mark.filterwarnings("ignore::embrec.errors.TrainingWarning")
def test_a_second_training_into_one_out_is_refused_until_the_first_is_gone(
        csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env={"PYTHONPATH": SRC},
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        train = ["train", "--data", str(csv), "--epochs", "1", "--quiet", "--allow-degenerate",
                 "--out", str(out)]
        assert main(train) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}) is already training into" in err and not out.exists()
        assert main([*train[:-1], str(tmp_path / "other")]) == 0  # another --out is free
        holder.kill()  # a crashed holder: the kernel frees its lock, its file stays
        holder.wait(timeout=30)
        assert (tmp_path / ".model.embrec-run").exists()
        assert main(train) == 0 and (out / "weights.safetensors").is_file()
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()  # type: ignore[union-attr]
    assert not (tmp_path / ".model.embrec-run").exists()


def test_one_process_cannot_hold_an_output_twice(tmp_path: Path) -> None:
    with (hold_outputs(tmp_path / "m"), pytest.raises(ArtifactError, match="already tuning"),
          hold_outputs(tmp_path / "m", what="tuning")):
        pass


def test_write_own_text_replaces_only_its_own_files(tmp_path: Path) -> None:
    path = tmp_path / "best.toml"
    write_own_text(path, "# embrec tune: one\n", "# embrec tune:")
    write_own_text(path, "# embrec tune: two\n", "# embrec tune:")
    assert path.read_text() == "# embrec tune: two\n"
    path.write_text("x = 1\n")
    with pytest.raises(ArtifactError, match="embrec did not write it"):
        write_own_text(path, "# embrec tune: three\n", "# embrec tune:")
    with pytest.raises(ArtifactError, match="not a regular file"):
        write_own_text(tmp_path, "# embrec tune: three\n", "# embrec tune:")
    assert path.read_text() == "x = 1\n"
