"""What a grading run reports about a submission: one event builder, and how the report treats each kind."""

# Event kinds, with how the report treats them: "alarm" (flagged in red), "warn", "note".
KINDS = {
    "tampering": ("alarm", "tampered with the grading"),
    "course_files_changed": ("alarm", "changed the course's files while graded"),
    "grading_failed": ("alarm", "could not be graded"),
    "processes_left": ("alarm", "left processes running after its kernel ended"),
    "manual_override": ("alarm", "has a hand-given score on a flagged notebook"),
    "library_ran": ("alarm", "ran a library convolution in a from-scratch answer (seen when it ran)"),
    "record_hidden": ("alarm", "hid from the grader what its from-scratch answer ran"),
    "timeout": ("warn", "timed out"),
    "notebook_timeout": ("warn", "ran out of notebook time"),
    "kernel_died": ("warn", "crashed its kernel"),
    "memory": ("warn", "ran out of memory"),
    "invalid_notebook": ("warn", "handed in an unreadable notebook"),
    "symlink": ("warn", "handed in links to files outside the submission"),
    "suspicious": ("warn", "has code to review"),
    "unreadable_code": ("warn", "ran code the grader cannot read (built at run time)"),
    "graded_name_rebound": ("warn", "changed a graded name after its answer cell (the answer cell's was graded)"),
    "contained": ("warn", "has code to review (attempts the sandbox made harmless)"),
    "resource_limit": ("warn", "reached a limit of its sandbox"),
    "active_content": ("warn", "showed scripts or other active content (removed from the pages)"),
    "missing_notebook": ("note", "did not hand in a notebook"),
    "files_written": ("note", "wrote files while graded"),
    "output_truncated": ("note", "printed too much output"),
    "setup_name_rebound": ("note", "rebound a set-up name (the tests compared with the grader's own set-up)"),
    "inputs_changed": ("note", "changed a test's input arrays in place (the test's own were kept)"),
    "cells_restored": ("note", "edited or deleted read-only or test cells (restored)"),
    "kernelspec": ("note", "changed the kernel"),
    "extra_file": ("note", "handed in extra files"),
    "retried": ("note", "was graded notebook by notebook"),
    "no_cgroup": ("note", "was graded with per-process limits only (no cgroup could be made)"),
}


def event(kind, detail, notebook=None, **extra):
    """One thing the instructor's report should say about a submission."""
    record = {"kind": kind, "detail": detail}
    if notebook:
        record["notebook"] = notebook
    record.update(extra)
    return record


def severity(kind):
    """"alarm", "warn" or "note" (an unknown kind is a note)."""
    return KINDS.get(kind, ("note",))[0]
