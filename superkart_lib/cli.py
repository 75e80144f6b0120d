"""The ``superkart`` command line: thin wrappers over the library's functions.

User errors (bad files, bad values, bad options, a missing install) print one line and exit
with status 2; so does an error of the operating system on a path the user named (a full disk,
a read-only directory, a file where a directory should be). Each command imports what it needs
when it runs, so ``superkart --help`` and the production commands (``verify``, ``predict``,
``serve``, ``registry``) work in the production install; a development command run there says which extra
to install. Every default shown here is read from the module that owns it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from superkart_lib import __version__
from superkart_lib.contract import limits
from superkart_lib.contract.errors import MissingExtraError, SuperKartError, first_line
from superkart_lib.contract.schema import REAL_ROWS
from superkart_lib.course.runner import RUN_DIR
from superkart_lib.development import retrain_cli, settings
from superkart_lib.production import registry_cli, serve_cli
from superkart_lib.production.serve_cli import int_at_least

USER_ERROR = 2
DEVELOPMENT_EXTRA = "superkart_lib[dev]"


def _development(module: str, command: str) -> ModuleType:
    """Import a module of the development install, or say in one line which extra is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "superkart_lib":
            raise  # a module of ours missing is a broken install, not a missing extra
        raise MissingExtraError(
            f"`superkart {command}` needs the development install (pip install '{DEVELOPMENT_EXTRA}'); "
            f"{exc.name} is not installed here"
        ) from None


def cmd_data(args: argparse.Namespace) -> int:
    synthetic = _development("superkart_lib.development.synthetic", "data")
    from superkart_lib.contract.files import atomic_write

    frame = synthetic.data_frame(rows=args.rows, seed=args.seed, drifted=args.next_quarter)
    with atomic_write(args.out) as f:
        frame.to_csv(f, index=False)
    kind = "next-quarter " if args.next_quarter else ""
    print(f"wrote {len(frame):,} synthetic {kind}rows (seed {args.seed}) to {args.out}")
    return 0


