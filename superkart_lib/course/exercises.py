"""Exercises with immediate feedback: ``check()``, ``hint()`` and ``solution()``, in the style of Kaggle Learn.

A notebook defines an :class:`Exercise` with a checker that computes the expected result itself
(from the library, never a number typed in) and says precisely what is wrong. A student's cell
starts with its answer as ``...``; ``check`` then says "not yet" without raising, so a notebook
with every exercise left blank still runs top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What ``check`` prints first: the student notebook is checked for "not yet", the solutions for "correct".
CORRECT, NOT_YET = "Correct", "Not yet"


@dataclass
class Exercise:
    """One exercise.

    Parameters
    ----------
    title : str
        Shown with every message.
    checker : callable
        ``checker(answer)`` returns None when the answer is right, else one sentence saying what
        is wrong (and, where it helps, what was expected).
    hint_text, solution_code : str
        What :meth:`hint` and :meth:`solution` print.
    """

    title: str
    checker: Callable[[Any], str | None]
    hint_text: str
    solution_code: str
    #: Whether the last :meth:`check` passed.
    passed: bool = False

    def check(self, answer: Any) -> None:
        """Print whether ``answer`` is right and, if not, what is wrong (also kept in :attr:`passed`)."""
        if answer is Ellipsis:
            problem: str | None = "replace `...` with your answer, then run this cell again."
        else:
            try:
                problem = self.checker(answer)
            except Exception as exc:  # a wrong type of answer is feedback, not a crash
                problem = f"your answer could not be checked ({type(exc).__name__}: {exc})."
        self.passed = problem is None
        print(f"{self.title}: {CORRECT}." if problem is None else f"{self.title}: {NOT_YET}: {problem}")

    def hint(self) -> None:
        """Print the hint."""
        print(f"Hint ({self.title}): {self.hint_text}")

    def solution(self) -> None:
        """Print the solution's code."""
        print(f"Solution ({self.title}):\n{self.solution_code.strip()}")


def close_to(expected: float, tolerance: float, what: str) -> Callable[[Any], str | None]:
    """A checker for a number: right within ``tolerance``, else it says how far off and the expected value."""

    def check(answer: Any) -> str | None:
        value = float(answer)
        if abs(value - expected) <= tolerance:
            return None
        return f"{what} is {expected:.4g}; yours is {value:.4g} (off by {value - expected:+.4g})."

    return check
