"""Exercises say "Correct" or precisely what is wrong, and a blank answer never raises."""

from __future__ import annotations

import pytest

from superkart_lib.course.exercises import CORRECT, NOT_YET, Exercise, close_to


@pytest.fixture
def exercise() -> Exercise:
    return Exercise("mean", close_to(2.5, 1e-9, "the mean"), "add them up, divide by four", "answer = sum(xs) / 4")


def test_a_right_answer_is_correct(exercise, capsys):
    exercise.check(2.5)
    assert capsys.readouterr().out == f"mean: {CORRECT}.\n" and exercise.passed


def test_a_wrong_answer_says_how_far_off_and_what_was_expected(exercise, capsys):
    exercise.check(3.0)
    out = capsys.readouterr().out
    assert out.startswith(f"mean: {NOT_YET}: ") and "the mean is 2.5; yours is 3 (off by +0.5)" in out
    assert not exercise.passed


def test_a_blank_answer_is_not_yet_without_raising(exercise, capsys):
    exercise.check(...)
    assert "replace `...` with your answer" in capsys.readouterr().out and not exercise.passed


def test_an_answer_of_the_wrong_type_is_feedback_not_a_crash(exercise, capsys):
    exercise.check("two and a half")
    out = capsys.readouterr().out
    assert f"{NOT_YET}: your answer could not be checked (ValueError" in out and not exercise.passed


def test_a_later_right_answer_passes_after_a_wrong_one(exercise, capsys):
    exercise.check(1.0)
    exercise.check(2.5)
    assert exercise.passed


def test_hint_and_solution_print_their_text(exercise, capsys):
    exercise.hint()
    exercise.solution()
    out = capsys.readouterr().out
    assert "Hint (mean): add them up, divide by four" in out and "answer = sum(xs) / 4" in out
