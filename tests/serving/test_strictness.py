"""The service takes JSON types as written, refuses oversized batches before parsing them, cuts
off a body that trickles in, and reaches every trained id through its query routes."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import embrec
from embrec.errors import DataWarning
from embrec.recommender import Recommender
from embrec.serving import create_app
from embrec.serving.limits import BodyLimit, count_outside_strings
from tests.serving.conftest import tiny_recommender


@pytest.fixture(scope="module")
def api(tiny_synthetic: Any) -> Iterator[TestClient]:
    app = create_app(tiny_recommender(tiny_synthetic.ratings), max_n=50, max_batch=100)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("change", [{"ratings": {"ITEM": True}}, {"ratings": {"ITEM": "5"}},
                                    {"n": True}, {"n": "3"}, {"n": 2.5},
                                    {"exclude_seen": "no"}, {"exclude_seen": 0}])
def test_fold_in_takes_json_types_as_written(api: TestClient, tiny_synthetic: Any,
                                             change: dict[str, Any]) -> None:
    item = str(tiny_synthetic.ratings.items.ids[0])
    body = {"ratings": {item: 4.0}, **change}
    body["ratings"] = {item if k == "ITEM" else k: v for k, v in body["ratings"].items()}
    assert api.post("/recommendations", json={"ratings": {item: 4}}).status_code == 200
    response = api.post("/recommendations", json=body)
    assert response.status_code == 422, response.text


def test_entries_are_counted_outside_strings() -> None:
    body = json.dumps({"pairs": [{"user": 'a{"{\\', "item": "{"}] * 3}).encode()
    assert count_outside_strings(body, ord("{")) == 4
    assert count_outside_strings(b'{"a":"x\\\\","b":{}}', ord("{")) == 2


def _outside_strings(body: bytes, byte: int) -> int:
    """The reference: walk the bytes, tracking strings and escapes."""
    inside = escaped = False
    found = 0
    for value in body:
        if inside:
            escaped, inside = (False, True) if escaped else (value == 92, value != 34)
        else:
            inside, found = value == 34, found + (value == byte)
    return found


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.text("{}\"\\:ab", max_size=6) | st.integers(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text('{"\\:', max_size=4), inner, max_size=4)))
def test_counting_outside_strings_matches_a_byte_walk(value: Any) -> None:
    body = json.dumps(value).encode()
    for byte in b"{:":
        assert count_outside_strings(body, byte) == _outside_strings(body, byte)


def test_an_oversized_batch_is_known_early_and_its_rest_is_drained() -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append("app")

    entry = b'{"user": 1, "item": 2},'
    chunks = [b'{"pairs": [' + entry * 2000] + [entry * 2000] * 50 + [b'{"user": 1}]}']
    left = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": left.pop(0), "more_body": bool(left)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    limit = BodyLimit(app, entries={"/predict": ("pairs", ord("{"), 1, 3000)})
    asyncio.run(limit({"type": "http", "method": "POST", "path": "/predict", "headers": []},
                      receive, send))
    assert called == [] and left == [] and sent[0]["status"] == 422  # read to its end
    found = int(json.loads(sent[1]["body"])["detail"].split("=")[1].split()[0])
    assert 3000 < found <= 4000  # decided on the first two chunks, not 102,001 entries


@pytest.mark.parametrize(("path", "body"), [
    ("/predict", {"pairs": [{"user": 1, "item": 2}] * 102}),
    ("/recommendations", {"ratings": {str(k): 4.0 for k in range(105)}}),
])
def test_a_batch_over_the_entry_limit_is_refused_before_parsing(
        api: TestClient, path: str, body: dict[str, Any]) -> None:
    response = api.post(path, json=body)
    assert response.status_code == 422 and "(at least) exceeds" in response.json()["detail"]
    fine = {"pairs": [{"user": "{" * 50, "item": "{"}] * 3}  # braces inside ids do not count
    assert api.post("/predict", json={**fine, "on_unknown": "nan"}).status_code == 200


def test_a_body_that_trickles_in_is_cut_off_at_the_deadline() -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append("app")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)  # each byte well within the per-chunk timeout
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    limit = BodyLimit(app, read_timeout=1.0, body_timeout=0.3)
    started = time.monotonic()
    asyncio.run(limit({"type": "http", "headers": []}, receive, send))
    assert called == [] and sent[0]["status"] == 408 and time.monotonic() - started < 2
    assert b"did not arrive within" in sent[1]["body"]


@pytest.fixture(scope="module")
def odd_ids() -> tuple[Recommender, str, str]:
    slash, long = "team/alice", "u" * 300
    frame = pd.DataFrame({"user": [slash, long, "bob", slash, long, "bob"],
                          "item": ["a/1", "b", "c", "b", "c", "a/1"],
                          "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 4.0]})
    with pytest.warns(DataWarning, match="routes cannot carry them"):
        ratings = embrec.read_ratings(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tiny_recommender(ratings), slash, long


def test_ids_the_path_routes_cannot_carry_are_reached_by_query(
        odd_ids: tuple[Recommender, str, str]) -> None:
    rec, slash, long = odd_ids
    with TestClient(create_app(rec), raise_server_exceptions=False) as client:
        for user in (slash, long):
            response = client.get("/recommend", params={"user": user, "n": 2})
            assert response.status_code == 200 and response.json()["user"] == user
        response = client.get("/similar", params={"item": "a/1", "n": 1})
        assert response.status_code == 200 and response.json()["item"] == "a/1"
        assert client.get("/recommend", params={"user": "nobody"}).status_code == 404
