"""Every sample submission in submissions/ gets exactly the score its spec expects.

The reference solution must score full marks on every autograded item, the
untouched release zero, and each known-wrong submission loses exactly the
points its spec names, with the diagnosis it names.
"""
import pathlib

import pytest

from coursetools.tools.corpus import message_problems, score_problems
from coursetools.autograde.submissions import load_spec

SPECS = sorted((pathlib.Path(__file__).resolve().parent.parent / "submissions").glob("*.toml"))


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_submission_scores_as_expected(graded_course, spec_path):
    problems = score_problems(graded_course.course, graded_course.scores, spec_path)
    assert not problems, problems


@pytest.mark.parametrize("spec_path", [p for p in SPECS if load_spec(p)["message"]],
                         ids=[p.stem for p in SPECS if load_spec(p)["message"]])
def test_submission_gets_its_diagnosis(graded_course, spec_path):
    problems = message_problems(graded_course.course, spec_path)
    assert not problems, problems


def test_reference_scores_full_marks_everywhere(graded_course):
    row = graded_course.scores["reference"]
    assert set(row) == set(graded_course.course.notebooks())
    for notebook, entry in row.items():
        assert entry["max_code_score"] > 0, f"{notebook} has no autograded points"
        assert entry["code_score"] == entry["max_code_score"], f"reference loses points in {notebook}: {entry}"


def test_reference_scores_full_marks_going_further_and_the_report_shows_it_apart(graded_course):
    from coursetools.autograde.report import render
    from coursetools.autograde.scores import totals
    row = graded_course.scores["reference"]
    further = {notebook: entry for notebook, entry in row.items() if entry["max_further_score"]}
    assert "10_summary" in further, "notebook 10 has no going-further points"
    for notebook, entry in further.items():
        assert entry["further_score"] == entry["max_further_score"], f"reference loses going further in {notebook}"
    sums = totals(row, graded_course.course.notebooks())
    assert sums["max_total"] == sums["max_code"] + sums["max_written"]   # the core's total: without going further
    report = render(graded_course.course)
    header = next(line for line in report.splitlines() if line.startswith("| student |"))
    assert header.endswith("| code | written | total | going further | flags |"), header
    reference = next(line for line in report.splitlines() if line.startswith("| reference |"))
    assert f"| {sums['further']:g}/{sums['max_further']:g} |" in reference, reference


def test_blank_release_scores_zero_on_code(graded_course):
    for notebook, entry in graded_course.scores["blank"].items():
        assert entry is not None, f"blank {notebook} not graded"
        assert entry["code_score"] == 0, f"the blank release earns points in {notebook}: {entry}"
        assert entry["further_score"] == 0, f"the blank release earns going-further points in {notebook}: {entry}"


def test_known_wrong_submissions_are_told_their_mistake(graded_course):
    """At least 90 % of the known-wrong specs that lose points get a message naming their mistake."""
    from coursetools.tools.corpus import diagnosis_rate
    rate, undiagnosed = diagnosis_rate(graded_course.course, graded_course.scores, SPECS)
    print(f"diagnosis rate {rate:.1%}; undiagnosed: {undiagnosed}")
    assert rate >= 0.9, f"only {rate:.0%} diagnosed; not: {undiagnosed}"


def test_a_spec_that_expects_otherwise_is_reported(graded_course, tmp_path):
    """The comparison can fail: the graded nb04_flipped_kernel against a spec wanting 7 points and another diagnosis."""
    original = SPECS[0].parent / "nb04_flipped_kernel.toml"
    text = original.read_text()
    changed = text.replace('"04_hand_calculations" = 6', '"04_hand_calculations" = 7')
    changed = changed.replace('contains = "flipped kernel"', 'contains = "no such diagnosis"', 1)
    assert changed.count("no such diagnosis") == 1 and "= 7" in changed
    spec_path = tmp_path / original.name  # same stem: the same graded student
    spec_path.write_text(changed)
    assert score_problems(graded_course.course, graded_course.scores, spec_path) == [
        "nb04_flipped_kernel: 04_hand_calculations expected 7, got 6.0 of 10.0"]
    (problem,) = message_problems(graded_course.course, spec_path)
    assert "nb04_test_ex41_00 should fail with 'no such diagnosis'" in problem and "flipped kernel" in problem
    assert not message_problems(graded_course.course, original)


def test_corpus_command_names_a_missing_spec(capsys, tmp_path):
    from coursetools.tools import corpus
    with pytest.raises(SystemExit) as exit_info:
        corpus.main([str(tmp_path / "nosuch.toml")])
    assert exit_info.value.code == 2
    assert "no such spec file" in capsys.readouterr().err
