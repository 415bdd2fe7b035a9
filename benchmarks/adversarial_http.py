"""Send hand-made hostile requests to the app in process; count 5xx and bodies off the error shape.

Usage: ``PYTHONPATH=src python3 benchmarks/adversarial_http.py``; writes
``benchmarks/results/adversarial_http.json``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
warnings.filterwarnings("ignore")

from fastapi.testclient import TestClient  # noqa: E402

from embrec.data.synthetic import generate  # noqa: E402
from embrec.serving import create_app  # noqa: E402
from tests.serving.conftest import tiny_recommender  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "adversarial_http.json"
H = {"content-type": "application/json"}
CASES = [
    ("POST", "/predict", "[]"),
    ("POST", "/predict", "null"),
    ("POST", "/predict", '"x"'),
    ("POST", "/predict", "[" * 100000 + "]" * 100000),
    ("POST", "/predict", '{"pairs": ' + "[" * 5000 + "]" * 5000 + "}"),
    ("POST", "/predict", '{"pairs": [{"user": 1e400, "item": 1}]}'),
    ("POST", "/predict", '{"pairs": [{"user": NaN, "item": 1}]}'),
    ("POST", "/predict", '{"pairs": [{"user": true, "item": 1}]}'),
    ("POST", "/predict", '{"pairs": [{"user": null, "item": 1}]}'),
    ("POST", "/predict", '{"pairs": [{"user": [1], "item": 1}]}'),
    ("POST", "/predict", '{"pairs": [{"user": "' + "x" * 300 + '", "item": 1}]}'),
    ("POST", "/predict", '{"pairs": [{"user": 1, "item": 1}], "on_unknown": "mean"}'),
    ("POST", "/predict", b"\xff\xfe\x00garbage"),
    ("POST", "/predict", '{"pairs": [{"user": "\\ud800", "item": 1}]}'),
    ("POST", "/recommendations", '{"ratings": {"1": 1e-320}}'),
    ("POST", "/recommendations", '{"ratings": {"1": 3}, "n": 1e10}'),
    ("POST", "/recommendations", '{"ratings": {"1": 3}, "n": ' + "9" * 30 + "}"),
    ("POST", "/recommendations", '{"ratings": {"' + "x" * 300 + '": 3}}'),
    ("POST", "/recommendations", '{"ratings": {"999999": 3}, "on_unknown": "ignore"}'),
    ("POST", "/recommendations", '{"ratings": {"1": 3, "1": 4}}'),
    ("POST", "/recommendations", '{"ratings": {"-1": 3}}'),
    ("GET", "/users/%00/recommendations", None),
    ("GET", "/users/%F0%9F%98%80/recommendations", None),
    ("GET", "/users/1/recommendations?n=" + "9" * 50, None),
    ("GET", "/users/1/recommendations?n=-1", None),
    ("GET", "/users/1/recommendations?exclude_seen=maybe", None),
    ("GET", "/items/1/similar?n=0", None),
    ("GET", "/users/-0/recommendations", None),
    ("GET", "/users/" + "1" * 30 + "/recommendations", None),
    ("GET", "/items/" + "9" * 256 + "/similar", None),
    ("DELETE", "/predict", None),
    ("PUT", "/health", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
    ("GET", "/model", None),
]


def main() -> None:
    """Send every case and write the counts."""
    ratings = generate(n_users=60, n_items=40, n_ratings=1200, rank=3, noise=0.1, seed=7).ratings
    client = TestClient(
        create_app(tiny_recommender(ratings), max_n=50, max_batch=100),
        raise_server_exceptions=False,
    )
    rows = []
    for method, path, body in CASES:
        response = client.request(method, path, content=body, headers=H)
        shaped = response.status_code < 400
        if not shaped:
            try:
                shaped = set(response.json()) == {"error", "detail"}
            except ValueError:
                shaped = False
        rows.append(
            {
                "request": f"{method} {path[:60]} {str(body)[:60] if body else ''}",
                "status": response.status_code,
                "error_shape": shaped,
            }
        )
    result = {
        "cases": len(rows),
        "server_errors": sum(r["status"] >= 500 for r in rows),
        "off_shape": sum(not r["error_shape"] for r in rows),
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
    main()
