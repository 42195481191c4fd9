"""Values arrive as they were (issue 25): a test decides the same in the grader as in the student's kernel.

A differential test: the same test code runs once the way the student's Run All runs it (in the
namespace of the answers) and once the way autograde runs it (``coursetools.grader.judge`` in the
grader, the answers behind the agent, ``coursetools.grader.agent``, through the same JSON text the
kernel exchanges). Both verdicts (passed, or the exception's type and message) must be equal: for
a table of value kinds, and for every test cell of every non-hostile spec in submissions/.
"""
import collections
import contextlib
import fractions
import io
import json
import os

import numpy as np
import pytest

import convcheck  # the student's copy: source/session10, on the path by pyproject.toml
from coursetools.grader import agent, judge
from coursetools.plain import runner as plainrun
from conftest import REPO
from inprocess import REFERENCE, SESSION, _run_source, load_spec

torch = pytest.importorskip("torch")

INSTRUCTOR = "import numpy as np\nimport torch\nimport convcheck\n"


def make_judge(namespace, instructor=(INSTRUCTOR,), student=()):
    helper = agent.Agent(namespace)
    return judge.Judge(lambda request: json.loads(helper.serve(json.dumps(request))), SESSION,
                       list(instructor), list(student))


def verdict(error):
    return None if error is None else f"{type(error).__name__}: {error}"


def in_kernel(source, namespace):
    """(printed text, verdict) of ``source`` run in the student's namespace, as Run All runs a test cell."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(source, "<test>", "exec"), namespace)  # noqa: S102 - the test's own code
    except Exception as error:  # noqa: BLE001 - the verdict
        return printed.getvalue(), verdict(error)
    return printed.getvalue(), None


# ----------------------------------------------------------------------------- a table of value kinds

def _values():
    return {
        "int": 3, "float": 3.0, "bool": True, "str": "3", "bytes": b"3", "bytearray": bytearray(b"3"),
        "np.int64": np.int64(3), "np.int32": np.int32(3), "np.uint8": np.uint8(3), "np.intp": np.intp(3),
        "np.float32": np.float32(3.0), "np.float64": np.float64(3.0), "np.float16": np.float16(3.0),
        "np.bool_": np.bool_(True), "np.complex128": np.complex128(3 + 0j), "complex": 3 + 0j,
        "0-d float array": np.array(3.0), "0-d int array": np.array(3), "0-d float32 array": np.array(3, np.float32),
        "unravel_index": np.unravel_index(5, (4, 4)), "argmax": np.argmax([1, 5, 2]),
        "list of np.int64": [np.int64(1), np.int64(2)], "tuple of np.int64": (np.int64(1), np.int64(2)),
        "list of np.float32": [np.float32(1.5), np.float32(2.0)], "tuple of ints": (1, 2), "list of ints": [1, 2],
        "nested lists": [[np.int64(1), 2], [3.0, np.float32(4)]], "shape": np.zeros((1, 2)).shape,
        "1-d int array": np.array([1, 2]), "F-ordered array": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "dict": {0: 2, 1: 1}, "dict of np keys": {np.int64(0): np.int64(2), np.int64(1): np.int64(1)},
        "Counter": collections.Counter([0, 0, 1]), "OrderedDict": collections.OrderedDict([(1, 1), (0, 2)]),
        "defaultdict": collections.defaultdict(int, {0: 2, 1: 1}), "nested dict": {"a": [(1, 2.0)], "b": {3: None}},
        "set": {1, 2}, "frozenset": frozenset({1, 2}), "Fraction": fractions.Fraction(3, 1),
        "range": range(1, 3), "None": None, "nan": float("nan"), "inf": np.float64("inf"),
        "torch int": torch.tensor(3), "torch float": torch.tensor(3.0), "torch vector": torch.tensor([1, 2]),
        "torch float64": torch.tensor([1.0, 2.0], dtype=torch.float64), "torch.Size": torch.Size([1, 2]),
        "torch bool": torch.tensor(True), "torch requires_grad": torch.tensor([1.0, 2.0], requires_grad=True),
    }


PROBES = [
    "print(type(answer).__module__, type(answer).__qualname__, repr(answer))",
    "print(getattr(answer, 'dtype', None), getattr(answer, 'shape', None), np.shape(answer) if not "
    "isinstance(answer, (dict, set, frozenset, str, bytes, bytearray, range)) else len(answer))",
    "convcheck.check_scalar(answer, 3, 'answer')",
    "convcheck.check_int_sequence(answer, 2, 'answer')",
    "convcheck.check_sizes(answer, (1, 2), 'answer')",
    "convcheck.check_counts(answer, {0: 2, 1: 1}, 'answer')",
    "convcheck.check_array(answer, np.array([1, 2]), 'answer')",
    "convcheck.check_type(answer, (int, np.integer), 'answer')",
    "convcheck.check_hand_value(answer, 3, 'answer')",
    "assert answer == 3, answer",
    "assert answer == (1, 2) or answer == [1, 2], answer",
    "assert isinstance(answer, dict) and answer[0] == 2 and answer.get(7) is None, answer",
    "print(sorted(answer.items()) if isinstance(answer, dict) else sorted(answer))",
    "print(answer[5] if isinstance(answer, collections.defaultdict) else {answer: 1} if answer == answer else 0)",
    "print(answer + answer, answer * 2)",
    "print(np.asarray(answer).dtype, np.asarray(answer).shape, np.asarray(answer).flags.f_contiguous)",
    "print(torch.as_tensor(answer).dtype, answer.requires_grad if torch.is_tensor(answer) else None)",
]


@pytest.mark.parametrize("kind", sorted(_values()))
def test_a_value_is_judged_in_the_grader_as_in_the_kernel(kind):
    for probe in PROBES:
        source = "import collections\n" + probe
        kernel = {"np": np, "torch": torch, "convcheck": convcheck, "answer": _values()[kind]}
        graded = make_judge({"answer": _values()[kind]}).run(source, "probe")
        assert in_kernel(source, kernel) == (graded[0], verdict(graded[1])), (kind, probe)


def test_a_value_keeps_its_type_both_ways():
    """What the test hands the student's code arrives with its type too (a NumPy scalar stays one)."""
    seen = []

    def keep(*args, **kwargs):
        seen.append((args, kwargs))
        return args[0]

    values = [v for k, v in _values().items() if k not in ("nan", "range")]
    test = make_judge({"keep": keep})
    test.kept["VALUES"] = values
    printed, error = test.run("for v in VALUES:\n    back = keep(v, key=v)\n"
                              "    assert type(back) is type(v), (type(back), type(v))\n", "t")
    assert error is None, error
    for (args, kwargs), value in zip(seen[-len(values):], values):
        assert type(args[0]) is type(value) and type(kwargs["key"]) is type(value)
        if isinstance(value, np.ndarray) or torch.is_tensor(value):
            assert args[0].dtype == value.dtype and args[0].shape == value.shape


