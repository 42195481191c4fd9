"""nbgrader configuration for the Session 10 course unit (see README, "Instructors")."""
import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, IgnorePattern, LimitOutput,
    OverwriteKernelspec, SaveAutoGrades)

# coursetools is installed (`make` runs pip install -e .); run from the course root, as nbgrader is,
# the course's own copy comes first.
from coursetools.core.cells import CODE_STUB
from coursetools.grader import mathjax
from coursetools.grader.pages import SanitizePages
from coursetools.grader.execution import ResilientExecute
from coursetools.grader.markscheme import AddMarkSchemes, GetGradesMarkingPending, RemoveGraderNotes
from coursetools.grader.preprocessors import HarmlessStderr, HideHiddenTests, RepairMetadata, RestoreCells, TamperCheck

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "nn-engineers-session10"
c.CourseDirectory.root = COURSE_ROOT
# The assignment ships its helper modules and the digits; never ship caches.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".DS_Store"]

# Students: grading adds every student it collects to the gradebook; for a real class, import the
# roster first (`nbgrader db student import course/roster.csv`) so names and emails are there too.

# ---- Limits (docs/grading-guarantees.md) --------------------------------------------
# Time. A cell that runs longer than Execute.timeout is interrupted and scores 0; the
# notebook's other cells still run. A notebook whose cells together run longer than
# notebook_timeout has its remaining cells marked "not run" (they score 0).
c.Execute.timeout = 60                            # seconds per cell
c.ResilientExecute.notebook_timeout = 600         # seconds per notebook (wall clock)
# Memory. The kernel's data segment (RLIMIT_DATA: heap and anonymous mappings, so NumPy
# and PyTorch tensors too) is capped: a memory bomb raises MemoryError in its own cell.
c.ResilientExecute.memory_limit_mb = 4096         # MiB per notebook kernel
# The whole sandbox (every process it starts, and the files in its tmpfs mounts) shares
# one cgroup's memory.max where the grader can make a cgroup; its work copy of the
# submission has work_mb of room beyond the handed-in files.
c.ResilientExecute.sandbox_memory_mb = 6144       # MiB per notebook sandbox
c.ResilientExecute.work_mb = 512                  # MiB
# Inside the sandbox: processes and threads at once, the largest file one process may write,
# and the size of its own /tmp, /dev/shm and HOME (each a tmpfs, so nothing lands on the grader's disk).
c.ResilientExecute.max_processes = 256
c.ResilientExecute.max_file_mb = 512               # MiB
c.ResilientExecute.scratch_mb = 512                # MiB each
# Output. A cell's output is cut while it arrives beyond these sizes, and the
# autograded notebook (and so the feedback) keeps at most max_lines lines per cell.
c.ResilientExecute.max_text_chars = 100_000       # characters of text per cell
c.ResilientExecute.max_output_bytes = 5_000_000   # bytes of output (images included) per cell
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100
# Files. A handed-in notebook or other file above these sizes is quarantined, not graded.
c.Preflight.max_notebook_mb = 50
c.Preflight.max_file_mb = 100
# Tampering with the checks (NumPy, PyTorch, math, builtins, convcheck, IPython) is reported to you.
# It cannot raise a score (the tests run in the grader, coursetools/grader/judge.py), so by default the
# notebook keeps what its answers earn; True also gives its autograded tests 0 points.
c.TamperCheck.void_on_tampering = False
# --------------------------------------------------------------------------------------

# An untouched answer cell raises NotImplementedError with a sentence that says what to do.
c.ClearSolutions.code_stub = {"python": CODE_STUB}

# A student who edits, empties or deletes a read-only or test cell is still graded:
# the original cell is put back (RestoreCells, nbgrader's OverwriteCells and more).
c.OverwriteCells.add_missing_cells = True
c.Autograde.sanitize_preprocessors = [
    RepairMetadata,
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    RestoreCells,
    CheckCellMetadata,
]

c.Autograde.autograde_preprocessors = [
    ResilientExecute,
    TamperCheck,
    LimitOutput,
    HarmlessStderr,
    SanitizePages,           # what the student displayed or wrote is inert in the formgrader and the feedback
    IgnorePattern,
    ClearMetadataPreprocessor,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
    AddMarkSchemes,          # graders read each written answer's model answer and mark scheme under it
]
# The feedback drops the graders' notes first (before HideHiddenTests, which keeps markdown as the
# student's), and gets a local MathJax last (mathjax/ beside the pages: no CDN, renders offline).
c.GenerateFeedback.preprocessors = [RemoveGraderNotes, GetGradesMarkingPending, HideHiddenTests, SanitizePages,
                                    CSSHTMLHeaderPreprocessor, mathjax.LocalMathJax]
# The formgrader renders autograded notebooks with an HTMLExporter made from this configuration:
# sanitized again as it renders, so a notebook autograded before SanitizePages existed is inert too.
c.HTMLExporter.preprocessors = [SanitizePages]
# MathJax comes from this environment (jupyter-server-mathjax): coursetools/grader/templates/ replaces
# nbconvert's loader in nbgrader's feedback and formgrade templates, which stay after it.
c.HTMLExporter.extra_template_basedirs = mathjax.template_dirs()
c.HTMLExporter.mathjax_url = mathjax.FEEDBACK_URL

