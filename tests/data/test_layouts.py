"""read_layout(): GroupLens and goodbooks folders, as tiny files in the publishers' real formats."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from embrec.data.layouts import LAYOUTS, detect_layout, read_layout
from embrec.data.readers import read_ratings
from embrec.errors import ConfigError, DataError, DataWarning, MissingColumnError, ParseError

FLAGS_TOY_STORY = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"  # Animation, Children's, Comedy
FLAGS_GOLDENEYE = "0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0"  # Action, Adventure, Thriller


def make_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("196\t1\t3\t881250949\n186\t2\t3\t891717742\n"
                                   "22\t1\t1\t878887116\n")
    (folder / "u.item").write_bytes(
        (f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
         f"{FLAGS_TOY_STORY}\n"
         f"2|Cité des enfants perdus, La (1995)|01-Jan-1995|||{FLAGS_GOLDENEYE}\n"
         ).encode("latin-1"))
    (folder / "u.user").write_text("22|25|M|writer|40206\n186|39|F|executive|00000\n"
                                   "196|49|M|writer|55105\n")
    return folder


def make_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n"
                                        "2::1193::4::978298413\n")
    (folder / "movies.dat").write_bytes(
        ("661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
         "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
         "3::Misérables, Les (1995)::Drama|Musical\n").encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return folder


def make_ml_latest(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
                                        "1,3,0.5,964981247\n2,1,2.5,964982224\n")
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n'
        '3,"American President, The (1995)",Comedy|Drama|Romance\n'
        '4,1984 (1956),(no genres listed)\n')
    return folder


def make_goodbooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("user_id,book_id,rating\n1,258,5\n2,4081,4\n2,258,5\n")
    (folder / "books.csv").write_text(
        "book_id,goodreads_book_id,best_book_id,work_id,books_count,isbn,isbn13,authors,"
        "original_publication_year,original_title,title,language_code,average_rating\n"
        "258,1232,1232,3209783,279,143039954,9.78014303995e+12,"
        '"Carlos Ruiz Zafón, Lucia Graves",2001.0,La sombra del viento,'
        '"The Shadow of the Wind (The Cemetery of Forgotten Books,  #1)",eng,4.24\n'
        "4081,7235533,7235533,8134945,25,076532635X,9.78076532636e+12,Brandon Sanderson,"
        "2010.0,The Way of Kings,1984,en-US,4.64\n")
    return folder


def test_ml100k_ratings_titles_genres_and_users(tmp_path: Path) -> None:
    ratings = read_layout(make_ml100k(tmp_path / "ml-100k"))
    assert ratings.source == "ml-100k" and ratings.scale == (1.0, 5.0)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (3, 3, 2)
    assert ratings.timestamp is not None and 881250949 in ratings.timestamp.tolist()
    titles = ratings.item_titles
    assert titles is not None
    assert titles.loc[1] == "Toy Story (1995)"
    assert titles.loc[2] == "Cité des enfants perdus, La (1995)"  # latin-1 decoded
    assert ratings.item_info is not None
    assert ratings.item_info.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert ratings.item_info.loc[2, "genres"] == "Action|Adventure|Thriller"
    assert ratings.user_info is not None
    assert ratings.user_info.loc[186].tolist() == [39, "F", "executive", "00000"]


def test_ml1m_double_colon_files(tmp_path: Path) -> None:
    ratings = read_layout(make_ml1m(tmp_path / "ml-1m"))
    assert ratings.source == "ml-1m" and ratings.scale == (1.0, 5.0)
    assert sorted(zip(ratings.to_pandas()["user"], ratings.to_pandas()["item"], strict=True)) \
        == [(1, 661), (1, 1193), (2, 1193)]
    assert ratings.item_info is not None
    assert ratings.item_info.loc[1193, "title"] == "One Flew Over the Cuckoo's Nest (1975)"
    assert ratings.item_info.loc[3, "title"] == "Misérables, Les (1995)"
    assert ratings.item_info.loc[661, "genres"] == "Animation|Children's|Musical"
    assert ratings.user_info is not None and ratings.user_info.loc[2, "zip_code"] == "70072"


@pytest.mark.parametrize("name", ["ml-latest-small", "ml-25m", "ml-32m"])
def test_movielens_csv_layouts_keep_half_stars_and_quoted_titles(tmp_path: Path,
                                                                 name: str) -> None:
    ratings = read_layout(make_ml_latest(tmp_path / name))
    assert ratings.source == name and ratings.scale == (0.5, 5.0)
    assert sorted(ratings.rating.tolist()) == [0.5, 2.5, 4.0]
    titles = ratings.item_titles
    assert titles is not None
    assert titles.loc[3] == "American President, The (1995)"
    assert titles.loc[4] == "1984 (1956)"
    assert ratings.item_info is not None
    assert ratings.item_info.loc[4, "genres"] == "(no genres listed)"


def test_goodbooks_uses_book_id_and_title(tmp_path: Path) -> None:
    ratings = read_layout(make_goodbooks(tmp_path / "books"))
    assert ratings.source == "goodbooks-10k" and ratings.scale == (1.0, 5.0)
    assert ratings.timestamp is None and len(ratings) == 3
    assert ratings.item_info is not None
    assert ratings.item_info.loc[258, "title"].startswith("The Shadow of the Wind")
    assert ratings.item_info.loc[258, "authors"] == "Carlos Ruiz Zafón, Lucia Graves"
    assert ratings.item_info.loc[4081, "title"] == "1984"  # a number-like title stays text


def test_detection_by_folder_name_then_by_files(tmp_path: Path) -> None:
    assert detect_layout(make_ml_latest(tmp_path / "ml-25m")) == "ml-25m"
    assert detect_layout(make_ml_latest(tmp_path / "movies")) == "ml-latest"
    assert detect_layout(make_ml100k(tmp_path / "data")) == "ml-100k"
    assert detect_layout(make_ml1m(tmp_path / "one")) == "ml-1m"
    assert detect_layout(make_goodbooks(tmp_path / "gb")) == "goodbooks-10k"


def test_read_ratings_delegates_folders(tmp_path: Path) -> None:
    folder = make_ml100k(tmp_path / "anything")
    assert read_ratings(folder).source == "ml-100k"
    assert read_ratings(folder, format="ml-100k").item_titles is not None
    with pytest.raises(ConfigError, match="does not apply to a folder"):
        read_ratings(folder, rating="stars")


def test_unknown_folder_and_layout(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"not a known data set layout; found \['notes.txt'\]"
                       ) as info:
        read_layout(tmp_path)
    assert "ml-100k" in str(info.value)
    with pytest.raises(ConfigError, match="layout"):
        read_layout(make_ml100k(tmp_path / "ml"), "ml-7k")
    with pytest.raises(DataError, match="no such folder"):
        read_layout(tmp_path / "absent")
    with pytest.raises(DataError, match="no u.data"):
        read_layout(tmp_path, "ml-100k")


def test_missing_metadata_file_leaves_info_empty(tmp_path: Path) -> None:
    folder = make_ml100k(tmp_path / "ml-100k")
    (folder / "u.item").unlink()
    ratings = read_layout(folder)
    assert ratings.item_info is None and ratings.user_info is not None and len(ratings) == 3


def test_rating_outside_the_layout_scale(tmp_path: Path) -> None:
    folder = make_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text("196\t1\t3\t881250949\n186\t2\t6\t891717742\n")
    with pytest.raises(ParseError, match=r"u.data:2: column 2 \(rating\): 6 is outside the "
                                         r"scale \[1, 5\]"):
        read_layout(folder)


def test_wrong_header_for_the_layout(tmp_path: Path) -> None:
    folder = make_ml_latest(tmp_path / "ml-latest-small")
    (folder / "ratings.csv").write_text("user,movie,rating\n1,2,3\n")
    with pytest.raises(MissingColumnError, match="no column 'userId'"):
        read_layout(folder)


def test_bad_metadata_line_strict_and_lenient(tmp_path: Path) -> None:
    folder = make_ml1m(tmp_path / "ml-1m")
    with (folder / "movies.dat").open("ab") as handle:
        handle.write(b"9::Broken line without genres\n")
    with pytest.raises(ParseError, match=r"movies.dat:4: expected 3 fields, found 2"):
        read_layout(folder)
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::9::978302109\n")
    with pytest.warns(DataWarning) as record:
        ratings = read_layout(folder, on_bad_lines="skip")
    assert len(record) == 1  # one warning for the whole folder
    message = str(record[0].message)
    assert "ratings.dat: skipped 1 bad line: line 2:" in message
    assert "movies.dat: skipped 1 bad line: line 4: expected 3 fields" in message
    assert len(ratings) == 1


def test_layouts_table_describes_each_publisher() -> None:
    assert LAYOUTS["ml-100k"].scale == (1.0, 5.0) and LAYOUTS["ml-1m"].sep == "::"
    assert LAYOUTS["ml-25m"].scale == (0.5, 5.0) and LAYOUTS["ml-32m"].ratings == "ratings.csv"
    assert LAYOUTS["goodbooks-10k"].columns[1] == "book_id"
    with pytest.raises(dataclasses.FrozenInstanceError):
        LAYOUTS["ml-100k"].scale = (0.0, 1.0)  # type: ignore[misc]


def test_real_ml100k(ml100k_dir: Path) -> None:
    ratings = read_layout(ml100k_dir, "ml-100k")
    assert (len(ratings), ratings.n_users, ratings.n_items) == (100_000, 943, 1_682)
    assert ratings.scale == (1.0, 5.0) and ratings.source == "ml-100k"
    titles = ratings.item_titles
    assert titles is not None and titles.loc[1] == "Toy Story (1995)"
    assert ratings.item_info is not None
    assert ratings.item_info.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert ratings.user_info is not None and len(ratings.user_info) == 943
