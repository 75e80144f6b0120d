"""``superkart retrain``: its options and what it prints.

Imports only the standard library and the gate's defaults, so ``superkart --help`` works in the
production install; the training stack is imported when the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superkart_lib.development import settings
from superkart_lib.development.retrain_report import DEFAULT_MARGIN


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not -float("inf") < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number below 1 (0.01 is 1% lower RMSE), got {text!r}")
    return value


def add_parser(sub: Any, count: Callable[[str], int]) -> argparse.ArgumentParser:
    """Add ``retrain`` to the ``superkart`` subparsers ``sub``; ``count`` parses ``--n-iter``."""
    p = sub.add_parser(
        "retrain",
        help="train a challenger on new data, add it to a registry, promote it if it beats current (development)",
    )
    p.add_argument("--registry", required=True, metavar="DIR", help="the registry directory (created if needed)")
    p.add_argument("--data", required=True, metavar="NEW.csv", help="SuperKart CSV of new rows; 20%% are held out")
    p.add_argument(
        "--with-previous-data",
        action="store_true",
        help="also train on every row the current version was trained on",
    )
    p.add_argument(
        "--margin",
        type=_margin,
        default=DEFAULT_MARGIN,
        help=f"promote when challenger RMSE <= current RMSE * (1 - margin) (default {DEFAULT_MARGIN})",
    )
    p.add_argument("--seed", type=int, default=settings.SEED, help="seed of the split, CV folds, search and models")
    p.add_argument(
        "--n-iter", type=count, default=settings.N_ITER, help=f"search candidates (default {settings.N_ITER})"
    )
    p.add_argument("--who", help="recorded in the history on promotion (default: your login name)")
    return p


def cmd_retrain(args: argparse.Namespace) -> int:
    """Run ``superkart retrain``: print the markdown report and the decision."""
    from superkart_lib.development.retrain import retrain

    result = retrain(
        Path(args.registry),
        Path(args.data),
        with_previous_data=args.with_previous_data,
        margin=args.margin,
        seed=args.seed,
        n_iter=args.n_iter,
        who=args.who,
    )
    print(result.markdown, end="")
    decision = "promoted" if result.promoted else f"kept {result.current or 'no version'} as current"
    print(f"decision: {decision}; {result.version} is in {args.registry} (report {result.report_md})")
    return 0
