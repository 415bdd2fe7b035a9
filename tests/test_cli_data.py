"""Data-reading flags and the [data] table: a file with unusual columns is read, trained on and
re-read by `evaluate DIR` the same way; errors hint at flags; warnings print in embrec's style."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import embrec
from embrec.cli import main
from embrec.commands.display import format_warning
from embrec.commands.options import read_options
from embrec.errors import ConfigError, DataWarning, TrainingWarning


@pytest.fixture(scope="module")
def odd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ratings on a 0-10 scale in columns a;b;c;d with a duplicated pair, ';'-separated."""
    from embrec.data.synthetic import generate

    frame = generate(n_users=60, n_items=40, n_ratings=900, rank=3, noise=0.2, seed=5) \
        .ratings.to_pandas()
    frame = frame.rename(columns={"user": "who", "item": "what", "rating": "stars10"})
    frame["stars10"] = frame["stars10"] * 2
    frame = frame[["what", "who", "stars10"]]
    frame = frame.iloc[[*range(len(frame)), 0]]  # one repeated (user, item) pair
    path = tmp_path_factory.mktemp("odd") / "odd.txt"
    frame.to_csv(path, sep=";", index=False)
    return path


SRC = str(Path(embrec.__file__).parent.parent)
FIELDS = ("user_col", "item_col", "rating_col", "timestamp_col", "sep", "format", "duplicates",
          "on_bad_lines")
FLAGS = ["--user-col", "who", "--item-col", "0", "--rating-col", "stars10", "--sep", ";",
         "--duplicates", "last", "--scale", "0,10"]


def test_flags_read_an_odd_file_and_evaluate_rereads_it_the_same_way(
        odd_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    # seeded, and 5 epochs: after 2 the train RMSE was only 0.4% under the mean's (exit 3 above)
    assert main(["train", "--data", str(odd_file), "--model", "biased-mf", "--epochs", "5",
                 "--seed", "0", "--out", str(out), "--json", *FLAGS]) == 0
    summary = json.loads(capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert config["scale"] == [0.0, 10.0]
    assert config["metadata"]["read"] == {"user": "who", "item": 0, "rating": "stars10",
                                          "sep": ";", "duplicates": "last", "scale": [0.0, 10.0]}
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == summary["test"]["n"] == 90
    assert main(["evaluate", str(out), "--test-data", str(odd_file), "--json", *FLAGS]) == 2
    assert "810 of the 900 test ratings" in capsys.readouterr().err  # its training rows
    assert main(["evaluate", str(out), "--test-data", str(odd_file), "--json", *FLAGS,
                 "--allow-training-rows"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 900  # the whole file, read the same way


def test_the_data_table_of_a_config_file(odd_file: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nname = "biased-mf"\n[train]\nepochs = 5\nseed = 0\n[data]\n'
                    'user_col = "who"\nitem_col = 0\nrating_col = "stars10"\nsep = ";"\n'
                    'duplicates = "mean"\nscale = [0, 10]\n')
    assert main(["datasets", "info", str(odd_file), "--json", "--user-col", "who",
                 "--item-col", "what", "--rating-col", "2", "--duplicates", "mean"]) == 0
    assert json.loads(capsys.readouterr().out)["ratings"] == 900
    assert main(["train", "--data", str(odd_file), "--config", str(toml), "--quiet",
                 "--out", str(tmp_path / "m")]) == 0
    assert "test" in capsys.readouterr().out


def test_reading_errors_hint_at_flags(odd_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "info", str(odd_file), "--sep", ";", "--user-col", "who",
                 "--item-col", "what", "--rating-col", "star10"]) == 2
    err = capsys.readouterr().err
    assert "hint: did you mean --rating-col stars10?" in err and "rating=" not in err
    assert main(["datasets", "info", str(odd_file), "--sep", ";", "--user-col", "who",
                 "--item-col", "what", "--rating-col", "stars10"]) == 2
    assert "--duplicates last" in capsys.readouterr().err


def test_python_errors_keep_python_arguments(odd_file: Path) -> None:
    import embrec

    with pytest.raises(embrec.DataError, match=r"did you mean rating='stars10'\?"):
        embrec.read_ratings(odd_file, sep=";", user="who", item="what", rating="star10")


@pytest.mark.parametrize(("given", "scale"), [(["1", "5"], (1.0, 5.0)), (["1,5"], (1.0, 5.0)),
                                              ([0, 10], (0.0, 10.0)), ("0.5 5", (0.5, 5.0))])
def test_scale_spellings(given: object, scale: tuple[float, float]) -> None:
    args = argparse.Namespace(**dict.fromkeys(FIELDS), scale=given)
    assert read_options(args)["scale"] == scale


def test_bad_scale_and_unknown_data_key() -> None:
    args = argparse.Namespace(**dict.fromkeys(FIELDS), scale=["1", "2", "3"])
    with pytest.raises(ConfigError, match="--scale LOW HIGH"):
        read_options(args)
    args.scale = None
    with pytest.raises(ConfigError, match="did you mean 'user_col'"):
        read_options(args, {"usercol": "x"})


def test_warnings_format_in_embrec_style() -> None:
    text = format_warning(TrainingWarning("over-fitting: validation RMSE 1.2\n  hint: raise "
                                          "weight_decay"), TrainingWarning, "/x/fit.py", 114)
    assert text == "warning: over-fitting: validation RMSE 1.2\n  hint: raise --weight-decay\n"


def test_the_command_prints_warnings_its_way_and_restores_the_hook(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,1,4\n2,2,x\n3,1,5\n4,2,2\n")
    before = warnings.formatwarning
    with pytest.warns(DataWarning, match="skipped 1 bad line"):  # recorders still see it
        assert main(["datasets", "info", str(bad), "--on-bad-lines", "skip", "--json"]) == 0
    assert warnings.formatwarning is before
    run = subprocess.run([sys.executable, "-m", "embrec", "datasets", "info", str(bad),
                          "--on-bad-lines", "skip", "--json"], capture_output=True, text=True,
                         env={"PYTHONPATH": SRC}, check=True)
    lines = [line for line in run.stderr.splitlines() if not line.startswith("WARNING ")]
    assert lines[0].startswith("warning: ") and "skipped" in lines[0]
    assert ".py:" not in run.stderr and "DataWarning" not in run.stderr


def test_datasets_info_rounds_for_people_and_json_keeps_precision(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "info", "synthetic"]) == 0
    text = capsys.readouterr().out
    assert "p99: 495.2," in text and "density: 0.06305" in text and "000000" not in text
    assert main(["datasets", "info", "synthetic", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ratings_per_user"]["p99"] == pytest.approx(495.24, abs=1e-9)
    assert info["density"] == pytest.approx(0.06304669364224531, rel=1e-12)
