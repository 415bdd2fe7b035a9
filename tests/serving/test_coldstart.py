"""``POST /recommendations`` with ``features``: a new user known only by side features."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

import embrec
from embrec.models import BayesianFMConfig
from embrec.serving import create_app
from tests.synthetic_files import group_tastes


@pytest.fixture(scope="module")
def cold() -> Any:
    """Users whose group decides their taste; ages are noise."""
    train = group_tastes(80, 30, ages=True)
    return embrec.fit(BayesianFMConfig(embedding_dim=3, sweeps=20, burn_in=5), train)


@pytest.fixture(scope="module")
def api(cold: Any) -> TestClient:
    return TestClient(create_app(cold, max_n=20))


def _items(api: TestClient, features: dict[str, Any], n: int = 5) -> list[Any]:
    answer = api.post("/recommendations", json={"features": features, "n": n})
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] is None
    return [row["item"] for row in answer.json()["items"]]


def test_features_recommend_as_the_library_does(api: TestClient, cold: Any) -> None:
    top_a, top_b = _items(api, {"group": "a", "age": 30}), _items(api, {"group": "b"})
    assert top_a == cold.recommend_for_features({"group": "a", "age": 30}, n=5)["item"].tolist()
    assert set(top_a).isdisjoint(top_b)  # the group decides the taste
    assert len(_items(api, {"group": None}, n=3)) == 3  # null: missing, as a left-out column


@pytest.mark.parametrize(("features", "status", "error", "says"), [
    ({"grup": "a"}, 422, "ConfigError", "did you mean 'group'?"),
    ({"age": "thirty"}, 422, "DataError", "takes a number"),
    ({"group": 1}, 422, "DataError", "takes text"),
    ({"age": True}, 422, "RequestValidationError", "features.age"),
    ({"age": [30]}, 422, "RequestValidationError", "features.age"),
    ({}, 422, "RequestValidationError", "at least 1 item"),
])
def test_bad_features_are_422_with_what_to_send(api: TestClient, features: dict[str, Any],
                                               status: int, error: str, says: str) -> None:
    answer = api.post("/recommendations", json={"features": features})
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    assert says in answer.json()["detail"]


def test_ratings_and_features_together_or_neither_are_refused(api: TestClient, cold: Any
                                                              ) -> None:
    item = int(cold.items.ids[0])
    for body in ({"ratings": {str(item): 4.0}, "features": {"group": "a"}}, {"n": 3}):
        answer = api.post("/recommendations", json=body)
        assert answer.status_code == 422 and "one of the two" in answer.json()["detail"]


def test_a_model_without_features_says_so(client: TestClient) -> None:
    answer = client.post("/recommendations", json={"features": {"age": 30}})
    assert (answer.status_code, answer.json()["error"]) == (422, "ConfigError")
    assert "no user features" in answer.json()["detail"]
    assert "hint: train 'bayesian-fm'" in answer.json()["detail"]


def test_the_schema_states_the_feature_columns(api: TestClient, client: TestClient) -> None:
    body = api.get("/openapi.json").json()["components"]["schemas"]["FoldInRequest"]
    columns = body["properties"]["features"]["properties"]
    assert columns == {"group": {"type": ["string", "null"], "maxLength": 256},
                       "age": {"type": ["number", "null"]}}
    plain = client.get("/openapi.json").json()["components"]["schemas"]["FoldInRequest"]
    assert "features" not in plain["properties"] and plain["required"] == ["ratings"]


@pytest.fixture(scope="module")
def cold_schema(cold: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(cold, max_n=20))


schema = schemathesis.pytest.from_fixture("cold_schema")


@schema.include(path="/recommendations").parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error_with_features(case: Any) -> None:
    case.call_and_validate()
