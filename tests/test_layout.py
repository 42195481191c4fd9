"""The repository's layout (README, "Layout"): layers that only import downwards, no cycle, small files."""
import ast
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "coursetools"
# Lowest first: a module may import from its own layer and the layers before it, never after.
LAYERS = ["core", "grader", "plain", "autograde", "pipeline", "tools", "cli"]
MAX_LINES = 600


def layer_of(module):
    """'coursetools.grader.judge' -> 'grader'; the package's own __init__ and __main__ -> None."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("__init__", "__main__"):
        return None
    return parts[1]


def module_name(path):
    relative = path.relative_to(REPO).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(path):
    """The coursetools modules a file imports, at the top or inside functions."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("coursetools"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.startswith("coursetools"):
                found.add(base)
                # `from coursetools.grader import judge` imports the module coursetools.grader.judge
                found.update(f"{base}.{alias.name}" for alias in node.names
                             if (REPO / base.replace(".", "/") / f"{alias.name}.py").is_file())
    return found


def import_graph():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {target for target in imports_of(path) if target in modules and target != name}
            for name, path in modules.items()}


def test_every_module_has_a_known_layer():
    unknown = sorted(name for name in import_graph() if layer_of(name) not in LAYERS + [None])
    assert not unknown, f"modules outside the layers {LAYERS}: {unknown}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for name, targets in sorted(import_graph().items()):
        mine = layer_of(name)
        for target in sorted(targets):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and LAYERS.index(theirs) > LAYERS.index(mine):
                upward.append(f"{name} ({mine}) imports {target} ({theirs})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_needs_only_the_standard_library():
    allowed_roots = {"coursetools"}
    for path in (PACKAGE / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                root = name.split(".")[0]
                assert root in allowed_roots or root in sys.stdlib_module_names, \
                    f"{path.relative_to(REPO)} imports {name}: core/ is standard library only"


def tracked_python_files():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_no_python_file_is_over_600_lines():
    files = tracked_python_files()
    assert any(path.parent == PACKAGE for path in files), "git ls-files found none of coursetools/"
    long = {str(path.relative_to(REPO)): count for path in files
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"Python files over {MAX_LINES} lines: {long}"
