"""The ``superkart`` command line: thin wrappers over the library's functions.

User errors (bad files, bad values, bad options) print one line and exit with
status 2; heavy modules are imported inside each command so ``superkart --help``
and the production commands start fast and need no scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from superkart_lib import __version__
from superkart_lib.errors import SuperKartError

USER_ERROR = 2


def _int_at_least(minimum: int):
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


def _write_csv_atomically(frame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    frame.to_csv(partial, index=False)
    partial.replace(out)


def cmd_data(args: argparse.Namespace) -> int:
    from superkart_lib.synthetic import generate

    frame = generate(rows=args.rows, seed=args.seed)
    _write_csv_atomically(frame, Path(args.out))
    print(f"wrote {len(frame):,} synthetic rows (seed {args.seed}) to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from superkart_lib.package import write_package
    from superkart_lib.train import train
    from superkart_lib.workspace import load_training_data

    frame, facts = load_training_data(args.data)
    print(f"training on {facts['rows']:,} rows from {facts['source']} (backend {args.backend})", file=sys.stderr)
    result = train(frame, seed=args.seed, n_iter=args.n_iter, backend=args.backend, scheduler=args.scheduler)
    out = write_package(result, args.out, facts)
    print(
        result.zoo.round({"cv_r2": 4, "r2": 4, "rmse": 1, "mae": 1, "mape": 4, "fit_seconds": 2}).to_string(index=False)
    )
    for note in result.notes:
        print(f"note: {note}")
    m = result.metrics
    print(
        f"best: {result.family} ({'tuned' if result.tuned else 'defaults'}) "
        f"test r2={m['r2']:.4f} rmse={m['rmse']:.1f} mae={m['mae']:.1f} mape={m['mape']:.2%}"
    )
    print(f"model package: {out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from superkart_lib.report import write_report
    from superkart_lib.runner import NOTEBOOKS, parse_overrides, run_notebooks, write_summary

    overrides = parse_overrides(args.params, args.parameter)
    workspace = run_notebooks(args.out, data=args.data, overrides=overrides, progress=not args.quiet)
    summary = write_summary(workspace, NOTEBOOKS, overrides)
    index = write_report(workspace.root / "notebooks", workspace.root / "report", summary)
    best = summary["best"]
    m = best["metrics"]
    print(
        f"best: {best['family']} ({'tuned' if best['tuned'] else 'defaults'}) "
        f"test r2={m['r2']:.4f} rmse={m['rmse']:.1f} mae={m['mae']:.1f} mape={m['mape']:.2%}"
    )
    print(f"results: {workspace.root}")
    print(f"  executed notebooks: {workspace.root / 'notebooks'}")
    print(f"  report:             {index}")
    print(f"  model package:      {workspace.model_dir}")
    print(f"  summary:            {workspace.summary_json}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from superkart_lib.verify import verify_package

    for line in verify_package(args.package):
        print(line)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from superkart_lib.compare import compare_formats, read_data
    from superkart_lib.compare_report import format_table

    table = compare_formats(args.package, data=read_data(args.data) if args.data else None)
    print(format_table(table))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from superkart_lib.serve import run_server

    run_server(args.model, host=args.host, port=args.port, workers=args.workers, access_log=args.access_log)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from superkart_lib.batch import predict_file

    report = predict_file(
        args.model,
        args.input,
        args.output,
        chunk_rows=args.chunk_rows,
        skip_invalid=args.skip_invalid,
        dask=args.dask,
        scheduler=args.scheduler,
        progress=not args.quiet,
    )
    print(report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="superkart", description="SuperKart: take a sales model from a notebook to production."
    )
    parser.add_argument("--version", action="version", version=f"superkart {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="write synthetic SuperKart data with the real schema")
    p.add_argument("--rows", type=_int_at_least(1), default=8763, help="number of rows (default 8763)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="compare the model zoo, tune the best, write the model package")
    p.add_argument("--data", help="SuperKart CSV (default: built-in synthetic data)")
    p.add_argument("--out", required=True, help="model package directory to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, CV folds, search and models")
    p.add_argument("--n-iter", type=_int_at_least(0), default=20, help="search candidates (0: no tuning)")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky", help="where the search runs")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (with --backend dask)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("run", help="run every notebook with papermill; write notebooks, report, model, summary")
    p.add_argument("--data", help="SuperKart CSV (default: built-in synthetic data)")
    p.add_argument("--out", default="runs/latest", help="run directory (default runs/latest)")
    p.add_argument("--params", help="YAML file of notebook parameters")
    p.add_argument(
        "-p", dest="parameter", action="append", default=[], metavar="NAME=VALUE", help="one notebook parameter"
    )
    p.add_argument("--quiet", action="store_true", help="no cell progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="check a model package's hashes, signature and library versions")
    p.add_argument("package", metavar="DIR", help="model package directory")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compare", help="compare the package's five formats: size, speed, parity, safety")
    p.add_argument("package", metavar="DIR", help="model package directory")
    p.add_argument("--data", help="SuperKart CSV to predict on (default: the package's test split)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("serve", help="serve a model package: HTTP API and web page (production environment)")
    p.add_argument("--model", required=True, help="model package directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_int_at_least(1), default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=_int_at_least(1), default=1, help="processes, one ONNX session each")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("predict", help="score a CSV file with the package's verified ONNX model")
    p.add_argument("--model", required=True, metavar="DIR", help="model package directory")
    p.add_argument("--input", required=True, metavar="FILE.csv", help="SuperKart CSV to score (target optional)")
    p.add_argument("--output", required=True, metavar="FILE.csv", help="CSV to write: input columns plus 'prediction'")
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="score the valid rows; write invalid ones with row and reason to <output stem>.rejected.csv",
    )
    p.add_argument("--chunk-rows", type=_int_at_least(1), default=50_000, metavar="N", help="rows per chunk")
    p.add_argument("--dask", action="store_true", help="score chunks in parallel on an embedded Dask LocalCluster")
    p.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler (with --dask)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SuperKartError as exc:
        print(f"superkart {args.command}: error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print(f"superkart {args.command}: interrupted", file=sys.stderr)
        return 130


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
