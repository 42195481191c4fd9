"""Autograding speed: sequential nbgrader against ``coursetools grade-parallel``, the floor, per notebook.

    .venv/bin/python benchmarks/bench_autograde.py                  # N = 1, 8, 32 (long: tens of minutes)
    .venv/bin/python benchmarks/bench_autograde.py --sizes 1,4      # a quick run
    .venv/bin/python benchmarks/bench_autograde.py --sizes 8 --notebooks 01,02 --workers 3
    .venv/bin/python benchmarks/bench_autograde.py --profile-only   # only the per-notebook breakdown
    .venv/bin/python benchmarks/bench_autograde.py --overhead --sizes 4   # sandbox and judge against neither

Everything runs in a throw-away copy of the course (``--keep DIR`` keeps it);
nothing in the repository changes. It prints, measured in one run on this machine:

1. The machine: CPU model, cores, and the load average before and after each phase.
2. Fixed costs: nbgrader's start-up (one Python process importing nbgrader), one
   kernel start and shutdown, and the import of numpy / matplotlib / torch in a kernel.
3. Per notebook, for one student (the reference solution): the student's
   run-all time in a kernel (cells only, and with the kernel start), which heavy
   modules the notebook loads, its slowest cell, the same cells in one plain
   Python process (``coursetools.plain.runner``, the floor) and under nbgrader's
   autograde (the autograded notebook, hidden tests included).
4. Throughput: N synthetic submissions (the reference spec materialized under N
   student ids) graded by sequential ``nbgrader autograde`` and by
   ``python -m coursetools grade-parallel`` in two copies of the course, as
   wall seconds and CPU seconds per submission, the speedup, and whether the
   exported grade CSVs are identical.

CPU seconds are the children's user+system time (kernels, and the worker
processes of a fork server, included: the benchmark makes itself a child
subreaper so orphaned descendants are counted), which the other users of a
shared machine disturb much less than wall time; both are shown.
"""
import argparse
import contextlib
import csv
import json
import os
import pathlib
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from coursetools import ASSIGNMENT, REPO
from coursetools.autograde.course import Course

PY = sys.executable
HEAVY = ("numpy", "matplotlib", "torch", "torchvision", "ipywidgets", "scipy", "pandas")


# ----------------------------------------------------------------------------- measuring

def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def become_subreaper():
    """Adopt orphaned descendants (a fork server outliving its caller), so their CPU time is counted here."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout=30):
    """Wait for adopted descendants to exit; their CPU time then joins RUSAGE_CHILDREN."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def measure(record):
    """Fill ``record`` with wall seconds, children's CPU seconds and the load before/after."""
    record["load_before"] = load()
    wall, cpu = time.perf_counter(), children_cpu()
    yield record
    record["wall"] = time.perf_counter() - wall
    record["cpu"] = children_cpu() - cpu
    record["load_after"] = load()


