"""Validate your notebooks before you submit, with an exit status you can trust.

    python validate.py                      # every notebook in this folder
    python validate.py 07_convolution_from_scratch.ipynb

It runs each notebook from a fresh kernel, the way the autograder will, and
lists every test cell that fails. It exits 0 only when all pass. (``nbgrader
validate`` prints the same findings but exits 0 even when tests fail.)

A notebook whose answer cells are all still as handed out is named as not
started ("no answer written yet") without running it; answer cells still as
handed out in a started notebook are counted.
"""
import glob
import re
import sys

STUB = re.compile(r"^(# YOUR CODE HERE|YOUR ANSWER HERE|raise NotImplementedError\(.*\))$")


def _untouched(cell):
    """Whether an answer cell is still as handed out: nbgrader's checksum of the handed-out cell (in its
    metadata) still matches; without one, the cell holds nothing but the handed-out placeholder."""
    from nbgrader.utils import compute_checksum
    checksum = cell.metadata.get("nbgrader", {}).get("checksum")
    if checksum:
        try:
            return compute_checksum(cell) == checksum
        except Exception:  # noqa: BLE001 - metadata that no longer parses: not provably untouched
            return False
    lines = [line.strip() for line in cell.source.splitlines() if line.strip()]
    return bool(lines) and all(STUB.match(line) for line in lines)


def answer_cells(path):
    """(untouched, total): how many of a notebook's answer cells are still as handed out, of how many."""
    import nbformat
    notebook = nbformat.read(path, as_version=4)
    answers = [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("solution")]
    return sum(1 for cell in answers if _untouched(cell)), len(answers)


def validate(paths):
    """Return the number of notebooks with a problem, printing what is wrong."""
    from nbgrader.validator import Validator

    validator = Validator()
    bad = 0
    for path in paths:
        try:
            untouched, total = answer_cells(path)
        except Exception:  # noqa: BLE001 - an unreadable notebook: the validator below says why
            untouched, total = 0, 0
        if total and untouched == total:
            print(f"FAILED {path}: no answer written yet ({untouched} of {total} answer cells untouched)")
            bad += 1
            continue
        try:
            results = validator.validate(path)
        except Exception as error:  # noqa: BLE001 - a broken notebook is a finding, not a crash
            print(f"FAILED {path}: could not be run ({type(error).__name__}: {error})")
            bad += 1
            continue
        problems = []
        for cell in results.get("type_changed", []):
            problems.append(f"a cell's type was changed from {cell['old_type']} to {cell['new_type']}:\n"
                            f"{cell['source'][:200]}")
        for cell in results.get("changed", []):
            problems.append(f"a test cell was edited; restore it (the autograder uses the original):\n"
                            f"{cell['source'][:200]}")
        for cell in results.get("failed", []):
            problems.append(f"{cell['raw_error'].strip()}\n  in the cell beginning: "
                            f"{cell['source'].splitlines()[0][:80]}"
                            if cell["source"] else cell["raw_error"].strip())
        blank = f"{untouched} of {total} answer cells untouched (still as handed out)" if untouched else ""
        if problems:
            bad += 1
            print(f"FAILED {path}: {len(problems)} problem(s)" + (f"; {blank}" if blank else ""))
            for problem in problems:
                print("  - " + problem.replace("\n", "\n    "))
        else:
            print(f"passed {path}" + (f" (but {blank})" if blank else ""))
    return bad


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    paths = [p for pattern in (argv or ["*.ipynb"]) for p in sorted(glob.glob(pattern))]
    if not paths:
        print("validate: no notebooks found", file=sys.stderr)
        return 2
    return 1 if validate(paths) else 0


if __name__ == "__main__":
    sys.exit(main())
