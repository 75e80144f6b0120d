"""``superkart serve``: its options, and the argparse types the other commands share.

Production install only: the standard library, the registry and the server's defaults.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.production import server
from superkart_lib.production.server import run_server


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        return value

    return parse


def duration(zero_ok: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, positive (or also zero with ``zero_ok``)."""
    wanted = "0 or a positive number of seconds" if zero_ok else "a positive number of seconds"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


seconds, seconds_or_zero = duration(zero_ok=False), duration(zero_ok=True)


def registry_pointer(directory: str) -> Path:
    """The registry's ``current`` link, once it exists."""
    from superkart_lib.production import registry

    root = Path(directory)
    if not root.is_dir():
        raise SuperKartError(f"registry {directory}: no such directory")
    if registry.current_version(root) is None:
        raise SuperKartError(
            f"registry {directory} has no current version yet: "
            "promote one first (superkart registry promote VERSION --registry DIR --why TEXT)"
        )
    return registry.current_link(root)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run `superkart serve` until interrupted (a registry is followed, a package served as it is)."""
    package = registry_pointer(args.registry) if args.registry else args.model
    run_server(
        package,
        follow=bool(args.registry),
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        head_timeout=args.head_timeout,
        body_timeout=args.body_timeout,
        drain_seconds=args.drain_seconds,
    )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``superkart serve`` to the subcommands ``sub``."""
    p = sub.add_parser("serve", help="serve a model package: HTTP API and web page")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model package directory (served as it is when the server starts)")
    source.add_argument(
        "--registry", metavar="DIR", help="model registry: serve its current version and follow each promotion"
    )
    p.add_argument("--host", default=server.DEFAULT_HOST, help=f"address to bind (default {server.DEFAULT_HOST})")
    p.add_argument("--port", type=int_at_least(1), default=server.DEFAULT_PORT, help=f"port ({server.DEFAULT_PORT})")
    p.add_argument(
        "--workers", type=int_at_least(1), default=server.DEFAULT_WORKERS, help="processes, one ONNX session each"
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--head-timeout",
        type=seconds,
        default=server.HEAD_TIMEOUT,
        help=f"seconds a client has to send a request's headers (default {server.HEAD_TIMEOUT:g})",
    )
    p.add_argument(
        "--body-timeout",
        type=seconds,
        default=server.BODY_TIMEOUT,
        help=f"seconds a client has to send a request's body after its headers (default {server.BODY_TIMEOUT:g})",
    )
    p.add_argument(
        "--drain-seconds",
        type=seconds_or_zero,
        default=server.DRAIN_SECONDS,
        help=(
            "on SIGTERM, seconds to keep answering (with /readyz at 503) before refusing new connections "
            f"(default {server.DRAIN_SECONDS:g}; 0: stop accepting at once)"
        ),
    )
    p.set_defaults(func=cmd_serve)
    return p
