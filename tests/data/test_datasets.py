"""The data set registry, the cache layout, load_dataset, list_datasets and dataset_info.

Nothing here touches the network: ``urlopen`` is replaced by a function that fails
the test, so any download attempt would show up.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from embrec.data import download as download_module
from embrec.data.datasets import (
    DATASETS,
    data_home,
    dataset_dir,
    dataset_info,
    is_cached,
    list_datasets,
    load_dataset,
)
from embrec.errors import DataError, DownloadError

NAMES = {"ml-100k", "ml-1m", "ml-latest-small", "ml-25m", "ml-32m", "goodbooks-10k", "synthetic"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any network access in this module fail loudly."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to use the network")

    monkeypatch.setattr(download_module, "urlopen", no_network)


def test_registry_pins_every_known_data_set() -> None:
    assert set(DATASETS) == NAMES
    for name, info in DATASETS.items():
        assert info.name == name and info.licence and info.citation and info.n_ratings > 0
        if name == "synthetic":
            assert info.url is None and info.files == ()
            continue
        assert info.url is not None and info.url.startswith("https://")
        assert info.url.endswith(".zip") and info.files
        assert info.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", info.sha256)
        if name.startswith("ml-"):
            assert info.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
            assert "Harper" in info.citation and "Konstan" in info.citation
            assert info.archive_folder == name == info.layout
    assert "Zając" in DATASETS["goodbooks-10k"].citation
    assert DATASETS["ml-100k"].size == 4_924_029


def test_home_comes_from_the_argument_then_the_environment_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBREC_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert data_home() == tmp_path / "user" / ".cache" / "embrec"
    monkeypatch.setenv("EMBREC_HOME", str(tmp_path / "env"))  # read at call time
    assert dataset_dir("ml-1m") == tmp_path / "env" / "datasets" / "ml-1m"
    assert data_home(tmp_path / "arg") == tmp_path / "arg"


def test_cache_is_recognised_by_its_files(tmp_path: Path) -> None:
    folder = dataset_dir("ml-1m", tmp_path)
    assert not is_cached("ml-1m", tmp_path)
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::1::5::978300760\n")
    assert not is_cached("ml-1m", tmp_path)
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Animation\n")
    assert is_cached("ml-1m", tmp_path)
    assert is_cached("synthetic", tmp_path)


def test_list_datasets_is_offline_and_reports_the_cache(tmp_path: Path) -> None:
    folder = dataset_dir("ml-latest-small", tmp_path)
    folder.mkdir(parents=True)
    for file in ("ratings.csv", "movies.csv"):
        (folder / file).write_text("")
    rows = {row["name"]: row for row in list_datasets(tmp_path)}
    assert set(rows) == NAMES
    assert rows["ml-latest-small"]["cached"] and not rows["ml-25m"]["cached"]
    assert rows["ml-25m"]["size_mb"] == 262.0 and rows["ml-25m"]["checksum"] == "sha256"
    assert rows["goodbooks-10k"]["licence"] == "CC BY-SA 4.0"
    assert rows["ml-latest-small"]["path"] == str(folder)


def test_synthetic_is_embedded_and_movielens_sized(tmp_path: Path) -> None:
    ratings = load_dataset("synthetic", home=tmp_path)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (100_000, 943, 1682)
    assert ratings.source == "synthetic"
    assert load_dataset("synthetic").fingerprint() == ratings.fingerprint()
    assert not (tmp_path / "datasets").exists()


def test_missing_data_set_without_download_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not in") as caught:
        load_dataset("ml-100k", home=tmp_path, download=False)
    message = str(caught.value)
    assert "embrec datasets fetch ml-100k" in message
    assert str(tmp_path / "datasets" / "ml-100k" / "u.data") in message


def test_unknown_name_suggests_a_known_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="did you mean 'ml-1m'"):
        load_dataset("ml-1", home=tmp_path)
    with pytest.raises(DataError, match="no/such/file.csv"):
        load_dataset("no/such/file.csv", home=tmp_path)


def test_a_folder_path_is_read_in_its_detected_layout(tmp_path: Path) -> None:
    books = tmp_path / "my-books"
    books.mkdir()
    (books / "ratings.csv").write_text("user_id,book_id,rating\n1,10,4\n2,10,5\n2,11,3\n")
    (books / "books.csv").write_text("book_id,authors,title\n10,Herbert,Dune\n11,Austen,Emma\n")
    ratings = load_dataset(books)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (3, 2, 2)
    titles = ratings.item_titles
    assert titles is not None and set(titles) == {"Dune", "Emma"}


def test_dataset_info_describes_synthetic() -> None:
    info = dataset_info("synthetic")
    assert {"ratings", "users", "items", "density", "scale"} <= set(info)
    assert info["ratings"] == 100_000 and info["scale"] == [1.0, 5.0]
    assert info["density"] == pytest.approx(100_000 / (943 * 1682))
    assert info["licence"].startswith("generated")


def test_cached_ml100k_loads_offline_with_titles(ml100k_dir: Path) -> None:
    home = ml100k_dir.parent.parent
    ratings = load_dataset("ml-100k", home=home)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (100_000, 943, 1682)
    assert ratings.scale == (1.0, 5.0)
    titles = ratings.item_titles
    assert titles is not None and titles.str.contains("Toy Story").any()
    info = dataset_info("ml-100k", home=home)
    assert (info["ratings"], info["users"], info["items"]) == (100_000, 943, 1682)
    assert "Harper" in info["citation"]


def test_a_folder_path_loads_through_its_layout(ml100k_dir: Path) -> None:
    ratings = load_dataset(str(ml100k_dir))
    assert len(ratings) == 100_000


def test_a_file_path_loads_through_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating\n1,10,4.5\n2,10,3\n2,11,5\n")
    ratings = load_dataset(str(path))
    assert len(ratings) == 3 and ratings.n_users == 2
    np.testing.assert_allclose(np.sort(ratings.rating), [3.0, 4.5, 5.0])
