"""Verdicts decided in the grader (coursetools.grader.judge, issue 15): plain values only, no secret in the kernel.

The unit tests put the kernel's agent (coursetools.grader.agent) in this process behind a JSON round trip, the
same text the kernel exchanges at grading. The class tests read the course that conftest grades once,
where the hostile_verdict_* specs try to read, bend or skip the checks (their scores are asserted by
tests/test_corpus.py)."""
import fractions
import json

import numpy as np
import pytest

from coursetools.grader import agent, judge, recorder, setupcells
from conftest import REPO

SOURCE = REPO / "source" / "session10"


def kernel(namespace):
    """A Remote whose 'kernel' is an agent over ``namespace`` in this process, reached through JSON text."""
    helper = agent.Agent(namespace)
    return judge.Remote(lambda request: json.loads(helper.serve(json.dumps(request))))


def make_judge(namespace, student_sources=(), instructor_sources=("import numpy as np\nimport convcheck\n",)):
    helper = agent.Agent(namespace)
    return judge.Judge(lambda request: json.loads(helper.serve(json.dumps(request))), SOURCE,
                       list(instructor_sources), list(student_sources))


class Liar(int):
    def __float__(self):
        return 38_535_424.0

    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class Agreeable(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return np.zeros(np.broadcast(*inputs).shape)


class Pretender:
    def __array__(self, dtype=None, copy=None):
        return np.full((2, 2), 7.0)


def test_lying_values_arrive_as_the_plain_values_they_stand_for():
    remote = kernel({"liar": Liar(10 ** 9), "agreeable": np.arange(4.0).view(Agreeable),
                     "third": fractions.Fraction(1, 3), "pretender": Pretender()})
    got = remote.get("liar")
    assert type(got) is int and got == 10 ** 9 and float(got) == 1e9
    got = remote.get("agreeable")
    assert type(got) is np.ndarray and got.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert not np.array_equal(got, np.full(4, 9.0))
    assert remote.get("third") == fractions.Fraction(1, 3)
    pretender = remote.get("pretender")
    assert isinstance(pretender, judge.RemoteObject)
    assert np.asarray(pretender).tolist() == [[7.0, 7.0], [7.0, 7.0]]  # only what it computes, never a secret
    with pytest.raises(KeyError):
        remote.get("not_defined")


def test_errors_come_back_as_their_builtin_kind_and_a_stop_is_never_a_pass():
    class Mine(ValueError):
        pass

    def bad_value(x):
        raise Mine("negative padding")

    def leave(x):
        raise SystemExit(0)

    def interrupted(x):
        raise KeyboardInterrupt

    remote = kernel({"bad_value": bad_value, "leave": leave, "interrupted": interrupted})
    with pytest.raises(ValueError, match="negative padding") as raised:
        remote.get("bad_value")(1)
    assert type(raised.value).__name__ == "Mine"
    for name in ("leave", "interrupted"):
        with pytest.raises(judge.TestDidNotRun):
            remote.get(name)(1)


def test_arrays_changed_in_place_stay_the_tests_and_cached_results_behave_as_in_the_kernel():
    cache = {}

    def flips_its_input(image):
        image[:] = image[::-1]
        return image.sum()

    def caches(image):
        return cache.setdefault(id(image), image.sum())

    remote = kernel({"flips_its_input": flips_its_input, "caches": caches})
    changes = []
    remote.on_change = lambda name, labels: changes.append((name, labels))
    image = np.arange(3.0)
    remote.get("flips_its_input")(image)
    assert image.tolist() == [0.0, 1.0, 2.0], "the kernel got a copy: the test's own array is never written"
    assert remote.left_by_call(image).tolist() == [2.0, 1.0, 0.0], "what the call did is recorded"
    assert changes == [("flips_its_input", ["argument 1"])]
    other = np.arange(3.0)
    assert remote.left_by_call(other) is other
    cached = remote.get("caches")
    assert cached(image) == 3.0
    assert remote.left_by_call(image).tolist() == [2.0, 1.0, 0.0], "untouched by the test: as the kernel left it"
    assert remote.get("flips_its_input")(image) == 3.0 and remote.left_by_call(image).tolist() == [0.0, 1.0, 2.0]
    image[:] = 10.0
    assert cached(image) == 3.0, "the same array, changed in place: a stale cache stays stale, as in the kernel"


def test_a_contract_test_sees_an_input_changed_in_place_and_the_reference_does_not():
    def scales_the_kernel(image, kernel):
        kernel *= 1e12          # would widen a tolerance computed from the kernel after the call
        return np.zeros((image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1))

    events = []
    test = make_judge({"conv2d": scales_the_kernel})
    test.on_event = lambda kind, detail, **extra: events.append((kind, detail, extra))
    printed, error = test.run("_i, _k = np.ones((4, 4)), np.ones((2, 2))\n_got = conv2d(_i, _k)\n"
                              "convcheck.check_array(_got, convcheck.conv2d_reference(_i, _k), 'conv2d', "
                              "atol=convcheck.conv_atol(_i, _k))", "t1")
    assert type(error).__name__ == "CheckFailure", "the reference and the tolerance come from the test's inputs"
    printed, error = test.run("convcheck.check_conv2d(conv2d, np.ones((4, 4)), np.ones((2, 2)), style='conv2d')", "t2")
    assert "changed its argument `kernel` in place" in str(error)
    assert [(kind, extra) for kind, _, extra in events] == [("inputs_changed", {"test": "t1"})]
    assert "scales_the_kernel wrote into the arrays a test passed it (argument 2)" in events[0][1]


def test_torch_values_and_objects_cross_as_values_and_handles():
    torch = pytest.importorskip("torch")
    layer = torch.nn.Conv2d(1, 2, 3)
    remote = kernel({"layer": layer, "device": torch.device("cpu"), "dtype": torch.float32})
    got = remote.get("layer")
    assert isinstance(got, torch.nn.Conv2d), "isinstance answers as in the kernel"
    assert got.in_channels == 1 and got.kernel_size == (3, 3)
    assert torch.equal(got.weight, layer.weight.detach())
    assert next(got.parameters()).shape == (2, 1, 3, 3)
    out = got(torch.ones(1, 1, 5, 5))
    assert out.shape == (1, 2, 3, 3) and torch.allclose(out, layer(torch.ones(1, 1, 5, 5)).detach())
    assert remote.get("device") == torch.device("cpu")
    assert remote.get("dtype") is torch.float32
    with pytest.raises(TypeError):
        got.weight = None
    with pytest.raises(TypeError):
        got(lambda: None)


def test_a_test_reads_the_kernel_but_uses_the_graders_modules():
    class FakeNumpy:
        def isclose(self, *args, **kwargs):
            return True

    namespace = {"np": FakeNumpy(), "answer": 41, "convcheck": None}
    test = make_judge(namespace)
    printed, error = test.run("convcheck.check_scalar(answer, 42, 'answer')\nprint(np.__name__)", "t1")
    assert type(error).__name__ == "CheckFailure" and "answer" in str(error)
    namespace["answer"] = 42
    printed, error = test.run("convcheck.check_scalar(answer, 42, 'answer')\nprint(np.__name__)", "t2")
    assert error is None and printed.strip() == "numpy"
    printed, error = test.run("missing_answer + 1", "t3")
    assert isinstance(error, NameError)
    printed, error = test.run("_kept = 5", "t4")
    printed, error = test.run("assert _kept == 5 and 'answer' in globals() and 'nothing' not in globals()", "t5")
    assert error is None, error


def test_a_test_that_cannot_reach_the_kernel_fails_and_says_it_did_not_run():
    def broken(request):
        return {"failed": {"type": "NameError", "message": "the agent is gone"}}

    test = judge.Judge(broken, SOURCE, ["import convcheck"], [])
    printed, error = test.run("convcheck.check_scalar(answer, 1, 'answer')", "t")
    assert isinstance(error, judge.TestDidNotRun)
    output = judge.error_output(error)
    assert output.ename == "TestDidNotRun" and output.evalue.startswith("this test did not run")


def test_a_from_scratch_function_that_uses_a_library_earns_nothing():
    cheat = ("import torch\nimport torch.nn.functional as F\ndef conv2d(i, k):\n"
             "    return F.conv2d(torch.tensor(i)[None, None], torch.tensor(k)[None, None])[0, 0]")
    test = make_judge({}, student_sources=[cheat],
                      instructor_sources=["import numpy as np\nimport convcheck\n",
                                          "convcheck.check_no_library_conv(conv2d)"])
    printed, error = test.run("x = 1\nconvcheck.check(conv2d is not None, 'never reached')", "t")
    assert "conv2d must compute the convolution itself, so this test earns no points" in str(error)
    assert "a call to F.conv2d" in str(error)


def test_grading_seeds_are_secret_reproducible_and_per_student(tmp_path):
    convcheck = judge.load_module("convcheck", SOURCE / "convcheck")
    secret = judge.course_secret(tmp_path)
    assert secret == judge.course_secret(tmp_path) and len(secret) == 32
    assert (tmp_path / "course" / ".grading-secret").exists()
    ada, bob = (judge.grading_seed(secret, s, "07") for s in ("ada", "bob"))
    assert ada == judge.grading_seed(secret, "ada", "07") and ada != bob
    assert convcheck.GRADING_SEED is None
    assert np.array_equal(convcheck.rng(7001).standard_normal(3), np.random.default_rng(7001).standard_normal(3))
    try:
        convcheck.GRADING_SEED = ada
        graded = convcheck.rng(7001).standard_normal(3)
        assert not np.array_equal(graded, np.random.default_rng(7001).standard_normal(3))
        assert np.array_equal(graded, convcheck.rng(7001).standard_normal(3))
    finally:
        convcheck.GRADING_SEED = None


def test_hidden_tests_draw_their_random_inputs_from_the_graders_seed():
    import nbformat
    for path in sorted(SOURCE.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            hidden = cell.source.split("BEGIN HIDDEN TESTS", 1)[-1] if "BEGIN HIDDEN TESTS" in cell.source else ""
            assert "default_rng" not in hidden, f"{path.name}: use convcheck.rng in hidden tests"


# ----------------------------------------------------------------------------- the class run

def test_the_kernel_never_held_a_hidden_test(graded_course):
    """hostile_verdict_frames ends notebook 04 by searching everything the kernel's garbage collector
    reaches for a line of that notebook's hidden tests: none is there."""
    nb = graded_course.autograded_notebook("hostile_verdict_frames", "04_hand_calculations")
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "hidden test text seen in the kernel: 0" in text, text[-2000:]


def test_test_cells_were_judged_in_the_grader(graded_course):
    nb = graded_course.autograded_notebook("hostile_verdict_transformers", "04_hand_calculations")
    failed = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed, "the transformers must not have made the tests pass"


def test_the_agent_and_the_guard_are_reached_without_a_name():
    """The kernel expressions look up no name: a notebook global (``__import__``, ``sys``, ``__builtins__``) and
    names rebound in the agent's own namespace (``json``, ``sys``, ``builtins``) answer nothing."""
    import builtins
    import secrets
    import types
    from coursetools.grader import tamper
    shell = types.SimpleNamespace(input_transformers_cleanup=[], input_transformers_post=[], ast_transformers=[],
                                  custom_exceptions=(), events=types.SimpleNamespace(callbacks={}),
                                  displayhook=None, display_pub=None)
    user = {"__name__": "__main__", "get_ipython": lambda: shell, "answer": 41}
    shell.user_ns = user
    token, guard_token = "_coursetools_agent_" + secrets.token_hex(6), "_coursetools_guard_" + secrets.token_hex(8)
    asked = []
    try:
        exec(judge.install_code(token), user)  # noqa: S102 - the kernel code the grader sends, before any student code
        exec(tamper.guard_install_code(guard_token), user)  # noqa: S102
        assert "_ct_ns" not in user
        forged = types.SimpleNamespace(modules={}, __dict__={})
        user.update(__import__=lambda *args, **kwargs: asked.append(args) or forged, sys=forged, json=None,
                    builtins=forged, __builtins__={"__import__": lambda *args, **kwargs: asked.append(args) or forged})
        namespace = builtins.__dict__[token].__dict__["serve"].__func__.__func__.__globals__
        namespace.update(json=None, sys=None, builtins=None, base64=None, io=None, importlib=None, _npy=None)
        answer = json.loads(eval(judge.request_expression(token, {"op": "get", "name": "answer"}), user))
        assert answer == {"value": 41}
        user["answer"] = np.int64(7)
        answer = json.loads(eval(judge.request_expression(token, {"op": "get", "name": "answer"}), user))
        assert agent.Tagged().decode(answer["value"]) == 7
        findings = eval(tamper.guard_call(guard_token, []), user)
        assert isinstance(findings, list)
        assert not [f for f in findings if token in f or guard_token in f], "the doors are not notebook code"
        assert asked == [], "nothing the notebook defined was called"
    finally:
        builtins.__dict__.pop(token, None)
        builtins.__dict__.pop(guard_token, None)


def _stub(image, kernel):
    raise NotImplementedError("conv2d")


def _library(image, kernel):
    from scipy import signal
    return signal.correlate2d(image, kernel, mode="valid")


def test_the_graded_function_is_the_one_its_answer_cell_bound():
    namespace = {"conv2d": _stub}
    helper = agent.Agent({})
    helper.namespace.update(namespace)
    serve = lambda request: json.loads(helper.serve(json.dumps(request)))  # noqa: E731
    assert serve({"op": "cell", "answer": True, "names": ["conv2d"]}) == {"value": None}
    exec("def conv2d_padded(image, kernel, p):\n    return conv2d(image, kernel)\n",  # noqa: S102 - an answer
         helper.namespace)
    serve({"op": "cell", "answer": True, "names": ["conv2d_padded"]})
    helper.namespace["conv2d"] = _library                       # an inserted cell rebinds the graded name
    told = serve({"op": "cell", "answer": False, "names": []})["value"]
    assert told == {"rebound": ["conv2d"], "altered": [], "watched": []}
    remote = judge.Remote(serve)
    image, weights = np.arange(16.0).reshape(4, 4), np.ones((2, 2))
    for name, args in (("conv2d", (image, weights)), ("conv2d_padded", (image, weights, 0))):
        with pytest.raises(NotImplementedError):   # the stub, also where the other answer calls it by name
            remote.get(name)(*args)
        remote.request(op="forget")
    assert helper.namespace["conv2d"] is _library              # the kernel's own names are put back after a call


def test_swapping_a_graded_functions_code_later_is_named_and_changes_nothing():
    exec("def conv2d(image, kernel):\n    raise NotImplementedError\n", namespace := {})  # noqa: S102
    helper = agent.Agent({})
    helper.namespace.update(namespace)
    serve = lambda request: json.loads(helper.serve(json.dumps(request)))  # noqa: E731
    serve({"op": "cell", "answer": True, "names": ["conv2d"]})
    helper.namespace["conv2d"].__code__ = _library.__code__
    told = [serve({"op": "cell", "answer": False, "names": []})["value"] for _ in range(2)]
    assert told == [{"rebound": [], "altered": ["conv2d"], "watched": []},
                    {"rebound": [], "altered": [], "watched": []}]   # named once
    with pytest.raises(NotImplementedError):
        judge.Remote(serve).get("conv2d")(np.ones((3, 3)), np.ones((2, 2)))


def test_an_answer_cell_that_leaves_a_name_unbound_leaves_the_test_without_it():
    helper = agent.Agent({"conv2d": _library})   # bound before the answer cell, by an inserted cell
    serve = lambda request: json.loads(helper.serve(json.dumps(request)))  # noqa: E731
    del helper.namespace["conv2d"]
    helper.namespace["conv2d"] = _library
    serve({"op": "cell", "answer": True, "names": ["conv2d", "answer_6_2"]})
    assert serve({"op": "get", "name": "answer_6_2"}) == {"missing": True}
    assert "value" in serve({"op": "get", "name": "conv2d"})   # what the cell left under its name is graded


def test_a_read_only_cell_that_rebinds_a_pinned_name_takes_it_back():
    helper = agent.Agent({"kernel": np.ones((2, 2))})
    serve = lambda request: json.loads(helper.serve(json.dumps(request)))  # noqa: E731
    serve({"op": "cell", "answer": True, "names": ["kernel"]})
    helper.namespace["kernel"] = np.zeros((3, 3))                 # the instructor's next set-up cell
    assert serve({"op": "cell", "locked": True, "names": []})["value"] == {"rebound": [], "altered": [], "watched": []}
    assert judge.Remote(serve).get("kernel").shape == (3, 3)


SET_UP_CELLS = [
    ("readonly", "nb_setup", "import numpy as np\nimport convcheck\nimport coursedata\n"),
    ("readonly", "nb_data", "digit = coursedata.digit(9)\nSHIFT = 3\n\n"
                            "def shifted(image):\n    return np.roll(image, SHIFT, axis=1)\n"),
    ("solution", "nb_answer", "def double(image):\n    return 2 * image\n"),
    ("readonly", "nb_uses_answer", "doubled_digit = double(digit)\n"),
    ("tests", "nb_test", ""),
    ("readonly", "nb_later", "SHIFT = 99\n"),
]


def setup_judge(namespace):
    helper = agent.Agent(namespace)
    test = judge.Judge(lambda request: json.loads(helper.serve(json.dumps(request))), SOURCE,
                       [source for kind, _, source in SET_UP_CELLS if kind == "readonly"], [],
                       code_cells=SET_UP_CELLS)
    return helper, test


def test_set_up_data_and_helpers_are_the_graders_own_run_of_the_read_only_cells():
    kernel_namespace = {"digit": np.zeros((28, 28)), "SHIFT": 0, "shifted": lambda image: image,
                        "double": lambda image: 2 * image, "doubled_digit": np.zeros((28, 28))}
    helper, test = setup_judge(kernel_namespace)
    digit = judge.load_module("coursedata", SOURCE / "coursedata.py").digit(9)
    namespace_text = ("assert SHIFT == 3, SHIFT\n"          # the set-up cell before the test, not the later one
                      "assert np.array_equal(digit, want)\n"
                      "assert np.array_equal(shifted(digit), np.roll(want, 3, axis=1))\n"
                      "assert np.array_equal(doubled_digit, 2 * want)\n")
    test.kept["want"] = digit
    printed, error = test.run(namespace_text, "nb_test")
    assert error is None, error
    assert helper.namespace["SHIFT"] == 0 and not helper.namespace["digit"].any()   # the kernel's were never read


def test_a_set_up_cell_that_calls_an_answer_runs_it_in_the_kernel_on_the_graders_data():
    calls = []

    def double(image):
        calls.append(np.asarray(image).copy())
        raise ValueError("not written yet")

    helper, test = setup_judge({"double": double, "doubled_digit": np.ones((28, 28))})
    helper.after_cell(True, ["double"])
    printed, error = test.run("doubled_digit\n", "nb_test")
    assert isinstance(error, setupcells.SetUpFailed)
    assert "`doubled_digit` is not set" in str(error) and "ValueError: not written yet" in str(error)
    assert len(calls) == 1 and calls[0].shape == (28, 28) and calls[0].max() > 0.5   # the grader's digit


def test_a_student_cell_that_rebinds_a_set_up_name_is_named():
    helper = agent.Agent({"digit": np.ones((2, 2))})
    serve = lambda request: json.loads(helper.serve(json.dumps(request)))  # noqa: E731
    helper.namespace["digit"] = np.zeros((2, 2))
    told = serve({"op": "cell", "answer": False, "names": [], "watched": ["digit", "SHIFT"]})["value"]
    assert told == {"rebound": [], "altered": [], "watched": ["digit"]}


def test_a_module_imported_by_an_instructors_plain_cell_is_the_graders():
    cells = [("readonly", "nb_setup", "import numpy as np\n"), ("code", "nb_demo", "import fractions\nhalf = 0.5\n"),
             ("tests", "nb_test", "")]
    helper = agent.Agent({"fractions": "the kernel's", "half": 0.5})
    test = judge.Judge(lambda request: json.loads(helper.serve(json.dumps(request))), SOURCE, [], [], code_cells=cells)
    printed, error = test.run("assert fractions.Fraction(1, 2) == half\n", "nb_test")
    assert error is None, error


# --- the kernel's record of what a from-scratch function ran (recorder.Record), the second line after the scan

def recorded_judge(namespace, fd=None):
    """A judge over an agent with a record (kept in memory, or written to ``fd``); conv2d is from scratch.

    torch is loaded first, as the set-up cells of 07 and 10 load it before any graded call."""
    import torch  # noqa: F401
    helper = agent.Agent(namespace)
    helper.record = recorder.Record(fd)
    return judge.Judge(lambda request: json.loads(helper.serve(json.dumps(request))), SOURCE,
                       ["import numpy as np\nimport convcheck\n", "convcheck.check_no_library_conv(conv2d)"], [])


def _built_name(*codes):
    return "".join(map(chr, codes))


def _torch_operator(image, kernel):   # no readable line names the operator: the scan cannot see it
    import torch
    operator = getattr(torch._C._nn, _built_name(116, 104, 110, 110, 95, 99, 111, 110, 118, 50, 100))
    x, w = torch.tensor(image)[None, None], torch.tensor(kernel)[None, None]
    return operator(x, w, list(kernel.shape))[0, 0].numpy()


def _aten_operator(image, kernel):
    import torch
    operator = getattr(torch.ops.aten, _built_name(99, 111, 110, 118, 111, 108, 117, 116, 105, 111, 110)).default
    x, w = torch.tensor(image)[None, None], torch.tensor(kernel)[None, None]
    return operator(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)[0, 0].numpy()


def _numpy_fft(image, kernel):
    fft = getattr(np, _built_name(102, 102, 116))
    size = image.shape
    full = np.real(fft.ifft2(fft.fft2(image) * fft.fft2(kernel[::-1, ::-1], size)))
    return full[kernel.shape[0] - 1:, kernel.shape[1] - 1:]


def _compiled(image, kernel):   # TorchScript: its operations run in C++, where no profile function follows
    import torch
    unit = torch.jit.CompilationUnit(_built_name(100, 101, 102, 32) + "run(x, w):\n    return torch.conv2d(x, w)\n")
    return unit.run(torch.tensor(image)[None, None], torch.tensor(kernel)[None, None])[0, 0].numpy()


def _builtin_called_from_c(image, kernel):   # a builtin that map calls: no profile event names it
    correlate = getattr(np._core._multiarray_umath, _built_name(99, 111, 114, 114, 101, 108, 97, 116, 101, 50))
    rows = image.shape[0] - kernel.shape[0] + 1
    return np.array([sum(map(correlate, image[i + np.arange(kernel.shape[0])], kernel)) for i in range(rows)])


def _fft_ufunc(image, kernel):   # a ufunc call: no profile event at all
    from numpy.fft import _pocketfft_umath as units
    spectrum = getattr(units, _built_name(102, 102, 116))
    spectrum(image[0].astype(complex), 1.0, out=np.empty(image.shape[1], complex))
    return _loops(image, kernel)


def _profile_off_first(image, kernel):
    import sys
    sys.setprofile(None)
    return _loops(image, kernel)


def _loops(image, kernel):
    out = np.zeros((image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kernel.shape[0], j:j + kernel.shape[1]] * kernel)
    return out


def _windows(image, kernel):
    from numpy.lib.stride_tricks import sliding_window_view
    return np.einsum("ijkl,kl->ij", sliding_window_view(np.pad(image, 0), kernel.shape), kernel)


TEST_CONV2D = ("image = np.arange(16.0).reshape(4, 4)\nkernel = np.array([[1.0, 0.0], [0.0, -1.0]])\n"
               "convcheck.check(np.allclose(conv2d(image, kernel), -5.0), 'wrong values')")


@pytest.mark.parametrize("function, seen", [(_torch_operator, "torch._C._nn.thnn_conv2d"),
                                            (_aten_operator, "torch.ops.aten.convolution.default"),
                                            (_numpy_fft, "numpy.fft"),
                                            (_compiled, "ran compiled TorchScript code (torch.jit)"),
                                            (_builtin_called_from_c, "numpy._core._multiarray_umath.correlate2"),
                                            (_fft_ufunc, "numpy.fft._pocketfft_umath.fft")])
def test_a_library_operation_the_source_does_not_name_is_seen_when_it_runs(function, seen):
    test = recorded_judge({"conv2d": function})
    printed, error = test.run(TEST_CONV2D, "t")
    assert "conv2d must compute the convolution itself, so this test earns no points" in str(error)
    assert seen in str(error) and ("(seen when it ran)" in str(error) or "code that hid what it ran" in str(error))
    assert set(kind for kind, _, _ in test.events) <= {"library_ran", "record_hidden"} and test.events
    printed, later = test.run("convcheck.check(conv2d is not None, 'never reached')", "t2")
    assert seen in str(later)   # every later test of it fails too, before it runs


@pytest.mark.parametrize("function", [_loops, _windows])
def test_loops_and_windows_run_without_a_note(function):
    test = recorded_judge({"conv2d": function})
    printed, error = test.run(TEST_CONV2D, "t")
    assert error is None and test.events == []


def test_switching_the_record_off_fails_the_test_and_is_reported():
    test = recorded_judge({"conv2d": _profile_off_first})
    printed, error = test.run(TEST_CONV2D, "t")
    assert "code that hid what it ran: it switched a profile function (sys.setprofile)" in str(error)
    assert ("record_hidden" in [kind for kind, _, _ in test.events])


def test_notes_go_out_through_the_pipe_at_once_and_a_cut_pipe_is_a_hidden_call():
    import os
    from coursetools.grader import record
    pipe = record.RecordPipe()
    namespace = {"conv2d": _torch_operator}
    test = recorded_judge(namespace, fd=os.dup(pipe.write_fd))
    test.read_record = pipe.lines
    pipe.handed_over()
    printed, error = test.run(TEST_CONV2D, "t")
    assert "torch._C._nn.thnn_conv2d (seen when it ran)" in str(error)

    def closes_the_pipe(image, kernel):   # finds the record's write end among its descriptors, and closes it
        import fcntl
        for fd in range(3, 1024):
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_ino == os.fstat(pipe2.read_fd).st_ino and \
                        fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                    os.close(fd)
        return _loops(image, kernel)
    import contextlib
    pipe2 = record.RecordPipe()
    cut = recorded_judge({"conv2d": closes_the_pipe}, fd=pipe2.write_fd)
    cut.read_record = pipe2.lines
    pipe2.write_fd = None   # the 'kernel' owns the write end now
    printed, error = cut.run(TEST_CONV2D, "t")
    assert "cut the grader's record of the call short" in str(error)
    pipe.close()
    pipe2.close()


def test_the_audit_hook_notes_code_built_at_run_time_by_the_students_code(tmp_path):
    record = recorder.Record(None)
    record.audit("marshal.loads", (b"",))
    record.audit("compile", ("x = 1", "<string>"))
    record.audit("compile", ("x = 1", None))            # (what some libraries compile: no file)
    handed_in = tmp_path / "fast_ops.txt"
    handed_in.write_text("x = 1\n")
    record.audit("compile", ("x = 1", str(handed_in)))
    record.audit("open", ("notes.txt", "r", 0))        # not a step that hides code
    whats = [note["what"] for note in record.taken(None)]
    assert whats[:2] == ["loaded code from bytes (marshal)",
                         "compiled code from text built at run time (compile, exec or eval of a string)"]
    assert len(whats) == 3 and whats[2].startswith("loaded code from a file that is not a Python module (") \
        and whats[2].endswith("/fast_ops.txt)")
