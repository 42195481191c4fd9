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
import tempfile
import sys
import time

from coursetools.plain import runner as plainrun

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

TIMING_MARK = "GPUCHECK-TIMING "
# Appended to the notebook's own cells in the timing process; __MARK__, __FUNCTION__ and __ARGS__ filled in.
TIMING_CELL = r'''
def _gpucheck_timing(function, style, sizes, budget, min_time):
    import json as _json
    import time as _time
    import numpy as _np
    import torch as _torch
    import torch.nn.functional as _F

    def call(x, w, p):
        if style == "batched":
            return function(x, w, None, stride=1, padding=p)
        return function(x[0, 0], w[0, 0], padding=p, stride=1)[None, None]

    rows, previous = [], None
    for size in sizes:
        n, c_in, h, c_out, k, p = (size[key] for key in ("n", "c_in", "h", "c_out", "k", "p"))
        if style == "2d" and (n, c_in, c_out) != (1, 1, 1):
            rows.append(dict(size=size["name"], status="n/a (one image, one channel)"))
            continue
        flops = 2.0 * n * c_out * c_in * k * k * h * h
        if previous is not None and previous[0] / previous[1] * flops > budget:
            rows.append(dict(size=size["name"], status=f"skipped (estimated over {budget:g} s)"))
            continue
        rng = _np.random.default_rng(9)
        x = rng.standard_normal((n, c_in, h, h)).astype(_np.float32)
        w = rng.standard_normal((c_out, c_in, k, k)).astype(_np.float32)
        start = _time.perf_counter()
        got = _np.asarray(call(x, w, p))                       # warm-up, and the answer to check
        first = _time.perf_counter() - start
        want = _F.conv2d(_torch.from_numpy(x).double(), _torch.from_numpy(w).double(), padding=p).numpy()
        bound = 1e-5 * (_F.conv2d(_torch.from_numpy(_np.abs(x)).double(), _torch.from_numpy(_np.abs(w)).double(),
                                  padding=p).numpy() + 1.0)
        right = got.shape == want.shape and bool(_np.all(_np.abs(got - want) <= bound))
        times = []
        while len(times) < 50 and (sum(times) < min_time or len(times) < 3) and not (first > budget / 4 and times):
            start = _time.perf_counter()
            call(x, w, p)
            times.append(_time.perf_counter() - start)
        times.sort()
        seconds, reps = times[len(times) // 2], len(times)
        previous = (seconds, flops)
        rows.append(dict(size=size["name"], seconds=seconds, reps=reps, right=right,
                         status="ok" if right else "WRONG RESULT"))
    print(__MARK__ + _json.dumps(rows))


_gpucheck_timing(__FUNCTION__, __ARGS__)
'''

SIZES = [
    dict(name="1 digit: 1x1x28x28, 1 filter 3x3", n=1, c_in=1, h=28, c_out=1, k=3, p=1),
    dict(name="1 image: 1x1x128x128, 1 filter 3x3", n=1, c_in=1, h=128, c_out=1, k=3, p=1),
    dict(name="batch: 16x3x32x32 -> 16, 3x3", n=16, c_in=3, h=32, c_out=16, k=3, p=1),
    dict(name="layer: 32x32x32x32 -> 64, 3x3", n=32, c_in=32, h=32, c_out=64, k=3, p=1),
    dict(name="big: 64x64x56x56 -> 64, 3x3", n=64, c_in=64, h=56, c_out=64, k=3, p=1),
]
QUICK_SIZES = SIZES[:1] + [dict(name="batch: 4x3x16x16 -> 8, 3x3", n=4, c_in=3, h=16, c_out=8, k=3, p=1)]
TIMED_FUNCTIONS = [("conv2d_forward", "capstone (nb 10), NumPy"), ("conv2d_fast", "vectorised extension (nb 07), NumPy")]

