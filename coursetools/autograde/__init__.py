"""Grading a class: preflight, per-student grading (grade), parallel and Dask, scores, the report.

Imports coursetools.core and coursetools.grader, never the pipeline, the tools or the CLI.
"""
