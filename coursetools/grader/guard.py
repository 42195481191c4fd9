"""The runtime tamper guard, installed in the student's kernel before any of the student's code runs.

``coursetools.grader.tamper.guard_install_code`` sends this file's source to the kernel, compiles it
there under its own file name (so its functions are not taken for notebook code), and keeps the
guard that ``make_guard`` returns under a random name in ``builtins``; ``ResilientExecute`` calls it
after every code cell (``tamper.guard_call``). So this module is self-contained: the standard
library only, imported inside ``make_guard`` (the guard keeps them in its closure), and nothing
else at module level.

The guard finds, whatever the code that did it: functions or callable objects defined in the
notebook that sit in a protected module, protected callables replaced since they were first seen,
a module name of the read-only cells rebound to a fake module, and notebook-defined hooks in
IPython, the kernel, ``sys`` (trace, profile, excepthook, displayhook, import hooks) or the IPython
input transformers and events.
"""


def make_guard(guarded, checks_modules, ip):
    """The guard: ``check(aliases)`` -> sorted findings (strings); it never raises.

    ``guarded``: names of the modules whose contents are watched; ``checks_modules``: the checks
    module(s), whose names the notebook may not rebind at all; ``ip``: the kernel's IPython shell.
    ``aliases`` (at each call): (name, module, attr or None) that the read-only cells imported.
    """
    import os
    import sys
    import tempfile
    import types
    cell_dir = os.path.join(tempfile.gettempdir(), "ipykernel_%d" % os.getpid())
    missing = object()
    baselines = {}   # id-keyed snapshots of namespaces: {key: (owner, {name: value})}

    def notebook_code(obj, depth=0):
        if depth > 2 or obj is None:
            return False
        code = getattr(obj, "__code__", None)
        if code is None and isinstance(obj, types.MethodType):
            code = getattr(obj.__func__, "__code__", None)
        if code is not None:
            name = code.co_filename
            return name.startswith(cell_dir) or name.startswith("<ipython-input") or name == "<string>"
        func = getattr(obj, "func", None)
        if func is not None and func is not obj:
            return notebook_code(func, depth + 1)
        if isinstance(obj, type):
            return obj.__module__ == "__main__"
        return callable(obj) and type(obj).__module__ == "__main__"

    def replaceable(value):
        return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type)) \
            or type(value).__name__ == "ufunc"

    def watch(key, owner, label, out, replaced=True):
        # Compare a namespace with its first snapshot; only what changed is looked at closely.
        try:
            items = list(vars(owner).items())
        except TypeError:
            return
        entry = baselines.get(key)
        if entry is None or entry[0] is not owner:
            baselines[key] = (owner, dict(items))
            for name, value in items:
                if callable(value) and notebook_code(value):
                    out.append("%s.%s is replaced by notebook code" % (label, name))
            return
        base = entry[1]
        for name, value in items:
            old = base.get(name, missing)
            if old is value:
                continue
            if callable(value) and notebook_code(value):
                out.append("%s.%s is replaced by notebook code" % (label, name))
            elif isinstance(value, types.FunctionType) and value.__dict__.get("__wrapped__") is old \
                    and str(value.__module__).startswith("torch"):
                base[name] = value   # torch wrapping its own function (importing torch._dynamo wraps manual_seed)
            elif replaced and old is not missing and replaceable(old):
                out.append("%s.%s was replaced" % (label, name))

    def watch_object(key, obj, label, out):
        # An object's own attributes, and the classes it is made of.
        if obj is None:
            return
        watch(key, obj, label, out, replaced=False)
        for klass in type(obj).__mro__:
            if klass.__module__ == "__main__":
                out.append("%s is an object of a class defined in the notebook" % label)
                return
            if klass is not object:
                watch((key, klass.__qualname__), klass, "%s (%s)" % (label, klass.__name__), out)

    def snapshot():
        return {
            "excepthook": sys.excepthook, "displayhook": sys.displayhook,
            "meta_path": list(sys.meta_path), "path_hooks": list(sys.path_hooks),
            "cleanup": list(ip.input_transformers_cleanup), "post": list(ip.input_transformers_post),
            "ast": list(ip.ast_transformers),
        }

    base = snapshot()

    def check(aliases):
        out = []
        try:
            for name in guarded:
                module = sys.modules.get(name)
                if module is None:
                    continue
                if not isinstance(module, types.ModuleType) or getattr(module, "__name__", None) != name:
                    out.append("sys.modules[%r] is not the real module" % name)
                    continue
                entry = baselines.get(name)
                if entry is not None and entry[0] is not module:
                    out.append("the module %s was replaced in sys.modules" % name)
                    continue
                watch(name, module, name, out)
                for attr, value in list(baselines[name][1].items()):
                    if isinstance(value, type) and value.__module__ == name:
                        watch((name, attr), value, "%s.%s" % (name, attr), out)
            main = sys.modules["__main__"].__dict__
            for name, module, attr in aliases:
                target = sys.modules.get(module)
                if attr is not None:
                    target = getattr(target, attr, None) if target is not None else None
                if name not in main:
                    continue
                value = main[name]
                if target is None or value is target:
                    continue
                fake = isinstance(value, (types.ModuleType, types.SimpleNamespace)) or notebook_code(value) \
                    or type(value).__module__ == "__main__"
                if module.split(".")[0] in checks_modules or fake:
                    out.append("the name %s no longer refers to %s" % (name, module + ("." + attr if attr else "")))
            now = snapshot()
            for key in ("excepthook", "displayhook"):
                if now[key] is not base[key] and notebook_code(now[key]):
                    out.append("sys.%s is notebook code" % key)
            for key in ("meta_path", "path_hooks", "cleanup", "post", "ast"):
                for item in now[key]:
                    if not any(item is old for old in base[key]) and (notebook_code(item) or notebook_code(
                            getattr(item, "find_spec", None)) or notebook_code(getattr(item, "visit", None))):
                        out.append("a notebook-defined %s hook was installed" % key.replace("_", " "))
            if sys.gettrace() is not None:
                out.append("a trace function is installed (sys.settrace)")
            if sys.getprofile() is not None:
                out.append("a profile function is installed (sys.setprofile)")
            if ip.custom_exceptions:
                out.append("a custom exception handler is installed (set_custom_exc)")
            for event, callbacks in ip.events.callbacks.items():
                for callback in callbacks:
                    if notebook_code(callback):
                        out.append("a notebook-defined IPython %s callback is registered" % event)
            kernel = getattr(ip, "kernel", None)
            watch_object("shell", ip, "the IPython shell", out)
            watch_object("kernel", kernel, "the kernel", out)
            watch_object("session", getattr(kernel, "session", None), "the kernel session", out)
            watch_object("displayhook", ip.displayhook, "the display hook", out)
            watch_object("display_pub", ip.display_pub, "the display publisher", out)
        except BaseException as error:  # noqa: BLE001 - whatever the notebook broke, the guard answers
            out.append("the integrity check could not run (%s: %s)" % (type(error).__name__, error))
        return sorted(set(out))

    return check
