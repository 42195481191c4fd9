"""The GPU path, proven on a CUDA machine (issue 9).

    python3 -m coursetools.tools.gpucheck [--out reports/gpu-check.md] [--jobs N] [--quick]
    make gpu-check

The hidden tests compare students' code with PyTorch's convolution on
``convcheck.compute_device()``: ``cuda`` where there is a GPU. CI has none, so
this command proves that path on a machine that has one. It needs only
Python, torch and numpy (matplotlib, ipywidgets and IPython are stubbed when
missing), runs from the repository root, and checks:

1. reference: every notebook in source/session10 (solutions and hidden tests)
   run by ``coursetools.plain.runner``: full marks, and every reference
   convolution (``convcheck._torch_conv``) and every tolerance
   (``convcheck.tolerance``) logged with its device: on a GPU machine all
   must be ``cuda``. With CUDA it runs the notebooks that compare on the GPU
   a second time with TF32 switched off.
2. known-wrong submissions (submissions/*.toml): each still gets the score in
   its ``[expected]`` table and the diagnosis in its ``[[message]]`` texts.
3. timing: notebook 10's ``conv2d_forward`` (the capstone's reference
   solution) and notebook 07's ``conv2d_fast`` (the vectorised extension),
   both NumPy on the CPU, against ``nn.Conv2d`` on the CPU and on the GPU
   (float32, TF32 on and off), for a few sizes.
4. tolerances: for random convolutions, the largest error of F.conv2d in
   float32 and float64 on the device (TF32 on and off) against a float64
   reference, as a fraction of convcheck's bound (< 1 holds).

It prints a report, writes it as markdown to ``--out`` and as JSON beside it,
and exits 0 only when every check passed. Without CUDA everything runs on the
CPU, and the report says so at the top: the CUDA run is then still owed.
"""
import argparse
import concurrent.futures
import datetime
import fnmatch
import importlib.util
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from coursetools.plain import runner as plainrun
from coursetools.tools.gpumeasure import configured_memory_limit, memory_cap_probe, timing_section, tolerance_table

REPO = plainrun.REPO
SOURCE_DIR = plainrun.SOURCE_DIR
SUBMISSIONS = REPO / "submissions"
FALLBACK_BANNER = "no CUDA device: CPU fallback — the CUDA run is still owed"

