"""`embrec train --user-features/--item-features` with the Gibbs-sampled model, and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from embrec import load
from embrec.cli import main


@pytest.fixture()
def feature_files(ratings_csv: Path, tmp_path: Path) -> tuple[Path, Path]:
    frame = pd.read_csv(ratings_csv)
    users = pd.DataFrame({"user": sorted(frame["user"].unique())})
    users["age"] = 20 + users["user"] % 40
    users["group"] = (users["user"] % 3).map({0: "a", 1: "b", 2: "c"})
    items = pd.DataFrame({"item": sorted(frame["item"].unique())})
    items["genres"] = (items["item"] % 2).map({0: "Drama|Comedy", 1: "Horror"})
    users.to_csv(tmp_path / "users.csv", index=False)
    items.to_csv(tmp_path / "items.tsv", sep="\t", index=False)
    return tmp_path / "users.csv", tmp_path / "items.tsv"


def test_train_with_feature_files(ratings_csv: Path, feature_files: tuple[Path, Path],
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bfm.toml"
    config.write_text('[model]\nname = "bayesian-fm"\nembedding_dim = 3\nsweeps = 6\n'
                      "burn_in = 3\n")
    users, items = feature_files
    out = tmp_path / "model"
    assert main(["train", "--data", str(ratings_csv), "--config", str(config),
                 "--user-features", str(users), "--item-features", str(items),
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "bayesian-fm" and summary["test"]["rmse"] < 1.5
    rec = load(out)
    assert rec.model.feature_schema("user").names[0] == "age"
    assert rec.model.feature_schema("item").names == ["genres=Comedy", "genres=Drama",
                                                      "genres=Horror"]
    assert len(rec.recommend_for_features({"age": 30, "group": "b"}, n=3)) == 3
    assert main(["evaluate", str(out), "--json"]) == 0  # the recorded split, features read again


def test_bad_feature_file_is_a_user_error(ratings_csv: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "users.csv"
    bad.write_text("user,age\n1,20\n2,twenty\n")
    assert main(["train", "--data", str(ratings_csv), "--model", "bayesian-fm",
                 "--user-features", str(bad), "--out", str(tmp_path / "m")]) == 2
    assert "users.csv:3: column 'age': cannot parse 'twenty'" in capsys.readouterr().err