def test_a_subclass_of_a_plain_kind_arrives_as_the_plain_value():
    class Mine(dict):
        def __eq__(self, other):
            return True

        def items(self):
            return [("forged", 1)]

    pair = collections.namedtuple("pair", "a b")
    remote = make_judge({}).remote
    helper = agent.Agent({"mine": Mine(x=1), "pair": pair(1, 2)})
    remote.rpc = lambda request: json.loads(helper.serve(json.dumps(request)))
    mine = remote.get("mine")
    assert type(mine) is dict and mine == {"x": 1}
    assert type(remote.get("pair")) is tuple and remote.get("pair") == (1, 2)


# ----------------------------------------------------------------------------- every non-hostile spec

def _plain_specs():
    names = sorted(path.stem for path in (REPO / "submissions").glob("*.toml") if not path.stem.startswith("hostile_"))
    return [name for name in names if not plainrun.spec_unsupported(load_spec(name))]


def judged_notebook(name, spec):
    """{grade_id: verdict} of a notebook's test cells, decided by the judge against an in-process kernel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cells = plainrun.spec_cells(spec, name, SESSION)
    namespace = {"__name__": "__main__"}
    test = make_judge(namespace, [c["source"] for c in cells if c["kind"] not in ("solution", "code")],
                      [c["source"] for c in cells if c["kind"] in ("solution", "code")])
    verdicts = {}
    cwd = os.getcwd()
    os.chdir(SESSION)
    try:
        for cell in cells:
            if cell["kind"] == "tests":
                verdicts[cell["grade_id"]] = verdict(test.run(cell["source"], cell["grade_id"])[1])
                continue
            with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
                _run_source(cell["source"], f"<{name} cell {cell['index']}>", namespace)
    finally:
        os.chdir(cwd)
        plt.close("all")
    return verdicts


@pytest.mark.parametrize("spec_name", _plain_specs())
def test_a_spec_is_judged_in_the_grader_as_in_the_kernel(spec_name):
    from inprocess import run_notebook
    spec = REFERENCE if spec_name == "reference" else load_spec(spec_name)
    for name in plainrun.spec_notebook_names(spec):
        with contextlib.redirect_stdout(io.StringIO()):
            kernel = run_notebook(name, spec).errors
            graded = judged_notebook(name, spec)
        assert set(kernel) == set(graded)
        differ = {g: (kernel[g], graded[g]) for g in kernel if (kernel[g] is None) != (graded[g] is None)}
        assert not differ, f"{name}: verdicts in the kernel and in the grader differ: {differ}"
