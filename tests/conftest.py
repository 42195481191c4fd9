"""Shared fixtures: a throw-away copy of the course, graded once per test session."""
import pathlib

import pytest

from coursetools.autograde.course import Course

REPO = pathlib.Path(__file__).resolve().parent.parent


class GradedCourse:
    """A course copy after release, collect, autograde, feedback and export."""

    def __init__(self, course, specs):
        from coursetools.autograde.scores import notebook_scores
        self.course = course
        self.specs = specs
        self.scores = notebook_scores(course)

    def autograded_notebook(self, student, notebook):
        from coursetools.autograde.report import autograded_notebook
        return autograded_notebook(self.course, student, notebook)


# Markers (registered in pyproject.toml), given by the fixtures a test uses, so that a new test
# is marked as soon as it asks for one: `make check` runs `-m "not corpus and not browser and not hub"`.
MARKED_BY_FIXTURE = {
    "graded_course": "corpus",   # autogrades every spec in submissions/ once per session
    "chromium": "browser",       # tests/test_browser.py: JupyterLab in the system Chromium
    "class_hub": "hub",          # tests/test_hub.py: a term through JupyterHub with local users (root)
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in MARKED_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def repo_course():
    return Course(REPO)


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """Every spec in submissions/ autograded in one copy of the course."""
    from coursetools import pipeline
    from coursetools.tools.trial import copy_course
    root = tmp_path_factory.mktemp("course")
    course = copy_course(root)
    pipeline.release(course)
    specs = pipeline.collect(course, REPO / "submissions")
    pipeline.autograde(course)
    pipeline.feedback(course)
    pipeline.export(course, str(root / "grades.csv"))
    return GradedCourse(course, specs)