TOLERANCE_CASES = [
    # (name, N, C_in, H, W, C_out, kH, kW, padding, stride, input scale)
    ("digit-like 1x1x28x28, 3x3", 1, 1, 28, 28, 1, 3, 3, 1, 1, "unit"),
    ("4x3x32x32 -> 8, 5x5", 4, 3, 32, 32, 8, 5, 5, 2, 1, "normal"),
    ("2x64x16x16 -> 32, 3x3", 2, 64, 16, 16, 32, 3, 3, 1, 1, "normal"),
    ("2x128x14x14 -> 16, 7x7, stride 2", 2, 128, 14, 14, 16, 7, 7, 3, 2, "normal"),
    ("1x16x40x40 -> 8, 3x3, large values", 1, 16, 40, 40, 8, 3, 3, 1, 1, "large"),
]


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
        info.update(device=torch.cuda.get_device_name(0), capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    device_memory_gib=round(properties.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), device_count=torch.cuda.device_count(),
                    tf32_defaults=dict(cudnn=torch.backends.cudnn.allow_tf32,
                                       matmul=torch.backends.cuda.matmul.allow_tf32))
    else:
        info.update(device=f"CPU ({info['cpu']})")
    return info


def load_convcheck():
    spec = importlib.util.spec_from_file_location("convcheck", SOURCE_DIR / "convcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- 4. tolerances

def _tf32(on):
    import torch
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def tolerance_table(cuda, quick=False):
    """Largest |F.conv2d(dtype, device) - float64 reference| / convcheck's bound, per case and setting."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    convcheck = load_convcheck()
    settings = [("cpu", "float32", None), ("cpu", "float64", None)]
    if cuda:
        settings += [("cuda", "float32", True), ("cuda", "float32", False),
                     ("cuda", "float64", True), ("cuda", "float64", False)]
    cases = TOLERANCE_CASES[:2] if quick else TOLERANCE_CASES
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) if cuda else None
    rows = []
    try:
        for name, n, c_in, h, w, c_out, kh, kw, padding, stride, scale in cases:
            rng = np.random.default_rng(len(rows) + 90)
            if scale == "unit":
                x = rng.integers(0, 256, size=(n, c_in, h, w)) / 255.0
            else:
                x = rng.standard_normal((n, c_in, h, w)) * (1000.0 if scale == "large" else 1.0)
            weight = rng.standard_normal((c_out, c_in, kh, kw))
            bias = rng.standard_normal(c_out)
            tx, tw, tb = (torch.from_numpy(a) for a in (x, weight, bias))
            with torch.no_grad():
                want = F.conv2d(tx, tw, tb, stride=stride, padding=padding).numpy()
                magnitude = F.conv2d(tx.abs(), tw.abs(), tb.abs(), stride=stride, padding=padding).numpy()
            row = dict(case=name, terms=c_in * kh * kw, ratios={})
            for device, dtype, tf32 in settings:
                if tf32 is not None:
                    _tf32(tf32)
                torch_dtype = getattr(torch, dtype)
                with torch.no_grad():
                    got = F.conv2d(tx.to(device, torch_dtype), tw.to(device, torch_dtype), tb.to(device, torch_dtype),
                                   stride=stride, padding=padding).double().cpu().numpy()
                bound = convcheck.tolerance(np.dtype(dtype), device, row["terms"]) * (magnitude + 1.0)
                key = f"{device} {dtype}" + ("" if tf32 is None else f" TF32 {'on' if tf32 else 'off'}")
                row["ratios"][key] = float(np.max(np.abs(got - want) / bound))
            rows.append(row)
    finally:
        if saved:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    keys = list(rows[0]["ratios"]) if rows else []
    bounds = {key: convcheck.tolerance(np.dtype(key.split()[1]), key.split()[0]) for key in keys}
    worst = {key: max(r["ratios"][key] for r in rows) for key in keys}
    return dict(rows=rows, settings=keys, bounds=bounds, worst=worst, passed=all(v < 1.0 for v in worst.values()))


# ---------------------------------------------------------------- 3. timing

def _time_call(run, sync, min_time=0.3, max_reps=200, warmup=3):
    """Median seconds per call (each call timed alone, synchronized), and the number of calls timed."""
    for _ in range(warmup):
        run()
    sync()
    times, begin = [], time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - begin < min_time and len(times) < max_reps):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], len(times)


def torch_timings(sizes, cuda):
    """nn.Conv2d forward (float32, no grad) per size on the CPU and, with CUDA, on the GPU with TF32 on and off."""
    import numpy as np
    import torch
    threads = torch.get_num_threads()
    columns = [f"nn.Conv2d cpu ({threads} threads)", "nn.Conv2d cpu (1 thread)"] + \
        (["nn.Conv2d cuda (TF32 on)", "nn.Conv2d cuda (TF32 off)"] if cuda else [])
    table = {}
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) if cuda else None
    try:
        for size in sizes:
            rng = np.random.default_rng(9)
            x = torch.from_numpy(rng.standard_normal((size["n"], size["c_in"], size["h"], size["h"])).astype(np.float32))
            layer = torch.nn.Conv2d(size["c_in"], size["c_out"], size["k"], padding=size["p"], bias=False)
            for column in columns:
                device = "cuda" if "cuda" in column else "cpu"
                if device == "cuda":
                    _tf32("TF32 on" in column)
                    sync = torch.cuda.synchronize
                else:
                    def sync():
                        pass
                moved, layer_on = x.to(device), layer.to(device)
                torch.set_num_threads(1 if "1 thread" in column else threads)
                with torch.no_grad():
                    seconds, reps = _time_call(lambda: layer_on(moved), sync)
                torch.set_num_threads(threads)
                table.setdefault(size["name"], {})[column] = dict(seconds=seconds, reps=reps, status="ok")
            layer.to("cpu")
    finally:
        if saved:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    return columns, table


def find_definition(name):
    """(notebook path, cells up to and including the solution cell that defines ``name``), or None."""
    for path in sorted(SOURCE_DIR.glob("*.ipynb")):
        cells = plainrun.code_cells(plainrun.read_notebook(path))
        for position, cell in enumerate(cells):
            if f"def {name}(" in cell["source"]:
                keep = [c for c in cells[:position] if c["kind"] in ("readonly", "solution")] + [cell]
                return path, keep
    return None


def numpy_timings(sizes, quick=False):
    """Time the notebooks' reference solutions in a plain process each; returns (columns, table, notes)."""
    columns, table, notes = [], {}, []
    for name, label in TIMED_FUNCTIONS:
        found = find_definition(name)
        column = f"{name} ({label})"
        if found is None:
            notes.append(f"{name}: not found in source/session10 (its notebook is not written yet): not timed")
            continue
        path, cells = found
        style = "batched" if name == "conv2d_forward" else "2d"
        arguments = ", ".join(repr(a) for a in (style, sizes, 5.0 if quick else 20.0, 0.2 if quick else 0.5))
        cell = TIMING_CELL.replace("__MARK__", repr(TIMING_MARK)).replace("__FUNCTION__", name) \
            .replace("__ARGS__", arguments)
        result = plainrun.run_notebook(path, timeout=600, cells=cells + [dict(source=cell, kind="code")])
        timing_cell = result["cells"][-1]
        lines = [line for line in (timing_cell.get("stdout") or "").splitlines() if line.startswith(TIMING_MARK)]
        if timing_cell["status"] != "ok" or not lines:
            notes.append(f"{name} ({path.name}): timing failed: {timing_cell.get('ename')}: "
                         f"{(timing_cell.get('evalue') or '')[:300]}")
            continue
        columns.append(column)
        for row in json.loads(lines[0][len(TIMING_MARK):]):
            table.setdefault(row["size"], {})[column] = row
        notes.append(f"{name}: the reference solution from {path.name}, run on the CPU "
                     f"({'whole batch' if style == 'batched' else 'one 2-D image and kernel'})")
    return columns, table, notes


def timing_section(cuda, quick=False):
    sizes = QUICK_SIZES if quick else SIZES
    numpy_columns, numpy_table, notes = numpy_timings(sizes, quick)
    torch_columns, torch_table = torch_timings(sizes, cuda)
    rows = []
    for size in sizes:
        rows.append(dict(size=size["name"], flops=2 * size["n"] * size["c_out"] * size["c_in"] * size["k"] ** 2 *
                         size["h"] ** 2, **{c: numpy_table.get(size["name"], {}).get(c) for c in numpy_columns},
                         **{c: torch_table.get(size["name"], {}).get(c) for c in torch_columns}))
    wrong = [f"{r['size']}: {c}" for r in rows for c in numpy_columns if (r.get(c) or {}).get("status") == "WRONG RESULT"]
    missing = [n for n in notes if "timing failed" in n]
    return dict(columns=numpy_columns + torch_columns, rows=rows, notes=notes, passed=not wrong and not missing,
                problems=wrong + missing)


# ---------------------------------------------------------------- 1 and 2: notebooks

def _devices(result):
    total = {}
    for cell in result["cells"]:
        for key, count in (cell.get("report") or {}).get("devices", {}).items():
            total[key] = total.get(key, 0) + count
    return total


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
                              stubbed=result["stubbed"], stub_cells=[c["index"] for c in result["cells"] if c.get("stubs")],
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
        off = {}
        for result in results.values():
            for key, count in _off_device(_devices(result), want).items():
                off[key] = off.get(key, 0) + count
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
        problems = [f"{t['grade_id']}: {(t['error'] or '').splitlines()[0][:200]}" for t in result["tests"] if not t["passed"]]
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
    text = f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"
    return text + ("" if cell.get("status", "ok") == "ok" else f" ({cell['status']})")


def _fmt_devices(devices):
    return ", ".join(f"{k} {v}" for k, v in sorted(devices.items())) or "none"


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
                                                     f"{env['tf32_defaults']['matmul']})" if env["cuda_available"] else ""))
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
        lines.append("## 0. torch under the autograder's memory cap")
        lines.append("")
        lines.append("RLIMIT_DATA as `coursetools.grader.execution.ResilientExecute` sets it on the kernel "
                     "(nbgrader_config.py); every notebook process below runs under it.")
        lines.append("")
        lines.append("| cap | result |")
        lines.append("|---|---|")
        for row in report["memory_cap"]:
            lines.append(f"| {row['cap']} | {'pass' if row['passed'] else 'FAIL'}: {row['detail']} |")
        lines.append("")
        if report.get("memory_cap_note"):
            lines.append(f"**{report['memory_cap_note']}.**")
            lines.append("")
    if report.get("reference") is not None:
        lines.append("## 1. Reference solutions through every hidden test")
        lines.append("")
        lines.append("| notebook | code points | tests | time | comparisons logged (kind:device count) | result |")
        lines.append("|---|---|---|---|---|---|")
        for row in report["reference"]:
            lines.append(f"| {row['notebook']} | {row.get('score', 0):g}/{row.get('max_score', 0):g} | "
                         f"{row.get('tests', '-')} | {row.get('seconds', 0):.1f} s | {_fmt_devices(row.get('devices', {}))} | "
                         f"{'pass' if row['passed'] else 'FAIL: ' + '; '.join(row['problems'])[:400]} |")
        lines.append(f"| **all** | | | | {_fmt_devices(report.get('reference_devices', {}))} | |")
        stubbed = sorted({s for r in report["reference"] for s in r.get("stubbed", [])})
        if stubbed:
            lines.append("")
            lines.append(f"Stubbed (not installed here): {', '.join(stubbed)}; cells that imported a stub: "
                         + "; ".join(f"{r['notebook']} {r['stub_cells']}" for r in report["reference"] if r.get("stub_cells")))
        lines.append("")
    if report.get("tf32_off"):
        lines.append("### The same notebooks with TF32 off")
        lines.append("")
        lines.append("| notebook | code points | comparisons logged | result |")
        lines.append("|---|---|---|---|")
        for row in report["tf32_off"]:
            lines.append(f"| {row['notebook']} | {row.get('score', 0):g}/{row.get('max_score', 0):g} | "
                         f"{_fmt_devices(row.get('devices', {}))} | {'pass' if row['passed'] else 'FAIL: ' + '; '.join(row['problems'])} |")
        lines.append("")
    if report.get("submissions") is not None:
        lines.append("## 2. Known-wrong submissions")
        lines.append("")
        lines.append("| spec | notebook: code points (expected) | diagnoses found | comparisons logged | result |")
        lines.append("|---|---|---|---|---|")
        for row in report["submissions"]:
            scores = "; ".join(f"{n}: {s} ({row['expected'][n]:g})" for n, s in row["scores"].items())
            found = sum(m["found"] for m in row["messages"])
            devices = {}
            for per_notebook in row["devices"].values():
                for k, v in per_notebook.items():
                    devices[k] = devices.get(k, 0) + v
            lines.append(f"| {row['spec']} | {scores} | {found}/{len(row['messages'])} | {_fmt_devices(devices)} | "
                         f"{'pass' if row['passed'] else 'FAIL: ' + '; '.join(row['problems'])[:400]} |")
        lines.append("")
        for name, why in (report.get("specs_left_out") or {}).items():
            lines.append(f"- left out: {name}: {why}")
        if report.get("specs_left_out"):
            lines.append("")
    if report.get("timing") is not None:
        timing = report["timing"]
        lines.append("## 3. Timing: NumPy reference solutions against nn.Conv2d (float32 forward, per call)")
        lines.append("")
        lines.append("| size | GFLOP | " + " | ".join(timing["columns"]) + " |")
        lines.append("|---|---|" + "---|" * len(timing["columns"]))
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
        lines.append("## 4. Tolerances: largest error / convcheck's bound (must stay below 1)")
        lines.append("")
        lines.append("Error of `F.conv2d` in the dtype on the device against a float64 CPU reference, divided by "
                     "`convcheck.tolerance(dtype, device) * (sum|x*w| + |b| + 1)`.")
        lines.append("")
        lines.append("| case | terms per output | " + " | ".join(f"{k} (bound {tol['bounds'][k]:g})" for k in tol["settings"]) + " |")
        lines.append("|---|---|" + "---|" * len(tol["settings"]))
        for row in tol["rows"]:
            lines.append(f"| {row['case']} | {row['terms']} | " + " | ".join(f"{row['ratios'][k]:.2e}" for k in tol["settings"]) + " |")
        lines.append(f"| **worst** | | " + " | ".join(f"**{tol['worst'][k]:.2e}**" for k in tol["settings"]) + " |")
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
                     f"{row.get('score', 0):g}/{row.get('max_score', 0):g}  [{_fmt_devices(row.get('devices', {}))}]"
                     + ("" if row["passed"] else "\n      " + "\n      ".join(row["problems"])))
    for row in report.get("tf32_off") or []:
        lines.append(f"  TF32 off  {row['notebook']}: {'pass' if row['passed'] else 'FAIL'} "
                     f"{row.get('score', 0):g}/{row.get('max_score', 0):g}")
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


