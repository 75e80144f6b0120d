"""``superkart serve``: the API under uvicorn, one worker process per ONNX session.

Only the standard library is imported here; uvicorn and the app load when a server starts,
so the command line can read the defaults below without importing the web stack.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import SuperKartError

#: Environment variable naming the package directory for :func:`app_from_env` (uvicorn workers).
MODEL_ENV = "SUPERKART_MODEL_DIR"
#: ``module:factory`` of the app, for uvicorn and process managers.
APP_FACTORY = "superkart_lib.production.server:app_from_env"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKERS = 1


def app_from_env() -> Any:
    """App factory for uvicorn workers: the package directory comes from ``SUPERKART_MODEL_DIR``."""
    from superkart_lib.production.app import create_app

    package_dir = os.environ.get(MODEL_ENV)
    if not package_dir:
        raise SuperKartError(f"{MODEL_ENV} is not set (use `superkart serve --model DIR`)")
    return create_app(package_dir)


def run_server(
    package_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = DEFAULT_WORKERS,
    access_log: bool = False,
) -> None:
    """Serve a model package with uvicorn until interrupted.

    The package is verified here first, so a bad package is one clear error before any
    worker starts; each worker process then builds its own app and ONNX session.

    Raises
    ------
    SuperKartError
        When the package is missing, altered or cannot be loaded, or the address is taken.
    """
    import uvicorn

    from superkart_lib.production.runtime import OnnxModel

    directory = Path(package_dir).resolve()
    OnnxModel.from_package(directory)
    try:  # uvicorn reports a busy port as a log line and exit 1; say it as the CLI says errors
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise SuperKartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    os.environ[MODEL_ENV] = str(directory)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )
