"""HTTP serving, the optional extra ``embrec[serve]`` (FastAPI and uvicorn).

``create_app(rec)`` builds the app around a ``Recommender``; ``serve(path)``
loads a saved model and runs it under uvicorn. ``import embrec`` never imports
this package, so the core works without FastAPI installed.
"""

from __future__ import annotations

try:
    import fastapi as _fastapi  # noqa: F401
    import uvicorn as _uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"embrec.serving needs FastAPI and uvicorn ({exc.name} is missing)\n"
        "  hint: pip install 'embrec[serve]'"
    ) from exc

from embrec.serving.app import RequestTooLargeError, create_app
from embrec.serving.server import load_app, serve

__all__ = ["RequestTooLargeError", "create_app", "load_app", "serve"]
