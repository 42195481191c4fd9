"""The plain runner: a notebook's cells in a child Python process, without Jupyter or nbgrader.

Used by the tests, the corpus checks and the GPU check (which needs only torch and NumPy).
"""