def _best_line(family: str, tuned: bool, m: dict[str, float]) -> str:
    return (
        f"best: {family} ({'tuned' if tuned else 'defaults'}) "
        f"test r2={m['r2']:.4f} rmse={m['rmse']:.1f} mae={m['mae']:.1f} mape={m['mape']:.2%}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    train = _development("superkart_lib.development.train", "train")
    from superkart_lib.development.data import load_training_data
    from superkart_lib.development.package import prepare_destination, write_package

    prepare_destination(args.out)  # a destination that cannot be written fails now, not after training
    frame, facts = load_training_data(args.data)
    origin = args.data or facts["source"]  # the path stays on this machine; the manifest has its sha256
    print(f"training on {facts['rows']:,} rows from {origin} (backend {args.backend})", file=sys.stderr)
    result = train.train(frame, seed=args.seed, n_iter=args.n_iter, backend=args.backend, scheduler=args.scheduler)
    out = write_package(result, args.out, facts, frame=frame)
    rounding = {"cv_r2": 4, "r2": 4, "rmse": 1, "mae": 1, "mape": 4, "fit_seconds": 2}
    print(result.zoo.round(rounding).to_string(index=False))
    for note in result.notes:
        print(f"note: {note}")
    print(_best_line(result.family, result.tuned, result.metrics))
    print(f"model package: {out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    _development("papermill", "run")
    from superkart_lib.course import runner
    from superkart_lib.course.report import write_report

    overrides = runner.parse_overrides(args.params, args.parameter)
    workspace = runner.run_notebooks(args.out, data=args.data, overrides=overrides, progress=not args.quiet)
    summary = runner.write_summary(workspace, runner.NOTEBOOKS, overrides)
    index = write_report(workspace.root / "notebooks", workspace.root / "report", summary)
    best = summary["best"]
    print(_best_line(best["family"], best["tuned"], best["metrics"]))
    print(f"results: {workspace.root}")
    print(f"  executed notebooks: {workspace.root / 'notebooks'}")
    print(f"  report:             {index}")
    print(f"  model package:      {workspace.model_dir}")
    if workspace.registry_dir.is_dir():
        print(f"  model registry:     {workspace.registry_dir}")
    print(f"  summary:            {workspace.summary_json}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from superkart_lib.production.verify import verify_package

    for line in verify_package(args.package):
        print(line)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    compare = _development("superkart_lib.course.compare", "compare")
    from superkart_lib.course.compare_report import format_table

    table = compare.compare_formats(args.package, data=compare.read_data(args.data) if args.data else None)
    print(format_table(table))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from superkart_lib.production import drift_cli

    return drift_cli.cmd_drift(args)


def cmd_retrain(args: argparse.Namespace) -> int:
    _development("superkart_lib.development.retrain", "retrain")
    return retrain_cli.cmd_retrain(args)


def cmd_predict(args: argparse.Namespace) -> int:
    from superkart_lib.production.batch import predict_file

    options: dict[str, Any] = {}
    if args.scheduler and not args.dask:
        raise SuperKartError("--scheduler needs --dask")
    if args.dask:
        _development("distributed", "predict --dask")  # the cluster module imports Dask only when it starts one
        dask_batch = _development("superkart_lib.development.dask_batch", "predict --dask")
        options["cluster"] = dask_batch.DaskChunks(scheduler=args.scheduler)
    report = predict_file(
        args.model,
        args.input,
        args.output,
        chunk_rows=args.chunk_rows,
        skip_invalid=args.skip_invalid,
        progress=not args.quiet,
        **options,
    )
    print(report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="superkart", description="SuperKart: take a sales model from a notebook to production."
    )
    parser.add_argument("--version", action="version", version=f"superkart {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="write synthetic SuperKart data with the real schema (development)")
    p.add_argument("--rows", type=int_at_least(1), default=REAL_ROWS, help=f"number of rows (default {REAL_ROWS})")
    p.add_argument("--seed", type=int, default=settings.SEED, help=f"random seed (default {settings.SEED})")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument(
        "--next-quarter",
        action="store_true",
        help="a drifted next quarter instead: prices up 18%%, a store-mix shift, more 'reg' labels",
    )
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="compare the model zoo, tune the best, write the model package (development)")
    p.add_argument("--data", help="SuperKart CSV (default: built-in synthetic data)")
    p.add_argument("--out", required=True, help="model package directory to write")
    p.add_argument("--seed", type=int, default=settings.SEED, help="seed of the split, CV folds, search and models")
    p.add_argument(
        "--n-iter",
        type=int_at_least(0),
        default=settings.N_ITER,
        help=f"search candidates (default {settings.N_ITER}; 0: no tuning)",
    )
    p.add_argument("--backend", choices=settings.BACKENDS, default=settings.BACKENDS[0], help="where the search runs")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (with --backend dask)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("run", help="run every notebook with papermill; write notebooks, report, model, summary")
    p.add_argument("--data", help="SuperKart CSV (default: built-in synthetic data)")
    p.add_argument("--out", default=RUN_DIR, help=f"run directory (default {RUN_DIR})")
    p.add_argument("--params", help="YAML file of notebook parameters")
    p.add_argument(
        "-p", dest="parameter", action="append", default=[], metavar="NAME=VALUE", help="one notebook parameter"
    )
    p.add_argument("--quiet", action="store_true", help="no cell progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="check a model package's hashes, signature and library versions")
    p.add_argument("package", metavar="DIR", help="model package directory")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compare", help="compare the package's five formats: size, speed, parity, safety (development)")
    p.add_argument("package", metavar="DIR", help="model package directory")
    p.add_argument("--data", help="SuperKart CSV to predict on (default: the package's test split)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("drift", help="compare a CSV of new rows with the training inputs (PSI, KS)")
    p.add_argument("--model", required=True, help="model package directory")
    p.add_argument("--input", required=True, help="SuperKart CSV of new rows (target optional)")
    p.add_argument("--html", help="also write a self-contained HTML report here")
    p.add_argument("--json", help="also write the report as JSON here")
    p.set_defaults(func=cmd_drift)

    registry_cli.add_parser(sub)  # sets its own command function
    retrain_cli.add_parser(sub, int_at_least(0)).set_defaults(func=cmd_retrain)

    serve_cli.add_parser(sub)

    p = sub.add_parser("predict", help="score a CSV file with the package's verified ONNX model")
    p.add_argument("--model", required=True, metavar="DIR", help="model package directory")
    p.add_argument("--input", required=True, metavar="FILE.csv", help="SuperKart CSV to score (target optional)")
    p.add_argument("--output", required=True, metavar="FILE.csv", help="CSV to write: input columns plus 'prediction'")
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="score the valid rows; write invalid ones with row and reason to <output stem>.rejected.csv",
    )
    p.add_argument(
        "--chunk-rows",
        type=int_at_least(1),
        default=limits.BATCH_CHUNK_ROWS,
        metavar="N",
        help=f"rows per chunk (default {limits.BATCH_CHUNK_ROWS:,})",
    )
    p.add_argument("--dask", action="store_true", help="score chunks on an embedded Dask LocalCluster (development)")
    p.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler (with --dask)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_predict)
    return parser


def _os_error(exc: OSError) -> str:
    """One line for an OS error: the file it names (both, for a rename) and the system's reason."""
    names = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    reason = exc.strerror or first_line(exc)
    return f"{names}: {reason}" if names else reason


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SuperKartError as exc:
        print(f"superkart {args.command}: error: {exc}", file=sys.stderr)
        return USER_ERROR
    except OSError as exc:  # the disk or a path the user named, not a bug: writers name their file first
        print(f"superkart {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print(f"superkart {args.command}: interrupted", file=sys.stderr)
        return 130


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
