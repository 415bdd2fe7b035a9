"""API docs pages (``/docs``, ``/redoc``) whose scripts and styles come from the installed package.

FastAPI's default pages load Swagger UI and ReDoc from a public CDN, so they stay
blank offline. Following FastAPI's self-hosting recipe, the pages point at a
``StaticFiles`` mount of the files the ``fastapi-offline`` package ships (a
dependency of the ``serve`` extra); ReDoc's Google fonts are left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "add_docs", "assets_folder"]

ASSETS_URL = "/docs-assets"
log = logging.getLogger(__name__)


def assets_folder() -> Path | None:
    """The folder holding Swagger UI's and ReDoc's files, or None without ``fastapi-offline``."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    needed = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
    return folder if all((folder / name).is_file() for name in needed) else None


def add_docs(app: FastAPI, title: str) -> None:
    """Serve ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with local assets.

    Without ``fastapi-offline`` (an install without the ``serve`` extra's full
    set), the pages fall back to FastAPI's CDN assets and a warning is logged.

    Args:
        app: an app created with ``docs_url=None, redoc_url=None``.
        title: the pages' title.
    """
    folder = assets_folder()
    if folder is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=folder), name="docs-assets")
    else:
        log.warning("fastapi-offline is not installed: /docs and /redoc load their scripts from "
                    "a CDN; pip install 'embrec[serve]' to serve them locally")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _page(request, folder, title, openapi_url, redirect_url)

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return _redoc(request, folder, title, openapi_url)


def _page(request: Request, folder: Path | None, title: str, openapi_url: str,
          redirect_url: str) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    base = f"{root}{ASSETS_URL}"
    local: dict[str, Any] = {} if folder is None else {
        "swagger_js_url": f"{base}/swagger-ui-bundle.js",
        "swagger_css_url": f"{base}/swagger-ui.css", "swagger_favicon_url": f"{base}/favicon.png"}
    return get_swagger_ui_html(openapi_url=root + openapi_url, title=f"{title} - Swagger UI",
                               oauth2_redirect_url=root + redirect_url, **local)


def _redoc(request: Request, folder: Path | None, title: str, openapi_url: str) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    base = f"{root}{ASSETS_URL}"
    local: dict[str, Any] = {} if folder is None else {
        "redoc_js_url": f"{base}/redoc.standalone.js", "redoc_favicon_url": f"{base}/favicon.png",
        "with_google_fonts": False}
    return get_redoc_html(openapi_url=root + openapi_url, title=f"{title} - ReDoc", **local)
