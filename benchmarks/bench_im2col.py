"""Notebook 07's im2col reference against nn.Conv2d, both on one CPU thread (issue 29's target: within 3x).

    .venv/bin/python benchmarks/bench_im2col.py              # one thread for NumPy's BLAS and for torch
    .venv/bin/python benchmarks/bench_im2col.py --repeats 10

The layer: a batch of 32 images, 32 channels of 32 x 32 pixels, 64 filters of 3 x 3, padding 1, float32.
The im2col functions are the reference solution of source/session10/07's going-further cell, run as
written. It prints the machine, each method's best time, its speed in GFLOP/s, and the ratio.
"""
import argparse
import os
import pathlib
import platform
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SHAPE, FILTERS, KERNEL = (32, 32, 32, 32), 64, 3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each method (the best is kept)")
    args = parser.parse_args(argv)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"   # before NumPy loads its BLAS: one thread, like torch below

    import json
    import time

    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from coursetools.core.cells import cell_source, grade_id, solution_text

    notebook = json.loads((REPO / "source" / "session10" / "07_convolution_from_scratch.ipynb").read_text())
    (cell,) = [c for c in notebook["cells"] if grade_id(c) == "nb07_further_im2col"]
    namespace = {"np": np}
    exec(compile(solution_text(cell_source(cell)), "nb07_further_im2col", "exec"), namespace)  # noqa: S102 - our own reference
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    weight = rng.standard_normal((FILTERS, SHAPE[1], KERNEL, KERNEL)).astype(np.float32)
    layer = torch.nn.Conv2d(SHAPE[1], FILTERS, KERNEL, padding=1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
    flops = 2 * SHAPE[0] * FILTERS * SHAPE[2] * SHAPE[3] * SHAPE[1] * KERNEL * KERNEL

    def best(run):
        run()   # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.no_grad():
        want = layer(torch.from_numpy(x)).numpy()
        library = best(lambda: layer(torch.from_numpy(x)))
    got = namespace["conv2d_im2col"](x, weight, None, 1, 1)
    ours = best(lambda: namespace["conv2d_im2col"](x, weight, None, 1, 1))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}; one thread each "
          f"(torch.get_num_threads() = {torch.get_num_threads()}, OPENBLAS_NUM_THREADS=1)")
    print(f"layer: x {SHAPE} float32, weight {weight.shape}, padding 1: {flops / 1e9:.2f} GFLOP")
    print(f"largest difference from nn.Conv2d: {np.max(np.abs(got - want)):.2e}")
    for name, seconds in (("nn.Conv2d, 1 thread", library), ("im2col + matmul (reference)", ours)):
        print(f"  {name:28s} {seconds * 1e3:8.1f} ms  {flops / seconds / 1e9:6.1f} GFLOP/s")
    ratio = ours / library
    print(f"im2col / nn.Conv2d: {ratio:.2f} times the time (target: at most 3): {'met' if ratio <= 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
