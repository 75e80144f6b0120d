"""The model a server process answers with, and how it changes while the server runs.

A request reads :attr:`ModelState.loaded` once and uses that :class:`Loaded` to the end: the
model, its version and its manifest travel together, so a request that started before a swap
finishes on the model it started with and names that model's version, and no request sees the
model of one version with the version string of another.

Following a link (``superkart serve --registry DIR`` serves ``DIR/current``): a
:class:`LinkFollower` thread looks where the link points every ``interval`` seconds. When it
points elsewhere, the new version directory is verified (:func:`~.verify.verify_package`: every
file's sha256, the signature when a key is set), loaded and warmed with one prediction, all on
that thread, and only then put in place with one assignment. A version that fails is refused,
logged and counted, and the previous model keeps answering; it is not tried again until the
link moves again.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import FieldError, RequestError, SuperKartError
from superkart_lib.contract.files import resolve_link
from superkart_lib.production import record_validation as records

log = logging.getLogger("superkart.serve")

#: Recent records a worker keeps for ``GET /v1/drift`` (references only: a few MB at most).
DRIFT_WINDOW = 5_000
#: Seconds between two looks at a followed link: a promotion reaches every worker within this.
FOLLOW_INTERVAL = 0.5


@dataclass(frozen=True)
class Loaded:
    """One verified, loaded and warmed model package.

    Attributes
    ----------
    model : OnnxModel
        The model with its onnxruntime session.
    version : str
        The package version, echoed by every answer made with ``model``.
    manifest_json : bytes
        The manifest as ``GET /v1/model`` serves it.
    directory : Path
        The version directory it was loaded from (a link resolved once).
    reference : dict or None
        The package's drift reference statistics (None for a package without them).
    """

    model: Any
    version: str
    manifest_json: bytes
    directory: Path
    reference: dict[str, Any] | None = field(default=None, compare=False)


def load_package(package_dir: Path, full_check: bool = False) -> Loaded:
    """Verify, load and warm a package with one prediction.

    ``full_check`` runs ``superkart verify``'s checks over every file first (a package arriving
    while the server runs); at start the server has just run them.

    Raises
    ------
    SuperKartError
        Naming the file and the problem when the package does not verify or load.
    """
    from superkart_lib.production.drift import load_reference  # numpy-only, but only needed here
    from superkart_lib.production.runtime import OnnxModel  # onnxruntime imports slowly: keep it off startup
    from superkart_lib.production.verify import verify_package

    directory = resolve_link(package_dir)
    if full_check:
        verify_package(directory)
    model = OnnxModel.from_package(directory)
    model.predict(records.example_record())
    manifest_json = json.dumps(model.manifest, separators=(",", ":"), allow_nan=False).encode()
    try:
        reference = load_reference(directory)
    except SuperKartError:
        reference = None
    return Loaded(model, model.version, manifest_json, directory, reference)


class ModelState:
    """The process's model: ``load`` verifies, loads and warms it (at startup, off the event loop).

    Parameters
    ----------
    package_dir : Path
        The package directory, or a link to one (resolved once per load).
    """

    def __init__(self, package_dir: Path):
        self.package_dir = package_dir
        self.loaded: Loaded | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        #: Recent served records, newest last, for the server's drift window.
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=DRIFT_WINDOW)

    @property
    def model(self) -> Any:
        """The model answering now, or None before it loads (or when it failed to)."""
        loaded = self.loaded
        return loaded.model if loaded else None

    @property
    def version(self) -> str:
        """The version answering now ("" before it loads)."""
        loaded = self.loaded
        return loaded.version if loaded else ""

    @property
    def manifest_json(self) -> bytes:
        loaded = self.loaded
        return loaded.manifest_json if loaded else b""

    def load(self) -> None:
        """Verify, load and warm the model with one prediction, or record why that failed."""
        try:
            self.loaded = load_package(self.package_dir)
        except SuperKartError as exc:
            self.error = str(exc)
        except Exception as exc:  # a bad package must leave a readable reason, not a dead thread
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            self.error = None
            self.ready.set()
            return
        log.error("model package %s not loaded: %s", self.package_dir, self.error)

    def require(self) -> Loaded:
        """The model answering now, or a 503 saying whether it is loading or failed."""
        loaded = self.loaded
        if loaded is None:
            detail = f"model failed to load: {self.error}" if self.error else "model is loading; retry shortly"
            raise RequestError(503, [FieldError(detail)])
        return loaded

    def require_model(self) -> Any:
        """The model answering now (see :meth:`require`)."""
        return self.require().model


class LinkFollower:
    """Swap the model of ``state`` when the link it was loaded through points at another version.

    Parameters
    ----------
    state : ModelState
        Loaded (or failed) once already, from a link such as ``DIR/current``.
    interval : float
        Seconds between two looks at the link.
    on_load : callable, optional
        Called as ``on_load(version, ok)`` after each attempt (the server counts them in metrics).
    """

    def __init__(self, state: ModelState, interval: float = FOLLOW_INTERVAL, on_load: Any = None):
        self.state = state
        self.interval = interval
        self.on_load = on_load
        self.refused: Path | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Look at the link once; load and swap in a new version. True when the model changed."""
        try:
            target = resolve_link(self.state.package_dir)
        except OSError as exc:  # the link is being replaced or was removed: keep serving
            log.warning("cannot resolve %s: %s", self.state.package_dir, exc)
            return False
        loaded = self.state.loaded
        if (loaded is not None and target == loaded.directory) or target == self.refused:
            return False
        try:
            new = load_package(target, full_check=True)
        except Exception as exc:  # any failure keeps the previous model answering
            self.refused = target
            log.error("refused model version %s, still serving %s: %s", target.name, self.state.version or "none", exc)
            self._report(target.name, False)
            return False
        self.state.loaded = new  # one assignment: a request sees the old model or the new one
        self.state.error = None
        self.state.ready.set()
        self.refused = None
        log.info("now serving model version %s (was %s)", new.version, loaded.version if loaded else "none")
        self._report(new.version, True)
        return True

    def _report(self, version: str, ok: bool) -> None:
        if self.on_load is not None:
            try:
                self.on_load(version, ok)
            except Exception:  # counting must never stop the follower
                log.exception("recording a model load failed")

    def start(self) -> None:
        """Follow the link on a daemon thread until :meth:`stop`."""

        def run() -> None:
            while not self._stop.wait(self.interval):
                self.check()

        self._thread = threading.Thread(target=run, name="superkart-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following (the thread ends within one interval; a load under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 30)
