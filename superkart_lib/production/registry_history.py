"""A registry's history: one JSON line per promotion or rollback, read back as a stack.

``DIR/history.jsonl`` is append-only; each line is ``{"time", "action", "version", "previous",
"who", "why"}``. A rollback returns to the version that was current before the current one was
promoted: :func:`promotion_stack` replays the lines (a promotion pushes, a rollback pops).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from superkart_lib.contract.files import fsync_path

HISTORY = "history.jsonl"
PROMOTE, ROLLBACK = "promote", "rollback"


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every promotion and rollback in the history file ``path``, oldest first; a line torn by a crash is skipped."""
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict) and item.get("action") in (PROMOTE, ROLLBACK):
                lines.append(item)
    return lines


def promotion_stack(events: list[dict[str, Any]]) -> list[str]:
    """The versions a rollback returns to, bottom first: the history replayed (promote pushes, rollback pops).

    A move the history missed (the pointer changed by hand, a crash between the move and its line)
    is taken from the event's ``previous``, so the stack still ends with what was current before.
    """
    stack: list[str] = []
    for event in events:
        version, previous = event.get("version"), event.get("previous")
        if not isinstance(version, str):
            continue
        if event["action"] == PROMOTE:
            if isinstance(previous, str) and (not stack or stack[-1] != previous):
                stack.append(previous)
            stack.append(version)
        else:
            if stack and stack[-1] == previous:
                stack.pop()
            if not stack or stack[-1] != version:
                stack.append(version)
    return stack


def append_event(path: Path, event: dict[str, Any]) -> None:
    """Append one event as a JSON line and flush it to disk (a torn last line is closed first)."""
    line = json.dumps(event, sort_keys=False, ensure_ascii=False) + "\n"
    new = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a line torn by a crash: start a fresh one
            line = "\n" + line
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_path(path.parent)
