"""Benchmark what model swaps cost the clients of ``superkart serve --registry``: latency with and without them.

Usage::

    python benchmarks/swap_latency.py [--package DIR --second DIR] [--workers 2] [--requests 20000] [--rounds 3]

One server follows a registry holding two versions (``--package`` and ``--second``; without
them two small packages are trained first, ~2 minutes). Rounds alternate between ``steady``
(the pointer stays) and ``swapping`` (the pointer moves every ``--move-every`` seconds during
the load: promote, roll back, promote ...). Each round is the same bounded load, one-record
``POST /v1/predict`` over ``--concurrency`` keep-alive connections from the recording client
(``superkart_lib.course.load``, the one the tests and the lifecycle notebook use; slower than
``wrk``, so compare the two modes with each other, not with ``serving.py``). Each cell is the
median over ``--rounds`` rounds of that mode; failed requests are summed. Every answer is
also checked against the offline prediction of the version it names.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving import ROOT, load_note, note

from superkart_lib.course.load import LoadLog, run_load, run_load_in_thread
from superkart_lib.course.serving import ServerProcess
from superkart_lib.production import registry
from superkart_lib.production.runtime import OnnxModel

MODES = ("steady", "swapping")


def train(out: Path, seed: int) -> Path:
    note(f"training a small package in {out} (seed {seed}) ...")
    command = [sys.executable, "-m", "superkart_lib.cli", "train", "--out", str(out), "--n-iter", "0"]
    subprocess.run([*command, "--seed", str(seed)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=900)
    return out


def sample_records(count: int) -> list[dict]:
    from superkart_lib.development.synthetic import generate

    frame = generate(rows=count, seed=11).drop(columns="Product_Store_Sales_Total")
    return list(frame.to_dict(orient="records"))


def swapping_round(server: ServerProcess, root: Path, versions: list[str], records: list[dict], args) -> tuple:
    log, done = run_load_in_thread(server.url, records, args.requests, concurrency=args.concurrency)
    moves = 0
    while not done.done():
        time.sleep(args.move_every)
        if done.done():
            break
        if registry.current_version(root) == versions[0]:
            registry.promote(root, versions[1], who="benchmark", why="swap under load")
        else:
            registry.rollback(root, who="benchmark", why="swap under load")
        moves += 1
    return done.result(), moves


def wrong_answers(log: LoadLog, expected: dict[str, list[float]], records: list[dict]) -> int:
    return sum(
        1 for a in log.answers if a.status == 200 and a.prediction != expected[a.version][a.record % len(records)]
    )


def table_row(mode: str, runs: list[tuple[LoadLog, int]], expected: dict[str, list[float]], records: list[dict]) -> str:
    """Medians over the rounds of one mode; moves, failed and wrong answers summed."""
    logs = [log for log, _ in runs]

    def median(figure) -> float:
        return statistics.median(figure(log) for log in logs)

    moves = sum(m for _, m in runs)
    failed = sum(len(log.failed) for log in logs)
    wrong = sum(wrong_answers(log, expected, records) for log in logs)
    return (
        f"{mode:<10} {median(lambda g: len(g.answers) / g.seconds):>8,.0f} {median(lambda g: g.latency_ms(0.5)):>8.1f} "
        f"{median(lambda g: g.latency_ms(0.99)):>8.1f} {median(lambda g: g.latency_ms(1.0)):>8.1f} "
        f"{moves:>6} {failed:>7} {wrong:>6}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", help="first version (default: train one)")
    parser.add_argument("--second", help="second version, another package (default: train one)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode (default 3)")
    parser.add_argument("--move-every", type=float, default=1.0, help="seconds between pointer moves (default 1)")
    parser.add_argument("--warmup", type=int, default=1_000, help="warm-up requests (default 1,000)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="superkart-swap-") as tmp:
        work = Path(tmp)
        first = Path(args.package) if args.package else train(work / "a" / "model", seed=42)
        second = Path(args.second) if args.second else train(work / "b" / "model", seed=7)
        root = work / "registry"
        versions = [registry.add(root, first), registry.add(root, second)]
        registry.promote(root, versions[0], who="benchmark", why="start")
        records = sample_records(200)
        expected = {
            v: [float(x) for x in OnnxModel.from_package(root / "versions" / v).predict(records)] for v in versions
        }
        results: dict[str, list[tuple[LoadLog, int]]] = {mode: [] for mode in MODES}
        with ServerProcess(root, workers=args.workers, timeout=120, registry=True) as server:
            run_load(server.url, records, args.warmup, concurrency=args.concurrency)
            for r in range(args.rounds):
                for mode in MODES if r % 2 == 0 else MODES[::-1]:
                    note(f"round {r + 1}: {mode}")
                    if mode == "steady":
                        results[mode].append((run_load(server.url, records, args.requests, args.concurrency), 0))
                    else:
                        results[mode].append(swapping_round(server, root, versions, records, args))
    print(f"{args.workers} workers, {args.requests:,} requests per round at c={args.concurrency}, {args.rounds} rounds")
    print(f"{'mode':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'moves':>6} {'failed':>7}", end="")
    print(f" {'wrong':>6}")
    for mode in MODES:
        print(table_row(mode, results[mode], expected, records))
    print("(cells: median over the rounds of each mode; moves, failed and wrong: sums)")
    print(f"took {time.perf_counter() - started:.0f} s; after: {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
