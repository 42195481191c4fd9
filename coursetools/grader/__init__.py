"""What nbgrader_config.py loads, and what runs while one notebook is graded.

    execution    ResilientExecute: limits, dead kernels, the judge for every test cell
    preprocessors  the sanitize and feedback preprocessors (restore cells, hide hidden tests, ...)
    judge/agent  graded test cells run in the grader; the agent answers from the student's kernel
    sandbox      the kernel under bubblewrap, with sandboxfs (its capped tmpfs mounts) and cgroups
                 (one cgroup per sandbox: memory and processes as a whole)
    pages        what a student displayed or wrote, made inert for the formgrader and the feedback
    tamper/guard the static scan of student cells and the runtime guard in the kernel
    libraryscan  library convolutions in a from-scratch answer, found in its source
    recorder     the kernel's record of what a from-scratch answer ran (sent with the agent)
    record       the grader's end of that record: its pipe and the kernel manager that opens it
    markscheme, mathjax  the formgrader's mark schemes and the feedback's local MathJax
Imports only coursetools.core.
"""
