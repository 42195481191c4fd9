"""Validate your notebooks before you submit, with an exit status you can trust.

    python validate.py                      # every notebook in this folder
    python validate.py 07_convolution_from_scratch.ipynb

It runs each notebook from a fresh kernel, the way the autograder will, and
lists every test cell that fails. It exits 0 only when all pass. (``nbgrader
validate`` prints the same findings but exits 0 even when tests fail.)
"""
import glob
import sys


def validate(paths):
    """Return the number of notebooks with a problem, printing what is wrong."""
    from nbgrader.validator import Validator

    validator = Validator()
    bad = 0
    for path in paths:
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
            problems.append(f"{cell['raw_error'].strip()}\n  in the cell beginning: {cell['source'].splitlines()[0][:80]}"
                            if cell["source"] else cell["raw_error"].strip())
        if problems:
            bad += 1
            print(f"FAILED {path}: {len(problems)} problem(s)")
            for problem in problems:
                print("  - " + problem.replace("\n", "\n    "))
        else:
            print(f"passed {path}")
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
