"""Stand-ins for matplotlib, ipywidgets and IPython where they are not installed (or asked to be stubbed).

Loaded in the plain runner's child process (``coursetools.plain.child``): standard library only, NumPy
when it is there. Widgets keep their values and call their observers; plotting calls do nothing.
"""
import sys

STUB_MARK = "__plainrun_stub__"  # set on every stub module


class Dummy:
    """Stands in for any object of a stubbed module: every attribute, call and item is another Dummy."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return Dummy()

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Dummy()

    def __getitem__(self, key):
        return Dummy()

    def __setitem__(self, key, value):
        pass

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return "<stub>"


def _stub_subplots(nrows=1, ncols=1, *args, squeeze=True, **kwargs):
    try:
        import numpy as np
        axes = np.empty((nrows, ncols), dtype=object)
        for i in range(nrows):
            for j in range(ncols):
                axes[i, j] = Dummy()
        if squeeze:
            axes = axes.squeeze()
            axes = axes.item() if axes.ndim == 0 else axes
    except ImportError:
        axes = Dummy() if nrows * ncols == 1 else [Dummy() for _ in range(nrows * ncols)]
    return Dummy(), axes


class _Widget:
    """A stand-in widget: keeps its keyword arguments as attributes and calls observers when ``value`` changes."""

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_observers", [])
        if args:
            kwargs.setdefault("children", args[0])
        if "value" not in kwargs and kwargs.get("options"):
            first = list(kwargs["options"])[0]
            kwargs["value"] = first[1] if isinstance(first, tuple) and len(first) == 2 else first
        kwargs.setdefault("value", None)
        for key, value in kwargs.items():
            object.__setattr__(self, key, value)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Dummy()

    def __setattr__(self, name, value):
        old = self.__dict__.get(name)
        object.__setattr__(self, name, value)
        if old is not value and old != value:
            for handler, names in list(self._observers):
                if names is None or name in names:
                    handler(dict(name=name, old=old, new=value, owner=self, type="change"))

    def observe(self, handler, names=None, type="change"):
        names = [names] if isinstance(names, str) else names
        self._observers.append((handler, names))

    def unobserve(self, handler, names=None, type="change"):
        self._observers[:] = [o for o in self._observers if o[0] is not handler]

    def on_click(self, handler, remove=False):
        pass

    def clear_output(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"{type(self).__name__}(value={self.value!r})"


def _interact_value(abbreviation):
    if isinstance(abbreviation, _Widget):
        return abbreviation.value
    if isinstance(abbreviation, tuple) and abbreviation and all(isinstance(v, (int, float)) for v in abbreviation):
        low, high = abbreviation[0], abbreviation[1] if len(abbreviation) > 1 else abbreviation[0]
        middle = (low + high) / 2
        return int(middle) if all(isinstance(v, int) for v in abbreviation) else middle
    if isinstance(abbreviation, (list, tuple)) and abbreviation:
        first = abbreviation[0]
        return first[1] if isinstance(first, tuple) and len(first) == 2 else first
    if isinstance(abbreviation, dict) and abbreviation:
        return next(iter(abbreviation.values()))
    return getattr(abbreviation, "_fixed_value", abbreviation)


def _stub_interact(function=None, **kwargs):
    """ipywidgets.interact: calls the function once with the widgets' starting values."""
    def apply(func):
        func(**{k: _interact_value(v) for k, v in kwargs.items()})
        return func
    return apply(function) if function is not None else apply


def display(*objects, **kwargs):
    print(*objects)  # what IPython.display.display does outside a kernel


class _DisplayObject:
    def __init__(self, data=None, *args, **kwargs):
        self.data = data

    def __repr__(self):
        return f"<{type(self).__name__}: {str(self.data)[:60]!r}>"


def _make_stub_module(fullname):
    import types

    class StubModule(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            if root == "ipywidgets":
                value = type(name, (_Widget,), {})
            else:
                value = Dummy()
            setattr(self, name, value)
            return value

    module = StubModule(fullname)
    module.__path__ = []
    setattr(module, STUB_MARK, True)
    root = fullname.split(".")[0]
    if fullname == "matplotlib.pyplot":
        module.subplots = _stub_subplots
    if root == "ipywidgets":
        module.interact = module.interact_manual = _stub_interact
        module.interactive = lambda function, **kwargs: _Widget(result=_stub_interact(function, **kwargs))
        module.fixed = lambda value: type("fixed", (), {"_fixed_value": value})()
    if root == "IPython":
        module.display = display
        module.get_ipython = lambda: None
        for name in ("HTML", "Markdown", "Image", "Math", "Latex", "SVG", "JSON", "Javascript", "Pretty"):
            setattr(module, name, type(name, (_DisplayObject,), {}))
        module.clear_output = lambda *args, **kwargs: None
    return module


def install(roots):
    """Serve every import of ``roots`` (and their submodules) from stub modules."""
    import importlib.abc
    import importlib.util

    class StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname.split(".")[0] in roots:
                return importlib.util.spec_from_loader(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            return _make_stub_module(spec.name)

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, StubFinder())


def imported_roots():
    """Top-level names of the stub modules imported so far."""
    return {name.split(".")[0] for name, module in list(sys.modules.items())
            if getattr(module, "__dict__", {}).get(STUB_MARK)}
