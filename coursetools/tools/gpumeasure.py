"""What the GPU check measures (``coursetools.tools.gpucheck`` runs and reports it).

Needs only torch and numpy, as the check does:

- timing: the notebooks' NumPy reference solutions, each in a plain notebook process, and
  ``nn.Conv2d`` on the CPU and on the GPU (TF32 on and off), per size;
- tolerances: the largest error of ``F.conv2d`` against a float64 reference, as a fraction
  of convcheck's bound;
- the memory cap: whether torch starts and convolves under the autograder's RLIMIT_DATA.
"""
import json
import tempfile
import time

from coursetools.core.limits import load_limits
from coursetools.plain import runner as plainrun

REPO = plainrun.REPO
SOURCE_DIR = plainrun.SOURCE_DIR

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
TIMED_FUNCTIONS = [("conv2d_forward", "capstone (nb 10), NumPy"),
                   ("conv2d_fast", "vectorised extension (nb 07), NumPy")]

TOLERANCE_CASES = [
    # (name, N, C_in, H, W, C_out, kH, kW, padding, stride, input scale)
    ("digit-like 1x1x28x28, 3x3", 1, 1, 28, 28, 1, 3, 3, 1, 1, "unit"),
    ("4x3x32x32 -> 8, 5x5", 4, 3, 32, 32, 8, 5, 5, 2, 1, "normal"),
    ("2x64x16x16 -> 32, 3x3", 2, 64, 16, 16, 32, 3, 3, 1, 1, "normal"),
    ("2x128x14x14 -> 16, 7x7, stride 2", 2, 128, 14, 14, 16, 7, 7, 3, 2, "normal"),
    ("1x16x40x40 -> 8, 3x3, large values", 1, 16, 40, 40, 8, 3, 3, 1, 1, "large"),
]


def load_convcheck():
    """A fresh copy of the shipped checks package, loaded as the grader loads it."""
    from coursetools.grader.judge import load_module
    return load_module("convcheck", SOURCE_DIR / "convcheck")


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
            x = torch.from_numpy(rng.standard_normal((size["n"], size["c_in"], size["h"], size["h"]))
                                 .astype(np.float32))
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
    wrong = [f"{r['size']}: {c}" for r in rows for c in numpy_columns
             if (r.get(c) or {}).get("status") == "WRONG RESULT"]
    missing = [n for n in notes if "timing failed" in n]
    return dict(columns=numpy_columns + torch_columns, rows=rows, notes=notes, passed=not wrong and not missing,
                problems=wrong + missing)


# ---------------------------------------------------------------- 0. the memory cap

def configured_memory_limit():
    """ResilientExecute.memory_limit_mb as autograde sets it on the kernel (nbgrader_config.py, else its default)."""
    return load_limits(REPO)["memory_limit_mb"]


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