def run(command, cwd, env=None):
    env = dict(os.environ, PATH=os.path.dirname(PY) + os.pathsep + os.environ.get("PATH", ""), **(env or {}))
    result = subprocess.run(command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reap_orphans()
    if result.returncode:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return result.stdout


def machine():
    model = cores = None
    try:
        text = subprocess.run(["lscpu"], text=True, stdout=subprocess.PIPE).stdout
        model = re.search(r"^Model name:\s*(.+)$", text, re.M).group(1).strip()
        cores = re.search(r"^CPU\(s\):\s*(\d+)", text, re.M).group(1)
    except (OSError, AttributeError):
        pass
    return dict(model=model or platform.processor(), cores=int(cores or os.cpu_count()),
                usable_cores=len(os.sched_getaffinity(0)), python=platform.python_version(), load=load())


# ----------------------------------------------------------------------------- the course copy

def template_course(workdir, notebooks=None):
    """A released copy of the course (only ``notebooks`` if given), and the reference solution's notebooks."""
    from coursetools import pipeline
    from coursetools.autograde.submissions import build_notebooks, load_spec
    from coursetools.tools.trial import copy_course
    course = copy_course(workdir / "template")
    if notebooks:
        for path in course.source.glob("*.ipynb"):
            if not any(path.stem.startswith(prefix) for prefix in notebooks):
                path.unlink()
    with contextlib.redirect_stdout(sys.stderr):
        pipeline.release(course)
    spec = load_spec(REPO / "submissions" / "reference.toml")
    return course, build_notebooks(course, spec)


def class_copy(template, target, n, solution):
    """Copy the released template to ``target`` and submit the reference under N student ids."""
    import nbformat
    shutil.copytree(template.root, target, ignore=shutil.ignore_patterns("__pycache__", ".grade-parallel.log"))
    course = Course(target)
    students = [f"student{i:03d}" for i in range(n)]
    first = course.submitted / students[0] / ASSIGNMENT
    first.mkdir(parents=True)
    for name, notebook in solution.items():
        nbformat.write(notebook, first / f"{name}.ipynb")
    for student in students[1:]:
        shutil.copytree(first, course.submitted / student / ASSIGNMENT)
    return course, students


def export_rows(course):
    path = course.root / "grades.csv"
    run([PY, "-m", "nbgrader", "export", "--to", str(path)], course.root)
    with open(path, newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda row: row["student_id"])


# ----------------------------------------------------------------------------- fixed costs

def fixed_costs(workdir):
    costs = {}
    with measure(costs.setdefault("nbgrader_startup", {})):
        run([PY, "-c", "import nbgrader.apps.nbgraderapp"], workdir)
    with measure(costs.setdefault("python_startup", {})):
        run([PY, "-c", "pass"], workdir)
    costs["kernel"] = kernel_costs(workdir)
    return costs


def kernel_costs(workdir, repeats=3):
    """Kernel start, graceful and immediate shutdown, and heavy imports inside a kernel (best of ``repeats``)."""
    from jupyter_client.manager import start_new_kernel
    starts, graceful, immediate, imports, cpus = [], [], [], {}, []
    for attempt in range(repeats):
        cpu0, t0 = children_cpu(), time.perf_counter()
        km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir),
                                  extra_arguments=["--HistoryManager.hist_file=:memory:"], stderr=subprocess.DEVNULL)
        starts.append(time.perf_counter() - t0)
        if attempt == 0:
            for module in ("numpy", "matplotlib.pyplot", "torch"):
                reply = []
                kc.execute_interactive(f"import time as _t; _s = _t.perf_counter(); import {module}; "
                                       f"print(_t.perf_counter() - _s)",
                                       output_hook=lambda msg: reply.append(msg["content"].get("text", "")))
                with contextlib.suppress(ValueError):
                    imports[module] = float("".join(reply).strip() or "nan")
        kc.stop_channels()
        now = attempt % 2 == 1
        t1 = time.perf_counter()
        km.shutdown_kernel(now=now)
        (immediate if now else graceful).append(time.perf_counter() - t1)
        if attempt:  # the first kernel also ran the imports
            cpus.append(children_cpu() - cpu0)
    return dict(start=min(starts), starts=starts, start_cpu=min(cpus or [float("nan")]),
                shutdown_graceful=min(graceful or [float("nan")]),
                shutdown_immediate=min(immediate or [float("nan")]), imports=imports)


# ----------------------------------------------------------------------------- per notebook

def run_in_kernel(notebook, cwd, env=None):
    """Run ``notebook`` in a fresh kernel; return kernel start, cells, shutdown seconds, per-cell seconds, modules."""
    import nbformat
    from nbclient import NotebookClient
    notebook = nbformat.from_dict(json.loads(json.dumps(notebook)))
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}}, shutdown_kernel="immediate")
    old_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        client.create_kernel_manager()
        t0 = time.perf_counter()
        client.start_new_kernel(stderr=subprocess.DEVNULL)
        client.start_new_kernel_client()
        t1 = time.perf_counter()
        cpu_start = float(_probe(client, notebook, "import time as _t; print(_t.process_time()); del _t") or "nan")
        t1 = time.perf_counter()
        cells = []
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            started = time.perf_counter()
            client.execute_cell(cell, index)
            cells.append((index, time.perf_counter() - started,
                          cell.source.splitlines()[0][:60] if cell.source else ""))
        t2 = time.perf_counter()
        errors = sum(1 for c in notebook.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "error")
        cpu_end = float(_probe(client, notebook, "import time as _t; print(_t.process_time()); del _t") or "nan")
        modules = _probe(client, notebook, f"import sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
        t3 = time.perf_counter()
        client._cleanup_kernel()
        t4 = time.perf_counter()
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return dict(kernel_start=t1 - t0, cells=t2 - t1, cells_cpu=cpu_end - cpu_start, shutdown=t4 - t3, cell_times=cells,
                modules=[m for m in modules.split(",") if m], errors=errors)


def _probe(client, notebook, code):
    """Run ``code`` in the kernel outside the notebook; return its stdout, stripped."""
    import nbformat
    probe = nbformat.v4.new_code_cell(code)
    notebook.cells.append(probe)
    try:
        client.execute_cell(probe, len(notebook.cells) - 1, store_history=False)
    finally:
        notebook.cells.pop()
    return "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream").strip()