def configured_memory_limit():
    """ResilientExecute.memory_limit_mb from nbgrader_config.py (the kernel's cap at autograde), or 0."""
    import re
    try:
        text = (REPO / "nbgrader_config.py").read_text()
    except OSError:
        return 0
    match = re.search(r"^c\.ResilientExecute\.memory_limit_mb\s*=\s*([\d_]+)", text, re.M)
    return int(match.group(1).replace("_", "")) if match else 0


CAP_PROBE = r'''
import torch
import torch.nn.functional as F
device = "cuda" if torch.cuda.is_available() else "cpu"
x = torch.randn(8, 3, 64, 64, device=device)
w = torch.randn(16, 3, 3, 3, device=device)
y = F.conv2d(x, w, padding=1)
print(f"conv on {y.device}: {tuple(y.shape)}")
'''


def memory_cap_probe(limit_mb):
    """Does torch (CUDA included) start and convolve under the autograder's RLIMIT_DATA cap?"""
    rows = []
    for cap in ([None, limit_mb] if limit_mb else [None]):
        with tempfile.TemporaryDirectory() as folder:
            result = plainrun.run_cells([dict(source=CAP_PROBE)], folder, timeout=120, memory_limit_mb=cap)
        cell = result["cells"][0]
        rows.append(dict(cap=f"{cap} MiB" if cap else "none", passed=cell["status"] == "ok",
                         detail=(cell.get("stdout") or "").strip() if cell["status"] == "ok"
                         else f"{cell.get('ename')}: {(cell.get('evalue') or '')[:300]}"))
    return rows


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
    parser.add_argument("--timeout", type=float, default=plainrun.DEFAULT_TIMEOUT, help="seconds per cell (default 60)")
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
                  command="python3 -m coursetools.tools.gpucheck " + " ".join(argv if argv is not None else sys.argv[1:]),
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
            totals = {}
            for row in reference:
                for key, count in row.get("devices", {}).items():
                    totals[key] = totals.get(key, 0) + count
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
