"""The service never answers 500 to bad input, bounds what a request may hold, and leaks nothing.

Hand-written cases for every 500 and denial of service found in issue 10, then
schemathesis against the app's own OpenAPI schema, in process (ASGI).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient

from embrec.errors import ArtifactError
from embrec.recommender import Recommender
from embrec.serving import create_app
from embrec.serving.limits import BodyLimit
from tests.serving.conftest import tiny_recommender


@pytest.fixture(scope="module")
def module_rec(tiny_synthetic: Any) -> Recommender:
    rec = tiny_recommender(tiny_synthetic.ratings)
    rec.metadata["data"] = "/home/alice/secret/project/ratings.csv"
    return rec


@pytest.fixture(scope="module")
def api(module_rec: Recommender) -> Iterator[TestClient]:
    app = create_app(module_rec, max_n=50, max_batch=100, max_body_bytes=64 * 1024)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}
    assert "Traceback" not in body["detail"] and "site-packages" not in body["detail"]
    return body


def test_a_5000_digit_path_id_is_422(api: TestClient) -> None:
    _error(api.get("/users/" + "9" * 5000 + "/recommendations"), 422)
    _error(api.get("/items/" + "9" * 5000 + "/similar"), 422)


def test_a_404_does_not_echo_a_long_id(api: TestClient) -> None:
    body = _error(api.get("/users/" + "x" * 256 + "/recommendations"), 404)
    assert len(body["detail"]) < 1200


@pytest.mark.parametrize("value", ["9" * 400, "-" + "9" * 30, "1" + "0" * 19, "2" * 19])
def test_a_huge_json_integer_id_is_an_unknown_id(api: TestClient, value: str) -> None:
    raw = '{"pairs": [{"user": ' + value + ', "item": 1}]}'
    response = api.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert len(_error(response, 404)["detail"]) < 1200
    for policy in ("nan", "mean"):
        raw = '{"on_unknown": "' + policy + '", "pairs": [{"user": ' + value + ', "item": 1}]}'
        response = api.post("/predict", content=raw,
                            headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text


def test_a_json_integer_past_pythons_digit_limit_is_400_or_422(api: TestClient) -> None:
    raw = '{"pairs": [{"user": ' + "9" * 5000 + ', "item": 1}]}'
    response = api.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    _error(response, response.status_code)


@pytest.mark.parametrize("rating", ["1e200", "1e308", "-1e308", "NaN", "Infinity", "-Infinity",
                                    "1000", "-1000", "1e30", "0"])
def test_fold_in_ratings_that_are_not_finite_or_off_the_scale_are_422(
        api: TestClient, module_rec: Recommender, rating: str) -> None:
    item = module_rec.items.ids[0]
    raw = '{"ratings": {"' + str(item) + '": ' + rating + "}}"
    response = api.post("/recommendations", content=raw,
                        headers={"content-type": "application/json"})
    _error(response, 422)


def test_the_model_route_shows_no_server_path(api: TestClient) -> None:
    info = api.get("/model").json()
    assert info["data"] == "ratings.csv"
    assert "/home/alice" not in json.dumps(info)


def test_a_model_with_nan_weights_is_refused(module_rec: Recommender) -> None:
    import copy

    broken = copy.deepcopy(module_rec)
    with torch.no_grad():
        next(broken.model.parameters()).fill_(float("nan"))
    with pytest.raises(ArtifactError, match="NaN"):
        create_app(broken)


def test_a_body_over_the_limit_is_refused_by_content_length(api: TestClient) -> None:
    body = b'{"pairs": [' + b'{"user": 1, "item": 1},' * 5000 + b"]}"
    body = _error(api.post("/predict", content=body,
                           headers={"content-type": "application/json"}), 413)
    assert "65536 bytes" in body["detail"]


def test_a_streamed_body_is_refused_as_it_passes_the_limit(api: TestClient) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(10_000):  # 10 MB if all were read
            sent += 1
            yield b" " * 1024

    response = api.post("/predict", content=chunks(),
                        headers={"content-type": "application/json"})
    _error(response, 413)


def test_the_middleware_never_parses_what_it_refuses() -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append("app")

    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 3

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(BodyLimit(app, max_bytes=1000)({"type": "http", "headers": []}, receive, send))
    assert called == [] and sent[0]["status"] == 413 and len(chunks) == 1  # stopped at 1,200


def test_every_error_status_is_documented(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    for path in schema["paths"].values():
        for operation in path.values():
            assert {"400", "404", "408", "413", "422", "500"} <= set(operation["responses"])
    recommend = schema["paths"]["/users/{user_id}/recommendations"]["get"]
    n = next(p for p in recommend["parameters"] if p["name"] == "n")
    assert n["schema"]["maximum"] == 50
    models = schema["components"]["schemas"]
    assert models["PredictRequest"]["properties"]["pairs"]["maxItems"] == 100
    assert models["FoldInRequest"]["properties"]["ratings"]["maxProperties"] == 100
    assert "65536 bytes" in schema["info"]["description"]


@pytest.fixture(scope="module")
def api_schema(module_rec: Recommender) -> Any:
    app = create_app(module_rec, max_n=50, max_batch=100)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error_and_no_schema_violation(case: Any) -> None:
    case.call_and_validate()


def test_serve_on_a_port_in_use_is_a_clear_error_exit_2(
        tmp_path: Any, module_rec: Recommender, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from embrec.cli import main

    folder = module_rec.save(tmp_path / "model")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(folder), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: port=") and "already in use" in err and "hint:" in err


def test_uvicorn_is_started_with_timeouts_and_bounds() -> None:
    from embrec.serving.limits import TimedH11Protocol, server_options

    options = server_options()
    assert options["http"] is TimedH11Protocol and options["timeout_keep_alive"] <= 10
    assert options["h11_max_incomplete_event_size"] <= 64 * 1024
    assert options["limit_concurrency"] >= 1


def test_half_sent_headers_are_closed_but_keep_alive_is_not(module_rec: Recommender) -> None:
    import http.client
    import socket
    import threading
    import time

    import uvicorn

    from embrec.serving.limits import TimedH11Protocol

    class Quick(TimedH11Protocol):
        header_timeout = 0.5

    server = uvicorn.Server(uvicorn.Config(create_app(module_rec), host="127.0.0.1", port=0,
                                           http=Quick, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        keep = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(8):  # one connection, spanning several header timeouts
            keep.request("GET", "/health")
            assert keep.getresponse().read()
            time.sleep(0.15)
        slow.settimeout(5)
        assert slow.recv(1) == b""  # closed by the server
        slow.close()
        keep.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_an_id_matches_only_an_equal_id_over_http(api: TestClient,
                                                  module_rec: Recommender) -> None:
    user, item = int(module_rec.users.ids[0]), int(module_rec.items.ids[0])
    for spelling in (f"{user}.00000000000001", f"{user}.0", f"0{user}", f"{user}e0"):
        response = api.post("/predict", json={"pairs": [{"user": spelling, "item": item}]})
        _error(response, 404)
        _error(api.get(f"/users/{spelling}/recommendations"), 404)
    assert api.post("/predict", json={"pairs": [{"user": str(user), "item": item}]}).is_success


@pytest.mark.parametrize("user", ["true", "1.0", "[1]", "null"])
def test_a_json_id_that_is_not_an_integer_or_text_is_422(api: TestClient, user: str) -> None:
    raw = '{"pairs": [{"user": ' + user + ', "item": 1}]}'
    _error(api.post("/predict", content=raw, headers={"content-type": "application/json"}), 422)
