"""The names a grader or a tool replaces on the package, and how every check reads them.

Five names of ``convcheck`` are meant to be replaced on the package itself:

* ``GRADING_SEED``: set by the grader (``coursetools/grader/judge.py``, ``Judge.arm_checks``) so that
  ``rng`` draws inputs no student can know in advance;
* ``_reject_library_conv``: replaced by the grader, which reads the submitted source instead;
* ``_left_by_call``: replaced by the grader, whose calls run on the kernel's copies of a test's arrays:
  it answers what the student's code left in its copy (the test's own array is never written);
* ``_torch_conv`` and ``tolerance``: wrapped by the GPU check (``coursetools/tools/gpucheck.py``) to log
  the device of every reference convolution and tolerance.

A submodule never binds these names when it is imported: it reads ``hooks.package.NAME`` when a check
runs, so an assignment on the package reaches every check.
"""
import sys

# The package this module belongs to, as it is being loaded; at grading, the grader's fresh copy.
package = sys.modules[__name__.rpartition(".")[0]]
