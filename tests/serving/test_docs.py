"""/docs and /redoc work offline: their assets come from the installed package, and a real
headless Chromium with every host but 127.0.0.1 unreachable renders every operation."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from embrec.recommender import Recommender
from embrec.serving import create_app
from embrec.serving.docs import ASSETS_URL, assets_folder

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser",
                                                 "google-chrome") if shutil.which(name)), None)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: object, page: str) -> None:
    html = client.get(page).text  # type: ignore[attr-defined]
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith(ASSETS_URL) for s in sources), sources
    assert "fonts.googleapis" not in html
    for source in sources:
        assert client.get(source).status_code == 200  # type: ignore[attr-defined]


def test_assets_come_from_the_installed_package() -> None:
    folder = assets_folder()
    assert folder is not None, "the serve extra's fastapi-offline is missing"
    assert (folder / "swagger-ui-bundle.js").stat().st_size > 100_000


@pytest.fixture()
def live_url(rec: Recommender) -> Iterator[str]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(rec), host="127.0.0.1", port=0,
                                           log_level="warning", ws="none", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _render(url: str, profile: Path) -> str:
    """The page's DOM after scripts ran, with every host but 127.0.0.1 unreachable."""
    assert CHROMIUM is not None
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}",
         "--proxy-server=http://127.0.0.1:9",  # the network is unavailable...
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # ...DNS too
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False)
    return run.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_docs_render_every_operation_offline_in_chromium(live_url: str, rec: Recommender,
                                                         tmp_path: Path) -> None:
    schema = create_app(rec).openapi()
    paths = set(schema["paths"])
    operations = {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}
    swagger = _render(f"{live_url}/docs", tmp_path / "a")
    assert set(re.findall(r'data-path="([^"]+)"', swagger)) == paths
    redoc = _render(f"{live_url}/redoc", tmp_path / "b")
    assert set(re.findall(r'id="operation/([^"]+)"', redoc)) == operations