# Runs in each notebook process before the first cell: logs the device of every
# reference convolution and every tolerance convcheck computes, per cell.
DEVICE_LOG_PRELUDE = r'''
import collections
import os

counts = collections.Counter()
tf32 = os.environ.get("GPUCHECK_TF32", "default")
if tf32 != "default":
    import torch
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32 == "on"

try:
    import convcheck          # the notebook's folder is the working directory
except ImportError:
    convcheck = None


def _kind(device):
    return str(device).split(":")[0]


if convcheck is not None:
    _torch_conv = convcheck._torch_conv
    _tolerance = convcheck.tolerance

    def logged_torch_conv(x, w, b, padding, stride, device, dtype):
        counts["reference:" + _kind(device)] += 1
        return _torch_conv(x, w, b, padding, stride, device, dtype)

    def logged_tolerance(dtype, device=None, terms=1):
        counts["tolerance:" + ("cpu" if device is None else _kind(device))] += 1
        return _tolerance(dtype, device, terms)

    logged_tolerance.__doc__, logged_tolerance.__name__ = _tolerance.__doc__, "tolerance"
    convcheck._torch_conv = logged_torch_conv
    convcheck.tolerance = logged_tolerance


def report():
    cell = dict(counts)
    counts.clear()
    return {"devices": cell} if cell else {}


register_report(report)
'''


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _installed(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def environment():
    import numpy
    import torch
    info = dict(date=_now(), python=platform.python_version(), platform=platform.platform(),
                torch=torch.__version__, numpy=numpy.__version__, cuda_available=torch.cuda.is_available(),
                cpu=cpu_model(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                load_average=[round(v, 1) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
                optional={name: _installed(name) for name in ("matplotlib", "ipywidgets", "IPython", "nbformat",
                                                              "nbgrader")})
    if info["cuda_available"]:
        properties = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    device_memory_gib=round(properties.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), device_count=torch.cuda.device_count(),
                    tf32_defaults=dict(cudnn=torch.backends.cudnn.allow_tf32,
                                       matmul=torch.backends.cuda.matmul.allow_tf32))
    else:
        info.update(device=f"CPU ({info['cpu']})")
    return info


# ---------------------------------------------------------------- 1 and 2: notebooks

def _sum_counts(counts):
    """{key: total} over dicts of counts."""
    total = {}
    for one in counts:
        for key, count in one.items():
            total[key] = total.get(key, 0) + count
    return total


def _devices(result):
    """Reference convolutions and tolerances the device prelude logged, per kind:device, over all cells."""
    return _sum_counts((cell.get("report") or {}).get("devices", {}) for cell in result["cells"])


def _off_device(devices, want):
    """Reference convolutions that did not run on ``want`` ('cuda' or 'cpu').

    Tolerances are only logged: ``tolerance(dtype, "cpu")`` is right for a result that
    student NumPy code computed on the CPU (``convcheck.conv_atol``'s default).
    """
    return {k: v for k, v in devices.items() if k.startswith("reference:") and k.split(":")[1] != want}


def _run_jobs(jobs, workers):
    """Run (key, function, args, kwargs) jobs in threads (each run is its own process); {key: result}."""
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(function, *args, **kwargs): key for key, function, args, kwargs in jobs}
        for future in concurrent.futures.as_completed(futures):
            key = futures[future]
            try:
                results[key] = future.result()
            except Exception as error:  # noqa: BLE001 - a broken spec is a finding
                results[key] = error
            print(f"  . {key if isinstance(key, str) else ' / '.join(key)}", flush=True)
    return results


def notebook_section(notebooks, specs, cuda, workers, timeout, child_env, memory_limit=0):
    want = "cuda" if cuda else "cpu"
    options = dict(timeout=timeout, prelude=DEVICE_LOG_PRELUDE, env=child_env, memory_limit_mb=memory_limit or None)
    jobs = [(("reference", name), plainrun.run_notebook, (SOURCE_DIR / f"{name}.ipynb",), options)
            for name in notebooks]
    for path in specs:
        spec = plainrun.load_spec(path)
        for name in plainrun.spec_notebook_names(spec):
            if name in notebooks:
                jobs.append(((path.stem, name), plainrun.run_notebook, (SOURCE_DIR / f"{name}.ipynb",),
                             dict(options, cells=plainrun.spec_cells(spec, name))))
    print(f"running {len(jobs)} notebook processes, {workers} at a time ...", flush=True)
    done = _run_jobs(jobs, workers)

    reference = []
    for name in notebooks:
        result = done[("reference", name)]
        if isinstance(result, Exception):
            reference.append(dict(notebook=name, passed=False, problems=[f"{type(result).__name__}: {result}"]))
            continue
        devices = _devices(result)
        off = _off_device(devices, want)
        problems = [f"{t['grade_id']}: {(t['error'] or 'partial credit').splitlines()[0][:200]}"
                    for t in result["tests"] if not t["passed"]]
        if result["crashed"]:
            problems.append(result["crashed"])
        if off:
            problems.append(f"reference convolutions not on {want}: {off}")
        reference.append(dict(notebook=name, score=result["score"], max_score=result["max_score"],
                              tests=len(result["tests"]), seconds=result["seconds"], devices=devices,
                              stubbed=result["stubbed"],
                              stub_cells=[c["index"] for c in result["cells"] if c.get("stubs")],
                              skipped=[s for c in result["cells"] for s in c.get("skipped") or []],
                              per_test={c["grade_id"]: (c.get("report") or {}).get("devices", {})
                                        for c in result["cells"] if c["kind"] == "tests"},
                              passed=not problems, problems=problems))

    submissions = []
    for path in specs:
        spec = plainrun.load_spec(path)
        results = {name: done[(path.stem, name)] for name in plainrun.spec_notebook_names(spec) if name in notebooks}
        broken = [f"{n}: {type(r).__name__}: {r}" for n, r in results.items() if isinstance(r, Exception)]
        results = {n: r for n, r in results.items() if not isinstance(r, Exception)}
        problems = broken + plainrun.spec_problems(spec, results)
        messages = []
        for message in spec["message"]:
            result = results.get(message["notebook"])
            if result is None:
                continue
            index = next((i for i, c in enumerate(result["cells"]) if c["grade_id"] == message["grade_id"]), None)
            cell = result["cells"][index] if index is not None else {}
            messages.append(dict(grade_id=message["grade_id"], contains=message["contains"],
                                 found=message["contains"] in (cell.get("evalue") or ""),
                                 devices=(cell.get("report") or {}).get("devices", {})))
        off = _sum_counts(_off_device(_devices(result), want) for result in results.values())
        if off:
            problems.append(f"reference convolutions not on {want}: {off}")
        submissions.append(dict(spec=path.stem, description=spec.get("description", ""),
                                scores={n: f"{r['score']:g}/{r['max_score']:g}" for n, r in results.items()},
                                expected={n: plainrun.expected_code_score(spec, n, r["max_score"])
                                          for n, r in results.items()},
                                messages=messages, devices={n: _devices(r) for n, r in results.items()},
                                passed=not problems, problems=problems))
    return reference, submissions


def tf32_off_section(reference, workers, timeout, child_env, memory_limit=0):
    """Run again, with TF32 off, the notebooks whose comparisons ran on cuda."""
    names = [r["notebook"] for r in reference if any(k.endswith(":cuda") for k in r.get("devices", {}))]
    env = dict(child_env, GPUCHECK_TF32="off")
    jobs = [(name, plainrun.run_notebook, (SOURCE_DIR / f"{name}.ipynb",),
             dict(timeout=timeout, prelude=DEVICE_LOG_PRELUDE, env=env, memory_limit_mb=memory_limit or None))
            for name in names]
    if not jobs:
        return []
    print(f"running {len(jobs)} notebooks again with TF32 off ...", flush=True)
    done = _run_jobs(jobs, workers)
    rows = []
    for name in names:
        result = done[name]
        if isinstance(result, Exception):
            rows.append(dict(notebook=name, passed=False, problems=[str(result)]))
            continue
        problems = [f"{t['grade_id']}: {(t['error'] or '').splitlines()[0][:200]}"
                    for t in result["tests"] if not t["passed"]]
        rows.append(dict(notebook=name, score=result["score"], max_score=result["max_score"], devices=_devices(result),
                         passed=not problems and not result["crashed"], problems=problems))
    return rows


# ---------------------------------------------------------------- report

def _fmt_seconds(cell):
    if not cell:
        return "-"
    if "seconds" not in cell:
        return cell.get("status", "-")
    seconds = cell["seconds"]
    text = (f"{seconds * 1e6:.0f} µs" if seconds < 1e-3
            else f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s")
    return text + ("" if cell.get("status", "ok") == "ok" else f" ({cell['status']})")


def _fmt_devices(devices):
    return ", ".join(f"{k} {v}" for k, v in sorted(devices.items())) or "none"


def _points(row):
    return f"{row.get('score', 0):g}/{row.get('max_score', 0):g}"


def _verdict(row, cut=None):
    """'pass', or 'FAIL: ' and the row's problems (their first ``cut`` characters)."""
    return "pass" if row["passed"] else "FAIL: " + "; ".join(row["problems"])[:cut]


def _table_head(title, columns, intro=None):
    """A section heading, an optional paragraph, and the head of a Markdown table."""
    return [title, ""] + ([intro, ""] if intro else []) + ["| " + " | ".join(columns) + " |",
                                                           "|" + "---|" * len(columns)]


def render(report):
    env, lines = report["environment"], []
    lines.append("# GPU check (issue 9)")
    lines.append("")
    if not env["cuda_available"]:
        lines.append(f"**{FALLBACK_BANNER}**")
        lines.append("")
    lines.append(f"- date: {env['date']}; command: `{report['command']}`")
    lines.append(f"- device: **{env['device']}**" + (f" (compute capability {env['capability']}, "
                                                     f"{env['device_memory_gib']} GiB, CUDA {env['cuda']}, "
                                                     f"cuDNN {env['cudnn']}, TF32 defaults: cuDNN "
                                                     f"{env['tf32_defaults']['cudnn']}, matmul "
                                                     f"{env['tf32_defaults']['matmul']})"
                                                     if env["cuda_available"] else ""))
    lines.append(f"- CPU: {env['cpu']} ({env['cpu_count']} logical CPUs; torch uses {env['torch_threads']} threads; "
                 f"load average at the start {env.get('load_average')})")
    lines.append(f"- Python {env['python']}, torch {env['torch']}, numpy {env['numpy']}; installed: "
                 + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env["optional"].items()))
    lines.append(f"- comparisons expected on: **{report['want_device']}**; notebook processes: {report['workers']} "
                 f"at a time, {report['timeout']:g} s per cell, memory cap "
                 f"{report.get('memory_limit_mb') or 'none'} MiB")
    lines.append("")
    lines.append("## Summary")
    lines.append("")
    for name, passed in report["summary"].items():
        lines.append(f"- {name}: **{'PASS' if passed else 'FAIL'}**")
    lines.append("")
    if report.get("memory_cap"):
        lines += _table_head("## 0. torch under the autograder's memory cap", ["cap", "result"],
                             "RLIMIT_DATA as `coursetools.grader.execution.ResilientExecute` sets it on the kernel "
                             "(nbgrader_config.py); every notebook process below runs under it.")
        for row in report["memory_cap"]:
            lines.append(f"| {row['cap']} | {'pass' if row['passed'] else 'FAIL'}: {row['detail']} |")
        lines.append("")
        if report.get("memory_cap_note"):
            lines.append(f"**{report['memory_cap_note']}.**")
            lines.append("")
    if report.get("reference") is not None:
        lines += _table_head("## 1. Reference solutions through every hidden test",
                             ["notebook", "code points", "tests", "time", "comparisons logged (kind:device count)",
                              "result"])
        for row in report["reference"]:
            lines.append(f"| {row['notebook']} | {_points(row)} | {row.get('tests', '-')} | "
                         f"{row.get('seconds', 0):.1f} s | {_fmt_devices(row.get('devices', {}))} | "
                         f"{_verdict(row, 400)} |")
        lines.append(f"| **all** | | | | {_fmt_devices(report.get('reference_devices', {}))} | |")
        stubbed = sorted({s for r in report["reference"] for s in r.get("stubbed", [])})
        if stubbed:
            lines.append("")
            lines.append(f"Stubbed (not installed here): {', '.join(stubbed)}; cells that imported a stub: "
                         + "; ".join(f"{r['notebook']} {r['stub_cells']}"
                                     for r in report["reference"] if r.get("stub_cells")))
        lines.append("")
    if report.get("tf32_off"):
        lines += _table_head("### The same notebooks with TF32 off",
                             ["notebook", "code points", "comparisons logged", "result"])
        for row in report["tf32_off"]:
            lines.append(f"| {row['notebook']} | {_points(row)} | {_fmt_devices(row.get('devices', {}))} | "
                         f"{_verdict(row)} |")
        lines.append("")
    if report.get("submissions") is not None:
        lines += _table_head("## 2. Known-wrong submissions",
                             ["spec", "notebook: code points (expected)", "diagnoses found", "comparisons logged",
                              "result"])
        for row in report["submissions"]:
            scores = "; ".join(f"{n}: {s} ({row['expected'][n]:g})" for n, s in row["scores"].items())
            found = sum(m["found"] for m in row["messages"])
            devices = _sum_counts(row["devices"].values())
            lines.append(f"| {row['spec']} | {scores} | {found}/{len(row['messages'])} | {_fmt_devices(devices)} | "
                         f"{_verdict(row, 400)} |")
        lines.append("")
        for name, why in (report.get("specs_left_out") or {}).items():
            lines.append(f"- left out: {name}: {why}")
        if report.get("specs_left_out"):
            lines.append("")
    if report.get("timing") is not None:
        timing = report["timing"]
        lines += _table_head("## 3. Timing: NumPy reference solutions against nn.Conv2d (float32 forward, per call)",
                             ["size", "GFLOP"] + timing["columns"])
        for row in timing["rows"]:
            lines.append(f"| {row['size']} | {row['flops'] / 1e9:.3g} | "
                         + " | ".join(_fmt_seconds(row.get(c)) for c in timing["columns"]) + " |")
        lines.append("")
        for note in timing["notes"]:
            lines.append(f"- {note}")
        lines.append("- Median time per call. NumPy columns: after one warm-up call, calls for at least 0.5 s "
                     "(one call when a call takes over a quarter of the 20 s budget); nn.Conv2d: 3 warm-up calls, "
                     "then calls for at least 0.3 s, each followed by `torch.cuda.synchronize()` on the GPU; "
                     "inputs already on the device, no autograd.")
        lines.append("")
    if report.get("tolerance") is not None:
        tol = report["tolerance"]
        lines += _table_head("## 4. Tolerances: largest error / convcheck's bound (must stay below 1)",
                             ["case", "terms per output"]
                             + [f"{k} (bound {tol['bounds'][k]:g})" for k in tol["settings"]],
                             "Error of `F.conv2d` in the dtype on the device against a float64 CPU reference, "
                             "divided by `convcheck.tolerance(dtype, device) * (sum|x*w| + |b| + 1)`.")
        for row in tol["rows"]:
            lines.append(f"| {row['case']} | {row['terms']} | "
                         + " | ".join(f"{row['ratios'][k]:.2e}" for k in tol["settings"]) + " |")
        lines.append("| **worst** | | " + " | ".join(f"**{tol['worst'][k]:.2e}**" for k in tol["settings"]) + " |")
        lines.append("")
    lines.append(f"Total time: {report['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def console_summary(report):
    env = report["environment"]
    lines = []
    if not env["cuda_available"]:
        lines.append("=" * 72)
        lines.append(FALLBACK_BANNER)
        lines.append("=" * 72)
    lines.append(f"device: {env['device']}; torch {env['torch']}; python {env['python']}")
    for row in report.get("memory_cap") or []:
        lines.append(f"  memory cap {row['cap']}: {'pass' if row['passed'] else 'FAIL'} ({row['detail']})")
    for row in report.get("reference") or []:
        lines.append(f"  reference {row['notebook']}: {'pass' if row['passed'] else 'FAIL'} "
                     f"{_points(row)}  [{_fmt_devices(row.get('devices', {}))}]"
                     + ("" if row["passed"] else "\n      " + "\n      ".join(row["problems"])))
    for row in report.get("tf32_off") or []:
        lines.append(f"  TF32 off  {row['notebook']}: {'pass' if row['passed'] else 'FAIL'} {_points(row)}")
    for row in report.get("submissions") or []:
        lines.append(f"  spec {row['spec']}: {'pass' if row['passed'] else 'FAIL'} "
                     + ", ".join(f"{n} {s}" for n, s in row["scores"].items())
                     + ("" if row["passed"] else "\n      " + "\n      ".join(row["problems"])))
    for name, passed in report["summary"].items():
        lines.append(f"{'PASS' if passed else 'FAIL'}  {name}")
    return "\n".join(lines)


def select_specs(patterns, notebooks):
    """(specs to run, {spec: why it is left out}) among submissions/*.toml."""
    specs, left_out = [], {}
    for path in sorted(SUBMISSIONS.glob("*.toml")):
        if path.stem == "reference":
            continue  # the source notebooks are the reference run
        if not any(fnmatch.fnmatch(path.stem, p) for p in patterns):
            continue
        spec = plainrun.load_spec(path)
        if not any(name in notebooks for name in plainrun.spec_notebook_names(spec)):
            continue
        reasons = plainrun.spec_unsupported(spec)
        if reasons:
            left_out[path.stem] = "tests the grading layer, not the comparisons: " + "; ".join(reasons)
        else:
            specs.append(path)
    return specs, left_out



def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m coursetools.tools.gpucheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "reports" / "gpu-check.md",
                        help="markdown report (default reports/gpu-check.md); the JSON goes beside it")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help="only these notebooks (names or prefixes such as 07); default: all")
    parser.add_argument("--specs", nargs="+", default=["*"], metavar="PATTERN",
                        help="submission specs to run (glob on the file stem; default all but reference)")
    parser.add_argument("--skip", nargs="+", default=[], choices=["reference", "submissions", "timing", "tolerance"],
                        help="leave out these parts")
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebook processes at a time (default: CPUs / 2, at most 8)")
    parser.add_argument("--timeout", type=float, default=plainrun.DEFAULT_TIMEOUT,
                        help=f"seconds per cell (default {plainrun.DEFAULT_TIMEOUT:g}, as nbgrader_config.py)")
    parser.add_argument("--quick", action="store_true", help="small timing sizes and fewer tolerance cases")
    parser.add_argument("--memory-limit-mb", type=int, default=None,
                        help="RLIMIT_DATA of each notebook process (default: nbgrader_config.py's "
                             "ResilientExecute.memory_limit_mb, as at autograde; 0 for none)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    missing = [name for name in ("torch", "numpy") if not _installed(name)]
    if missing:
        print(f"gpucheck needs {' and '.join(missing)} in this Python ({sys.executable})", file=sys.stderr)
        return 2
    import torch
    cuda = torch.cuda.is_available()
    if not cuda:
        print("=" * 72 + f"\n{FALLBACK_BANNER}\n" + "=" * 72, flush=True)
    env = environment()
    print(f"device: {env['device']}; torch {env['torch']}; numpy {env['numpy']}; python {env['python']}", flush=True)
    all_notebooks = plainrun.source_notebooks()
    notebooks = [n for n in all_notebooks
                 if not args.notebooks or any(n == s or n.startswith(s) for s in args.notebooks)]
    workers = args.jobs or max(1, min(8, (os.cpu_count() or 2) // 2))
    # each notebook process gets its share of the cores
    child_env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    report = dict(environment=env, want_device="cuda" if cuda else "cpu", workers=workers, timeout=args.timeout,
                  command="python3 -m coursetools.tools.gpucheck "
                          + " ".join(argv if argv is not None else sys.argv[1:]),
                  notebooks=notebooks, summary={})

    if "tolerance" not in args.skip:
        print("tolerances ...", flush=True)
        report["tolerance"] = tolerance_table(cuda, args.quick)
        report["summary"]["tolerances hold (float32, float64" + (", TF32 on and off)" if cuda else ", CPU)")] = \
            report["tolerance"]["passed"]
    if "timing" not in args.skip:
        print("timing ...", flush=True)
        report["timing"] = timing_section(cuda, args.quick)
        report["summary"]["timing ran, NumPy results right"] = report["timing"]["passed"]
    memory_limit = configured_memory_limit() if args.memory_limit_mb is None else args.memory_limit_mb
    report["memory_limit_mb"] = memory_limit
    if not {"reference", "submissions"} <= set(args.skip):
        print("memory cap probe ...", flush=True)
        report["memory_cap"] = memory_cap_probe(memory_limit)
        report["summary"][f"torch on {report['want_device']} under the autograder's memory cap "
                          f"({memory_limit or 'none'} MiB)"] = all(r["passed"] for r in report["memory_cap"])
        if memory_limit and report["memory_cap"][0]["passed"] and not report["memory_cap"][-1]["passed"]:
            # torch fails only under the cap: that is reported above; run the notebooks without it
            # so that the rest of the check still says something about the comparisons
            print(f"torch fails under the {memory_limit} MiB cap: the notebooks run without it", flush=True)
            memory_limit = 0
            report["memory_limit_mb"] = 0
            report["memory_cap_note"] = ("torch failed under the autograder's memory cap, so the notebooks "
                                         "below ran without a cap")
        specs, left_out = select_specs(args.specs, notebooks) if "submissions" not in args.skip else ([], {})
        report["specs_left_out"] = left_out
        names = notebooks if "reference" not in args.skip else []
        reference, submissions = notebook_section(names, specs, cuda, workers, args.timeout, child_env,
                                                  memory_limit)
        if "reference" not in args.skip:
            report["reference"] = reference
            totals = _sum_counts(row.get("devices", {}) for row in reference)
            report["reference_devices"] = totals
            used = totals.get(f"reference:{report['want_device']}", 0)
            report["summary"][f"reference solutions: full marks, all {used} reference convolutions on "
                              f"{report['want_device']} ({len(reference)} notebooks)"] = \
                all(r["passed"] for r in reference) and (used > 0 or not any(
                    k.startswith("reference:") for k in totals) and len(reference) < len(all_notebooks))
            if cuda:
                report["tf32_off"] = tf32_off_section(reference, workers, args.timeout, child_env, memory_limit)
                report["summary"]["reference solutions with TF32 off"] = all(r["passed"] for r in report["tf32_off"])
        if "submissions" not in args.skip:
            report["submissions"] = submissions
            report["summary"][f"known-wrong submissions: expected scores and diagnoses ({len(submissions)} specs)"] = \
                all(r["passed"] for r in submissions)
    report["seconds"] = time.monotonic() - started
    report["passed"] = all(report["summary"].values())

    print(console_summary(report))
    text = render(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"report: {args.out} and {args.out.with_suffix('.json')}")
    print("ALL CHECKS PASSED" if report["passed"] else "SOME CHECKS FAILED")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
