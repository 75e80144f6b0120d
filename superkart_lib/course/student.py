"""The student notebooks: the solution notebooks with each exercise's solution replaced by its blank.

In a code cell of a solution notebook, the solution lines sit between two comment lines, and the
lines a student starts from follow the start marker as ``# blank:`` comments::

    # --- solution
    # blank: store_type_psi = ...  # your code: the PSI of Store_Type
    ref = reference["columns"]["Store_Type"]
    store_type_psi = ...
    # --- end solution
    ex1.check(store_type_psi)

The student version keeps everything outside the block and turns the block into its blank lines
(``store_type_psi = ...  # your code: ...``). The solution notebook runs the block as it is: the
markers are plain comments. Only notebooks with at least one block get a student version.

A student notebook lives one directory below its solution notebook (``notebooks/student/``), so a
relative ``output_dir`` default in the ``parameters`` cell gets a ``../`` in front: the student
notebook works in the same workspace as the solution one and finds the model package there.

Command line (``make notebooks`` runs it)::

    python -m superkart_lib.course.student --out notebooks/student notebooks/0*.ipynb
"""

from __future__ import annotations

import argparse
import copy
import posixpath
import re
import sys
from pathlib import Path

import nbformat

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.contract.files import write_text_atomically

SOLUTION_START = "# --- solution"
SOLUTION_END = "# --- end solution"
BLANK = "# blank:"

# The parameters cell's `output_dir: str = "outputs"  # ...` line: the default is the quoted string.
_OUTPUT_DIR = re.compile(r'^(?P<head>\s*output_dir\s*(?::\s*str\s*)?=\s*)"(?P<path>[^"]*)"', re.MULTILINE)


def _marker(line: str) -> str:
    """The marker a line is (start, end), or "" for any other line."""
    text = line.strip()
    return text if text in (SOLUTION_START, SOLUTION_END) else ""


def blank_source(source: str, where: str = "cell") -> str:
    """One code cell's source with every solution block replaced by its blank lines.

    ``where`` names the cell in the error raised for an unbalanced or empty block.
    """
    out: list[str] = []
    lines = source.split("\n")
    i = 0
    while i < len(lines):
        marker = _marker(lines[i])
        if marker == SOLUTION_END:
            raise SuperKartError(
                f"{where}: line {i + 1} ends a solution block that was never started ({SOLUTION_START!r})"
            )
        if marker != SOLUTION_START:
            out.append(lines[i])
            i += 1
            continue
        start = i
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        i += 1
        blanks = []
        while i < len(lines) and lines[i].strip().startswith(BLANK):
            text = lines[i].strip()[len(BLANK) :]
            blanks.append(indent + (text[1:] if text.startswith(" ") else text))
            i += 1
        if not blanks:
            raise SuperKartError(
                f"{where}: the solution block at line {start + 1} has no {BLANK!r} line after its start "
                "(what the student starts from)"
            )
        while i < len(lines) and _marker(lines[i]) != SOLUTION_END:
            if _marker(lines[i]) == SOLUTION_START:
                raise SuperKartError(
                    f"{where}: line {i + 1} starts a solution block inside the one at line {start + 1}"
                )
            i += 1
        if i == len(lines):
            raise SuperKartError(f"{where}: the solution block at line {start + 1} has no {SOLUTION_END!r} line")
        out.extend(blanks)
        i += 1
    return "\n".join(out)


def has_exercises(nb: nbformat.NotebookNode) -> bool:
    """Whether any code cell of ``nb`` has a solution block."""
    return any(
        _marker(line) == SOLUTION_START for c in nb.cells if c.cell_type == "code" for line in c.source.split("\n")
    )


def _one_level_down(source: str) -> str:
    """The parameters cell with a relative ``output_dir`` default made relative to ``student/``."""

    def shift(m: re.Match[str]) -> str:
        path = m["path"]
        if posixpath.isabs(path) or not path:
            return m.group(0)
        return f'{m["head"]}"{posixpath.join("..", path)}"'

    return _OUTPUT_DIR.sub(shift, source)


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of the solution notebook ``nb`` (which is left unchanged).

    Solution blocks become their blank lines, outputs and execution counts are cleared, the
    parameters cell's relative ``output_dir`` gets ``../``; every other cell, id and metadata
    is kept. Raises SuperKartError naming ``name`` and the cell for an unbalanced block.
    """
    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        cell.source = blank_source(cell.source, where=f"{name}, cell {index}")
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = _one_level_down(cell.source)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    return student


def write_student_notebooks(sources: list[Path], out_dir: Path) -> list[Path]:
    """Write ``out_dir/<name>.ipynb`` for each source notebook with exercises; returns the paths written.

    Any other ``.ipynb`` in ``out_dir`` is removed: it is a student version of a notebook that no
    longer has exercises (``out_dir`` holds generated notebooks only).
    """
    texts = {}  # every notebook is blanked before any is written: one bad marker writes nothing
    for source in sorted(sources):
        nb = nbformat.read(source, as_version=4)
        if has_exercises(nb):
            texts[out_dir / source.name] = nbformat.writes(student_notebook(nb, name=source.name))
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, text in texts.items():
        write_text_atomically(target, text if text.endswith("\n") else text + "\n")
    written = list(texts)
    for stale in set(out_dir.glob("*.ipynb")) - set(written):
        stale.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="the solution notebooks")
    parser.add_argument("--out", type=Path, required=True, help="directory for the student notebooks")
    args = parser.parse_args(argv)
    try:
        written = write_student_notebooks(args.notebooks, args.out)
    except SuperKartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("student notebooks:", ", ".join(str(p) for p in written) or "none (no notebook has exercises)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
