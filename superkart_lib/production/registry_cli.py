"""``superkart registry {list,add,promote,rollback,history}``: the registry from the command line.

Production code (the registry itself is imported when a command runs): it works in the
production install, where a server's registry is managed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

ACTIONS = ("list", "add", "promote", "rollback", "history")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``registry`` and its actions to the ``superkart`` subparsers ``sub``; returns its parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", required=True, metavar="DIR", help="the registry directory")
    parser = sub.add_parser("registry", help="model versions, the current pointer, promotion and rollback")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("list", parents=[common], help="every version, newest first; * marks current")
    p.add_argument("--json", action="store_true", help="print the versions as JSON")

    p = actions.add_parser("add", parents=[common], help="add a verified copy of a package (current does not move)")
    p.add_argument("--model", required=True, metavar="PKG", help="model package directory")
    p.add_argument("--data", metavar="CSV", help="the CSV it was trained on (kept for retrain --with-previous-data)")

    for name, text in (
        ("promote", "verify a version and point current at it"),
        ("rollback", "point current back at the version current before it was promoted"),
    ):
        p = actions.add_parser(name, parents=[common], help=text)
        if name == "promote":
            p.add_argument("version", metavar="VERSION", help="a version of the registry (see list)")
        p.add_argument("--why", required=True, help="the reason, recorded in the history")
        p.add_argument("--who", help="who decided (default: your login name)")

    actions.add_parser("history", parents=[common], help="every promotion and rollback, oldest first")
    parser.set_defaults(func=cmd_registry)
    return parser


def _number(metrics: dict[str, float], name: str, digits: int) -> str:
    value = metrics.get(name)
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def list_text(rows: list[Any]) -> str:
    """The table of ``registry list``: one line per version, a note line under a version with a problem."""
    header = f"  {'version':<30} {'created':<25} {'family':<20} {'r2':>7} {'rmse':>8} {'data':<12} {'rows':>7}"
    lines = [header]
    for e in rows:
        data = (e.data_sha256 or "-")[:12]
        count = f"{e.data_rows:,}" if isinstance(e.data_rows, int) else "-"
        lines.append(
            f"{'*' if e.current else ' '} {e.version:<30} {e.created or '-':<25} {e.family or '-':<20} "
            f"{_number(e.metrics, 'r2', 4):>7} {_number(e.metrics, 'rmse', 1):>8} {data:<12} {count:>7}"
        )
        if e.problem:
            lines.append(f"    problem: {e.problem}")
    if not rows:
        lines.append("  (no versions)")
    return "\n".join(lines)


def event_text(event: dict[str, Any]) -> str:
    """One history line: time, action, version (from the previous one), who and why."""
    source = f" (from {event.get('previous')})" if event.get("previous") else ""
    return (
        f"{event.get('time')}  {event.get('action'):<8} {event.get('version')}{source}"
        f"  by {event.get('who')}: {event.get('why')}"
    )


def cmd_registry(args: argparse.Namespace) -> int:
    """Run one registry action; user errors raise SuperKartError (one line, exit 2)."""
    from pathlib import Path

    from superkart_lib.production import registry

    root = Path(args.registry)
    if args.action == "list":
        rows = registry.entries(root)
        if args.json:
            print(json.dumps([e.as_dict() for e in rows], indent=2))
        else:
            print(list_text(rows))
    elif args.action == "add":
        version = registry.add(root, Path(args.model), Path(args.data) if args.data else None)
        print(f"added version {version} to {root} (current is {registry.current_version(root) or 'not set'})")
    elif args.action == "promote":
        event = registry.promote(root, args.version, args.who or registry.login_name(), args.why)
        print(f"current: {event['version']} (was {event['previous'] or 'not set'})")
    elif args.action == "rollback":
        event = registry.rollback(root, args.who or registry.login_name(), args.why)
        print(f"current: {event['version']} (rolled back from {event['previous']})")
    else:
        for event in registry.history(root):
            print(event_text(event))
    return 0
