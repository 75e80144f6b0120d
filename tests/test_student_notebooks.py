"""One source, two notebooks: the committed student notebooks are what the generator makes from the
committed solution notebooks; every check passes in the solutions and says "not yet" in the blanks."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.course.exercises import CORRECT, NOT_YET
from superkart_lib.course.student import (
    SOLUTION_START,
    has_exercises,
    main,
    student_notebook,
    write_student_notebooks,
)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOLUTIONS = sorted(NOTEBOOKS.glob("0*.ipynb"))
STUDENTS = sorted((NOTEBOOKS / "student").glob("0*.ipynb"))

ANSWER = """x = 1
# --- solution
# blank: answer = ...  # your code
answer = x + 1
# --- end solution
ex.check(answer)"""


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def without_outputs(nb: nbformat.NotebookNode) -> list[tuple]:
    """What a notebook's source is: each cell's id, type, source and metadata (no outputs, no timing)."""
    return [
        (c.get("id"), c.cell_type, c.source, {k: v for k, v in c.metadata.items() if k != "execution"})
        for c in nb.cells
    ]


def check_lines(nb: nbformat.NotebookNode) -> list[str]:
    """The printed lines of the exercise answer cells (the code cells with a solution block or its blank)."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code" and ".check(" in cell.source:
            text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            lines.extend(text.splitlines() or [f"(no output) {cell.source.splitlines()[-1]}"])
    return lines


def solution_blocks(nb: nbformat.NotebookNode) -> int:
    return sum(
        line.strip() == SOLUTION_START for c in nb.cells if c.cell_type == "code" for line in c.source.split("\n")
    )


def test_the_committed_student_notebooks_are_generated_from_the_committed_solutions():
    with_exercises = [p for p in SOLUTIONS if has_exercises(read(p))]
    assert [p.name for p in with_exercises] == [p.name for p in STUDENTS] and STUDENTS  # none missing, none stale
    for solution in with_exercises:
        generated = student_notebook(read(solution), name=solution.name)
        committed = read(NOTEBOOKS / "student" / solution.name)
        assert without_outputs(committed) == without_outputs(generated), f"run `make notebooks`: {solution.name}"
        assert committed.metadata.get("kernelspec") == generated.metadata.get("kernelspec")


@pytest.mark.parametrize("solution", [p for p in SOLUTIONS if has_exercises(read(p))], ids=lambda p: p.name)
def test_every_check_is_correct_in_the_solutions_and_not_yet_in_the_student_notebooks(solution):
    blocks = solution_blocks(read(solution))
    solved, blank = check_lines(read(solution)), check_lines(read(NOTEBOOKS / "student" / solution.name))
    assert len(solved) == len(blank) == blocks > 0
    assert all(line.endswith(f": {CORRECT}.") for line in solved), solved
    assert all(f": {NOT_YET}: " in line for line in blank), blank


def test_a_solution_block_becomes_its_blank_and_the_rest_is_kept():
    nb = new_notebook(cells=[new_markdown_cell("# Title"), new_code_cell(ANSWER, outputs=[], execution_count=3)])
    before = nbformat.writes(nb)
    student = student_notebook(nb)
    assert student.cells[1].source == "x = 1\nanswer = ...  # your code\nex.check(answer)"
    assert student.cells[0] == nb.cells[0] and student.cells[1].execution_count is None
    assert nbformat.writes(nb) == before  # the solution notebook is left as it was


def test_an_indented_block_keeps_its_indentation_and_several_blank_lines_are_kept_in_order():
    source = "\n".join(
        [
            "def f():",
            "    # --- solution",
            "    # blank: y = ...",
            "    # blank: return y",
            "    return 2",
            "    # --- end solution",
        ]
    )
    cell = student_notebook(new_notebook(cells=[new_code_cell(source)])).cells[0]
    assert cell.source == "def f():\n    y = ...\n    return y"


def test_the_student_notebook_works_in_the_solution_notebooks_workspace():
    params = new_code_cell('output_dir: str = "outputs"  # results\nseed: int = 0', metadata={"tags": ["parameters"]})
    other = new_code_cell('output_dir = "outputs"')  # not the parameters cell: left alone
    student = student_notebook(new_notebook(cells=[params, other]))
    assert student.cells[0].source == 'output_dir: str = "../outputs"  # results\nseed: int = 0'
    assert student.cells[1].source == 'output_dir = "outputs"'


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            "# --- solution\n# blank: a = ...\na = 1",
            "cell 1: the solution block at line 1 has no '# --- end solution' line",
        ),
        ("a = 1\n# --- end solution", "cell 1: line 2 ends a solution block that was never started"),
        (
            "# --- solution\n# blank: a = ...\n# --- solution\n# --- end solution",
            "line 3 starts a solution block inside",
        ),
        ("# --- solution\na = 1\n# --- end solution", "the solution block at line 1 has no '# blank:' line"),
    ],
)
def test_an_unbalanced_block_is_refused_naming_the_notebook_and_the_cell(source, problem):
    nb = new_notebook(cells=[new_markdown_cell("text"), new_code_cell(source)])
    with pytest.raises(SuperKartError, match="^lesson.ipynb, cell 1: ") as caught:
        student_notebook(nb, name="lesson.ipynb")
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_the_command_writes_only_notebooks_with_exercises_and_removes_stale_ones(tmp_path, capsys):
    nbformat.write(new_notebook(cells=[new_code_cell(ANSWER)]), tmp_path / "01_a.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), tmp_path / "02_b.ipynb")
    out = tmp_path / "student"
    out.mkdir()
    (out / "03_gone.ipynb").write_text("{}")
    assert main(["--out", str(out), str(tmp_path / "01_a.ipynb"), str(tmp_path / "02_b.ipynb")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb"]
    assert "answer = ...  # your code" in read(out / "01_a.ipynb").cells[0].source


def test_the_command_refuses_an_unbalanced_notebook_in_one_line_and_writes_nothing(tmp_path, capsys):
    nbformat.write(new_notebook(cells=[new_code_cell("# --- solution\n# blank: a = ...")]), tmp_path / "01_a.ipynb")
    assert main(["--out", str(tmp_path / "student"), str(tmp_path / "01_a.ipynb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 01_a.ipynb, cell 0: ") and err.count("\n") == 1
    assert not (tmp_path / "student").exists()


def test_write_student_notebooks_returns_what_it_wrote(tmp_path):
    nbformat.write(new_notebook(cells=[new_code_cell(ANSWER)]), tmp_path / "01_a.ipynb")
    assert write_student_notebooks([tmp_path / "01_a.ipynb"], tmp_path / "s") == [tmp_path / "s" / "01_a.ipynb"]
