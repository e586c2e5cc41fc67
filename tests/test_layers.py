"""The package's floors (docs/DESIGN.md): every import, at the top of a module or inside a
function, goes to the module's own floor or a lower one, and no modules import each other in a
circle. Read from the source with ``ast``, so an import hidden in a function counts too."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

import ddpm_course

ROOT = Path(ddpm_course.__file__).parent

FLOORS = {
    0: ["_checks", "_signals", "_compat", "_atomic"],
    1: ["schedules", "_model"],
    2: ["forward", "oracle", "data", "timing", "_records"],
    3: ["models"],  # and every models.* module
    4: ["losses", "steps", "samplers", "parametrization", "viz", "widgets", ""],  # "": the package's __init__
    5: ["train", "_checkpoint_format", "_checkpoint_load", "checkpoint", "distributed"],
    6: ["shipped"],
    7: ["guidance", "autoencoder", "sample_metrics", "feature_net", "metrics", "gan", "compare", "score", "flow",
        "distill"],
    8: ["exercises", "_commands", "cli", "grade", "_colab"],
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _floor(module: str) -> int:
    top = module.split(".")[0]
    for floor, names in FLOORS.items():
        if top in names:
            return floor
    raise AssertionError(f"ddpm_course.{module} has no floor in FLOORS (and docs/DESIGN.md): give it one")


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement loads, as names relative to ddpm_course."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.level == 0:
        names = [f"{node.module}.{a.name}" for a in node.names] if node.module else []
    else:
        base = importer.split(".") if importer else []
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(["ddpm_course", *base, *([node.module] if node.module else [])])
        names = [f"{module}.{a.name}" for a in node.names]
    out = []
    for name in names:
        if not name.startswith("ddpm_course"):
            continue
        rel = name.removeprefix("ddpm_course").lstrip(".")
        while rel and not ((ROOT / f"{rel.replace('.', '/')}.py").exists() or (ROOT / rel.replace(".", "/")).is_dir()):
            rel = rel.rpartition(".")[0]  # an attribute of a module: the module itself
        out.append(rel)
    return out


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        importer = _module_name(path)
        edges = graph.setdefault(importer, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(m for m in _resolve(importer, path.name == "__init__.py", node) if m != importer)
    return graph


def test_no_module_imports_from_a_higher_floor():
    upward = [
        f"ddpm_course.{a or '__init__'} (floor {_floor(a)}) imports ddpm_course.{b or '__init__'} (floor {_floor(b)})"
        for a, targets in _imports().items() for b in sorted(targets)
        if _floor(b) > _floor(a) and not (b == "" and a.split(".")[0] in FLOORS[8])
    ]
    assert not upward, "\n".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, or None (a depth-first search; a package's __init__ importing its own
    submodules, which import their siblings, is not a circle)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or (node and not nxt):  # a package's re-exports; the top package
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circle():
    assert _cycle(_imports()) is None, " -> ".join(f"ddpm_course.{m}" for m in _cycle(_imports()))


def test_the_checks_catch_an_upward_import_and_a_circle():
    """The two checks can fail: a floor-3 model importing a lesson module, and a circle."""
    assert _floor("models.unet") < _floor("autoencoder")
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"models": {"models.vae"}, "models.vae": {"_checks"}, "_checks": set()}) is None
    tree = ast.parse("def f():\n    from ..autoencoder import VAE\n")
    assert _resolve("models.vae", False, tree.body[0].body[0]) == ["autoencoder"]


def test_every_network_lives_in_models():
    """Lesson modules hold losses, samplers and training; the networks they train are in models/."""
    from torch import nn

    from ddpm_course import autoencoder, compare, gan, metrics

    for module in (autoencoder, compare, gan, metrics):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__.startswith("ddpm_course"):
                assert value.__module__.startswith("ddpm_course.models."), f"{module.__name__}.{name}"


MODULE_LINES = 700  # docs/DESIGN.md, "Budgets"
FUNCTION_CODE_LINES = 60
# a statement a re-exporting __init__ may hold: its docstring, imports, __all__ (and `from __future__`)
_REEXPORT = (ast.Import, ast.ImportFrom)


def _code_lines(source_lines: list[str], fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``fn``'s body that hold code: not its docstring, not blank, not comments."""
    body = fn.body
    if ast.get_docstring(fn, clean=False) is not None:
        if len(body) == 1:
            return 0
        body = body[1:]
    lines = source_lines[body[0].lineno - 1: fn.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def _over_budget(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        name = path.relative_to(root).as_posix()
        if len(lines) > MODULE_LINES:
            found.append(f"{name}: {len(lines)} lines (budget {MODULE_LINES})")
        tree = ast.parse(source, str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(lines, node)
                if n > FUNCTION_CODE_LINES:
                    found.append(f"{name}: {node.name} has {n} lines of code (budget {FUNCTION_CODE_LINES})")
        if path.name == "__init__.py" and path.parent != root:  # a folder of the package, not the package
            for stmt in tree.body[1:] if ast.get_docstring(tree) else tree.body:
                is_all = isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == ["__all__"]
                if not (isinstance(stmt, _REEXPORT) or is_all):
                    found.append(f"{name}: line {stmt.lineno} is a {type(stmt).__name__}, but a folder's "
                                 "__init__.py only re-exports")
    return found


def test_every_module_is_within_its_budget():
    """No module over 700 lines, no function over 60 lines of code, a folder's __init__ only
    re-exports (the package's own __init__ also holds setup and pick_device, docs/DESIGN.md)."""
    assert _over_budget(ROOT) == []


def test_the_budget_check_can_fail(tmp_path):
    long_function = "def f():\n    \"\"\"doc\"\"\"\n" + "".join(f"    x{i} = {i}\n" for i in range(61))
    (tmp_path / "long.py").write_text(long_function + "# padding\n" * 700)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""doc"""\nfrom .a import b\n__all__ = ["b"]\nX = 1\n')
    (tmp_path / "pkg" / "fine.py").write_text("def g():\n    # a comment\n\n    return 1\n")
    found = _over_budget(tmp_path)
    assert found == ["long.py: 763 lines (budget 700)", "long.py: f has 61 lines of code (budget 60)",
                     "pkg/__init__.py: line 4 is a Assign, but a folder's __init__.py only re-exports"], found


@pytest.mark.parametrize(("module", "old", "new"), [
    ("compare", "VAE", "PointVAE"), ("compare", "VAEConfig", "PointVAEConfig"),
    ("compare", "train_vae", "train_point_vae"),
    ("flow", "euler_step", "flow_euler_step"), ("flow", "heun_step", "flow_heun_step"),
    ("samplers", "Evaluation", "PastEstimate"),
])
def test_a_renamed_name_still_works_and_says_its_new_name(module, old, new):
    import importlib

    mod = importlib.import_module(f"ddpm_course.{module}")
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is now {module}\.{new}"):
        assert getattr(mod, old) is getattr(mod, new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
            mod.nonexistent  # noqa: B018
