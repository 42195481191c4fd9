"""The grader's scan of a student's source for library convolutions (coursetools.grader.libraryscan): every
route to one is followed, and nothing a from-scratch answer does is taken for one."""
import pytest

from coursetools.grader import libraryscan
from conftest import REPO

SOURCE = REPO / "source" / "session10"


LIBRARY_CHEATS = {
    "F.conv2d": "import torch\nimport torch.nn.functional as F\n"
                "def conv2d(i, k):\n"
                "    return F.conv2d(torch.tensor(i)[None, None], torch.tensor(k)[None, None])[0, 0]",
    "torch.nn.functional.conv2d": "import functools, torch\n_f = functools.partial(torch.nn.functional.conv2d)\n"
                                  "def conv2d(i, k):\n    return _f(i, k)",
    "getattr('conv2d')": "import torch\ndef conv2d(i, k):\n"
                         "    return getattr(torch.nn.functional, 'con' + 'v2d')(i, k)",
    "built at run time": "import importlib\ndef conv2d(i, k):\n    m = importlib.import_module(''.join(NAME))\n"
                         "    return m.c(i, k)",
    "np.fft.fft2": "import numpy as np\ndef conv2d(i, k):\n"
                   "    return np.real(np.fft.ifft2(np.fft.fft2(i) * np.fft.fft2(k, i.shape)))",
    "scipy.signal.correlate2d (imported as c)": "from scipy.signal import correlate2d as c\n"
                                                "def conv2d(i, k):\n    return c(i, k, mode='valid')",
    "convcheck.conv2d_reference": "import convcheck\n"
                                  "def conv2d(i, k):\n"
                                  "    return convcheck.conv2d_reference(i, k, device=convcheck.NUMPY)",
    "convcheck._batch_reference (imported as r)": "from convcheck import _batch_reference as r\n"
                                                  "def conv2d(i, k):\n    return r(i[None, None], k[None, None])[0, 0]",
    "np.correlate": "import numpy as np\ndef _helper(i, k, op=np.correlate):\n    return op(i, k)\n"
                    "def conv2d(i, k):\n    return _helper(i, k)",
    "torch.fft.rfft2": "import torch\ndef conv2d(i, k):\n    return torch.fft.irfft2(torch.fft.rfft2(torch.tensor(i)))",
    "eval(...)": "def conv2d(i, k):\n    return eval('__imp' + 'ort__(\"scipy.signal\")').signal.correlate2d(i, k)",
}


@pytest.mark.parametrize("named", sorted(LIBRARY_CHEATS))
def test_library_convolutions_are_found_in_the_source(named):
    found = libraryscan.library_calls([LIBRARY_CHEATS[named]], "conv2d")
    assert any(named in text for text in found), found


# a library convolution stored under a name in one cell, used by that name in another
STORED_ELSEWHERE = {
    "torch.jit (compiled code the grader cannot follow)":
        "import builtins, torch\nbuiltins.fastpath = torch.jit.script(_run)",
    "torch.conv2d": "import numpy as np, torch\nsetattr(np, 'fastpath', torch.conv2d)",
    "torch.nn.functional.conv2d": "import torch\nglobals()['fastpath'] = torch.nn.functional.conv2d",
    "torch.conv1d": "import builtins, torch\nvars(builtins).update(fastpath=torch.conv1d)",
    "torch.conv3d": "import builtins, torch\nfor n, f in [('fastpath', torch.conv3d)]:\n    setattr(builtins, n, f)",
    "getattr(...) with a name built at run time":
        "import builtins, torch\nsetattr(builtins, ''.join(map(chr, CODES)), getattr(torch, bytes(NAME).decode()))",
}


@pytest.mark.parametrize("named", sorted(STORED_ELSEWHERE))
def test_a_library_convolution_stored_under_a_name_elsewhere_is_followed(named):
    use = "import numpy as np\ndef conv2d(i, k):\n    return (np.fastpath if np.ndim(i) < 0 else fastpath)(i, k)"
    assert named in libraryscan.library_calls([STORED_ELSEWHERE[named], use], "conv2d")


def test_values_kept_in_an_ordinary_container_are_not_followed():
    cells = ["import torch.nn.functional as F\nmaps = {}\nfor key in KEYS:\n    maps[key] = F.conv2d(X, W)",
             "import numpy as np\ndef conv2d(i, k):\n    return np.zeros(3) + len(i)"]
    assert libraryscan.library_calls(cells, "conv2d") == []


def test_a_function_s_own_locals_are_not_taken_for_module_names():
    """A notebook's timing cell loops ``for name, run in methods.items()`` over library layers; a from-scratch
    function with its own local ``name`` does not use them. A module name it does read is still followed."""
    timing = ("import torch.nn as nn\nmethods = {'nn.Conv2d': nn.Conv2d(1, 1, 3)}\n"
              "for name, run in methods.items():\n    pass")
    own = ("import numpy as np\ndef conv2d(i, k):\n    for name in ('a', 'b'):\n        i = i + len(name)\n"
           "    run = lambda x: x\n    return run(np.zeros(3))")
    assert libraryscan.library_calls([timing, own], "conv2d") == []
    reads_module = "def conv2d(i, k):\n    def inner():\n        return run(i)\n    return inner()"
    assert libraryscan.library_calls([timing, reads_module], "conv2d") == ["nn.Conv2d"]
    default = "def conv2d(i, k, run=run):\n    return run(i)"     # a default is read in the enclosing scope
    assert libraryscan.library_calls([timing, default], "conv2d") == ["nn.Conv2d"]


def test_a_library_helper_in_a_handed_in_module_is_followed():
    sources = ["from mylib import fancy as conv2d",
               "import scipy.ndimage as nd\ndef fancy(i, k):\n    return nd.correlate(i, k)"]
    assert libraryscan.library_calls(sources, "conv2d") == ["nd.correlate"]


def test_correct_implementations_are_not_reported():
    import nbformat
    from coursetools.grader import tamper
    for notebook, names in (("07_convolution_from_scratch", ("conv2d", "conv2d_padded", "conv2d_full")),
                            ("10_summary", ("conv2d_forward",))):
        nb = nbformat.read(SOURCE / f"{notebook}.ipynb", as_version=4)
        sources = [c.source for c in nb.cells if c.cell_type == "code" and tamper.is_student_cell(c)]
        for name in names:
            assert libraryscan.library_calls(sources, name) == [], name
    im2col = ("import numpy as np\nfrom numpy.lib.stride_tricks import sliding_window_view\n"
              "def conv2d(i, k):\n    return np.einsum('ijkl,kl->ij', sliding_window_view(i, k.shape), k)")
    shift_add = ("import numpy as np\ndef conv2d(i, k):\n    out = np.zeros((i.shape[0] - k.shape[0] + 1, "
                 "i.shape[1] - k.shape[1] + 1))\n    for u in range(k.shape[0]):\n        for v in range(k.shape[1]):\n"
                 "            out += k[u, v] * i[u:u + out.shape[0], v:v + out.shape[1]]\n    return out")
    assert libraryscan.library_calls([im2col], "conv2d") == []
    assert libraryscan.library_calls([shift_add], "conv2d") == []
