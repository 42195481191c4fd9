"""The sample corpus against its specs: every expected score and every named diagnosis.

    python -m coursetools.tools.corpus [--workers N] [--keep DIR] [--json FILE] [SPEC.toml ...]

Copies the course to a throw-away folder, regenerates the release there, collects the
specs in submissions/ (or the ones given), autogrades them all with ``grade-parallel``,
and compares each submission's code points per notebook and each ``[[message]]`` with
its spec. Prints the score table and the differences, and exits 1 on any difference.
``tests/test_corpus.py`` makes the same comparisons with the functions here; this
command makes them anywhere nbgrader runs, a GPU machine included (gpu/device_run.sh).
"""
import argparse
import json
import pathlib
import sys
import tempfile
import time

from coursetools import REPO
from coursetools.core.spec import expected_code_score


def score_problems(course, scores, spec_path):
    """How the graded code points (the core's and going further's) of the submission made from ``spec_path``
    differ from its spec."""
    from coursetools.autograde.submissions import load_spec
    spec = load_spec(spec_path)
    student = pathlib.Path(spec_path).stem
    row = scores.get(student) or {}
    problems = []
    for notebook in spec.get("submit") or course.notebooks():
        entry = row.get(notebook)
        if entry is None:
            problems.append(f"{student}: {notebook} was not graded")
            continue
        for part, further in (("code", False), ("further", True)):
            got, maximum = entry[f"{part}_score"], entry[f"max_{part}_score"]
            want = expected_code_score(spec, notebook, maximum, further)
            if got != want:
                label = " going further" if further else ""
                problems.append(f"{student}: {notebook}{label} expected {want}, got {got} of {maximum}")
    return problems


def message_problems(course, spec_path):
    """Each [[message]] of the spec that its graded cell's error does not contain."""
    from coursetools.autograde.report import autograded_notebook, failing_tests
    from coursetools.autograde.submissions import load_spec
    student = pathlib.Path(spec_path).stem
    problems = []
    for message in load_spec(spec_path)["message"]:
        notebook = autograded_notebook(course, student, message["notebook"])
        errors = [f"{ename}: {text}" for grade_id, ename, text in failing_tests(notebook)
                  if grade_id == message["grade_id"]]
        if not any(message["contains"] in error for error in errors):
            problems.append(f"{student}: {message['grade_id']} should fail with {message['contains']!r}; "
                            f"errors: {errors}")
    return problems


def diagnosis_rate(course, scores, spec_paths):
    """(share, undiagnosed stems) over the known-wrong specs (nbNN_*) that lose points.

    A spec counts as diagnosed when one of its [[message]] texts is found in a failing test whose
    message goes beyond expected and got: a "likely mistake:" or "hint:" line that names the mistake,
    or a "pattern:" line that says plainly what differs (convcheck.basic.difference_pattern).
    """
    from coursetools.autograde.report import autograded_notebook, failing_tests
    from coursetools.autograde.submissions import load_spec
    wrong, undiagnosed = [], []
    for path in spec_paths:
        stem = pathlib.Path(path).stem
        spec = load_spec(path)
        row = scores.get(stem, {})
        submitted = [row.get(notebook) for notebook in spec.get("submit") or row]
        if not stem.startswith("nb") or score_problems(course, scores, path) or \
                all(entry and entry["code_score"] == entry["max_code_score"] and
                    entry["further_score"] == entry["max_further_score"] for entry in submitted):
            continue
        wrong.append(stem)
        named = False
        for message in spec["message"]:
            notebook = autograded_notebook(course, stem, message["notebook"])
            for grade_id, _ename, text in failing_tests(notebook):
                if grade_id == message["grade_id"] and message["contains"] in text and \
                        any(marker in text for marker in ("likely mistake:", "hint:", "pattern:")):
                    named = True
        if not named:
            undiagnosed.append(stem)
    return (1 - len(undiagnosed) / len(wrong) if wrong else 1.0), undiagnosed


def check(course, spec_paths, scores=None):
    """{spec stem: [problems]} for a graded course."""
    if scores is None:
        from coursetools.autograde.scores import notebook_scores
        scores = notebook_scores(course)
    return {pathlib.Path(p).stem: score_problems(course, scores, p) + message_problems(course, p) for p in spec_paths}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m coursetools.tools.corpus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="*", type=pathlib.Path, help="spec files (default: submissions/*.toml)")
    parser.add_argument("--workers", type=int, default=None, help="grade-parallel workers (default: one per core)")
    parser.add_argument("--keep", type=pathlib.Path, help="make the course copy here and keep it")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    parser.add_argument("--no-sandbox", action="store_true", help="grade without the bubblewrap sandbox")
    args = parser.parse_args(argv)

    from coursetools.pipeline import release
    from coursetools.autograde.parallel import grade_parallel
    from coursetools.autograde.scores import format_table, notebook_scores
    from coursetools.autograde.submissions import materialize
    from coursetools.tools.trial import copy_course

    spec_paths = args.specs or sorted((REPO / "submissions").glob("*.toml"))
    missing = [str(path) for path in spec_paths if not path.is_file()]
    if missing:
        parser.error(f"no such spec file: {', '.join(missing)}")
    course = copy_course(args.keep or tempfile.mkdtemp(prefix="session10-corpus-"), sandbox=not args.no_sandbox)
    release(course)
    students = [materialize(course, path) for path in spec_paths]
    started = time.perf_counter()
    outcomes = grade_parallel(course, students, workers=args.workers)
    seconds = time.perf_counter() - started
    scores = notebook_scores(course)
    print(format_table(course, scores))
    results = check(course, spec_paths, scores)
    failed = {name: problems for name, problems in results.items() if problems}
    lost = [o["student"] for o in outcomes if not o["ok"]]
    for problems in failed.values():
        print("\n".join(problems))
    rate, undiagnosed = diagnosis_rate(course, scores, spec_paths)
    print(f"diagnosis named for {rate:.0%} of the known-wrong specs that lose points"
          + (f" (not: {', '.join(undiagnosed)})" if undiagnosed else ""))
    print(f"{len(spec_paths)} specs graded in {seconds:.0f} s by {grade_parallel.last_summary['where']}: "
          f"{len(spec_paths) - len(failed)} as their specs say, {len(failed)} not"
          + (f"; not graded: {', '.join(lost)}" if lost else ""))
    print(f"course copy: {course.root}")
    if args.json:
        args.json.write_text(json.dumps(dict(seconds=seconds, where=grade_parallel.last_summary["where"],
                                             results=results, not_graded=lost), indent=1))
    return 1 if failed or lost else 0


if __name__ == "__main__":
    sys.exit(main())
