"""The plain runner: a notebook's cells in a child Python process, without Jupyter or nbgrader.

    runner  the parent: cells from a notebook or a spec, the child started and watched, scores
    child   the child process (python -m coursetools.plain.child): runs the cells, IPython syntax
    stubs   stand-ins for matplotlib, ipywidgets and IPython where they are missing

Used by the tests, the corpus checks and the GPU check (which needs only torch and NumPy).
"""
