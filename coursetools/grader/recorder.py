"""The kernel's record of what the student's code ran (the grader reads it: ``coursetools.grader.record``).

Its source runs in the graded kernel just ahead of the agent's (``agent.source()``), in the same
namespace, and, like the agent, it imports nothing from the course.
"""
import json
import os
import re
import sys
import sysconfig
import threading

RECORD_FD = "COURSETOOLS_RECORD_FD"   # the environment variable that names the grader's pipe in the kernel


class Record:
    """What the student's code ran, noted where that code cannot take the note back.

    Set up with the agent, before any student code runs. Two sources feed it:

    * during a graded call of a from-scratch function (``watching``): a profile function (this thread,
      and threads started through ``threading``) notes every library operation that can convolve: a
      builtin, a torch operator (``torch.ops``), or a function of an installed library, whose name says
      convolution, correlation, FFT, unfolding into patches or autograd's backward pass, whatever name
      the student's code reached it by. Steps that would hide what runs (switching the profile off, a
      thread, a process, stack frames, the grader's classes) are noted as hiding;
    * always: an audit hook (PEP 578; nothing can remove one) notes the steps the student's own code
      takes that make code the grader cannot read (code built from text or bytes, a swapped
      ``__code__``, ctypes) or that reach into the grader (frames, the collector, profile and trace).

    Each note is written at once to the grader's pipe (``fd``, handed to the kernel when it starts), so
    whatever runs next cannot unsend it. Without a pipe (a kernel started some other way) notes are kept
    here too and sent with the call's answer."""

    OPERATION = re.compile(r"(?<!locale)conv(?!ert)|correlat|fft|stft|filter2d|lfilter|sosfilt|upfirdn|sepfir"
                           r"|backward|^grad$|unfold|im2col", re.IGNORECASE)
    HIDING = {"setprofile": "switched a profile function (sys.setprofile)",
              "settrace": "set a trace function (sys.settrace)",
              "_start_new_thread": "started a thread", "start_new_thread": "started a thread",
              "start_joinable_thread": "started a thread", "fork": "started a process",
              "forkpty": "started a process", "fork_exec": "started a process", "posix_spawn": "started a process",
              "posix_spawnp": "started a process", "system": "started a process", "execv": "started a process",
              "execve": "started a process", "getprofile": "read the profile function (sys.getprofile)"}
    FROM_STUDENT = {"__subclasses__": "listed a class's subclasses (__subclasses__)",
                    "_getframe": "read stack frames (sys._getframe)"}
    AUDITED = {"compile": "compiled code from text built at run time (compile, exec or eval of a string)",
               "exec": "ran a code object it built",
               "marshal.loads": "loaded code from bytes (marshal)", "code.__new__": "built a code object",
               "function.__new__": "built a function from a code object", "sys._getframe": "read stack frames",
               "gc.get_objects": "searched the garbage collector", "gc.get_referrers": "searched the garbage collector",
               "gc.get_referents": "searched the garbage collector", "sys.setprofile": "set a profile function",
               "sys.settrace": "set a trace function", "sys.addaudithook": "added an audit hook",
               "object.__setattr__": "swapped a function's code (__code__)"}
    # Entry points that run a convolution where the profile function cannot see them: a ufunc, or a builtin
    # called from C (map, sorted's key). Each is replaced, in every module that holds it, by a wrapper that
    # notes it during a graded call, whoever calls it.
    ENTRY_POINTS = {"numpy._core._multiarray_umath": ("correlate", "correlate2"),
                    "numpy.fft._pocketfft_umath": ("fft", "ifft", "irfft", "rfft_n_even", "rfft_n_odd")}
    # compiled code (TorchScript) runs its operations in C++, where no profile function follows them
    COMPILED = {"torch._C": ("ScriptFunction", "ScriptMethod")}
    COMPILED_NOTE = "ran compiled TorchScript code (torch.jit), whose operations the grader cannot follow"
    MAX_NOTES = 50
    write, getframe, dumps = staticmethod(os.write), staticmethod(sys._getframe), staticmethod(json.dumps)
    setprofile, getprofile, threading = staticmethod(sys.setprofile), staticmethod(sys.getprofile), threading
    module_type = type(sys)
    module_dict = staticmethod(type(sys).__dict__["__dict__"].__get__)

    def __init__(self, fd):
        self.fd = fd
        self.kept, self.said = [], set()   # notes not yet handed over; what was said (never twice)
        self.call = None           # the graded call being watched, or None
        self.counted = 0           # notes of the current call (or of the cells, before the first call)
        self.busy = False          # inside this record's own code: its events are not the student's
        paths = sysconfig.get_paths()
        roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
        # the grader's own code in the kernel (this agent, the guard) is trusted as the libraries are
        self.trusted = tuple(sorted(roots | {os.path.realpath(r) for r in roots})) + (
            "<grader agent>", "<coursetools-guard>", "<frozen ")
        self.profiler = self.profile   # one bound method, so that sys.getprofile() can be compared with it
        self.armed = False
        self.unguarded = set(self.ENTRY_POINTS) | set(self.COMPILED)   # modules whose entry points wait
        self.compiled_calls = {}       # the class whose __call__ was wrapped: the wrapper

    def guard(self):
        """Wrap the entry points of each module of ENTRY_POINTS and COMPILED that is loaded by now."""
        for name in [name for name in self.unguarded if name in sys.modules]:
            self.unguarded.discard(name)
            module = sys.modules[name]
            for attribute in self.ENTRY_POINTS.get(name, ()):
                original = getattr(module, attribute, None)
                if original is not None:
                    self.replace_everywhere(original, self.entry_point(original, f"{name}.{attribute}"))
            for attribute in self.COMPILED.get(name, ()):
                cls = getattr(module, attribute, None)
                if isinstance(cls, type) and "__call__" in cls.__dict__:
                    cls.__call__ = self.compiled_calls[cls] = self.compiled_call(cls.__dict__["__call__"])

    def replace_everywhere(self, original, wrapper):
        """Put ``wrapper`` where any module holds ``original``. Only real modules, read through the module
        type's own slot and with plain string keys, so that no object of the student's runs code here."""
        for module in list(dict.values(sys.modules)):
            if not issubclass(type(module), self.module_type):
                continue
            namespace = self.module_dict(module)
            for key in [key for key, value in dict.items(namespace) if value is original and type(key) is str]:
                dict.__setitem__(namespace, key, wrapper)

    def entry_point(self, original, what):
        record = self

        def entry_point(*args, **kwargs):
            if record.call is not None and not record.busy:
                record.note("ran", what)
            return original(*args, **kwargs)
        entry_point.__name__ = entry_point.__qualname__ = getattr(original, "__name__", "entry_point")
        entry_point.__doc__ = getattr(original, "__doc__", None)
        return entry_point

    def compiled_call(self, original):
        record = self

        def __call__(*args, **kwargs):
            if record.call is not None and not record.busy:
                record.note("hid", record.COMPILED_NOTE)
            return original(*args, **kwargs)
        return __call__

    def compiled_unwatched(self):
        """Whether a wrapped TorchScript class's __call__ is no longer the wrapper (put back by the student)."""
        return any(cls.__dict__.get("__call__") is not wrapper for cls, wrapper in self.compiled_calls.items())

    def arm(self):
        """Start the audit hook: once the grader's own set-up code has run, before the first cell."""
        if not self.armed:
            self.armed = True
            self.guard()
            sys.addaudithook(self.audit)

    def note(self, kind, what):
        """Write one note to the grader: each once, at most MAX_NOTES per call (a call's end always)."""
        if kind != "end":
            key = (kind, what, self.call)
            if key in self.said or self.counted >= self.MAX_NOTES:
                return
            self.said.add(key)
            self.counted += 1
        line = {"kind": kind, "what": what, "call": self.call}
        self.kept.append(line)
        if self.fd is not None:
            try:
                self.write(self.fd, (self.dumps(line) + "\n").encode())
            except OSError:
                self.fd = None   # the grader reads a call without its end as a call that hid what it ran

    def library(self, filename):
        return filename.startswith(self.trusted)

    def loaded_file(self, filename):
        """Whether code compiled under ``filename`` came from a file that is not a module: a handed-in
        ``.txt`` loaded by an import loader, say (cells and modules end in .py; text compiled is <string>)."""
        if not isinstance(filename, (str, bytes, os.PathLike)):
            return False
        name = os.fsdecode(filename)
        return not name.startswith("<") and not name.endswith(".py") and not self.library(name) and \
            os.path.isfile(name)

    def audit(self, event, args):
        if self.unguarded and not self.busy and any(name in sys.modules for name in self.unguarded):
            self.busy = True   # (a module of ENTRY_POINTS or COMPILED was just loaded: wrap it before it is used)
            try:
                self.guard()
            finally:
                self.busy = False
        if self.busy or event not in self.AUDITED and not event.startswith("ctypes."):
            return
        self.busy = True
        try:
            if event == "object.__setattr__" and (len(args) < 2 or args[1] != "__code__"):
                return
            if event == "compile" and len(args) > 1 and self.loaded_file(args[1]):
                self.note("hid" if self.call is not None else "unreadable",
                          f"loaded code from a file that is not a Python module ({os.fsdecode(args[1])[-80:]})")
                return
            caller = self.getframe(1)
            if caller is not None and self.library(caller.f_code.co_filename):
                return
            self.note("hid" if self.call is not None else "unreadable",
                      self.AUDITED.get(event) or "used ctypes (" + event + ")")
        finally:
            self.busy = False

    def profile(self, frame, event, arg):
        if self.busy or self.call is None:
            return
        if event == "c_call":
            name = getattr(arg, "__name__", "") or ""
            if self.OPERATION.search(name):
                self.note("ran", f"{getattr(arg, '__module__', None) or type(getattr(arg, '__self__', None)).__name__}"
                                 f".{name}")
            elif name in self.HIDING:
                self.note("hid", self.HIDING[name])
            elif name in self.FROM_STUDENT and not self.library(frame.f_code.co_filename):
                self.note("hid", self.FROM_STUDENT[name])
        elif event == "call":
            code = frame.f_code
            if code.co_name == "__call__" and code.co_filename.endswith("_ops.py") and self.library(code.co_filename):
                operator = str(frame.f_locals.get("self", ""))
                if self.OPERATION.search(operator):
                    self.note("ran", f"torch.ops.{operator}")
            elif code.co_flags & 1 and self.OPERATION.search(code.co_name) and self.library(code.co_filename):
                # (flag 1, CO_OPTIMIZED: a function's code, not a class body run while a module is imported)
                module = frame.f_globals.get("__name__", "") if isinstance(frame.f_globals, dict) else ""
                self.note("ran", f"{module}.{code.co_name}")

    def watching(self, call, target, args, kwargs):
        """Call ``target`` as graded call ``call``, noting what it runs; what it returned or raised."""
        self.busy = True
        self.guard()
        self.call, self.counted = call, 0
        if self.compiled_unwatched():
            self.note("hid", "put back what the grader wraps around compiled TorchScript code")
        self.threading.setprofile(self.profiler)
        self.setprofile(self.profiler)
        self.busy = False
        try:
            return target(*args, **kwargs)
        finally:
            self.busy = True
            if self.getprofile() is not self.profiler:
                self.note("hid", "switched the grader's profile function off")
            if self.compiled_unwatched():
                self.note("hid", "put back what the grader wraps around compiled TorchScript code")
            self.setprofile(None)
            self.threading.setprofile(None)
            self.note("end", "")
            self.call = None
            self.busy = False

    def taken(self, call):
        """The notes kept here of graded call ``call`` (None: of the cells), handed over once."""
        taken = [line for line in self.kept if line["call"] == call]
        self.kept = [line for line in self.kept if line["call"] != call]
        return taken
