"""The HTTP app over an in-memory recommender: every endpoint's answer and every error status."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from embrec.errors import ConfigError
from embrec.serving import create_app


def _assert_error(response: Any, status: int, error: str, contains: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    assert contains in body["detail"]


# ----------------------------------------------------------------------------- happy paths
def test_health_and_model(client: TestClient, rec: Any) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": rec.model_name}
    info = client.get("/model").json()
    assert info["model"] == rec.model_name
    assert (info["n_users"], info["n_items"]) == (rec.n_users, rec.n_items)
    assert info["fingerprint"] == rec.metadata["fingerprint"]
    assert info["data"] == rec.metadata["data"]
    assert info["metrics"] == {"test": {"rmse": 0.9}}
    assert info["config"] == rec.model_config.to_dict()


def test_recommendations_exclude_seen_items(client: TestClient, rec: Any) -> None:
    user = int(rec.users.ids[0])
    body = client.get(f"/users/{user}/recommendations", params={"n": 5}).json()
    assert body["user"] == user
    items = [row["item"] for row in body["items"]]
    assert len(items) == 5
    assert not set(items) & seen_items(rec, user)
    expected = rec.recommend(user, n=5)
    assert items == expected["item"].tolist()
    scores = [row["score"] for row in body["items"]]
    np.testing.assert_allclose(scores, expected["score"], rtol=1e-6)
    assert all(isinstance(row["title"], str) for row in body["items"])


def test_recommendations_can_include_seen_items(client: TestClient, rec: Any) -> None:
    user = int(rec.users.ids[0])
    params = {"n": rec.n_items, "exclude_seen": "false"}
    body = client.get(f"/users/{user}/recommendations", params=params).json()
    assert seen_items(rec, user) <= {row["item"] for row in body["items"]}


def test_short_list_when_few_items_are_unseen(client: TestClient, rec: Any) -> None:
    user = int(rec.users.ids[0])
    body = client.get(f"/users/{user}/recommendations", params={"n": rec.n_items}).json()
    assert len(body["items"]) == rec.n_items - len(seen_items(rec, user))
    assert all(isinstance(row["score"], float) for row in body["items"])


def test_titles_are_null_without_item_info(rec: Any) -> None:
    rec.item_info = None
    with TestClient(create_app(rec)) as client:
        body = client.get(f"/users/{rec.users.ids[0]}/recommendations?n=2").json()
        assert [row["title"] for row in body["items"]] == [None, None]
        body = client.get(f"/items/{rec.items.ids[0]}/similar?n=2").json()
        assert [row["title"] for row in body["items"]] == [None, None]


def test_similar_items_exclude_the_item(client: TestClient, rec: Any) -> None:
    item = int(rec.items.ids[3])
    body = client.get(f"/items/{item}/similar", params={"n": 4}).json()
    assert body["item"] == item
    neighbours = [row["item"] for row in body["items"]]
    assert len(neighbours) == 4 and item not in neighbours
    assert neighbours == rec.similar_items(item, n=4)["item"].tolist()


def test_predict_matches_the_recommender(client: TestClient, rec: Any) -> None:
    users, items = rec.users.ids[[0, 1, 2, 0]], rec.items.ids[[0, 5, 9, 3]]
    pairs = [{"user": int(u), "item": int(i)} for u, i in zip(users, items, strict=True)]
    pairs[1] = {"user": str(users[1]), "item": str(items[1])}  # ids as text are coerced
    body = client.post("/predict", json={"pairs": pairs}).json()
    ratings = [p["rating"] for p in body["predictions"]]
    np.testing.assert_allclose(ratings, rec.predict(users, items), rtol=1e-6)
    assert [p["user"] for p in body["predictions"]] == [p["user"] for p in pairs]


def test_predict_with_unknown_fallback(client: TestClient, rec: Any) -> None:
    pairs = [{"user": 987654, "item": int(rec.items.ids[0])}]
    body = client.post("/predict", json={"pairs": pairs, "on_unknown": "nan"}).json()
    assert body["predictions"][0]["rating"] is None
    assert client.post("/predict", json={"pairs": []}).json() == {"predictions": []}


def test_fold_in_recommendations(client: TestClient, rec: Any) -> None:
    rated = [int(i) for i in rec.items.ids[:3]]
    payload = {"ratings": {str(i): 5.0 for i in rated}, "n": 4}
    body = client.post("/recommendations", json=payload).json()
    assert body["user"] is None
    items = [row["item"] for row in body["items"]]
    assert len(items) == 4 and not set(items) & set(rated)
    expected = rec.recommend_for_ratings(dict.fromkeys(rated, 5.0), n=4)
    assert items == expected["item"].tolist()


def test_fold_in_can_ignore_unknown_items(client: TestClient, rec: Any) -> None:
    payload = {"ratings": {"not-an-item": 1.0, str(rec.items.ids[0]): 4.0},
               "on_unknown": "ignore", "n": 3}
    response = client.post("/recommendations", json=payload)
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 3


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/health", "/model", "/users/{user_id}/recommendations", "/items/{item_id}/similar",
            "/predict", "/recommendations"} <= set(spec["paths"])


# ----------------------------------------------------------------------------- errors
def test_unknown_user_is_404(client: TestClient) -> None:
    response = client.get("/users/987654/recommendations")
    _assert_error(response, 404, "UnknownIdError", "987654")
    assert "hint:" in response.json()["detail"]


def test_unknown_item_is_404(client: TestClient, rec: Any) -> None:
    _assert_error(client.get("/items/not-an-item/similar"), 404, "UnknownIdError", "not-an-item")
    pairs = [{"user": int(rec.users.ids[0]), "item": 987654}]
    _assert_error(client.post("/predict", json={"pairs": pairs}), 404, "UnknownIdError", "987654")
    payload = {"ratings": {"987654": 4.0}}
    _assert_error(client.post("/recommendations", json=payload), 404, "UnknownIdError", "987654")


@pytest.mark.parametrize("n", ["0", "-3", "ten", "2.5"])
def test_bad_n_is_422(client: TestClient, rec: Any, n: str) -> None:
    response = client.get(f"/users/{rec.users.ids[0]}/recommendations", params={"n": n})
    _assert_error(response, 422, "RequestValidationError", "query.n")


@pytest.mark.parametrize("body", [
    b"{not json", b'{"pairs": [{"user": 1}]}', b'{"pairs": "x"}', b'{"pairz": []}', b"[]",
])
def test_malformed_predict_body_is_422(client: TestClient, body: bytes) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    _assert_error(response, 422, "RequestValidationError", "body")


def test_malformed_fold_in_body_is_422(client: TestClient) -> None:
    for payload in ({"ratings": {}}, {"ratings": {"10": "five"}}, {"ratings": {"10": 4}, "n": 0}):
        _assert_error(client.post("/recommendations", json=payload), 422, "RequestValidationError")


def test_requests_over_a_stated_limit_are_422(client: TestClient, rec: Any) -> None:
    user, item = int(rec.users.ids[0]), int(rec.items.ids[0])
    too_large = "RequestTooLargeError"
    _assert_error(client.get(f"/users/{user}/recommendations?n=51"), 422, too_large, "n=51")
    _assert_error(client.get(f"/items/{item}/similar?n=1000"), 422, too_large, "n=1000")
    pairs = [{"user": user, "item": item}] * 101
    _assert_error(client.post("/predict", json={"pairs": pairs}), 422, too_large, "pairs=101")
    payload = {"ratings": {str(item): 4.0}, "n": 51}
    _assert_error(client.post("/recommendations", json=payload), 422, too_large, "n=51")


def test_unknown_route_and_method_keep_the_body_shape(client: TestClient) -> None:
    _assert_error(client.get("/nowhere"), 404, "NotFound")
    _assert_error(client.get("/predict"), 405, "MethodNotAllowed")


def test_bug_is_500_with_the_body_shape(rec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(rec, "similar_items", broken)
    with TestClient(create_app(rec), raise_server_exceptions=False) as client:
        item = rec.items.ids[0]
        response = client.get(f"/items/{item}/similar")
        _assert_error(response, 500, "InternalServerError", "server log")
        assert "boom" not in response.text and "RuntimeError" not in response.text


def test_limits_must_be_positive(rec: Any) -> None:
    with pytest.raises(ConfigError, match="max_n"):
        create_app(rec, max_n=0)


def seen_items(rec: Any, user: int) -> set[int]:
    """Raw ids of the items ``user`` rated in training."""
    row = rec.seen[int(rec.users.index(user)[0])]
    return {int(i) for i in rec.items.id_of(row.indices)}
