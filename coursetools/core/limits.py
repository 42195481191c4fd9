"""Grading limits (docs/grading-guarantees.md): their defaults, and the one reader of nbgrader_config.py.

The reader needs only the standard library, so the plain runner and the GPU check (torch and
NumPy only) read the same settings as the grader. It takes the literal assignments
``c.Section.name = value`` of the file; a setting written as an expression is not read, and
its default applies.
"""
import ast
import pathlib

CONFIG_FILE = "nbgrader_config.py"

# name: (default, nbgrader_config.py section, setting)
LIMITS = {
    "cell_timeout": (60, "Execute", "timeout"),
    "notebook_timeout": (600, "ResilientExecute", "notebook_timeout"),
    "memory_limit_mb": (4096, "ResilientExecute", "memory_limit_mb"),
    "max_text_chars": (100_000, "ResilientExecute", "max_text_chars"),
    "max_output_bytes": (5_000_000, "ResilientExecute", "max_output_bytes"),
    "max_lines": (1000, "LimitOutput", "max_lines"),
    "max_notebook_mb": (50, "Preflight", "max_notebook_mb"),
    "max_file_mb": (100, "Preflight", "max_file_mb"),
    # the sandbox as a whole (issue 26): its cgroup's memory (processes and tmpfs pages), its work copy's room
    "sandbox_memory_mb": (6144, "ResilientExecute", "sandbox_memory_mb"),
    "work_mb": (512, "ResilientExecute", "work_mb"),
}
DEFAULT_LIMITS = {name: default for name, (default, _, _) in LIMITS.items()}


def read_config(root):
    """{section: {setting: value}} of the literal settings in ``root``/nbgrader_config.py ({} without one)."""
    try:
        tree = ast.parse(pathlib.Path(root, CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    config = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                and isinstance(target.value.value, ast.Name) and target.value.value.id == "c"):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            config.setdefault(target.value.attr, {})[target.attr] = value
    return config


def load_limits(root):
    """The limits set in ``root``/nbgrader_config.py, with the defaults for the rest."""
    config = read_config(root)
    return {name: config.get(section, {}).get(setting, default)
            for name, (default, section, setting) in LIMITS.items()}
