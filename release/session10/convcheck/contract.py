"""The contract probes: what every convolution keeps besides its values (``check_contract``)."""
import numpy as np

from .basic import check_array
from .calls import call_in_style, check_result, describe
from .failures import result_of
from .references import NUMPY, _batch_reference, conv2d_reference, conv_atol

_CONTRACT_LABELS = {"integers": "integer inputs", "float64": "float64 inputs", "uint8": "uint8 inputs",
                    "layout": "a transposed (non-contiguous) image", "repeat": "repeated calls"}
_CONTRACT_HINTS = {
    "integers": "integer inputs must give the same float values as the same numbers given as floats",
    "float64": "float64 inputs are computed in float64: no float32 step anywhere (np.float32, torch's default dtype)",
    "uint8": "uint8 products wrap around (200 * 3 is 88 in uint8): convert the inputs to float before multiplying",
    "layout": "index with slices ([row:row + kH, col:col + kW]); do not rely on memory layout "
              "(.ravel() positions, np.frombuffer, as_strided with strides computed from the shape)",
    "repeat": "compute every call afresh: a result remembered from an earlier call (lru_cache, a dict keyed "
              "by id(image)) is stale once the caller changes the array in place",
}


def _contract_cases(style, seed):
    """(what, first inputs, inputs written into them before a second call, or None) for each probe."""
    rng = np.random.default_rng(seed)
    shape, kshape = ((2, 2, 6, 7), (3, 2, 2, 3)) if style == "batch" else ((6, 7), (2, 3))
    flipped_axes = (0, 1, 3, 2) if style == "batch" else (1, 0)
    transposed = rng.standard_normal(tuple(shape[a] for a in flipped_axes)).transpose(flipped_axes)
    return [
        ("integers", [rng.integers(-9, 10, size=shape), rng.integers(-3, 4, size=kshape)], None),
        ("uint8", [rng.integers(150, 256, size=shape).astype(np.uint8),
                   rng.integers(2, 5, size=kshape).astype(np.uint8)], None),
        ("layout", [transposed, rng.standard_normal(kshape)], None),
        ("repeat", [rng.standard_normal(shape), rng.standard_normal(kshape)],
         [rng.standard_normal(shape), rng.standard_normal(kshape)]),
        ("float64", [rng.standard_normal(shape), rng.standard_normal(kshape)], 1e-6 * rng.standard_normal(shape)),
    ]


def check_contract(func, *, name=None, style="full", seed=0, flipped=False):
    """What every convolution keeps besides its values, each probe named in its failure.

    Each probe first asks for the right values on contiguous float64 copies (NumPy's reference),
    then compares the probe with the function's own result on those copies. Every call must return a NumPy
    float array (float64 for float64 inputs) and leave its inputs unchanged; and
      integer and uint8 inputs give what the same numbers as float64 give (no truncation,
      no uint8 overflow); a transposed, non-contiguous image gives what its contiguous copy
      gives; a second call after the caller changed the arrays in place gives what a fresh
      call gives (nothing cached); and with float64 inputs f(X + D) - f(X) equals f(D) for a
      tiny D (a float32 step anywhere loses that).
    ``style`` is as in ``diagnose_conv2d``, or ``"batch"`` for ``func(x, weight, bias=None, stride=1, padding=0)``.
    ``flipped``: the values asked for are the true convolution's (a later notebook's pasted function
    that turns the kernel, charged in 07 only: ``pasted``).
    """
    name = name or getattr(func, "__name__", "your function")
    padding = 0 if style == "conv2d" else 1

    def run(args, label):
        inputs = {k: (v, np.array(v, copy=True)) for k, v in zip(("x", "weight") if style == "batch"
                                                                  else ("image", "kernel"), args)}
        call = f"{label}: {name}({', '.join(f'{k} {describe(v)}' for k, v in zip(inputs, args))}" + \
            ("" if style == "conv2d" else f", padding={padding}") + ")"
        got = result_of(func, name, call, lambda: func(args[0], args[1], None, stride=1, padding=padding)
                        if style == "batch" else call_in_style(func, style, args[0], args[1], padding, 1, copy=False))
        check_result(got, call, inputs, None)
        return got, call

    def bound(args, precision=np.float64):
        return conv_atol(args[0], args[1], padding=padding, dtype=precision, device=NUMPY)

    def reference(args):
        x, w = (np.ascontiguousarray(a, dtype=np.float64) for a in args)
        if flipped:
            w = np.ascontiguousarray(w[..., ::-1, ::-1])
        if style == "batch":
            return _batch_reference(x, w, padding=padding, device=NUMPY)
        return conv2d_reference(x, w, padding=padding, device=NUMPY)

    for what, args, later in _contract_cases(style, seed):
        label, hint = _CONTRACT_LABELS[what], _CONTRACT_HINTS[what]
        plain, call = run([np.ascontiguousarray(a, dtype=np.float64) for a in args], "contiguous float64 copies")
        # Earned by a function that is right and keeps the contract: all zeros is self-consistent too.
        # (float32 bounds here: a float32 step is the "float64" probe's to name.)
        check_array(plain, reference(args), call, atol=bound(args, np.float32),
                    hint="the contract is checked on a function that gives the right values: fix the value tests first")
        if what == "float64":
            shifted, call = run([args[0] + later, args[1]], label)
            tiny, _ = run([later, args[1]], label)
            check_array(shifted - plain, tiny, f"{call} minus the same call without the tiny change D",
                        atol=bound(args), hint=hint)
            continue
        got, call = run(args, label)
        check_array(got, plain, f"{call} compared with the call on contiguous float64 copies",
                    atol=bound(args), hint=hint)
        if later is not None:
            for array, new in zip(args, later):
                array[...] = new
            again, call = run(args, f"{label} (second call, after the caller changed both arrays in place)")
            fresh, _ = run([np.array(a, copy=True) for a in args], "fresh copies")
            check_array(again, fresh, f"{call} compared with a call on fresh copies", atol=bound(args), hint=hint)