def per_notebook(template, solution, workdir):
    """Student run-all, floor and autograde-view timings for each notebook of the reference solution."""
    import nbformat
    from coursetools.plain import runner as plainrun
    student_dir = workdir / "student-view"
    shutil.copytree(template.release, student_dir)
    course, students = class_copy(template, workdir / "profile-course", 1, solution)
    with contextlib.redirect_stdout(sys.stderr):
        seq = {}
        with measure(seq):
            run([PY, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"], course.root)
    graded_dir = course.autograded / students[0] / ASSIGNMENT
    rows = []
    for name, notebook in solution.items():
        nbformat.write(notebook, student_dir / f"{name}.ipynb")
        row = dict(notebook=name, load_before=load())
        row["student"] = run_in_kernel(notebook, student_dir)
        graded = nbformat.read(graded_dir / f"{name}.ipynb", as_version=4)
        row["autograde_view"] = run_in_kernel(graded, graded_dir, env={"NBGRADER_EXECUTION": "autograde"})
        floor = {}
        with measure(floor):
            result = plainrun.run_notebook(graded_dir / f"{name}.ipynb", timeout=120)
        row["floor"] = dict(floor, score=result["score"], max_score=result["max_score"], crashed=result["crashed"])
        row["load_after"] = load()
        rows.append(row)
    return dict(rows=rows, sequential_one=seq)


# ----------------------------------------------------------------------------- throughput

def throughput(template, solution, workdir, sizes, workers, skip_sequential=False, results=None, on_result=None):
    results = [] if results is None else results
    for n in sizes:
        entry = dict(n=n, workers=workers)
        seq_course, students = class_copy(template, workdir / f"seq-{n}", n, solution)
        par_course, _ = class_copy(template, workdir / f"par-{n}", n, solution)
        if not skip_sequential:
            with measure(entry.setdefault("sequential", {})):
                run([PY, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"], seq_course.root)
            entry["sequential"]["sandbox_cpu"] = sandbox_cpu(seq_course)
            entry["sequential"]["cpu"] += entry["sequential"]["sandbox_cpu"] or 0
            print(f"  N={n}: sequential nbgrader {entry['sequential']['wall']:.1f} s", file=sys.stderr)
        with measure(entry.setdefault("parallel", {})):
            run([PY, "-m", "coursetools", "grade-parallel", "--no-progress", "--workers", str(workers)],
                par_course.root)
        # the sandboxed kernels' CPU never reaches RUSAGE_CHILDREN: take it from their cgroups' records
        entry["parallel"]["sandbox_cpu"] = sandbox_cpu(par_course)
        entry["parallel"]["cpu"] += entry["parallel"]["sandbox_cpu"] or 0
        print(f"  N={n}: grade-parallel {entry['parallel']['wall']:.1f} s", file=sys.stderr)
        par_rows = export_rows(par_course)
        entry["graded"] = sum(1 for row in par_rows if float(row["max_score"] or 0) > 0)
        entry["score_sum"] = sum(float(row["score"] or 0) for row in par_rows)
        if not skip_sequential:
            seq_rows = export_rows(seq_course)
            entry["identical"] = seq_rows == par_rows and len(seq_rows) == n
        results.append(entry)
        if on_result:
            on_result()
        shutil.rmtree(seq_course.root, ignore_errors=True)
        shutil.rmtree(par_course.root, ignore_errors=True)
    return results


def sandbox_cpu(course):
    """CPU seconds of all the sandboxes of a graded course, from the resource records in the autograded
    notebooks (None where one had no cgroup: its figure covers the kernel alone, so the sum would understate)."""
    total, found = 0.0, False
    for path in course.autograded.rglob("*.ipynb"):
        used = json.loads(path.read_text()).get("metadata", {}).get("coursetools", {}).get("resources")
        if not used or not used.get("cgroup"):
            return None
        total, found = total + (used.get("cpu_seconds") or 0), True
    return total if found else None


def machine_cpu():
    """CPU seconds the whole machine has spent (/proc/stat): it counts the sandboxed kernels too, whose
    time never reaches RUSAGE_CHILDREN (their sandbox is killed, not waited for). Needs a quiet machine."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    busy = sum(fields[:3]) + sum(fields[5:8])  # user, nice, system, irq, softirq, steal
    return busy / os.sysconf("SC_CLK_TCK")


VARIANTS = {  # name: (grade-parallel flags, a line added to the course copy's nbgrader_config.py); first: before
    "no sandbox, tests in kernel": (["--no-sandbox"], "c.ResilientExecute.judge_tests = False"),
    "sandbox, tests in kernel": ([], "c.ResilientExecute.judge_tests = False"),
    "sandbox, tests in the grader": ([], ""),
}


def overhead(template, solution, workdir, sizes, workers, rounds=2):
    """grade-parallel under each of VARIANTS on the same class, in rotating order: wall and machine CPU."""
    results = []
    names = list(VARIANTS)
    for n in sizes:
        entry = dict(n=n, workers=workers, runs={name: [] for name in names})
        rows = []
        for round_ in range(rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                flags, config = VARIANTS[name]
                course, _ = class_copy(template, workdir / f"v{names.index(name)}-{n}-{round_}", n, solution)
                if config:
                    with open(course.root / "nbgrader_config.py", "a") as handle:
                        handle.write(f"\n{config}\n")
                figures, cpu = {}, machine_cpu()
                with measure(figures):
                    run([PY, "-m", "coursetools", "grade-parallel", "--no-progress", "--workers", str(workers),
                         *flags], course.root)
                figures["machine_cpu"] = machine_cpu() - cpu
                rows.append(export_rows(course))
                entry["runs"][name].append(figures)
                print(f"  N={n} round {round_ + 1}: {name} {figures['wall']:.1f} s", file=sys.stderr)
                shutil.rmtree(course.root, ignore_errors=True)
        entry["identical"] = all(r == rows[0] for r in rows)
        results.append(entry)
    return results


def overhead_report(info, results):
    lines = [f"machine: {info['model']}, {info['cores']} cores; Python {info['python']}; "
             f"load at start {info['load']}",
             "| N | workers | variant | wall s/sub | machine CPU s/sub | wall vs the first | CPU vs the first |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for entry in results:
        n, base = entry["n"], None
        for name, runs in entry["runs"].items():
            wall = sum(r["wall"] for r in runs) / len(runs) / n
            cpu = sum(r["machine_cpu"] for r in runs) / len(runs) / n
            base = base or (wall, cpu)
            lines.append(f"| {n} | {entry['workers']} | {name} | {wall:.2f} | {cpu:.2f} | "
                         f"{100 * (wall / base[0] - 1):+.1f} % | {100 * (cpu / base[1] - 1):+.1f} % |")
        lines.append(f"| {n} | | grades identical in every run | {'yes' if entry['identical'] else 'NO'} | | | |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- report

def report(info, costs, profile, results, n_notebooks):
    out = []
    out.append(f"machine: {info['model']}, {info['cores']} CPUs ({info['usable_cores']} usable), "
               f"Python {info['python']}, load average at start {info['load']}")
    if costs:
        k = costs["kernel"]
        out.append("\nfixed costs (wall s)")
        out.append(f"  python start-up                {costs['python_startup']['wall']:6.2f}")
        out.append(f"  nbgrader start-up (import)     {costs['nbgrader_startup']['wall']:6.2f}   "
                   f"cpu {costs['nbgrader_startup']['cpu']:.2f}")
        out.append(f"  kernel start (best of 3)       {k['start']:6.2f}   all: "
                   + ", ".join(f"{s:.2f}" for s in k["starts"]) + f"; cpu of start+shutdown {k['start_cpu']:.2f}")
        out.append(f"  kernel shutdown graceful       {k['shutdown_graceful']:6.2f}")
        out.append(f"  kernel shutdown immediate      {k['shutdown_immediate']:6.2f}")
        for module, seconds in k["imports"].items():
            out.append(f"  import {module:<22s}  {seconds:6.2f}   (in a kernel, after the ones above)")
    if profile:
        out.append("\nper notebook, reference solution: seconds wall (and CPU) -- student: Run All in a running "
                   "kernel; +kernel: with the kernel start; autograde: the autograded notebook (hidden tests) in a "
                   "fresh kernel; floor: the same cells in one plain Python process")
        out.append(f"  {'notebook':<30s} {'student':>13s} {'+kernel':>8s} {'autograde':>9s} {'floor':>13s} "
                   f"{'score':>7s}  heavy modules; slowest cell")
        totals = dict(student=0, student_cpu=0, kernel=0, auto=0, floor=0, floor_cpu=0)
        for row in profile["rows"]:
            s, a, f = row["student"], row["autograde_view"], row["floor"]
            slowest = max(s["cell_times"], key=lambda c: c[1]) if s["cell_times"] else (0, 0, "")
            out.append(f"  {row['notebook'][:30]:<30s} {s['cells']:6.2f} ({s['cells_cpu']:4.1f}) "
                       f"{s['cells'] + s['kernel_start']:8.2f} {a['kernel_start'] + a['cells'] + a['shutdown']:9.2f} "
                       f"{f['wall']:6.2f} ({f['cpu']:4.1f}) {f['score']:>3g}/{f['max_score']:<3g}  "
                       f"{','.join(s['modules']) or '-'}; cell {slowest[0]} {slowest[1]:.2f} s ({slowest[2][:40]!r})"
                       + (f"  [{s['errors']} errors]" if s["errors"] else ""))
            totals["student"] += s["cells"]
            totals["student_cpu"] += s["cells_cpu"]
            totals["kernel"] += s["cells"] + s["kernel_start"]
            totals["auto"] += a["kernel_start"] + a["cells"] + a["shutdown"]
            totals["floor"] += f["wall"]
            totals["floor_cpu"] += f["cpu"]
        out.append(f"  {'total':<30s} {totals['student']:6.2f} ({totals['student_cpu']:4.1f}) {totals['kernel']:8.2f} "
                   f"{totals['auto']:9.2f} {totals['floor']:6.2f} ({totals['floor_cpu']:4.1f})")
        worst = max(profile["rows"], key=lambda r: r["student"]["cells"])
        worst_cpu = max(profile["rows"], key=lambda r: r["student"]["cells_cpu"])
        out.append(f"  slowest student run-all: {worst['notebook']} {worst['student']['cells']:.2f} s wall; "
                   f"most CPU: {worst_cpu['notebook']} {worst_cpu['student']['cells_cpu']:.2f} s "
                   f"(target < 5 s: wall {'met' if worst['student']['cells'] < 5 else 'NOT met'}, "
                   f"cpu {'met' if worst_cpu['student']['cells_cpu'] < 5 else 'NOT met'})")
        seq = profile["sequential_one"]
        out.append(f"  one submission by nbgrader autograde: {seq['wall']:.2f} s wall, {seq['cpu']:.2f} s cpu "
                   f"(load {seq['load_before']} -> {seq['load_after']})")
        floor_cpu = totals["floor_cpu"]
        out.append(f"  floor (plain Python, one process per notebook): {totals['floor']:.2f} s wall, "
                   f"{floor_cpu:.2f} s cpu")
        profile["floor_wall"], profile["floor_cpu"] = totals["floor"], floor_cpu
    if results:
        out.append("\nthroughput (reference under N student ids)")
        out.append("  cpu/sub: the grader's processes and every sandbox's cgroup (where one could be made)")
        out.append(f"  {'N':>3s} {'seq s':>8s} {'s/sub':>6s} {'cpu/sub':>7s} {'par s':>8s} {'s/sub':>6s} "
                   f"{'cpu/sub':>7s} {'speedup':>7s}  identical  load (seq; par)")
        for e in results:
            n, p = e["n"], e["parallel"]
            q = e.get("sequential")
            seq_cols = (f"{q['wall']:8.1f} {q['wall'] / n:6.2f} {q['cpu'] / n:7.2f}" if q
                        else f"{'-':>8s} {'-':>6s} {'-':>7s}")
            speed = f"{q['wall'] / p['wall']:7.2f}" if q else f"{'-':>7s}"
            out.append(f"  {n:3d} {seq_cols} {p['wall']:8.1f} {p['wall'] / n:6.2f} {p['cpu'] / n:7.2f} {speed}  "
                       f"{str(e.get('identical', '-')):9s}  {q['load_before'] if q else '-'}->"
                       f"{q['load_after'] if q else '-'}; {p['load_before']}->{p['load_after']}")
        if profile and costs:
            k = costs["kernel"]["start"]
            budget = 2 * (profile["floor_wall"] + n_notebooks * k)
            big = results[-1]
            per_sub = big["parallel"]["wall"] / big["n"]
            out.append(f"  per-submission target: 2 x (floor {profile['floor_wall']:.2f} + {n_notebooks} x kernel "
                       f"start {k:.2f}) = {budget:.2f} s; grade-parallel at N={big['n']}: {per_sub:.2f} s wall/sub "
                       f"({'met' if per_sub <= budget else 'NOT met'})")
            k_cpu = costs["kernel"]["start_cpu"]
            cpu_budget = 2 * (profile["floor_cpu"] + n_notebooks * k_cpu)
            per_cpu = big["parallel"]["cpu"] / big["n"]
            if big["parallel"].get("sandbox_cpu") is None:
                out.append("  (no cgroup: the sandboxed kernels' CPU is not counted below; use --overhead, which "
                           "counts the whole machine's)")
            out.append(f"  same in CPU seconds: 2 x (floor {profile['floor_cpu']:.2f} + {n_notebooks} x "
                       f"kernel start+shutdown "
                       f"{k_cpu:.2f}) = {cpu_budget:.2f}; grade-parallel {per_cpu:.2f} cpu/sub "
                       f"({'met' if per_cpu <= cpu_budget else 'NOT met'})")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,8,32", help="class sizes N, comma-separated (default 1,8,32)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="grade-parallel workers (default: usable cores)")
    parser.add_argument("--notebooks", help="only these notebooks (name prefixes, e.g. 01,02)")
    parser.add_argument("--profile-only", action="store_true", help="fixed costs and per-notebook table only")
    parser.add_argument("--no-profile", action="store_true", help="throughput table only")
    parser.add_argument("--skip-sequential", action="store_true", help="grade-parallel only (no speedup)")
    parser.add_argument("--keep", type=pathlib.Path, help="work in this folder and keep it")
    parser.add_argument("--json", type=pathlib.Path, help="also write the raw figures here")
    parser.add_argument("--overhead", action="store_true",
                        help="only grade-parallel with the sandbox and the judge, with the sandbox alone, and "
                             "with neither, for each size")
    args = parser.parse_args(argv)

    become_subreaper()
    workdir = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="bench-autograde-"))
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"working in {workdir}; load {info['load']}", file=sys.stderr)
    notebooks = args.notebooks.split(",") if args.notebooks else None
    template, solution = template_course(workdir, notebooks)
    print(f"notebooks: {', '.join(solution)}", file=sys.stderr)
    figures = dict(machine=info, costs=None, profile=None, throughput=[], notebooks=list(solution))
    if args.overhead:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        figures["overhead"] = overhead(template, solution, workdir, sizes, args.workers)
        info["load_end"] = load()
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1, default=str))
        print(overhead_report(info, figures["overhead"]))
        print(f"load average at end {info['load_end']}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0 if all(r["identical"] for r in figures["overhead"]) else 1

    def save():  # after every phase, so a long run that is stopped keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1, default=str))

    if not args.no_profile:
        figures["costs"] = fixed_costs(workdir)
        save()
        figures["profile"] = per_notebook(template, solution, workdir)
        save()
    if not args.profile_only:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        throughput(template, solution, workdir, sizes, args.workers, args.skip_sequential,
                   results=figures["throughput"], on_result=save)
    info["load_end"] = load()
    save()
    results = figures["throughput"]
    text = report(info, figures["costs"], figures["profile"], results, len(solution))
    print(text)
    print(f"load average at end {info['load_end']}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r.get("identical", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
