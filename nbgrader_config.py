"""nbgrader configuration for the Session 10 course unit (see README, "Instructors")."""
import os
import sys

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, COURSE_ROOT)  # so nbgrader can load the preprocessors in coursetools/

from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties, CheckCellMetadata, GetGrades, IgnorePattern, LimitOutput, SaveAutoGrades)
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402

from coursetools.grading import HarmlessStderr, HideHiddenTests, ResilientExecute  # noqa: E402

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "nn-engineers-session10"
c.CourseDirectory.root = COURSE_ROOT
# The assignment ships its helper modules and the digits; never ship caches.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".DS_Store"]

# Students: course/roster.csv, loaded by `python -m coursetools pipeline` (or `nbgrader db student import`).

# Limits per notebook. A cell that runs longer than this is interrupted and scores 0;
# the notebook's other cells still run.
c.Execute.timeout = 60
# The kernel's data segment is capped, so a memory bomb raises MemoryError in its own cell.
c.ResilientExecute.memory_limit_mb = 4096
# Output beyond these limits is cut from the autograded notebook.
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# A student who deletes a graded cell is still graded: the cell is put back.
c.OverwriteCells.add_missing_cells = True

c.Autograde.autograde_preprocessors = [
    ResilientExecute,
    HarmlessStderr,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
